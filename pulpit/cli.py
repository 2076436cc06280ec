"""The ``pulpit`` command line: every entry point an operator or a script uses.

The commands and their options are documented in ``docs/commands.md``. Settings
are loaded once here and passed down. Each command that changes the database owns one unit of
work and prints its result only after the commit. Bad input ends with one line on stderr,
``pulpit: <what was wrong>``, and exit code 2; an operational failure (database down, port
taken) with exit code 1; a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from config.settings import Settings, SettingsError, load_settings
from core.db import unit_of_work
from core.errors import InputError, PulpitError
from pulpit import runtime
from pulpit.errors import EXIT_BAD_INPUT, EXIT_FAILURE, CommandError
from pulpit.runtime import database, upgrade_database

if TYPE_CHECKING:
    from pulpit.blobs import BlobReport

log = logging.getLogger("pulpit")

MAIL_STATES = ("received", "processed", "quarantined", "ignored")
OUTBOX_STATES = ("pending", "sending", "sent", "failed")  # core.mail.outbox.STATES

Handler = Callable[[argparse.Namespace, Settings], int]


# --- Commands that run and return -----------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    location = upgrade_database(settings)
    print(f"database {location} is at the latest schema")
    return 0


def cmd_db_recount(args: argparse.Namespace, settings: Settings) -> int:
    from core.tickets import tallies

    with database(settings) as session_factory:
        with unit_of_work(session_factory) as session:
            if not tallies.available(session):
                print(
                    "no ticket tallies on this database (SQLite counts the tickets): nothing to do"
                )
                return 0
            tickets, wrong = tallies.recount(session)
    print(
        f"{tickets} tickets counted into the tallies; "
        + (f"{wrong} combination(s) had been wrong" if wrong else "they were right")
    )
    return 0


def _input_file(name: str) -> Path:
    """A file named on the command line, checked up front so the message names it plainly."""
    path = Path(name)
    if not path.exists():
        raise CommandError(f"{name}: no such file")
    if not path.is_file():
        raise CommandError(f"{name}: not a file")
    return path


def cmd_config_apply(args: argparse.Namespace, settings: Settings) -> int:
    path = _input_file(args.file)
    from core.configuration import apply_config_file

    with database(settings) as session_factory:
        with unit_of_work(session_factory) as session:
            result = apply_config_file(session, path, actor="cli")
        if result.rescheduled:
            # After the commit, as a console save's sla.recompute job does, but here and now:
            # the command returns with the deadlines right and says how many moved.
            from workers.actors import recompute_deadlines

            result.recomputed_tickets = recompute_deadlines(
                session_factory, settings, result.rescheduled
            )
    print(result)
    if result.deadlines:
        print(result.deadlines)  # e.g. "14 open tickets get new deadlines"
    return 0


def cmd_config_export(args: argparse.Namespace, settings: Settings) -> int:
    from core.configuration import export_config

    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        text = export_config(session)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    from core.access.accounts import upsert_user

    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        user = upsert_user(
            session,
            email=args.email,
            role=args.role,
            name=args.name,
            password=args.password,
            client=args.client,
            subcontractor=args.subcontractor,
            language=args.language,
            manager=args.manager,
        )
        summary = f"user {user.email} saved with role {user.role}"
        if args.two_step is not None:
            from core.access.login import set_method

            set_method(
                session,
                user,
                args.two_step,
                actor="cli",
                allowed=settings.allowed_two_step_methods,
            )
            summary += f", second factor {args.two_step}"
    print(summary)
    return 0


def cmd_user_reset_totp(args: argparse.Namespace, settings: Settings) -> int:
    from core.access.accounts import reset_totp

    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        user = reset_totp(session, args.email, actor="cli")
        summary = (
            f"two-step login of {user.email} is off and their web sessions ended; "
            "they log in with the password and can set up a new app on their profile page"
        )
    print(summary)
    return 0


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    from core.access.accounts import create_api_token, get_user_by_email

    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        user = get_user_by_email(session, args.email)
        if user is None:
            raise CommandError(
                f"no user with the e-mail {args.email}; "
                f"add one with `pulpit user add --email {args.email} --role ROLE`"
            )
        token = create_api_token(session, user, actor="cli")
    # Printed only after the commit, alone on its line, so `$(pulpit token create ...)` works
    # and never yields a token the database does not know.
    print(token)
    return 0


def _mail_row(message: Any, ticket_number: int | None) -> dict[str, Any]:
    received = message.received_at
    return {
        "id": message.id,
        "state": message.state,
        "received_at": received.isoformat() if received is not None else None,
        "message_id": message.message_id,
        "reason": message.reason,
        "ticket": ticket_number,
        "source": message.source,
        "envelope_from": message.envelope_from,
        "envelope_to": list(message.envelope_to or []),
        "attempts": message.attempts,
        "size": message.size,
    }


def _moment(iso: str | None) -> str:
    """An ISO timestamp as the tables show it: to the second, without the T and the zone."""
    return (iso or "")[:19].replace("T", " ")


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last one (a free sentence) is not padded."""
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for r in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(r[:-1], widths, strict=True))
            + "  "
            + r[-1]
        )


