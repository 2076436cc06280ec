"""Settings: defaults, the TOML file, environment precedence, and a sentence for bad values.

The loader takes the environment as a mapping, so these tests never touch ``os.environ``; the
working directory is a fresh temporary one so a developer's ``./pulpit.toml`` cannot leak in.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from config.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_file_and_no_environment() -> None:
    settings = load_settings({})
    assert settings.broker_url == "memory://"
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8000)
    assert (settings.smtp_host, settings.smtp_port) == ("127.0.0.1", 2525)
    assert settings.outbound_smtp_url == "log://"
    assert settings.max_message_bytes == 26_214_400
    assert settings.data_dir == Path("var")
    assert settings.resolved_database_url == f"sqlite:///{(Path('var') / 'pulpit.db').resolve()}"


def test_the_file_named_by_pulpit_config_is_read(tmp_path: Path) -> None:
    toml = write(tmp_path / "elsewhere.toml", 'http_port = 9000\nbroker_url = "redis://r:6379/0"\n')
    settings = load_settings({"PULPIT_CONFIG": str(toml)})
    assert settings.http_port == 9000
    assert settings.broker_url == "redis://r:6379/0"


def test_a_pulpit_section_is_accepted_too(tmp_path: Path) -> None:
    toml = write(tmp_path / "p.toml", '[pulpit]\nsmtp_port = 2626\ndata_dir = "/srv/pulpit"\n')
    settings = load_settings({"PULPIT_CONFIG": str(toml)})
    assert settings.smtp_port == 2626
    assert settings.data_dir == Path("/srv/pulpit")
    assert settings.resolved_database_url == "sqlite:////srv/pulpit/pulpit.db"


def test_pulpit_toml_in_the_working_directory_is_the_default_file(tmp_path: Path) -> None:
    write(tmp_path / "pulpit.toml", "http_port = 8081\n")
    assert load_settings({}).http_port == 8081


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    toml = write(tmp_path / "p.toml", 'http_port = 9000\npublic_url = "https://file.example"\n')
    settings = load_settings(
        {"PULPIT_CONFIG": str(toml), "PULPIT_HTTP_PORT": "9100"},
    )
    assert settings.http_port == 9100  # from the environment
    assert settings.public_url == "https://file.example"  # the file still fills the rest


def test_an_empty_environment_variable_does_not_override(tmp_path: Path) -> None:
    toml = write(tmp_path / "p.toml", "http_port = 9000\n")
    assert load_settings({"PULPIT_CONFIG": str(toml), "PULPIT_HTTP_PORT": ""}).http_port == 9000


def test_an_explicit_database_url_beats_the_data_dir() -> None:
    settings = load_settings(
        {"PULPIT_DATA_DIR": "/data", "PULPIT_DATABASE_URL": "postgresql+psycopg://db/pulpit"}
    )
    assert settings.resolved_database_url == "postgresql+psycopg://db/pulpit"
    assert settings.blob_dir == Path("/data/blobs")


def one_sentence(exc: pytest.ExceptionInfo[SettingsError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert message
    return message


def test_a_bad_number_in_the_environment_names_the_variable_and_value() -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings({"PULPIT_HTTP_PORT": "eighty"})
    message = one_sentence(exc)
    assert "PULPIT_HTTP_PORT" in message
    assert "'eighty'" in message


def test_a_bad_number_in_the_file_names_the_file(tmp_path: Path) -> None:
    toml = write(tmp_path / "p.toml", 'smtp_port = "lots"\n')
    with pytest.raises(SettingsError) as exc:
        load_settings({"PULPIT_CONFIG": str(toml)})
    message = one_sentence(exc)
    assert str(toml) in message
    assert "smtp_port" in message


def test_an_unknown_key_in_the_file_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    toml = write(tmp_path / "p.toml", "http_prot = 8000\n")
    with pytest.raises(SettingsError) as exc:
        load_settings({"PULPIT_CONFIG": str(toml)})
    message = one_sentence(exc)
    assert "'http_prot'" in message
    assert "http_port" in message


def test_a_missing_settings_file_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings({"PULPIT_CONFIG": str(tmp_path / "nope.toml")})
    assert "does not exist" in one_sentence(exc)


def test_broken_toml_is_a_sentence(tmp_path: Path) -> None:
    toml = write(tmp_path / "p.toml", "http_port = \n")
    with pytest.raises(SettingsError) as exc:
        load_settings({"PULPIT_CONFIG": str(toml)})
    assert "not valid TOML" in one_sentence(exc)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PULPIT_BROKER_URL", "kafka://k:9092"), ("PULPIT_OUTBOUND_SMTP_URL", "sendmail://")],
)
def test_an_unsupported_scheme_lists_the_supported_ones(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings({variable: value})
    message = one_sentence(exc)
    assert variable in message
    assert "use one of" in message


@pytest.mark.parametrize(
    "url", ["memory://", "redis://h:6379/0", "rediss://h:6380/0", "amqp://g:g@h:5672/", "amqps://h"]
)
def test_every_documented_broker_scheme_is_accepted(url: str) -> None:
    assert load_settings({"PULPIT_BROKER_URL": url}).broker_url == url


def test_the_secret_key_is_generated_once_into_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"PULPIT_DATA_DIR": str(tmp_path / "data")})
    first = settings.ensure_secret_key()
    again = load_settings({"PULPIT_DATA_DIR": str(tmp_path / "data")}).ensure_secret_key()
    assert len(first.secret_key) >= 32
    assert again.secret_key == first.secret_key  # survives a restart: sessions stay valid
    key_file = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_configured_secret_key_is_used_as_is(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="s3cret")
    assert settings.ensure_secret_key().secret_key == "s3cret"
    assert not (tmp_path / "secret_key").exists()


def test_smtp_protocol_is_smtp_or_lmtp() -> None:
    from config.settings import SettingsError, load_settings

    assert load_settings(environ={"PULPIT_SMTP_PROTOCOL": "lmtp"}).smtp_protocol == "lmtp"
    with pytest.raises(SettingsError, match="smtp or lmtp"):
        load_settings(environ={"PULPIT_SMTP_PROTOCOL": "pop3"})


def test_links_follow_a_changed_port_unless_a_public_url_is_set() -> None:
    """Mail links (notifications, password resets) use public_url: without PULPIT_PUBLIC_URL
    it is where the console listens, so a changed port reaches every link (issue 15)."""
    moved = load_settings({"PULPIT_HTTP_PORT": "8081"})
    assert moved.public_url == "http://127.0.0.1:8081"
    assert load_settings({"PULPIT_HTTP_HOST": "::1", "PULPIT_HTTP_PORT": "9000"}).public_url == (
        "http://[::1]:9000"
    )
    wildcard = load_settings({"PULPIT_HTTP_HOST": "0.0.0.0"}).public_url
    assert wildcard.startswith("http://") and "0.0.0.0" not in wildcard
    explicit = load_settings(
        {"PULPIT_HTTP_PORT": "8081", "PULPIT_PUBLIC_URL": "https://desk.example"}
    )
    assert explicit.public_url == "https://desk.example"
