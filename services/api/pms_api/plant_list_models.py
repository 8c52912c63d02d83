"""The cross-plant list's request and answer: search, filters, sort and paging of GET /api/v1/plants,
and the graph view's sparklines of today's sold power."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from pms_api.models import CustomerId, PageQuery, PlantPage, PlantStatus

SortKey = Literal["service_code", "name", "customer_id", "current_sold_w", "today_sold_kwh", "status", "pr"]
SPARKLINE_BUCKET_MIN = 30
MAX_SPARKLINES = 200


# No control characters in what is searched: nothing stored holds them, and PostgreSQL refuses a NUL
# in a text parameter outright (found by the OpenAPI fuzz on PostgreSQL: a 503, now a 422).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class PlantListQuery(PageQuery):
    q: str | None = Field(default=None, max_length=100, pattern=PRINTABLE,
                          description="a piece of the service code, name, address, phone or customer id "
                                      "(case-insensitive)")
    status: PlantStatus | None = None
    customer_id: CustomerId | None = None
    tag: str | None = Field(default=None, min_length=1, max_length=64, pattern=PRINTABLE,
                            description="a tag of a gateway bound to the plant now")
    not_measured: bool = Field(default=False, description="only plants without a current reading (null sold W)")
    sort: SortKey = "service_code"
    order: Literal["asc", "desc"] = "asc"


class PlantListPage(PlantPage):
    sort: SortKey
    order: Literal["asc", "desc"]
    snapshot_age_s: float | None = Field(
        description="how old the fleet's figures were that this order or filter was taken from (they are kept "
                    "a few seconds); null when the answer needed none (a sort by a registry column). The rows' "
                    "own figures are always read now")


class SparklineQuery(BaseModel):
    codes: str = Field(pattern=rf"^pss\d{{8}}(,pss\d{{8}}){{0,{MAX_SPARKLINES - 1}}}$",
                       description=f"comma-separated service codes (at most {MAX_SPARKLINES})")


class Sparkline(BaseModel):
    service_code: str
    sold_w: list[float | None] = Field(
        description=f"mean sold power (W) of each {SPARKLINE_BUCKET_MIN}-minute slot of today (JST), from the "
                    "slot's sold energy; null for a slot not metered (yet)")


class SparklinePage(BaseModel):
    day: date
    bucket_minutes: int
    items: list[Sparkline]
