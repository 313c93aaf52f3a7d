from pathlib import Path

import pytest

from nurture.config import ConfigError, load_settings


def test_defaults_use_sqlite_file_in_data_dir_and_store_a_secret(tmp_path: Path) -> None:
    settings = load_settings({"NURTURE_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'nurture.db'}"
    assert len(settings.secret_key) >= 32
    # The generated key is kept: a second start reads the same one.
    assert load_settings({"NURTURE_DATA_DIR": str(tmp_path)}).secret_key == settings.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_postgres_urls_are_normalised_to_psycopg3(tmp_path: Path) -> None:
    settings = load_settings(
        {"NURTURE_DATA_DIR": str(tmp_path), "NURTURE_DATABASE_URL": "postgres://u@h/db"}
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NURTURE_DATABASE_URL", "mysql://root@localhost/x"),
        ("NURTURE_BASE_URL", "ftp://example.com"),
        ("NURTURE_BASE_URL", "not a url"),
        ("NURTURE_SECRET_KEY", "short"),
        ("NURTURE_EMBEDDED_WORKER", "maybe"),
        ("NURTURE_LOG_LEVEL", "LOUD"),
    ],
)
def test_invalid_values_fail_naming_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({"NURTURE_DATA_DIR": str(tmp_path), name: value})


def test_config_file_supplies_values_the_environment_overrides(tmp_path: Path) -> None:
    conf = tmp_path / "nurture.env"
    conf.write_text("# comment\nNURTURE_BASE_URL=https://mail.example.com/\nNURTURE_LOG_LEVEL=debug\n")
    settings = load_settings({"NURTURE_CONFIG_FILE": str(conf), "NURTURE_DATA_DIR": str(tmp_path), "NURTURE_LOG_LEVEL": "warning"})
    assert settings.base_url == "https://mail.example.com"
    assert settings.log_level == "WARNING"


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NURTURE_CONFIG_FILE"):
        load_settings({"NURTURE_CONFIG_FILE": str(tmp_path / "nope.env")})
