"""Outgoing mail under a real ``pulpit serve``, as ``make run`` starts it, to an SMTP sink.

The issue's "Done when": every mail goes out with the right headers, language and recipients
with ``PULPIT_OUTBOUND_SMTP_URL`` at a local sink. The test runs the same three commands as
``make run`` (``db upgrade``, ``config apply config/examples/demo.yaml``, ``serve``) in a
temporary data dir, on free ports, with a memory:// broker; then a demo contact writes to the
contract's mailbox over SMTP and the sink must receive the acknowledgement and the
coordinator's new-ticket mail; a reply quoting the tag must land on the ticket as a comment.
"""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from core.mail.reply_address import verify
from tests.smtp_sink import ReceivedMail, SmtpSink, free_port, smtp_sink_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
PULPIT = Path(sys.executable).parent / "pulpit"
CLIENT = "piotr.zielinski@nowak-kancelaria.example"
MAILBOX = "kancelaria@serwis.example"
COORDINATOR = "koordynator@serwis.example"


def pulpit(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(PULPIT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"pulpit {' '.join(args)}: {done.stderr[-2000:]}"
    return done.stdout


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"pulpit serve exited with {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def wait_mail(sink: SmtpSink, to: str, subject_part: str, timeout: float = 30) -> ReceivedMail:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for mail in list(sink.messages):
            if to in mail.rcpt_tos and subject_part in str(mail.message["Subject"]):
                return mail
        time.sleep(0.2)
    got = [(m.rcpt_tos, str(m.message["Subject"])) for m in sink.messages]
    raise AssertionError(f"no mail to {to} with {subject_part!r}; the sink got {got}")


@pytest.fixture
def served(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[dict[str, str]]:
    if not PULPIT.exists():
        pytest.skip(f"{PULPIT} is not installed (pip install -e .)")
    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULPIT_")}
    env.update(
        PULPIT_DATA_DIR=str(data),
        PULPIT_DATABASE_URL=f"sqlite:///{data / 'pulpit.db'}",
        PULPIT_BROKER_URL="memory://",
        PULPIT_HTTP_PORT=str(free_port()),
        PULPIT_SMTP_PORT=str(free_port()),
        PULPIT_OUTBOUND_SMTP_URL=smtp_sink.url,
        PULPIT_PUBLIC_URL="https://desk.serwis.example",
    )
    data.mkdir()
    pulpit(env, "db", "upgrade")
    pulpit(env, "config", "apply", "config/examples/demo.yaml")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(PULPIT), "serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_port(int(env["PULPIT_SMTP_PORT"]), proc)
        wait_port(int(env["PULPIT_HTTP_PORT"]), proc)
        yield env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            log.close()
        assert code in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()[-3000:]


def send(env: dict[str, str], subject: str, message_id: str, body: str) -> None:
    msg = EmailMessage()
    msg["From"] = f"Piotr Zieliński <{CLIENT}>"
    msg["To"] = MAILBOX
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", int(env["PULPIT_SMTP_PORT"]), timeout=10) as smtp:
        smtp.send_message(msg)


def test_mail_under_pulpit_serve_reaches_the_sink(
    served: dict[str, str], smtp_sink: SmtpSink
) -> None:
    send(served, "Drukarka HP nie drukuje", "<e2e-1@nowak-kancelaria.example>", "Zacina papier.")

    ack = wait_mail(smtp_sink, CLIENT, "Drukarka HP nie drukuje")
    msg = ack.message
    number = str(msg["Subject"]).rsplit("[#", 1)[1].rstrip("]")
    assert number.isdigit()
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["In-Reply-To"] == "<e2e-1@nowak-kancelaria.example>"
    # Signed for the client with the key serve generated (docs/mail.md, signed reply addresses).
    secret = (Path(served["PULPIT_DATA_DIR"]) / "secret_key").read_text().strip()
    signed = verify(secret, str(msg["Reply-To"]))
    assert signed is not None and signed.mailbox == MAILBOX.lower()
    assert signed.ticket_number == int(number)
    assert msg["Content-Language"] == "pl"
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    assert f"zarejestrowana jako zgłoszenie #{number}" in plain.get_content()
    assert f"https://desk.serwis.example/tickets/{number}" in plain.get_content()

    new = wait_mail(smtp_sink, COORDINATOR, f"[#{number}]")
    assert new.message["Auto-Submitted"] == "auto-generated"
    assert new.message["Content-Language"] == "pl"
    # The client gets only the acknowledgement (staff may get more: the demo has SLA mails).
    assert [m for m in smtp_sink.messages if CLIENT in m.rcpt_tos] == [ack]

    send(
        served,
        f"Re: Drukarka HP nie drukuje [#{number}]",
        "<e2e-2@nowak-kancelaria.example>",
        "Nadal zacina papier na podajniku 2.",
    )
    engine = create_engine(served["PULPIT_DATABASE_URL"])
    try:
        deadline = time.monotonic() + 30
        found = None
        while found is None and time.monotonic() < deadline:
            with engine.connect() as conn:
                found = conn.execute(
                    text(
                        "SELECT e.public FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id"
                        " WHERE t.number = :n AND e.message_id = :m"
                    ),
                    {"n": int(number), "m": "<e2e-2@nowak-kancelaria.example>"},
                ).first()
            if found is None:
                time.sleep(0.2)
        assert found is not None, "the reply never reached the ticket"
        assert found.public
    finally:
        engine.dispose()
