"""Request and response models of the update-image endpoints (upload, list, one image, its download)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class FirmwarePath(BaseModel):
    sha256: str = Field(pattern=SHA256_PATTERN, description="the image's sha256, lower-case hex")


class FirmwareImageOut(BaseModel):
    """An update image the cloud holds (a wheel of pms-collector), as its signed manifest describes it."""

    sha256: str
    version: str
    size: int = Field(description="bytes")
    min_version: str | None = Field(description="the lowest running version it may replace (null: any)")
    key_id: str = Field(description="the signing key's id (the first 16 hex digits of its sha256)")
    uploaded_at: datetime
    uploaded_by: str | None
    image_url: str = Field(description="where gateways download it (HTTP Basic auth with their broker login)")


class FirmwareImageDetail(FirmwareImageOut):
    manifest: dict[str, Any] = Field(description="the signed manifest, as uploaded (what gateways verify)")


class FirmwareImagePage(BaseModel):
    items: list[FirmwareImageOut]
    total: int
    limit: int
    offset: int


# The upload's body: flask-openapi3 would parse a form model before the view could bound its size,
# so the view reads the parts itself and the document describes them here.
UPLOAD_BODY: dict[str, Any] = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "required": ["image", "manifest"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "the wheel of pms-collector"},
        "manifest": {"type": "string", "description": "the signed manifest's JSON (`pms firmware sign`)"},
    },
}}}}

IMAGE_CONTENT: dict[str, Any] = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
