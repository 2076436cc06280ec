"""Outgoing mail keeps its relay connection between mails, and recovers when it breaks.

A real aiosmtpd sink plays the relay (tests/smtp_sink.py); ``mailgw.outbound.send`` is called
as the ``mail.send`` actor calls it. Connecting, STARTTLS and AUTH per mail cost more than the
mail, so a worker thread keeps one connection; a relay that closed it, restarted, or refused a
mail must never cost a mail.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from mailgw import outbound
from tests.smtp_sink import SmtpSink, fresh_relay_connections, relay_settings  # noqa: F401

pytestmark = pytest.mark.usefixtures("fresh_relay_connections")


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    relay = SmtpSink().start()
    yield relay
    relay.stop()


def _mail(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Pulpit <pulpit@serwis.example>"
    msg["To"] = f"klient{n}@firma.example"
    msg["Subject"] = f"Zgłoszenie {n} [#10{n:02d}]"
    msg["Message-ID"] = f"<relay-{n}@serwis.example>"
    msg.set_content(f"Treść {n}")
    return msg


def test_mails_in_a_row_share_one_connection(sink: SmtpSink) -> None:
    for n in range(3):
        outbound.send(relay_settings(sink), _mail(n))
    got = sink.wait_for(3)
    assert [m.message["Message-ID"] for m in got] == [
        f"<relay-{n}@serwis.example>" for n in range(3)
    ]
    assert len({m.peer for m in got}) == 1


def test_a_restarted_relay_costs_no_mail(sink: SmtpSink) -> None:
    outbound.send(relay_settings(sink), _mail(1))
    sink.wait_for(1)
    sink.stop()  # the kept connection dies with the server
    sink.start()
    outbound.send(relay_settings(sink), _mail(2))
    got = sink.wait_for(2)
    assert got[1].message["Message-ID"] == "<relay-2@serwis.example>"
    assert got[0].peer != got[1].peer


def test_after_a_refusal_the_next_mail_goes_over_a_new_connection(sink: SmtpSink) -> None:
    outbound.send(relay_settings(sink), _mail(1))
    sink.refuse(550, times=1)
    with pytest.raises(outbound.PermanentDeliveryError):
        outbound.send(relay_settings(sink), _mail(2))
    outbound.send(relay_settings(sink), _mail(3))
    got = sink.wait_for(2)
    assert [m.message["Message-ID"] for m in got] == [
        "<relay-1@serwis.example>",
        "<relay-3@serwis.example>",
    ]
    assert got[0].peer != got[1].peer


def test_a_connection_idle_too_long_is_not_reused(
    sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbound.send(relay_settings(sink), _mail(1))
    monkeypatch.setattr(outbound, "RELAY_IDLE_SECONDS", 0.0)
    outbound.send(relay_settings(sink), _mail(2))
    got = sink.wait_for(2)
    assert got[0].peer != got[1].peer


def test_a_relay_that_is_down_is_a_temporary_failure(sink: SmtpSink) -> None:
    outbound.send(relay_settings(sink), _mail(1))
    sink.stop()
    with pytest.raises(outbound.TemporaryDeliveryError):
        outbound.send(relay_settings(sink), _mail(2))
