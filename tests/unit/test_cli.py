"""The ``pulpit`` command line: exit codes, one-line messages, and the commands that need no
server.

docs/commands.md promises that every command exits non-zero with a one-line human-readable
message on bad input and shows no traceback unless ``--debug``; these tests hold it to that.
Each test runs in an empty working directory with a clean ``PULPIT_*`` environment whose data
dir is a temporary one, so the embedded SQLite database is fresh.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.settings import Settings
from pulpit.banner import DemoLogin, console_url, demo_logins, format_banner
from pulpit.cli import main


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("PULPIT_") and not name.startswith(("PULPIT_TEST_", "PULPIT_REQUIRE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "var"
    monkeypatch.setenv("PULPIT_DATA_DIR", str(data_dir))
    return data_dir


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> str:
    """The whole of stderr is one line starting ``pulpit:``, with no traceback."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pulpit: ")
    return lines[0]


# --- Bad input -----------------------------------------------------------------------------


def test_an_unknown_command_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "frobnicate")
    assert code == 2
    line = assert_one_line_error(err)
    assert "'frobnicate'" in line
    assert "serve" in line  # says what would have been valid
    assert out == ""


def test_no_command_at_all_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "COMMAND" in assert_one_line_error(err)


def test_a_group_without_its_action_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "config")
    assert code == 2
    assert "pulpit config --help" in assert_one_line_error(err)


def test_a_missing_required_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "user", "add", "--email", "a@example.com")
    assert code == 2
    assert "--role" in assert_one_line_error(err)


def test_config_apply_of_a_missing_file_names_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.yaml"
    code, _, err = run(capsys, "config", "apply", str(missing))
    assert code == 2
    assert assert_one_line_error(err) == f"pulpit: {missing}: no such file"


def test_config_apply_of_a_directory_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "config", "apply", str(tmp_path))
    assert code == 2
    assert "not a file" in assert_one_line_error(err)


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "--debug", "config", "apply", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("pulpit: ")


def test_debug_is_accepted_after_the_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "config", "apply", str(tmp_path / "nope.yaml"), "--debug")
    assert code == 2
    assert "Traceback" in err


def test_a_bad_setting_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULPIT_HTTP_PORT", "eighty")
    code, _, err = run(capsys, "db", "upgrade")
    assert code == 2
    assert "PULPIT_HTTP_PORT" in assert_one_line_error(err)


def test_a_missing_settings_file_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PULPIT_CONFIG", str(tmp_path / "missing.toml"))
    code, _, err = run(capsys, "db", "upgrade")
    assert code == 2
    assert "does not exist" in assert_one_line_error(err)


def test_worker_refuses_the_memory_broker_with_a_sentence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "worker")
    assert code == 2
    line = assert_one_line_error(err)
    assert "memory://" in line
    assert "pulpit serve" in line


def test_worker_threads_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "worker", "--threads", "0")
    assert code == 2
    assert "--threads" in assert_one_line_error(err)


def test_mail_requeue_needs_ids_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mail", "requeue")
    assert code == 2
    assert "--all" in assert_one_line_error(err)


def test_mail_list_state_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mail", "list", "--state", "lost")
    assert code == 2
    assert "quarantined" in assert_one_line_error(err)


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("serve", "web", "mailgw", "worker", "scheduler", "db", "config", "user"):
        assert command in out


# --- Commands on a fresh embedded database -------------------------------------------------


def test_db_upgrade_creates_the_embedded_database(
    capsys: pytest.CaptureFixture[str], clean_env: Path
) -> None:
    code, out, err = run(capsys, "db", "upgrade")
    assert (code, err) == (0, "")
    assert (clean_env / "pulpit.db").is_file()
    assert "latest schema" in out
    # Running it again is harmless: `make run` and `serve` both do.
    code, _, err = run(capsys, "db", "upgrade")
    assert (code, err) == (0, "")


def test_a_command_before_db_upgrade_says_to_run_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "token", "create", "--email", "a@example.com")
    assert code == 1
    assert "pulpit db upgrade" in assert_one_line_error(err)


