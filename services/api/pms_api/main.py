"""`pms api`: the REST API and console under a production WSGI server (waitress)."""

from __future__ import annotations

import logging

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_common.service import configure_logging, settle_heap
from pms_common.settings import describe

log = logging.getLogger(__name__)


def main(settings: ApiSettings | None = None) -> int:
    import waitress

    settings = settings or ApiSettings()
    configure_logging(settings.log_level)
    log.info("api starting with %s", describe(settings))
    app = create_app(settings)
    settle_heap()
    log.info("api on http://%s:%d/ (OpenAPI at /openapi.json); console login %r with PMS_ADMIN_PASSWORD "
             "or, unset, the admin API key", settings.api_host, settings.api_port, settings.admin_user)
    waitress.serve(app, host=settings.api_host, port=settings.api_port, threads=settings.api_threads,
                   ident="pms-api")
    return 0
