"""A mail's HTML as the document of its sandboxed iframe, remote images blocked by default.

An ``<img src="https://...">`` in a mail is a read receipt: the sender's server learns who
opened the ticket and when. When the console shows a mail (``_event.html``), this filter,
applied at render time (the stored, sanitised ``body_html`` is unchanged):

- renames a remote image's ``src`` to ``data-remote-src``, so nothing is requested, and
- puts a ``<meta http-equiv="Content-Security-Policy">`` in the iframe's document allowing
  images only from ``data:`` and ``cid:``, a second lock should anything else point outside.

The page's own policy (``web.security``), which a ``srcdoc`` document inherits, blocks remote
images as well. "Show images" is a link to ``?images=<event id>``: for that one mail the
``src`` stays and its iframe allows ``http:``/``https:`` images, and only on that answer
does the page's policy let them through.

The HTML reaching here went through ``mailgw.bodies.sanitize_html`` (nh3), whose output quotes
every attribute with ``"``: the one shape :data:`_REMOTE_SRC` needs to match.
"""

from __future__ import annotations

import re

# ``src="http://..."``, ``https:`` or protocol-relative ``//host`` on an <img>.
_REMOTE_SRC = re.compile(r'(<img\b[^>]*?\s)src="((?:https?:)?//[^"]*)"', re.IGNORECASE)

_BLOCKED_POLICY = "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'"
_SHOWN_POLICY = "default-src 'none'; img-src data: cid: http: https:; style-src 'unsafe-inline'"


def remote_images(html: str | None) -> int:
    """How many images in ``html`` would be fetched from another server."""
    return len(_REMOTE_SRC.findall(html or ""))


def srcdoc(html: str | None, show_images: bool = False) -> str:
    """The iframe document for a mail's sanitised ``html``: a plain string, to be escaped into
    the ``srcdoc`` attribute by the template's autoescape."""
    body = html or ""
    if show_images:
        policy = _SHOWN_POLICY
    else:
        policy = _BLOCKED_POLICY
        body = _REMOTE_SRC.sub(r'\1data-remote-src="\2"', body)
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        f"</head><body>{body}</body></html>"
    )
