"""deploy/compose/ holds together with the code it runs.

No container runs here (CI has no container engine or registry), so these checks read the files
instead: every part the stack promises is there, every ``command`` is one the ``pulpit`` parser
accepts, every ``PULPIT_*`` variable is a real setting and the whole environment loads as
settings, every long-running part has a health check, the web processes are reachable only
through nginx, and nginx's upstreams and the trusted proxy match the fixed addresses.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import Settings, load_settings
from pulpit.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
PULPIT_IMAGE = "localhost/pulpit:latest"

# The stack issue 16 asks for: PostgreSQL, Redis, the one-shot migration, two web processes
# behind nginx, the mail gateway, two workers and the scheduler.
SERVICES = {
    "postgres",
    "redis",
    "migrate",
    "web1",
    "web2",
    "nginx",
    "mailgw",
    "worker1",
    "worker2",
    "scheduler",
}
WEB = ("web1", "web2")
PULPIT_COMMANDS = {
    "migrate": "db upgrade",
    "web1": "web",
    "web2": "web",
    "mailgw": "mailgw",
    "worker1": "worker",
    "worker2": "worker",
    "scheduler": "scheduler",
}
SETTING_VARIABLES = {f"PULPIT_{f.name.upper()}" for f in fields(Settings)}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(autouse=True)
def _no_local_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings reads ./pulpit.toml when there is one; these checks read only compose's."""
    monkeypatch.chdir(tmp_path)


def compose() -> dict[str, Any]:
    document = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def env_example() -> dict[str, str]:
    """``.env.example`` as compose reads a ``.env``: NAME=value lines, comments skipped."""
    values = {}
    for line in (COMPOSE_DIR / ".env.example").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${...}`` substitution, enough for this file; an unset required one fails."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        given = env.get(name)
        unset = given is None or (given == "" and operator is not None and ":" in operator)
        if operator and operator.endswith("?") and unset:
            raise AssertionError(f"{name} is required: {argument}")
        if operator and operator.endswith("-") and unset:
            return argument
        return given or ""

    return INTERPOLATION.sub(substitute, value)


def filled_env() -> dict[str, str]:
    """The example .env with its two secrets filled in, as an operator would."""
    env = env_example()
    env.update(POSTGRES_PASSWORD="0123456789abcdef", PULPIT_SECRET_KEY="x" * 64)
    return env


def environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    raw = service.get("environment") or {}
    assert isinstance(raw, dict), "environment is written as a mapping"
    return {name: interpolate(str(value), env) for name, value in raw.items()}


def test_every_part_of_the_stack_is_there() -> None:
    missing = SERVICES - set(services())
    assert not missing, f"compose.yaml lacks {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(PULPIT_COMMANDS))
def test_each_pulpit_part_runs_a_real_command(name: str) -> None:
    service = services()[name]
    assert service["image"] == PULPIT_IMAGE
    command = service["command"]
    assert isinstance(command, list), "commands are lists, so no shell splits them"
    # The image's entrypoint is `pulpit`; the parser refuses (CommandError) what it does not know.
    args = build_parser().parse_args(command)
    assert (
        " ".join(filter(None, (args.command, getattr(args, "action", None))))
        == (PULPIT_COMMANDS[name])
    )


def test_the_image_is_built_from_the_repository_as_an_unprivileged_user() -> None:
    build = services()["migrate"]["build"]
    context = (COMPOSE_DIR / build["context"]).resolve()
    assert context == ROOT
    containerfile = (context / build["dockerfile"]).read_text(encoding="utf-8")
    assert "FROM python:3.11-slim" in containerfile
    assert 'ENTRYPOINT ["pulpit"]' in containerfile
    users = re.findall(r"^USER\s+(\S+)", containerfile, re.M)
    assert users and users[-1] not in ("root", "0"), "the parts must not run as root"
    assert ".[dev]" not in containerfile, "no development extras in the image"


def test_every_variable_is_a_setting_and_the_environment_loads() -> None:
    env = filled_env()
    for name, service in services().items():
        variables = environment(service, env)
        unknown = sorted(
            v for v in variables if v.startswith("PULPIT_") and v not in SETTING_VARIABLES
        )
        assert not unknown, f"{name}: {unknown} are not settings (config/settings.py)"
        if service.get("image") == PULPIT_IMAGE:
            # load_settings checks the schemes, addresses and numbers as the parts will.
            settings = load_settings(environ=variables)
            assert settings.database_url.startswith("postgresql+psycopg://pulpit:")
            assert settings.broker_url.startswith("redis://")
            assert settings.secret_key, "every part needs the one shared secret key"
            # Attachments in PostgreSQL: the parts share no disk.
            assert settings.blob_url == "database:"
    unknown_examples = sorted(
        v for v in env_example() if v.startswith("PULPIT_") and v not in SETTING_VARIABLES
    )
    assert not unknown_examples, f".env.example: {unknown_examples} are not settings"


def test_every_variable_compose_reads_is_in_the_example_env() -> None:
    text = (COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8")
    used = {match.group(1) for match in INTERPOLATION.finditer(text)}
    missing = sorted(used - set(env_example()))
    assert not missing, f"compose.yaml reads {missing}, which .env.example does not explain"


def test_the_secrets_must_be_given() -> None:
    env = env_example()  # as copied: both secrets empty
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD is required"):
        environment(services()["postgres"], env)
    env["POSTGRES_PASSWORD"] = "0123456789abcdef"
    with pytest.raises(AssertionError, match="PULPIT_SECRET_KEY is required"):
        environment(services()["web1"], env)


def test_every_long_running_part_has_a_health_check() -> None:
    for name, service in services().items():
        if service.get("restart") == "no":
            continue  # one-shot (migrate)
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no health check"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), name
        if test[:2] == ["CMD", "pulpit"]:
            build_parser().parse_args(test[2:])  # a real command, such as `pulpit health`


def test_parts_wait_for_the_migration_and_the_services() -> None:
    all_services = services()
    assert all_services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in PULPIT_COMMANDS:
        if name == "migrate":
            continue
        depends = all_services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    nginx = all_services["nginx"]["depends_on"]
    assert all(nginx[web]["condition"] == "service_healthy" for web in WEB)


def test_web_is_reached_only_through_nginx() -> None:
    all_services = services()
    for web in WEB:
        assert "ports" not in all_services[web], f"{web} must not be published"
    published = {name for name, service in all_services.items() if service.get("ports")}
    assert published == {"nginx", "mailgw"}
    assert "edge" not in all_services["mailgw"].get("networks", [])

    # nginx's upstreams are the web processes' fixed addresses on the edge network ...
    conf = (COMPOSE_DIR / "nginx.conf").read_text(encoding="utf-8")
    upstreams = set(re.findall(r"^\s*server\s+([\d.]+):(\d+)", conf, re.M))
    port = str(Settings.http_port)  # the image leaves PULPIT_HTTP_PORT at its default
    addresses = {(all_services[web]["networks"]["edge"]["ipv4_address"], port) for web in WEB}
    assert upstreams == addresses, f"nginx upstreams {upstreams}, web addresses {addresses}"
    # ... and nginx's own is the one proxy whose X-Forwarded-For the web processes believe.
    nginx_address = all_services["nginx"]["networks"]["edge"]["ipv4_address"]
    for web in WEB:
        settings = load_settings(environ=environment(all_services[web], filled_env()))
        assert settings.trusted_proxies.split(",") == [nginx_address]
    for header in ("Host $http_host", "X-Forwarded-For $proxy_add_x_forwarded_for"):
        assert f"proxy_set_header {header};" in conf
