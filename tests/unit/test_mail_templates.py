"""The mail templates: every mail renders in Polish and English, tagged, escaped and complete.

Pure rendering, no database and no network: ``mailgw.outbound.render`` on hand-made contexts of
the shape ``core.mail.outbox.sla_context`` builds, and ``build_message`` on a transient row.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_datetime as babel_format_datetime
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from config.settings import Settings
from core.mail.models import OutboundMail
from core.mail.outbox import derive_mail_domain, ticket_url
from mailgw.outbound import (
    LANGUAGES,
    TEMPLATES_DIR,
    build_message,
    compile_templates,
    format_local,
    mail_domain,
    pick_language,
    render,
    sender,
)

URL = ticket_url("https://desk.example/", 1042)
SLA = {
    "ticket_number": 1042,
    "ticket_subject": "Drukarka nie drukuje",
    "client": "Acme",
    "contract": "ACME-2026",
    "clock": "resolution",
    "due": "2026-11-27T10:00:00+00:00",
    "timezone": "Europe/Warsaw",
    "used_percent": 80,
    "url": URL,
    "breached_at": None,
}
CONTEXTS: dict[str, dict[str, Any]] = {
    "sla_warning": SLA,
    "sla_breach": {**SLA, "breached_at": "2026-11-27T10:00:40+00:00"},
    "test_mail": {"url": "https://desk.example"},
}
# The shape core.notify.notifications._base_context builds, plus each mail's own keys.
TICKET = {
    "ticket_number": 1042,
    "ticket_subject": "Drukarka nie drukuje",
    "client": "Acme",
    "contract": "ACME-2026",
    "status": "Nowe",
    "reaction_due": "2026-11-27T10:00:00+00:00",
    "resolution_due": "2026-11-30T10:00:00+00:00",
    "timezone": "Europe/Warsaw",
    "url": URL,
    "recipient": "Anna",
}
CONTEXTS.update(
    {
        "ticket_ack": TICKET,
        "ticket_new": TICKET,
        "ticket_comment": {**TICKET, "author": "Jan Kowalski", "body": "Wymieniłem toner."},
        "ticket_reply": {**TICKET, "author": "Anna", "body": "Nadal nie działa."},
        "ticket_status": {
            **TICKET,
            "old_status": "Nowe",
            "new_status": "Rozwiązane",
            "note": None,
        },
        "ticket_assigned": {
            **TICKET,
            "assignee": "Jan Kowalski",
            "subcontractor": None,
            "actor": "Ewa Nowak",
        },
    }
)
# The shape core.notify.login_alerts builds.
LOGIN = {
    "recipient": "Anna Nowak",
    "account": "anna@acme.example",
    "at": "2026-11-27T10:00:00+00:00",
    "timezone": "Europe/Warsaw",
    "ip": "203.0.113.7",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
    "url": "https://desk.example/tickets",
}
CONTEXTS.update(
    {
        "login_failed": LOGIN,
        "login_new_device": LOGIN,
        "login_attack": {
            **LOGIN,
            "recipient": "Adam Administrator",
            "failures": 5,
            "window_minutes": 15,
        },
    }
)
# core.notify.delivery_failures.notice_context: a mail about a ticket failed for good (to staff).
CONTEXTS["delivery_failed"] = {
    **{k: v for k, v in TICKET.items() if k not in ("status", "reaction_due", "resolution_due")},
    "recipient": "Ola Koordynator",
    "failed_to": "anna@acme.example",
    "failed_subject": "Otrzymaliśmy zgłoszenie: Drukarka nie drukuje [#1042]",
    "error": "anna@acme.example: 550 5.1.1 No such mailbox here",
    "at": "2026-11-27T10:00:40+00:00",
}
# core.notify.login_alerts (issue 11): the mailed login code, a lock, a password reset link.
CONTEXTS["login_code"] = {**LOGIN, "code": "482913", "minutes": 10}
CONTEXTS["login_locked"] = {
    **LOGIN,
    "recipient": "Adam Administrator",
    "failures": 5,
    "until": "2026-11-27T10:01:00+00:00",
}
CONTEXTS["password_reset"] = {
    **LOGIN,
    "url": "https://desk.example/password/reset/7.1795000000.abcdef",
    "minutes": 30,
}
# web.console.admin.clients.send_invitation (issue 13): a contact invited to the portal.
CONTEXTS["invitation"] = {
    "recipient": "Zofia Nowak",
    "account": "zofia@acme.example",
    "client": "Acme",
    "url": "https://desk.example/password/reset/9.1795000000.abcdef",
    "until": "2026-12-04T10:00:00+00:00",
    "timezone": "Europe/Warsaw",
}
# workers.statements (issue 14): last month's billing statement to a client's manager.
CONTEXTS["statement"] = {
    "recipient": "Zofia Nowak",
    "client": "Acme",
    "month": "2026-11",
    "tickets": 4,
    "minutes": 750,
    "billable_minutes": 600,
    "amount": 150000,
    "currency": "PLN",
    "url": "https://desk.example/reports",
}
TEMPLATES = sorted(p.name for p in TEMPLATES_DIR.iterdir() if (p / "subject.txt").exists())


def test_every_template_folder_has_a_context_here() -> None:
    assert TEMPLATES == sorted(CONTEXTS)


def test_compiled_ahead_every_mail_renders_without_reading_a_template_again(
    tmp_path: Path,
) -> None:
    """A worker compiles every template in both languages before its first job
    (``pulpit.runtime``); a mail rendered afterwards reads no template file."""
    import shutil

    from mailgw import outbound

    copy = tmp_path / "mail"
    shutil.copytree(TEMPLATES_DIR, copy)
    files = [p for p in copy.rglob("*") if p.suffix in (".txt", ".html")]
    try:
        assert compile_templates(copy) == len(files) * len(LANGUAGES)
        for path in files:
            path.unlink()  # nothing left to read
        for language in LANGUAGES:
            for template in TEMPLATES:
                assert render(template, language, CONTEXTS[template], templates_dir=copy).subject
    finally:
        outbound._environment.cache_clear()  # no environment of a deleted folder kept


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_mail_renders_in_both_languages_and_links_where_it_should(
    template: str, language: str
) -> None:
    context = CONTEXTS[template]
    mail = render(template, language, context)
    assert mail.subject and "\n" not in mail.subject
    assert context["url"] in mail.text and f'href="{context["url"]}"' in mail.html
    assert mail.html.startswith("<!DOCTYPE html>") and f'<html lang="{language}">' in mail.html
    assert "\n-- \n" in mail.text  # the signature separator keeps its space
    if "ticket_number" in context:
        assert mail.subject.endswith("[#1042]")
        assert "#1042" in mail.text


def test_the_direct_gettext_renders_what_the_i18n_extension_renders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``_()`` and ``{% trans %}`` call the catalogue directly (``mailgw.outbound``): every
    mail in both languages reads as it does with the extension's own functions."""
    from jinja2.ext import _gettext_alias, _make_new_gettext

    from mailgw import outbound

    direct = {
        (template, language): render(template, language, CONTEXTS[template])
        for template in TEMPLATES
        for language in LANGUAGES
    }
    for language in LANGUAGES:
        env = outbound._environment(language, TEMPLATES_DIR)
        catalogue = outbound.translations(language, TEMPLATES_DIR)
        # In place: a compiled template reads the environment's globals through a ChainMap.
        monkeypatch.setitem(env.globals, "gettext", _make_new_gettext(catalogue.gettext))
        monkeypatch.setitem(env.globals, "_", _gettext_alias)
    assert {key: render(key[0], key[1], CONTEXTS[key[0]]) for key in direct} == direct


