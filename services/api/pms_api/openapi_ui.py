"""The OpenAPI document's browsable UI, served by us: Swagger UI as the flask-openapi3-swagger plugin
ships it (its released swagger-ui-dist files under /openapi/swagger/...), with our own page around
it, since the plugin's page starts the UI with an inline script the Content-Security-Policy refuses.
/api/docs leads there too."""

from __future__ import annotations

from pathlib import Path

from flask import redirect
from flask_openapi3 import OpenAPI
from werkzeug.wrappers import Response as WerkzeugResponse

PAGE = Path(__file__).parent / "templates" / "openapi_ui.html"
UI_PATH = "/openapi/swagger"


def add_openapi_ui(app: OpenAPI) -> None:
    # The plugin renders SWAGGER_HTML_STRING in place of its own page when the app sets one.
    app.config["SWAGGER_HTML_STRING"] = PAGE.read_text(encoding="utf-8")

    @app.get("/api/docs", doc_ui=False)
    def api_docs() -> WerkzeugResponse:
        return redirect(UI_PATH)
