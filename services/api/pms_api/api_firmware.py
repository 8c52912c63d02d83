"""/api/v1/firmware: update images uploaded (admin), listed, and downloaded by gateways.

An upload is refused (422, a sentence, counted by reason) unless its manifest is signed by a trusted
key (PMS_FIRMWARE_KEYS), its version is allowed, and the image is exactly the wheel the manifest
describes (firmware_intake). Images are stored by digest (firmware_store): an upload of a digest the
cloud holds already answers 200 and stores nothing twice.

Gateways download an image with HTTP Basic auth = their own broker login: the username is the
gateway id (both brokers name a gateway's login after it), the password is checked against the hash
kept at the claim, and a revoked login (or one whose revocation is under way) fails. Operators may
download with an admin API key or console session. `Range: bytes=N-` resumes (206), the ETag is the
digest. Wrong passwords are throttled per gateway id, like console logins (not per address: see below).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Response, g, request, send_file
from flask_openapi3 import APIBlueprint, Tag
from flask_openapi3.models import RequestBody
from prometheus_client import Counter
from werkzeug.exceptions import RequestEntityTooLarge

from pms_api.access import actor_of, principal_of_request, require_admin
from pms_api.firmware_intake import UploadRefused, check_image, check_manifest
from pms_api.firmware_models import (
    IMAGE_CONTENT,
    UPLOAD_BODY,
    FirmwareImageDetail,
    FirmwareImageOut,
    FirmwareImagePage,
    FirmwarePath,
)
from pms_api.firmware_store import FirmwareStore, ImageTooLarge
from pms_api.jsonout import json_response
from pms_api.login_throttle import LoginThrottle
from pms_api.models import PageQuery, Problem
from pms_api.problems import ProblemError
from pms_common import timeutil
from pms_common.firmware import MAX_IMAGE_BYTES, trusted_keys
from pms_registry import Registry
from pms_registry.firmware import FirmwareImage

log = logging.getLogger(__name__)

FIRMWARE = Tag(name="firmware", description="Signed update images of the gateways' software (docs/software-update.md)")
REFUSED = Counter("pms_api_firmware_refused_total", "Update image uploads refused, by reason", ["reason"])
DOWNLOADS = Counter("pms_api_firmware_downloads_total", "Update image download requests, by outcome "
                    "(gateway, operator, bad_credentials, throttled, forbidden, not_found)", ["outcome"])
# The manifest and the multipart framing around the image: a few kB; this bounds the whole body.
BODY_SLACK = 256 * 1024
MAX_UPLOAD_BYTES = MAX_IMAGE_BYTES + BODY_SLACK
REALM = 'Basic realm="pms-firmware", charset="UTF-8"'


def image_url(sha256: str) -> str:
    return f"/api/v1/firmware/{sha256}/image"


def record_of(image: FirmwareImage) -> FirmwareImageOut:
    return FirmwareImageOut(sha256=image.sha256, version=image.version, size=image.size,
                            min_version=image.min_version, key_id=image.key_id, uploaded_at=image.uploaded_at,
                            uploaded_by=image.uploaded_by, image_url=image_url(image.sha256))


def add_firmware_routes(api: APIBlueprint, registry: Registry, store: FirmwareStore, *, keys: list[str],
                        floor: str | None) -> None:
    trusted = trusted_keys(keys)

    @api.post("/firmware", tags=[FIRMWARE],
              responses={201: FirmwareImageOut, 200: FirmwareImageOut, 403: Problem, 413: Problem})
    def upload_firmware() -> Response:
        """Upload an update image (admin): multipart parts `image` (the wheel) and `manifest` (its signed
        manifest). 201 when stored, 200 when that digest was stored already; 422 with the reason when refused."""
        require_admin()
        try:
            image, created = _receive_upload(registry, store, trusted, floor)
        except UploadRefused as exc:
            REFUSED.labels(exc.reason).inc()
            log.warning("api: update image refused (%s): %s", exc.reason, exc)
            raise ProblemError(422, str(exc), "Image refused") from None
        return json_response(record_of(image), 201 if created else 200)

    @api.get("/firmware", tags=[FIRMWARE], responses={200: FirmwareImagePage, 403: Problem})
    def list_firmware(query: PageQuery) -> Response:
        """Update images, newest upload first (admin)."""
        require_admin()
        images = registry.firmware_images()
        page = images[query.offset : query.offset + query.limit]
        return json_response(FirmwareImagePage(items=[record_of(i) for i in page], total=len(images),
                                               limit=query.limit, offset=query.offset))

    @api.get("/firmware/<sha256>", tags=[FIRMWARE], responses={200: FirmwareImageDetail, 403: Problem})
    def get_firmware(path: FirmwarePath) -> Response:
        """One update image: its record and signed manifest (admin)."""
        require_admin()
        image = registry.firmware_image(path.sha256)
        if image is None:
            raise ProblemError(404, f"no update image {path.sha256}")
        return json_response(FirmwareImageDetail(**record_of(image).model_dump(), manifest=image.manifest))

    for route, item in api.paths.items():
        if route.endswith("/firmware") and item.post is not None:
            item.post.requestBody = RequestBody(**UPLOAD_BODY)


def _receive_upload(registry: Registry, store: FirmwareStore, trusted: Mapping[str, Ed25519PublicKey],
                    floor: str | None) -> tuple[FirmwareImage, bool]:
    """Check and keep one upload; the image record and whether it is new. UploadRefused when refused."""
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
        # Refused on its Content-Length: not one byte of the body is read.
        REFUSED.labels("too_large").inc()
        raise ProblemError(413, f"an upload is at most {MAX_IMAGE_BYTES} bytes of image; this one is "
                                f"{request.content_length} bytes")
    request.max_content_length = MAX_UPLOAD_BYTES  # a body without a length (chunked) is cut off there
    try:
        manifest_text = _manifest_part()
        image_part = request.files.get("image")
    except RequestEntityTooLarge:
        REFUSED.labels("too_large").inc()
        raise ProblemError(413, f"an upload is at most {MAX_IMAGE_BYTES} bytes of image; this one is "
                                "longer") from None
    if image_part is None:
        raise UploadRefused("missing_part", "the upload has no `image` part (multipart/form-data with parts "
                                            "`image` and `manifest`)")
    manifest = check_manifest(manifest_text, trusted, floor)
    try:
        received = store.receive(image_part.stream, MAX_IMAGE_BYTES)
    except ImageTooLarge as exc:
        REFUSED.labels("too_large").inc()
        raise ProblemError(413, str(exc)) from None
    try:
        check_image(manifest, received.sha256, received.size, received.path)
    except UploadRefused:
        store.discard(received)
        raise
    store.keep(received)
    now = timeutil.now_jst()
    actor = actor_of(registry)
    created = registry.add_firmware_image(manifest.model_dump(mode="json"), now, actor)
    registry.record_audit(at=now, actor=actor, action="firmware_upload", target=manifest.sha256,
                          detail={"version": manifest.version, "size": manifest.size, "key_id": manifest.key_id},
                          outcome="stored" if created else "already stored")
    image = registry.firmware_image(manifest.sha256)
    assert image is not None  # just added, or there before
    log.info("api: update image %s (%s) %s by %s", manifest.version, manifest.sha256,
             "stored" if created else "uploaded again", actor)
    return image, created


def _manifest_part() -> str:
    text = request.form.get("manifest")
    if text is None and "manifest" in request.files:
        raw = request.files["manifest"].stream.read(BODY_SLACK + 1)
        if len(raw) > BODY_SLACK:
            raise UploadRefused("bad_manifest", "the manifest part is too large to be a manifest")
        text = raw.decode("utf-8", errors="replace")
    if text is None:
        raise UploadRefused("missing_part", "the upload has no `manifest` part (multipart/form-data with parts "
                                            "`image` and `manifest`)")
    return text


# ---- downloads ---------------------------------------------------------------------------------------
def firmware_download_blueprint(registry: Registry, store: FirmwareStore, throttle: LoginThrottle) -> APIBlueprint:
    """The image download, on its own blueprint: it authenticates gateways (Basic) besides API keys."""
    downloads = APIBlueprint("api_v1_firmware_image", __name__, url_prefix="/api/v1",
                             abp_security=[{"basic": []}, {"bearer": []}],
                             abp_responses={401: Problem, 403: Problem, 404: Problem, 422: Problem,
                                            429: Problem})

    @downloads.get("/firmware/<sha256>/image", tags=[FIRMWARE],
                   responses={200: None, 206: None, 416: Problem})
    def download_firmware(path: FirmwarePath) -> Response:
        """The image's bytes: for a gateway with HTTP Basic auth = its broker login (username = gateway id),
        or an admin key or session. `Range: bytes=N-` answers 206 with the rest; the ETag is the digest."""
        who = _download_principal(registry, throttle)
        image = registry.firmware_image(path.sha256)
        file = store.path_of(path.sha256)
        if image is None or not store.has(path.sha256):
            DOWNLOADS.labels("not_found").inc()
            if image is not None:
                log.error("api: update image %s is recorded but its file %s is missing", path.sha256, file)
            raise ProblemError(404, f"no update image {path.sha256}")
        DOWNLOADS.labels(who).inc()
        response = send_file(file, mimetype="application/octet-stream", conditional=True, etag=image.sha256,
                             download_name=f"pms_collector-{image.version}-py3-none-any.whl", max_age=3600)
        response.headers["X-Checksum-Sha256"] = image.sha256
        return response

    @downloads.after_request
    def challenge(response: Response) -> Response:
        if response.status_code == 401:  # a gateway answers the Basic challenge, an operator a Bearer one
            response.headers["WWW-Authenticate"] = f'{REALM}, Bearer realm="pms"'
        if response.status_code == 429 and "retry_after_s" in g:
            response.headers["Retry-After"] = str(g.retry_after_s)
        return response

    for route, item in downloads.paths.items():
        if route.endswith("/image") and item.get is not None:
            for status in ("200", "206"):
                item.get.responses[status].content = IMAGE_CONTENT  # type: ignore[index]
    return downloads


def _download_principal(registry: Registry, throttle: LoginThrottle) -> str:
    """"gateway" or "operator" for who may download; else a 401, 403 or 429 problem (counted)."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "basic":
        found = principal_of_request(registry)
        if found is None:
            DOWNLOADS.labels("bad_credentials").inc()
            raise ProblemError(401, "a gateway sends its broker login as HTTP Basic auth; an operator an API key")
        if not found.is_admin:
            DOWNLOADS.labels("forbidden").inc()
            raise ProblemError(403, "only gateways and admins may download update images")
        return "operator"
    try:
        gateway_id, _, password = base64.b64decode(secret.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        gateway_id, password = "", ""
    # Counted per gateway id only: gateways reach the cloud through carriers' NATs, thousands behind one
    # address, and one gateway with a stale password must not lock the others out.
    address = request.remote_addr
    wait_s = throttle.retry_after(gateway_id, None, time.monotonic())
    if wait_s > 0:
        DOWNLOADS.labels("throttled").inc()
        g.retry_after_s = int(wait_s) + 1
        raise ProblemError(429, f"too many wrong logins for {gateway_id or 'this address'}; try again in "
                                f"{g.retry_after_s} s")
    login = registry.broker_login(gateway_id) if gateway_id else None
    if login is None or login.state != "active" or not registry.gateway_password_matches(gateway_id, password):
        throttle.failed(gateway_id, None, time.monotonic())
        DOWNLOADS.labels("bad_credentials").inc()
        log.warning("api: image download refused for %r from %s: wrong or revoked login", gateway_id, address)
        raise ProblemError(401, "wrong gateway login (or a revoked one): send the gateway id and its broker "
                                "password as HTTP Basic auth")
    throttle.succeeded(gateway_id)
    return "gateway"
