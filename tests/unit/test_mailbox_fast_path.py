"""``mailgw.headers.mailboxes`` reads the common mailbox forms with one pattern instead of the
stdlib's address parser: it must give exactly what getaddresses gives for them."""

from __future__ import annotations

import itertools
import re
from email.utils import getaddresses

import pytest

from core.mail import outbox
from mailgw import headers
from mailgw.headers import _SIMPLE_MAILBOX, mailboxes, simple_mailbox

NAMES = [
    "",
    "Jan",
    "Jan Kowalski",
    "O'Brien",
    "Anna-Maria Nowak",
    "=?UTF-8?Q?Katarzyna_W=C3=B3jcik?=",
    "=?iso-8859-2?B?o7Nk+g==?= Sp",
    '"Kowalski, Jan"',
    '"Jan Kowalski (IT)"',
    '""',
    '" Jan "',
    '"jan@example.pl"',
    '"Zielińska"',
]
ADDRESSES = [
    "jan@example.pl",
    "Jan.Kowalski@Serwis.Example.COM",
    "first.last+tag@sub.domain.example",
    "o'brien@example.ie",
    "a_b-c=d?e@x-y.example",
    "x@localhost.localdomain",
]
LAYOUTS = [
    "{name} <{addr}>",
    "{name}<{addr}>",
    " {name} <{addr}> ",
    "{addr}",
    " {addr}",
    "<{addr}>",
]


def _values() -> list[str]:
    seen: list[str] = []
    for name, addr, layout in itertools.product(NAMES, ADDRESSES, LAYOUTS):
        value = layout.format(name=name, addr=addr)
        if value not in seen:
            seen.append(value)
    return seen


def test_the_fast_path_reads_what_getaddresses_reads() -> None:
    fast_ones = 0
    for value in _values():
        fast = simple_mailbox(value)
        if fast is None:
            continue  # read by getaddresses itself
        fast_ones += 1
        assert fast == getaddresses([value]), value
    assert fast_ones > len(_values()) // 2


def test_the_common_forms_take_the_fast_path() -> None:
    for value in (
        "jan@example.pl",
        "Jan Kowalski <jan@example.pl>",
        '"Kowalski, Jan" <jan@example.pl>',
        "=?UTF-8?Q?Katarzyna_W=C3=B3jcik?= <k.wojcik@nowak-kancelaria.example>",
    ):
        assert _SIMPLE_MAILBOX.match(value), value


@pytest.mark.parametrize(
    "value",
    [
        "jan@example.pl, anna@example.pl",  # a list
        "Jan <jan@example.pl>, Anna <anna@example.pl>",
        "jan@example.pl (Jan Kowalski)",  # a comment
        "Team: jan@example.pl, anna@example.pl;",  # a group
        '"Jan \\"Kowal\\" Kowalski" <jan@example.pl>',  # an escaped quote
        "Jan Kowalski <@route.example:jan@example.pl>",  # a source route
        "Jan Kowalski <jan@[192.0.2.1]>",  # an address literal
        "Kowalski, Jan <jan@example.pl>",  # Outlook's unquoted "Last, First"
        "jan..kowalski@example.pl",  # not a dot-atom
        ".jan@example.pl",
        "jan@example",  # a domain without a dot
        "Jan\tKowalski <jan@example.pl>",
        "Jan  Kowalski <jan@example.pl>",
        "Jan Kowalski jan@example.pl",
    ],
)
def test_anything_else_is_left_to_getaddresses(value: str) -> None:
    assert _SIMPLE_MAILBOX.match(value) is None


def test_mailboxes_is_the_same_with_and_without_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = [*_values(), "Kowalski, Jan <jan@example.pl>", "coord@our.example <x@evil.example>"]
    fast = [mailboxes(value) for value in values]
    monkeypatch.setattr(headers, "_SIMPLE_MAILBOX", re.compile(r"(?!)"))
    assert [mailboxes(value) for value in values] == fast


@pytest.mark.parametrize("value", [*ADDRESSES, "Jan Kowalski <jan@example.pl>", "a@b.c"])
def test_a_recipient_is_checked_alike_either_way(value: str) -> None:
    assert outbox._check_recipient(value) == value


@pytest.mark.parametrize("value", ["", "jan", "jan kowalski@example.pl", "<>", "Jan <>"])
def test_a_recipient_that_is_no_address_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not an e-mail address"):
        outbox._check_recipient(value)
