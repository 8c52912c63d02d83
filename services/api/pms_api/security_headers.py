"""Security headers on every answer, API and console alike.

The console runs only scripts served from this site (`script-src 'self'`: no inline script, no
eval), is never framed (`frame-ancestors 'none'`), and a browser must not guess content types. Styles
allow 'unsafe-inline' because plotly.js positions its chart parts with inline style attributes; a
style cannot run code.
"""

from __future__ import annotations

from flask import Response, request

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "same-origin",
}


# Sent only on answers over HTTPS (RFC 6797 8.1: a browser ignores it over plain HTTP). Behind a
# TLS-terminating proxy the request is HTTPS when the proxy says so (PMS_API_PROXY_HOPS). No
# includeSubDomains: the site's other names are not ours to decide.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def add_security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
    return response
