"""mailgw.server reads everyday MAIL FROM and RCPT TO paths with one regular expression; every
answer must be aiosmtpd's own (its ``_getaddr`` is the oracle), and any other form goes to it."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP

from mailgw.server import _PlainPaths


class _Probe(_PlainPaths, SMTP):
    pass


def _probe(limit: int = 0) -> _Probe:
    probe = object.__new__(_Probe)  # no event loop, no stream: only _getaddr is called
    probe.local_part_limit = limit
    return probe


PATHS = [
    "<anna@acme.example>",
    "<anna@acme.example> SIZE=12345",
    " <anna@acme.example>  SIZE=1 BODY=8BITMIME",
    "<anna.nowak+tag@mail.acme-firma.example>",
    "<ANNA@ACME.EXAMPLE>\tSMTPUTF8",
    "<o'brien@acme.example>",
    "<>",
    "<> SIZE=10",
    "anna@acme.example",
    "<anna@acme.example>(comment) SIZE=1",
    '<"quoted local"@acme.example>',
    "<@relay.example:anna@acme.example>",
    "<anna..nowak@acme.example>",
    "<.anna@acme.example>",
    "<anna@[127.0.0.1]>",
    "<józef@żółw.example>",
    "<anna@acme.example",
    "<anna@>",
    "",
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("limit", [0, 4])
def test_the_answer_is_aiosmtpds(path: str, limit: int) -> None:
    probe = _probe(limit)
    assert probe._getaddr(path) == SMTP._getaddr(probe, path)