@pytest.mark.parametrize("template", TEMPLATES)
def test_polish_and_english_differ(template: str) -> None:
    pl = render(template, "pl", CONTEXTS[template])
    en = render(template, "en", CONTEXTS[template])
    assert pl.text != en.text
    if template != "ticket_comment":  # "Re: <subject>" (RFC 5322 3.6.5) is the same in both
        assert pl.subject != en.subject


def test_sla_warning_in_polish_names_the_clock_and_the_local_deadline() -> None:
    mail = render("sla_warning", "pl", SLA)
    assert mail.subject == "Zbliża się termin rozwiązania: Drukarka nie drukuje [#1042]"
    assert "wykorzystało 80% czasu na rozwiązanie" in mail.text
    # 10:00 UTC is 11:00 in Warsaw in November (CET).
    assert "Termin: piątek, 27 listopada 2026, 11:00 (Europe/Warsaw)" in mail.text
    assert "Klient: Acme" in mail.text and "Umowa: ACME-2026" in mail.text


def test_sla_breach_in_english_names_the_clock_and_when_the_breach_was_recorded() -> None:
    mail = render("sla_breach", "en", {**CONTEXTS["sla_breach"], "clock": "reaction"})
    assert mail.subject == "Reaction deadline missed: Drukarka nie drukuje [#1042]"
    assert "has missed its reaction deadline." in mail.text
    assert "Breach recorded: Friday, 27 November 2026, 11:00 (Europe/Warsaw)" in mail.text