def cmd_mail_list(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from sqlalchemy import select

    from core.mail.inbound import list_messages
    from core.tickets.models import Ticket

    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        messages = list_messages(session, state=args.state, limit=args.limit)
        ticket_ids = {m.ticket_id for m in messages if m.ticket_id is not None}
        numbers: dict[int, int] = {}
        if ticket_ids:
            # .all(), not the Result: a Result has keys(), so dict() would take it for a mapping.
            rows_found = session.execute(
                select(Ticket.id, Ticket.number).where(Ticket.id.in_(ticket_ids))
            ).all()
            numbers = {ticket_id: number for ticket_id, number in rows_found}
        rows = [
            _mail_row(m, numbers.get(m.ticket_id) if m.ticket_id is not None else None)
            for m in messages
        ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(f"no {args.state} inbound messages" if args.state else "no inbound messages")
        return 0
    _print_table(
        ("ID", "STATE", "RECEIVED AT", "TICKET", "MESSAGE ID", "REASON"),
        [
            (
                str(row["id"]),
                row["state"],
                _moment(row["received_at"]),
                f"#{row['ticket']}" if row["ticket"] is not None else "-",
                row["message_id"] or "-",
                _one_line(row["reason"]) if row["reason"] else "",
            )
            for row in rows
        ],
    )
    return 0


def cmd_mail_outbox(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from core.mail.outbox import list_outbound, outbound_json

    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        rows = [
            outbound_json(m) for m in list_outbound(session, state=args.state, limit=args.limit)
        ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(f"no {args.state} outgoing mail" if args.state else "no outgoing mail")
        return 0
    _print_table(
        ("ID", "STATE", "CREATED AT", "TO", "TEMPLATE", "TICKET", "TRIES", "LAST ERROR"),
        [
            (
                str(row["id"]),
                row["state"],
                _moment(row["created_at"]),
                row["to"],
                row["template"],
                f"#{row['ticket']}" if row["ticket"] else "-",
                str(row["attempts"]),
                _one_line(row["last_error"]) if row["last_error"] else "",
            )
            for row in rows
        ],
    )
    return 0


def cmd_mail_resend(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from core.clock import utcnow
    from core.mail.models import OutboundMail
    from core.mail.outbox import resend

    if args.failed and args.ids:
        raise CommandError("give either --failed or mail ids, not both")
    if not args.failed and not args.ids:
        raise CommandError(
            "give the ids of the mails to send again (pulpit mail outbox), or --failed"
        )
    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        ids = args.ids
        if args.failed:
            ids = list(
                session.scalars(select(OutboundMail.id).where(OutboundMail.state == "failed"))
            )
        count = len(resend(session, ids, utcnow(), actor="cli")) if ids else 0
    # As for requeue: the scheduler's outbox sweep sends what no broker took from here.
    if count == 0:
        print("no failed outgoing mail to send again")
    else:
        print(f"{count} mail(s) will be sent again")
    return 0


def cmd_mail_requeue(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from core.db import enqueue
    from core.mail.inbound import PROCESS_ACTOR
    from core.mail.models import InboundMessage

    if args.all and args.ids:
        raise CommandError("give either --all or message ids, not both")
    if not args.all and not args.ids:
        raise CommandError("give the ids of the messages to re-queue, or --all")
    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        if args.all:
            stmt = select(InboundMessage).where(InboundMessage.state == "quarantined")
            messages = list(session.scalars(stmt.order_by(InboundMessage.id)))
        else:
            ids = list(dict.fromkeys(args.ids))
            found = {
                m.id: m
                for m in session.scalars(select(InboundMessage).where(InboundMessage.id.in_(ids)))
            }
            missing = [str(i) for i in ids if i not in found]
            if missing:
                raise CommandError(f"no inbound message with id {', '.join(missing)}")
            done = [str(i) for i in ids if found[i].state == "processed"]
            if done:
                # A processed message made its ticket or comment; processing it again would
                # be the very duplicate the dedupe rules exist to prevent.
                raise CommandError(
                    f"inbound message {', '.join(done)} is already processed; "
                    "only quarantined, ignored or received messages can be re-queued"
                )
            messages = [found[i] for i in ids]
        for message in messages:
            message.state = "received"
            message.attempts = 0
            message.reason = None
            enqueue(session, PROCESS_ACTOR, inbound_id=message.id)
        count = len(messages)
    # Printed after the commit. This process has no broker by default (memory://), so the
    # jobs may go nowhere; the scheduler's sweep of "received" messages picks them up.
    if count == 0:
        print("no quarantined messages to re-queue")
    else:
        print(f"requeued {count} message(s); a worker will process them")
    return 0


def cmd_person_export(args: argparse.Namespace, settings: Settings) -> int:
    from core.blobs import open_blob_store
    from core.privacy.export import build_export
    from core.privacy.people import person_by_email

    output = Path(args.output)
    if output.exists() and output.is_dir():
        raise CommandError(f"{args.output}: is a directory; give a file name such as person.zip")
    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        person = person_by_email(session, args.email)
        data = build_export(
            session,
            person,
            blobs=open_blob_store(settings.blob_url, settings.blob_dir, session_factory),
            actor="cli",
        )
    output.write_bytes(data)  # after the commit: a file on disk means its audit entry is too
    print(f"wrote everything stored about {args.email} to {output} ({len(data)} bytes)")
    return 0


def cmd_person_erase(args: argparse.Namespace, settings: Settings) -> int:
    from core.blobs import open_blob_store
    from core.privacy.erase import erase_person
    from core.privacy.people import person_by_email

    if not args.yes:
        raise CommandError(
            f"erasing {args.email} cannot be undone; run again with --yes to confirm "
            "(export first: pulpit person export)"
        )
    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        person = person_by_email(session, args.email)
        result = erase_person(
            session,
            person,
            blobs=open_blob_store(settings.blob_url, settings.blob_dir, session_factory),
            actor="cli",
        )
    done = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(result.counts.items()) if v)
    print(f"erased: the person is now {result.placeholder} ({done or 'nothing else stored'})")
    return 0


def cmd_person_retention(args: argparse.Namespace, settings: Settings) -> int:
    from core.blobs import open_blob_store
    from core.clock import utcnow
    from core.privacy.retention import run_retention

    days = args.days if args.days is not None else settings.retention_days
    if days <= 0:
        raise CommandError("retention is off (PULPIT_RETENTION_DAYS is 0); set it or give --days N")
    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        run = run_retention(
            session,
            blobs=open_blob_store(settings.blob_url, settings.blob_dir, session_factory),
            now=utcnow(),
            days=days,
            dry_run=args.dry_run,
            actor="cli",
        )
    tickets = ", ".join(f"#{n}" for n in run.tickets) or "none"
    if args.dry_run:
        print(f"closed more than {days} days ago and not yet anonymised: {tickets}")
    else:
        print(
            f"anonymised {len(run.tickets)} ticket(s): {tickets}; "
            f"{run.raw_mails_deleted} raw mail(s) deleted"
        )
    return 0


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    from pulpit.health import check

    for line in check(settings):
        print(line)
    return 0


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def _blob_problems(report: BlobReport) -> int:
    """Print the sha256s a blob copy or check could not account for; the exit code."""
    for kind, count, named in (
        ("missing", report.missing_count, report.missing),
        ("damaged", report.damaged_count, report.damaged),
    ):
        if count:
            more = f" (the first {len(named)} below)" if count > len(named) else ""
            print(f"{count} {kind}{more}:")
            for sha in named:
                print(f"  {sha}")
    return 0 if report.ok else EXIT_FAILURE


def cmd_blobs_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import Engine

    from core.blobs import DatabaseBlobStore, DirectoryBlobStore
    from pulpit.blobs import copy_blobs

    with database(settings) as session_factory:
        engine = session_factory.kw["bind"]
        if not isinstance(engine, Engine) or engine.dialect.name != "postgresql":
            raise CommandError(
                "attachments can be kept in the database only with PostgreSQL "
                "(PULPIT_DATABASE_URL); with the embedded SQLite database they stay in the "
                "data directory"
            )
        directory, in_database = DirectoryBlobStore(settings.blob_dir), DatabaseBlobStore(engine)
        source, target = (
            (directory, in_database) if args.to == "database" else (in_database, directory)
        )
        report = copy_blobs(session_factory, source, target)
    print(
        f"copied {report.copied} blob(s) ({_megabytes(report.copied_bytes)}) from "
        f"{source.describe()} to {target.describe()}; {report.present} were there already"
        + (f"; {report.erased} erased on purpose (no content)" if report.erased else "")
    )
    code = _blob_problems(report)
    wanted = "database:" if args.to == "database" else "file:"
    if settings.blobs_in_database != (args.to == "database"):
        print(
            f"next: set PULPIT_BLOB_URL={wanted} on every host and restart them, then run this "
            "command again to copy what arrived in between"
        )
    return code


def cmd_blobs_check(args: argparse.Namespace, settings: Settings) -> int:
    from core.blobs import open_blob_store
    from pulpit.blobs import check_blobs

    with database(settings) as session_factory:
        store = open_blob_store(settings.blob_url, settings.blob_dir, session_factory)
        report = check_blobs(session_factory, store)
    print(
        f"checked {report.rows} blob(s) in {store.describe()}: {report.present} whole"
        + (f", {report.erased} erased on purpose" if report.erased else "")
        + (f", {report.missing_count} missing" if report.missing_count else "")
        + (f", {report.damaged_count} of the wrong size" if report.damaged_count else "")
    )
    return _blob_problems(report)


# --- Commands that keep running -------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    return runtime.run_serve(settings, demo_banner=args.demo_banner)


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    return runtime.run_web(settings)


def cmd_mailgw(args: argparse.Namespace, settings: Settings) -> int:
    return runtime.run_mailgw(settings)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    return runtime.run_worker(settings, threads=args.threads, processes=args.processes)


def cmd_scheduler(args: argparse.Namespace, settings: Settings) -> int:
    return runtime.run_scheduler(settings)


LONG_RUNNING: frozenset[Handler] = frozenset(
    {cmd_serve, cmd_web, cmd_mailgw, cmd_worker, cmd_scheduler}
)


# --- Parsing --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line through :func:`main`, not usage plus error."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see `{self.prog} --help`)", EXIT_BAD_INPUT)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


# The sub-command list of ``pulpit`` or of one group (``pulpit mail ACTION``).
Commands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def _common_options() -> _Parser:
    """The options every command takes, before or after its name."""
    # SUPPRESS keeps a sub-command's default from overwriting a --debug given earlier.
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log in detail and show tracebacks",
    )
    return common


def _command(
    sub: Commands,
    common: _Parser,
    name: str,
    handler: Handler,
    help_text: str,
) -> argparse.ArgumentParser:
    """A command (or a group's action) run by ``handler``."""
    p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
    p.set_defaults(handler=handler)
    return p


def _group(
    commands: Commands, common: _Parser, name: str, help_text: str, description: str
) -> Commands:
    """A command group such as ``pulpit mail``; returns the list its actions go in."""
    group = commands.add_parser(name, parents=[common], help=help_text, description=description)
    return group.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )


def _add_serve(commands: Commands, common: _Parser) -> None:
    serve = _command(
        commands,
        common,
        "serve",
        cmd_serve,
        "run everything in one process: web, SMTP gateway, workers and scheduler",
    )
    serve.add_argument(
        "--demo-banner",
        action="store_true",
        help="print the URL and the demo logins once the server is listening",
    )


def _add_web(commands: Commands, common: _Parser) -> None:
    _command(commands, common, "web", cmd_web, "run only the web console and API")


def _add_mailgw(commands: Commands, common: _Parser) -> None:
    _command(commands, common, "mailgw", cmd_mailgw, "run only the SMTP gateway and IMAP pollers")


def _add_worker(commands: Commands, common: _Parser) -> None:
    worker = _command(
        commands,
        common,
        "worker",
        cmd_worker,
        "run background workers (needs a Redis or RabbitMQ broker)",
    )
    worker.add_argument(
        "--threads", type=_positive_int, default=8, help="worker threads (default: 8)"
    )
    worker.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        help="worker processes, each with --threads threads (default: 1; one per core uses "
        "every core)",
    )


def _add_scheduler(commands: Commands, common: _Parser) -> None:
    _command(
        commands,
        common,
        "scheduler",
        cmd_scheduler,
        "run the periodic scheduler (one per instance)",
    )


def _add_health(commands: Commands, common: _Parser) -> None:
    _command(
        commands,
        common,
        "health",
        cmd_health,
        "check that the database and the broker answer (a container health check)",
    )


def _add_db(commands: Commands, common: _Parser) -> None:
    actions = _group(commands, common, "db", "database maintenance", "Database maintenance.")
    _command(
        actions, common, "upgrade", cmd_db_upgrade, "migrate the database schema to the latest"
    )
    _command(
        actions,
        common,
        "recount",
        cmd_db_recount,
        "count the tickets again into the tallies the lists' totals come from (PostgreSQL)",
    )


def _add_config(commands: Commands, common: _Parser) -> None:
    actions = _group(
        commands, common, "config", "declarative configuration", "Declarative configuration."
    )
    apply = _command(
        actions, common, "apply", cmd_config_apply, "apply a YAML configuration (idempotent)"
    )
    apply.add_argument("file", metavar="FILE", help="the YAML file")
    _command(actions, common, "export", cmd_config_export, "print the configuration as YAML")


def _add_user(commands: Commands, common: _Parser) -> None:
    actions = _group(commands, common, "user", "user accounts", "User accounts.")
    add = _command(actions, common, "add", cmd_user_add, "create or update a user")
    add.add_argument("--email", required=True, metavar="E")
    add.add_argument(
        "--role",
        required=True,
        metavar="R",
        help="admin, coordinator, technician, client or subcontractor, or a custom role (roles:)",
    )
    add.add_argument("--name", metavar="N")
    add.add_argument("--password", metavar="P")
    add.add_argument("--client", metavar="C", help="the client a client contact belongs to")
    add.add_argument("--subcontractor", metavar="S", help="the subcontractor a user works for")
    add.add_argument("--language", metavar="L", help="pl or en")
    add.add_argument(
        "--manager",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a client's manager sees all of the client's tickets",
    )
    add.add_argument(
        "--two-step",
        choices=("totp", "email", "none"),
        default=None,
        help="the second factor: totp (an authenticator app, set up at the next login), "
        "email (a one-time code mailed at login) or none",
    )
    reset = _command(
        actions,
        common,
        "reset-totp",
        cmd_user_reset_totp,
        "turn off a user's two-step login (a lost phone)",
    )
    reset.add_argument("--email", required=True, metavar="E")


def _add_token(commands: Commands, common: _Parser) -> None:
    actions = _group(commands, common, "token", "API tokens", "API tokens.")
    create = _command(
        actions, common, "create", cmd_token_create, "print a new API token for a user"
    )
    create.add_argument("--email", required=True, metavar="E")


def _listing_options(p: argparse.ArgumentParser, states: tuple[str, ...]) -> None:
    """--state, --json and --limit, shared by ``mail list`` and ``mail outbox``."""
    p.add_argument("--state", choices=states)
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.add_argument(
        "--limit",
        type=_positive_int,
        default=200,
        help="show at most this many, newest first (default: 200)",
    )


def _add_mail(commands: Commands, common: _Parser) -> None:
    actions = _group(
        commands,
        common,
        "mail",
        "inbound messages and the outbox",
        "Inbound messages (list, requeue) and outgoing mail (outbox, resend).",
    )
    listing = _command(actions, common, "list", cmd_mail_list, "list inbound messages")
    _listing_options(listing, MAIL_STATES)
    requeue = _command(
        actions, common, "requeue", cmd_mail_requeue, "re-process quarantined inbound messages"
    )
    requeue.add_argument("--all", action="store_true", help="every quarantined message")
    requeue.add_argument("ids", nargs="*", metavar="ID", type=_positive_int)
    outbox = _command(actions, common, "outbox", cmd_mail_outbox, "list outgoing mail and failures")
    _listing_options(outbox, OUTBOX_STATES)
    again = _command(actions, common, "resend", cmd_mail_resend, "send failed outgoing mail again")
    again.add_argument("--failed", action="store_true", help="every failed mail")
    again.add_argument("ids", nargs="*", metavar="ID", type=_positive_int)


def _add_person(commands: Commands, common: _Parser) -> None:
    actions = _group(
        commands,
        common,
        "person",
        "personal data (GDPR): export, erasure, retention",
        "Personal data (GDPR / RODO): export everything about a person, erase a person, "
        "anonymise old closed tickets. See docs/privacy.md.",
    )
    export = _command(
        actions, common, "export", cmd_person_export, "write everything stored about a person"
    )
    export.add_argument("--email", required=True, metavar="E")
    export.add_argument("--output", required=True, metavar="FILE.zip")
    erase = _command(
        actions, common, "erase", cmd_person_erase, "erase a person's personal data (for good)"
    )
    erase.add_argument("--email", required=True, metavar="E")
    erase.add_argument("--yes", action="store_true", help="confirm: it cannot be undone")
    retention = _command(
        actions,
        common,
        "retention",
        cmd_person_retention,
        "anonymise closed tickets older than PULPIT_RETENTION_DAYS now",
    )
    retention.add_argument(
        "--dry-run", action="store_true", help="only list the tickets that are due"
    )
    retention.add_argument(
        "--days", type=_positive_int, metavar="N", help="this age instead of the setting's"
    )


def _add_blobs(commands: Commands, common: _Parser) -> None:
    actions = _group(
        commands,
        common,
        "blobs",
        "attachment and raw-mail content: move between stores, check",
        "Attachment and raw-mail content (PULPIT_BLOB_URL): copy it between the data "
        "directory and the PostgreSQL database, check that every stored file is there. "
        'See docs/settings.md, "Where attachments are kept".',
    )
    migrate = _command(
        actions,
        common,
        "migrate",
        cmd_blobs_migrate,
        "copy the content into the database or back into the directory (idempotent)",
    )
    migrate.add_argument(
        "--to",
        required=True,
        choices=("database", "file"),
        help="database: from the directory into PostgreSQL; file: back into the directory",
    )
    _command(
        actions,
        common,
        "check",
        cmd_blobs_check,
        "check that the store has the content of every stored file",
    )


# In the order ``pulpit --help`` lists them.
COMMAND_GROUPS: tuple[Callable[[Commands, _Parser], None], ...] = (
    _add_serve,
    _add_web,
    _add_mailgw,
    _add_worker,
    _add_scheduler,
    _add_health,
    _add_db,
    _add_config,
    _add_user,
    _add_token,
    _add_mail,
    _add_person,
    _add_blobs,
)


def build_parser() -> argparse.ArgumentParser:
    """``pulpit`` and every command, each group added by its own builder."""
    # --debug is accepted before and after the command.
    common = _common_options()
    parser = _Parser(
        prog="pulpit",
        description="Pulpit, an email-first service desk.",
        parents=[common],
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for add_group in COMMAND_GROUPS:
        add_group(commands, common)
    return parser


# --- Running --------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines) or "failed"


# PostgreSQL's answer to a connection naming a database it does not have.
_MISSING_DATABASE = re.compile(r'database "[^"]*" does not exist')


def describe_error(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an error that ended a command."""
    from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

    if isinstance(exc, CommandError):
        return exc.exit_code, _one_line(str(exc))
    if isinstance(exc, SettingsError | InputError):
        return EXIT_BAD_INPUT, _one_line(str(exc))
    if isinstance(exc, PulpitError):
        return EXIT_FAILURE, _one_line(str(exc))
    if isinstance(exc, OSError) and exc.filename is not None:
        # A file named by the caller or the settings: a path or permission they can fix.
        return EXIT_BAD_INPUT, f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return EXIT_FAILURE, _one_line(str(exc))
    if isinstance(exc, OperationalError | ProgrammingError):
        detail = _one_line(str(exc.orig if exc.orig is not None else exc))
        if _MISSING_DATABASE.search(detail):
            # The server answers but the database itself is not there: `db upgrade` creates
            # the schema, not the database, so saying "run pulpit db upgrade" would send the
            # operator around in a circle (it is what `db upgrade` itself printed).
            return (
                EXIT_FAILURE,
                f"the database does not exist ({detail}); create it first "
                "(createdb, or CREATE DATABASE), then run `pulpit db upgrade`",
            )
        if "no such table" in detail or "does not exist" in detail:
            return (
                EXIT_FAILURE,
                f"the database has no Pulpit schema yet ({detail}); run `pulpit db upgrade`",
            )
        return EXIT_FAILURE, f"the database cannot be used: {detail}"
    if isinstance(exc, SQLAlchemyError):
        return EXIT_FAILURE, f"database error: {_one_line(str(exc))}"
    return EXIT_FAILURE, (
        f"unexpected error: {type(exc).__name__}: {_one_line(str(exc))} "
        "(run with --debug to see the traceback)"
    )


def _configure_logging(debug: bool, long_running: bool) -> None:
    if long_running:
        # A crash inside a C extension (a driver, a parser) prints every thread's Python stack
        # to stderr instead of vanishing without a trace.
        try:
            faulthandler.enable()
        except (ValueError, OSError):  # stderr without a file descriptor (captured in tests)
            pass
    # One-shot commands stay quiet (their output is the result, e.g. a token to capture);
    # servers log what they do.
    level = logging.DEBUG if debug else logging.INFO if long_running else logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    if not debug:
        # Alembic announces every plugin it loads at INFO on each start; the migrations it
        # runs are still logged.
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``pulpit`` command; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    try:
        try:
            args = build_parser().parse_args(args_list)
        except SystemExit as exc:  # --help printed its text and asks to exit
            return exc.code if isinstance(exc.code, int) else 0
        debug = bool(getattr(args, "debug", False))
        handler: Handler = args.handler
        _configure_logging(debug, long_running=handler in LONG_RUNNING)
        settings = load_settings()
        return int(handler(args, settings))
    except KeyboardInterrupt:
        print("pulpit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        code, message = describe_error(exc)
        if debug:
            traceback.print_exc()
        print(f"pulpit: {message}", file=sys.stderr)
        return code
