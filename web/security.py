"""Security headers on every answer, and the OpenAPI viewer that works under them offline.

The app sets them itself (the nginx sample in ``deploy/`` adds only HSTS), so a desk served
without a proxy is as protected as one behind it:

- ``Content-Security-Policy``: console pages run only ``/static`` scripts and styles (no inline
  script, handler or ``style=`` attribute anywhere in the templates), show images from the desk
  and ``data:``, may not be framed (``frame-ancestors 'none'``) and post forms only to the desk.
  A mail's HTML is shown in a sandboxed ``srcdoc`` iframe, which inherits this policy, so a
  remote image in it is blocked by the page as well as by the iframe's own ``<meta>`` policy
  (``web.mail_html``). Only the ticket page asked to show one mail's images
  (``?images=<event id>``) lets ``http:``/``https:`` images through, for that answer.
- JSON answers get ``default-src 'none'``: nothing in them is ever a page.
- ``/schema`` (Redoc, served from ``/static/vendor/redoc``) needs inline styles and a blob
  worker; its page loads only our own files.
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` and
  ``X-Frame-Options: DENY`` (for browsers without ``frame-ancestors``) everywhere.

A header a handler set itself (an attachment's download) is kept as it is.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.openapi.plugins import RedocRenderPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# The ticket page showing one mail's remote images (the iframe of every other mail still
# forbids them with its own policy; web.mail_html).
CONSOLE_CSP_REMOTE_IMAGES = CONSOLE_CSP.replace(
    "img-src 'self' data:", "img-src 'self' data: http: https:"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
SCHEMA_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # Redoc's styled-components inject <style>
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
_TICKET_PAGE = re.compile(r"^/tickets/\d+$")
_IMAGES_QUERY = re.compile(rb"(?:^|&)images=\d+(?:&|$)")


def policy_for(path: str, query: bytes) -> str:
    """The Content-Security-Policy of an answer to ``path`` with this query string."""
    if path.startswith("/api/"):
        return API_CSP
    if path == "/schema" or path.startswith("/schema/"):
        return SCHEMA_CSP
    if _TICKET_PAGE.match(path) and _IMAGES_QUERY.search(query):
        return CONSOLE_CSP_REMOTE_IMAGES
    return CONSOLE_CSP


def security_headers(app: ASGIApp) -> ASGIApp:
    """ASGI middleware adding the headers above to every HTTP answer that lacks them."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        policy = policy_for(scope.get("path", ""), scope.get("query_string", b"")).encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers") or [])
                present = {bytes(name).lower() for name, _ in headers}
                for name, value in (*COMMON_HEADERS, (b"content-security-policy", policy)):
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}  # type: ignore[typeddict-item]
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


class LocalRedoc(RedocRenderPlugin):
    """Redoc from ``/static/vendor/redoc`` (vendored from npm, with its licence), started by
    ``/static/schema.js`` rather than an inline script: ``/schema`` renders on a desk without
    internet and under a policy without ``'unsafe-inline'`` scripts."""

    def __init__(self) -> None:
        super().__init__(
            js_url="/static/vendor/redoc/redoc.standalone.js",
            google_fonts=False,
            path=["/", "/redoc"],
            favicon="",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        from html import escape

        title = escape(str(openapi_schema.get("info", {}).get("title", "API")))
        return (
            "<!DOCTYPE html><html><head>"
            f"<title>{title}</title>"
            '<meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<script src="{self.js_url}"></script>'
            '<script src="/static/schema.js" defer></script>'
            '<link rel="stylesheet" href="/static/schema.css">'
            "</head><body>"
            f'<div id="redoc-container" data-spec-url="/schema/openapi.json">'
            f'<noscript><h1>{title}</h1><p><a href="/schema/openapi.json">openapi.json</a></p>'
            "</noscript></div>"
            "</body></html>"
        ).encode()