def test_a_ticket_without_client_or_contract_leaves_those_lines_out() -> None:
    mail = render("sla_warning", "en", {**SLA, "client": None, "contract": None})
    assert "Client" not in mail.text and "Contract" not in mail.text
    assert "Client" not in mail.html


def test_html_is_escaped_and_text_is_not() -> None:
    hostile = '<script>alert("x")</script> & <b>Co</b>'
    mail = render("sla_warning", "en", {**SLA, "ticket_subject": hostile, "client": "<i>A</i>"})
    assert "<script>" not in mail.html and "<b>Co</b>" not in mail.html
    assert "&lt;script&gt;" in mail.html and "&amp;" in mail.html
    assert "&lt;i&gt;A&lt;/i&gt;" in mail.html
    assert hostile in mail.text and hostile in mail.subject


def test_a_line_break_in_a_ticket_subject_cannot_break_the_subject_header() -> None:
    mail = render("sla_warning", "en", {**SLA, "ticket_subject": "Printer\r\nBcc: all@x"})
    assert "\n" not in mail.subject and "\r" not in mail.subject


@pytest.mark.parametrize(
    "subject", ["Awaria [#1042]", "Awaria [Ticket#1042]", "Awaria [ACME#1042]"]
)
def test_an_existing_tag_is_not_doubled(subject: str) -> None:
    mail = render("sla_warning", "pl", {**SLA, "ticket_subject": subject})
    assert mail.subject.count("1042") == 1


@pytest.mark.parametrize(
    "subject", ["Awaria [#10420]", "Awaria [#104]", "Awaria [ACME #1042]", "Awaria #1042"]
)
def test_a_tag_of_another_number_or_no_tag_gets_ours(subject: str) -> None:
    mail = render("sla_warning", "pl", {**SLA, "ticket_subject": subject})
    assert mail.subject.endswith("[#1042]")


def test_the_test_mail_is_tagged_only_when_it_is_about_a_ticket() -> None:
    assert "[#" not in render("test_mail", "en", {"url": "https://desk.example"}).subject
    tagged = render("test_mail", "en", {"url": URL, "ticket_number": 7})
    assert tagged.subject == "Pulpit test message [#7]"


@pytest.mark.parametrize(
    ("asked", "used"), [("pl", "pl"), ("PL-pl", "pl"), ("en_GB", "en"), ("de", "en"), ("", "en")]
)
def test_unknown_languages_fall_back_to_english(asked: str, used: str) -> None:
    assert pick_language(asked) == used


