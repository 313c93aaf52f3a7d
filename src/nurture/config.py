"""Settings, read once from the environment (and an optional file).

Every variable is named ``NURTURE_*``. An optional ``KEY=VALUE`` file given by
``NURTURE_CONFIG_FILE`` (or ``<data dir>/nurture.env``) supplies defaults that the
environment overrides. Invalid values raise :class:`ConfigError` naming the variable,
so the process fails at start-up rather than at first use.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A configuration variable holds an invalid value."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: str
    base_url: str
    embedded_worker: bool = True
    log_level: str = "INFO"
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ConfigError(f"{path}:{lineno}: expected KEY=VALUE, got {raw!r}")
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_bool(name: str, value: str) -> bool:
    """A boolean setting (1/0, true/false, yes/no, on/off); ConfigError naming ``name``."""
    lowered = value.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}: expected a boolean (true/false), got {value!r}")


def _database_url(name: str, value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme.startswith("postgres"):
        # Accept the common spellings and use psycopg 3.
        rest = value.split("://", 1)[1]
        return f"postgresql+psycopg://{rest}"
    if scheme in {"sqlite", "sqlite+pysqlite"}:
        return value
    raise ConfigError(
        f"{name}: unsupported database URL {value!r}; use sqlite:///path or postgresql://…"
    )


def _base_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"{name}: expected an http(s) URL like https://mail.example.com, got {value!r}")
    return value.rstrip("/")


def _merged(environ: Mapping[str, str] | None) -> tuple[Path, dict[str, str]]:
    """The data dir and the ``NURTURE_*`` values: the config file, overridden by ``environ``."""
    env: dict[str, str] = dict(os.environ if environ is None else environ)
    data_dir = Path(env.get("NURTURE_DATA_DIR", "data")).expanduser().resolve()
    config_file = env.get("NURTURE_CONFIG_FILE")
    file_values: dict[str, str] = {}
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"NURTURE_CONFIG_FILE: no such file {config_file!r}")
        file_values = _read_env_file(path)
    elif (data_dir / "nurture.env").is_file():
        file_values = _read_env_file(data_dir / "nurture.env")
    return data_dir, {**file_values, **{k: v for k, v in env.items() if k.startswith("NURTURE_")}}


def unset_variables(names: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Those of ``names`` set neither in the environment nor in the config file (nor empty).

    For commands that must not fall back to defaults (``nurture inbound``: a generated key or
    a fresh SQLite file would silently match nothing). Reads only; creates nothing.
    """
    _data_dir, merged = _merged(environ)
    return [name for name in names if not merged.get(name, "").strip()]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``environ`` (default: ``os.environ``); may create the data dir."""
    data_dir, merged = _merged(environ)

    raw_url = merged.get("NURTURE_DATABASE_URL") or f"sqlite:///{data_dir / 'nurture.db'}"
    database_url = _database_url("NURTURE_DATABASE_URL", raw_url)
    if database_url.startswith("sqlite") and "NURTURE_DATABASE_URL" not in merged:
        data_dir.mkdir(parents=True, exist_ok=True)

    secret_key = merged.get("NURTURE_SECRET_KEY", "")
    if secret_key and len(secret_key) < 16:
        raise ConfigError("NURTURE_SECRET_KEY: must be at least 16 characters")
    if not secret_key:
        secret_key = _stored_secret(data_dir)

    base_url = _base_url("NURTURE_BASE_URL", merged.get("NURTURE_BASE_URL", "http://127.0.0.1:8000"))
    embedded = parse_bool("NURTURE_EMBEDDED_WORKER", merged.get("NURTURE_EMBEDDED_WORKER", "true"))
    log_level = merged.get("NURTURE_LOG_LEVEL", "INFO").upper()
    if log_level not in _LOG_LEVELS:
        raise ConfigError(f"NURTURE_LOG_LEVEL: expected one of {sorted(_LOG_LEVELS)}, got {log_level!r}")
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=secret_key,
        base_url=base_url,
        embedded_worker=embedded,
        log_level=log_level,
        extra=merged,
    )


def _stored_secret(data_dir: Path) -> str:
    """Generate the secret key on first start and keep it in the data dir (mode 0600)."""
    path = data_dir / "secret_key"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key)
    return key