def test_user_add_then_token_create_prints_the_token_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    code, out, err = run(
        capsys, "user", "add", "--email", "Ola@Support.example", "--role", "coordinator"
    )
    assert (code, err) == (0, "")
    assert "ola@support.example" in out

    code, out, err = run(capsys, "token", "create", "--email", "ola@support.example")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 1
    assert lines[0].strip() == lines[0] and len(lines[0]) >= 32


def test_user_add_with_an_unknown_role_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    code, _, err = run(capsys, "user", "add", "--email", "a@example.com", "--role", "wizard")
    assert code == 2
    assert "'wizard'" in assert_one_line_error(err)


def test_token_for_an_unknown_user_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    code, out, err = run(capsys, "token", "create", "--email", "ghost@example.com")
    assert code == 2
    assert out == ""
    assert "ghost@example.com" in assert_one_line_error(err)


def test_person_export_of_an_unknown_person_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    target = tmp_path / "ghost.zip"
    code, out, err = run(
        capsys, "person", "export", "--email", "ghost@example.com", "--output", str(target)
    )
    assert code == 2 and out == ""
    assert "no person with the e-mail ghost@example.com" in assert_one_line_error(err)
    assert not target.exists()


def test_person_erase_refuses_without_yes_and_erases_with_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "user", "add", "--email", "ola@acme.example", "--role", "client")[0] == 0
    code, out, err = run(capsys, "person", "erase", "--email", "ola@acme.example")
    assert code == 2 and out == ""
    assert "--yes" in assert_one_line_error(err)

    target = str(tmp_path / "ola.zip")
    code, out, err = run(
        capsys, "person", "export", "--email", "ola@acme.example", "--output", target
    )
    assert (code, err) == (0, "") and (tmp_path / "ola.zip").stat().st_size > 0

    code, out, err = run(capsys, "person", "erase", "--email", "ola@acme.example", "--yes")
    assert (code, err) == (0, "")
    assert "erased-" in out and "ola@acme.example" not in out
    code, _, err = run(capsys, "person", "erase", "--email", "ola@acme.example", "--yes")
    assert code == 2 and "no person" in assert_one_line_error(err)


def test_person_retention_is_off_until_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    code, _, err = run(capsys, "person", "retention", "--dry-run")
    assert code == 2 and "PULPIT_RETENTION_DAYS" in assert_one_line_error(err)
    code, out, err = run(capsys, "person", "retention", "--days", "30", "--dry-run")
    assert (code, err) == (0, "") and "none" in out


# --- The demo banner -------------------------------------------------------------------------


def test_demo_logins_are_the_users_and_contacts_with_a_password(tmp_path: Path) -> None:
    demo = tmp_path / "demo.yaml"
    demo.write_text(
        "clients:\n"
        "  - name: Acme\n"
        "    contacts:\n"
        "      - {email: boss@acme.example, manager: true, password: boss}\n"
        "      - {email: quiet@acme.example}\n"
        "users:\n"
        "  - {email: admin@support.example, role: admin, password: admin}\n"
        "  - {email: nologin@support.example, role: technician}\n"
        "  - {email: anna@acme.example, role: client, password: anna, client: Acme}\n",
        encoding="utf-8",
    )
    assert demo_logins(demo) == [
        DemoLogin("admin@support.example", "admin", "admin"),
        DemoLogin("anna@acme.example", "client", "anna"),
        DemoLogin("boss@acme.example", "client", "boss"),
    ]


def test_the_shipped_demo_file_has_logins() -> None:
    demo = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
    logins = demo_logins(demo)
    assert any(login.role == "admin" for login in logins)


def test_the_banner_shows_the_url_and_every_login() -> None:
    logins = [DemoLogin("admin@support.example", "admin", "pw1")]
    text = format_banner(Settings(), logins, demo_file=Path("demo.yaml"))
    assert "http://127.0.0.1:8000" in text and "SMTP gateway on 127.0.0.1:" in text
    assert "admin@support.example" in text and "pw1" in text


def test_the_banner_url_follows_the_port_unless_a_public_url_is_set() -> None:
    assert console_url(Settings(http_port=9000)) == "http://127.0.0.1:9000"
    assert console_url(Settings(public_url="https://desk.example")) == "https://desk.example"