def test_a_missing_context_key_is_an_error_not_a_blank() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        render("sla_warning", "pl", {k: v for k, v in SLA.items() if k != "used_percent"})


def test_template_names_cannot_reach_outside_the_folder() -> None:
    with pytest.raises(ValueError):
        render("../../etc", "pl", {})


# --- The catalogues --------------------------------------------------------------------------


def _catalog(language: str) -> Any:
    with (TEMPLATES_DIR / "locale" / language / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=language)


def test_the_polish_catalogue_translates_every_message_in_the_templates() -> None:
    method_map = [("**.txt", "jinja2"), ("**.html", "jinja2")]
    options = {pattern: {"extensions": "jinja2.ext.i18n"} for pattern, _ in method_map}
    extracted = {
        message if isinstance(message, str) else message[0]
        for _, _, message, _, _ in extract_from_dir(
            str(TEMPLATES_DIR), method_map=method_map, options_map=options
        )
    }
    for language in LANGUAGES:
        catalog = _catalog(language)
        known = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
        missing = extracted - known
        assert not missing, f"{language}: run the update in templates/mail/README.md: {missing}"
    untranslated = [
        m.id for m in _catalog("pl") if m.id and (not m.string or m.fuzzy or not all(m.string))
    ]
    assert untranslated == []
    assert _catalog("pl").num_plurals == 3


# --- The message around the rendering --------------------------------------------------------


def test_the_message_carries_the_rows_ids_and_encodes_polish_headers() -> None:
    settings = Settings(public_url="https://desk.example:8443/")
    row = OutboundMail(
        id=1,
        created_at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        message_id="<abc@desk.example>",
        template="sla_warning",
        language="pl",
        to_addr="Anna Żółkiewska <anna@acme.example>",
        context=SLA,
        headers={
            "Auto-Submitted": "auto-replied",
            "In-Reply-To": "<p@acme.example>",
            "References": "<r@acme.example> <p@acme.example>",
        },
    )
    msg = build_message(row, render(row.template, row.language, row.context), settings)
    raw = msg.as_bytes()
    assert raw.isascii()
    assert b"Subject: =?utf-8?" in raw
    assert msg["Message-ID"] == "<abc@desk.example>"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Content-Language"] == "pl"
    assert msg["To"] == "Anna Żółkiewska <anna@acme.example>"
    assert msg["From"] == "Pulpit <pulpit@desk.example>"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_a_mail_written_by_a_person_carries_no_auto_reply_headers() -> None:
    row = OutboundMail(
        id=1,
        created_at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        message_id="<abc@desk.example>",
        template="test_mail",
        language="en",
        to_addr="anna@acme.example",
        context={"url": "x"},
        headers={},
    )
    msg = build_message(row, render("test_mail", "en", {"url": "x"}), Settings())
    assert msg["Auto-Submitted"] is None and msg["X-Auto-Response-Suppress"] is None


@pytest.mark.parametrize(
    ("configured", "public_url", "domain"),
    [
        ("mail.acme.example", "https://desk.example", "mail.acme.example"),
        ("", "https://Desk.Example:8443/pulpit", "desk.example"),
        ("", "http://127.0.0.1:8000", "pulpit.localhost"),
        ("", "http://localhost:8000", "pulpit.localhost"),
        ("", "http://[::1]:8000", "pulpit.localhost"),
    ],
)
def test_the_message_id_domain(configured: str, public_url: str, domain: str) -> None:
    assert derive_mail_domain(configured, public_url) == domain
    assert mail_domain(Settings(mail_domain=configured, public_url=public_url)) == domain


def test_the_sender_can_be_configured() -> None:
    assert sender(Settings()) == "Pulpit <pulpit@pulpit.localhost>"
    configured = Settings(mail_from="Helpdesk <help@acme.example>")
    assert sender(configured) == "Helpdesk <help@acme.example>"


