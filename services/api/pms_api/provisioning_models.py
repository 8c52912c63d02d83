"""Request and response models of the provisioning endpoints (factory list import, binding by claim code)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pms_api.models import ServiceCode


class FactoryRowIn(BaseModel):
    """One gateway of the manufacturer's list; the secret and the claim code are never stored in clear."""

    model_config = ConfigDict(extra="forbid")

    serial: str = Field(min_length=1, max_length=64)
    factory_secret: str = Field(min_length=1, max_length=256)
    claim_code: str = Field(min_length=1, max_length=64)


class FactoryImportQuery(BaseModel):
    replace: bool = Field(default=False, description="a serial imported with another secret or code takes the new "
                                                     "one (otherwise that row is an error)")


class FactoryImportOut(BaseModel):
    created: int
    unchanged: int
    replaced: int


class ClaimCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claim_code: str = Field(min_length=1, max_length=64, description="the code on the gateway's label")
    replace: bool = Field(default=False, description="unbind the plant's other gateways (a replacement): their "
                                                     "broker identities are revoked at once")


class PlantGatewayOut(BaseModel):
    gateway_id: str
    service_code: ServiceCode
    claimed: bool = Field(description="whether the gateway has claimed its identity yet (it may be bound before)")
