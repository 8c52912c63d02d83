"""/api/v1/plants/sparklines: the graph view's small lines of today's sold power, for one page of plants."""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from pms_api.access import principal
from pms_api.jsonout import json_response
from pms_api.plant_figures import PlantFigures
from pms_api.plant_list import PlantList
from pms_api.plant_list_models import SparklinePage, SparklineQuery
from pms_common import timeutil
from pms_registry import Registry

PLANTS = Tag(name="plants", description="Plants and what they sell")


def add_plant_list_routes(api: APIBlueprint, registry: Registry, figures: PlantFigures) -> None:
    plant_list = PlantList(registry, figures)

    @api.get("/plants/sparklines", tags=[PLANTS], responses={200: SparklinePage})
    def plant_sparklines(query: SparklineQuery) -> Response:
        """Today's sold power per 30-minute slot (mean W) of each plant asked for that the caller may see;
        codes it may not see, or that do not exist, are left out of the answer."""
        codes = list(dict.fromkeys(query.codes.split(",")))
        return json_response(plant_list.sparklines(codes, principal().customer_id, timeutil.now_jst()))