def test_the_templates_are_where_the_renderer_looks() -> None:
    assert TEMPLATES_DIR == Path(__file__).resolve().parents[2] / "templates" / "mail"


def test_the_acknowledgement_shows_the_number_and_local_deadlines_in_both_languages() -> None:
    pl = render("ticket_ack", "pl", TICKET)
    assert pl.subject == "Otrzymaliśmy Twoje zgłoszenie: Drukarka nie drukuje [#1042]"
    assert "zgłoszenie #1042" in pl.text
    assert "Reakcja do: piątek, 27 listopada 2026, 11:00 (Europe/Warsaw)" in pl.text
    en = render("ticket_ack", "en", TICKET)
    assert "Reaction by: Friday, 27 November 2026, 11:00 (Europe/Warsaw)" in en.text


def test_a_staff_comment_quotes_the_comment_and_is_escaped_in_html() -> None:
    context = {**CONTEXTS["ticket_comment"], "body": "<b>toner</b>"}
    mail = render("ticket_comment", "en", context)
    assert mail.subject == "Re: Drukarka nie drukuje [#1042]"
    assert "<b>toner</b>" in mail.text and "&lt;b&gt;toner&lt;/b&gt;" in mail.html


def test_login_alerts_show_time_ip_and_browser_in_both_languages() -> None:
    pl = render("login_failed", "pl", LOGIN)
    assert pl.subject == "Nieudane logowanie do Twojego konta w Pulpicie"
    assert "Czas: piątek, 27 listopada 2026, 11:00 (Europe/Warsaw)" in pl.text
    assert "Adres IP: 203.0.113.7" in pl.text and "Firefox/140.0" in pl.text
    en = render("login_new_device", "en", LOGIN)
    assert en.subject == "New login to your Pulpit account"
    assert "Time: Friday, 27 November 2026, 11:00 (Europe/Warsaw)" in en.text
    assert "Browser: Mozilla/5.0" in en.text and "anna@acme.example" in en.text


def test_login_alerts_leave_out_an_unknown_ip_and_browser() -> None:
    mail = render("login_new_device", "en", {**LOGIN, "ip": None, "user_agent": None})
    assert "IP address" not in mail.text and "Browser" not in mail.text
    assert "IP address" not in mail.html


@pytest.mark.parametrize(
    ("failures", "phrase"),
    [(5, "5 nieudanych logowań"), (22, "22 nieudane logowania"), (1, "1 nieudane logowanie")],
)
def test_the_attack_alert_counts_in_polish_plurals(failures: int, phrase: str) -> None:
    mail = render("login_attack", "pl", {**CONTEXTS["login_attack"], "failures": failures})
    assert phrase in mail.text and "anna@acme.example" in mail.subject
    assert phrase in mail.html


def test_a_hostile_user_agent_is_escaped_in_html() -> None:
    mail = render("login_failed", "en", {**LOGIN, "user_agent": "<script>x</script>"})
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("zone", ["Europe/Warsaw", "Europe/London", "America/New_York", "UTC"])
def test_a_time_reads_as_babel_writes_it(language: str, zone: str) -> None:
    """format_local writes Babel's "EEEE, d MMMM y, HH:mm" itself: every 7 hours 13 minutes
    of two years (each weekday and month, both changes of the clocks) reads the same."""
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    while moment.year < 2028:
        expected = babel_format_datetime(
            moment, "EEEE, d MMMM y, HH:mm", tzinfo=ZoneInfo(zone), locale=language
        )
        assert format_local(moment, zone, language) == f"{expected} ({zone})", moment
        moment += timedelta(hours=7, minutes=13)
    # The default zone, and an ISO string as the stored contexts hold it.
    assert format_local("2026-11-27T10:00:00+00:00", None, "pl") == (
        "piątek, 27 listopada 2026, 11:00 (Europe/Warsaw)"
    )
