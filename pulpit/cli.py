"""The ``pulpit`` command line: every entry point an operator or a script uses.

The commands and their options are part of the outside contract (``INTERFACE.md``). Settings
are loaded once here and passed down. Each command that changes the database owns one unit of
work and prints its result only after the commit. Bad input ends with one line on stderr,
``pulpit: <what was wrong>``, and exit code 2; an operational failure (database down, port
taken) with exit code 1; a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from config.settings import Settings, SettingsError, load_settings
from core.db import unit_of_work
from core.errors import InputError, PulpitError
from pulpit import runtime
from pulpit.errors import EXIT_BAD_INPUT, EXIT_FAILURE, CommandError
from pulpit.runtime import MAIL_GATEWAY_NOT_BUILT, database, upgrade_database

log = logging.getLogger("pulpit")

MAIL_STATES = ("received", "processed", "quarantined", "ignored")

Handler = Callable[[argparse.Namespace, Settings], int]


# --- Commands that run and return -----------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    location = upgrade_database(settings)
    print(f"database {location} is at the latest schema")
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

    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        result = apply_config_file(session, path, actor="cli")
    print(result)
    return 0


def cmd_config_export(args: argparse.Namespace, settings: Settings) -> int:
    from core.configuration import export_config

    with database(settings) as session_factory, unit_of_work(session_factory) as session:
        text = export_config(session)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    from core.accounts import upsert_user

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
    print(summary)
    return 0


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    from core.accounts import create_api_token, get_user_by_email

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


def cmd_mail_list(args: argparse.Namespace, settings: Settings) -> int:
    raise CommandError(MAIL_GATEWAY_NOT_BUILT)


def cmd_mail_requeue(args: argparse.Namespace, settings: Settings) -> int:
    if args.all and args.ids:
        raise CommandError("give either --all or message ids, not both")
    if not args.all and not args.ids:
        raise CommandError("give the ids of the messages to re-queue, or --all")
    raise CommandError(MAIL_GATEWAY_NOT_BUILT)


# --- Commands that keep running -------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    return runtime.run_serve(settings, demo_banner=args.demo_banner)


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    return runtime.run_web(settings)


def cmd_mailgw(args: argparse.Namespace, settings: Settings) -> int:
    return runtime.run_mailgw(settings)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    return runtime.run_worker(settings, threads=args.threads)


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


def build_parser() -> argparse.ArgumentParser:
    # --debug is accepted before and after the command; SUPPRESS keeps a sub-command's
    # default from overwriting a --debug given earlier.
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log in detail and show tracebacks",
    )

    parser = _Parser(
        prog="pulpit",
        description="Pulpit, an email-first service desk.",
        parents=[common],
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    def command(
        sub: Any, name: str, handler: Handler, help_text: str, **kwargs: Any
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, parents=[common], help=help_text, description=help_text, **kwargs
        )
        p.set_defaults(handler=handler)
        return p

    serve = command(
        commands,
        "serve",
        cmd_serve,
        "run everything in one process: web, SMTP gateway, workers and scheduler",
    )
    serve.add_argument(
        "--demo-banner",
        action="store_true",
        help="print the URL and the demo logins once the server is listening",
    )
    command(commands, "web", cmd_web, "run only the web console and API")
    command(commands, "mailgw", cmd_mailgw, "run only the SMTP gateway and IMAP pollers")
    worker = command(
        commands, "worker", cmd_worker, "run background workers (needs a Redis or RabbitMQ broker)"
    )
    worker.add_argument(
        "--threads", type=_positive_int, default=8, help="worker threads (default: 8)"
    )
    command(commands, "scheduler", cmd_scheduler, "run the periodic scheduler (one per instance)")

    db = commands.add_parser(
        "db", parents=[common], help="database maintenance", description="Database maintenance."
    )
    db_actions = db.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    command(db_actions, "upgrade", cmd_db_upgrade, "migrate the database schema to the latest")

    config = commands.add_parser(
        "config",
        parents=[common],
        help="declarative configuration",
        description="Declarative configuration.",
    )
    config_actions = config.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    apply = command(
        config_actions, "apply", cmd_config_apply, "apply a YAML configuration (idempotent)"
    )
    apply.add_argument("file", metavar="FILE", help="the YAML file")
    command(config_actions, "export", cmd_config_export, "print the configuration as YAML")

    user = commands.add_parser(
        "user", parents=[common], help="user accounts", description="User accounts."
    )
    user_actions = user.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    add = command(user_actions, "add", cmd_user_add, "create or update a user")
    add.add_argument("--email", required=True, metavar="E")
    add.add_argument(
        "--role",
        required=True,
        metavar="R",
        help="admin, coordinator, technician, client or subcontractor",
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

    token = commands.add_parser(
        "token", parents=[common], help="API tokens", description="API tokens."
    )
    token_actions = token.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    create = command(token_actions, "create", cmd_token_create, "print a new API token for a user")
    create.add_argument("--email", required=True, metavar="E")

    mail = commands.add_parser(
        "mail", parents=[common], help="inbound messages", description="Inbound messages."
    )
    mail_actions = mail.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    listing = command(mail_actions, "list", cmd_mail_list, "list inbound messages")
    listing.add_argument("--state", choices=MAIL_STATES)
    listing.add_argument("--json", action="store_true", help="one JSON document")
    requeue = command(
        mail_actions, "requeue", cmd_mail_requeue, "re-process quarantined inbound messages"
    )
    requeue.add_argument("--all", action="store_true", help="every quarantined message")
    requeue.add_argument("ids", nargs="*", metavar="ID", type=_positive_int)
    return parser


# --- Running --------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines) or "failed"


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
