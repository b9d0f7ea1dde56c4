"""Settings: every ``MLPE_*`` environment variable in one validated object, read once at start by each face.

Why: a mistyped number (``MLPE_MAX_ROWS=3e6x``), a config folder that does not exist or an SMTP port of 0
used to surface deep inside a run, hours after start. :func:`load` checks every variable at start (the CLI's
``main``, ``mlpe serve``, ``mlpe watch`` and the app call it) and :class:`SettingsError` names each one that is
wrong and why. Unknown ``MLPE_*`` names are reported as warnings (a typo such as ``MLPE_DBB`` would otherwise be
silently ignored). The README's configuration table lists every field below; the modules that already read the
environment themselves (``store.db``, ``limits``, ``config``, the CLI's identity) read the same names, so the
values validated here are the values used.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "MLPE_"


class SettingsError(ValueError):
    """One or more ``MLPE_*`` variables are wrong: the message names each, with the reason."""


class ConfigFileError(ValueError):
    """A configuration file is unreadable or invalid: the message names the file and the field."""


def config_error(path: Path | str, exc: Exception) -> ConfigFileError:
    """A pydantic ``ValidationError`` (or a YAML error) as one line naming the file and each field that is wrong."""
    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()))
            parts.append(f"{where}: {e['msg']}" if where else e["msg"])
        return ConfigFileError(f"{path}: " + "; ".join(parts))
    return ConfigFileError(f"{path}: {exc}")


def read_yaml(path: Path) -> object:
    """A YAML file's content (an empty file is an empty mapping); unreadable or malformed files name themselves."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigFileError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return {} if data is None else data


class Settings(BaseSettings):
    """What an operator sets in the environment (prefix ``MLPE_``; names are case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", case_sensitive=False)

    # the store and who acts
    db: str = Field("data/mlpe.db", description="store path or SQLAlchemy URL (`--db` wins)")
    user: str | None = Field(None, description="who acts (CLI; open mode records it, else prove it)")
    password: SecretStr | None = Field(None, description="the --user's password once the store has users (CLI)")
    token: SecretStr | None = Field(None, description="an API/CLI token instead of a password (CLI)")
    new_password: SecretStr | None = Field(None, description="the password of a user being added (CLI)")
    # configuration files
    config_dir: Path | None = Field(None, description="folder whose instruments.yaml, compliance.yaml, "
                                    "dispatch.yaml, watch.yaml or alerts.yaml replace the packaged ones")
    watch_config: Path | None = Field(None, description="the watch and connectors file (default: "
                                      "MLPE_CONFIG_DIR/watch.yaml, else none: folder watching only)")
    alerts_config: Path | None = Field(None, description="alert rules, teams and channels (default: "
                                       "MLPE_CONFIG_DIR/alerts.yaml, else the packaged rules, inbox only)")
    # input limits (mlpe_core.limits reads the same names)
    max_file_bytes: int = Field(512 * 2**20, gt=0, description="a larger file is refused before it is read")
    max_rows: int = Field(3_000_000, gt=0, description="more data rows are refused")
    max_columns: int = Field(500, gt=0, description="more columns are refused")
    max_unpacked_bytes: int = Field(256 * 2**20, gt=0, description="an XLSX or Parquet unpacking to more is refused")
    max_rate_kg_h: float = Field(1e6, gt=0, description="a rate above it is rejected with its row")
    max_reject_rows: int = Field(10_000, gt=0, description="rejected rows past it are counted, not kept")
    max_json_bytes: int = Field(16 * 2**20, gt=0, description="an API request with a larger JSON body is refused "
                                "(413) before it is parsed")
    # alert channels
    smtp_host: str | None = Field(None, description="SMTP server for e-mail alerts (none: e-mail deliveries fail "
                                  "visibly and are retried)")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port")
    smtp_from: str = Field("mlpe@localhost", description="From: address of alert e-mails")
    smtp_user: str | None = Field(None, description="SMTP login, when the server needs one")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_starttls: bool = Field(False, description="upgrade the SMTP connection with STARTTLS")
    smtp_timeout_s: float = Field(10.0, gt=0, le=300, description="SMTP connect and send timeout")
    webhook_timeout_s: float = Field(10.0, gt=0, le=300, description="webhook POST timeout")
    delivery_attempts: int = Field(8, ge=1, le=100, description="tries per alert and channel before it is marked "
                                   "failed (retries back off 30 s, 1, 2, 4 ... min, at most an hour)")
    app_url: str | None = Field(None, description="the app's address, for links in alert messages")
    # live
    live_poll_s: float = Field(5.0, ge=0.5, le=3600, description="how often an open app page checks for new runs")
    # tests only
    test_postgres_url: str | None = Field(None, description="tests: also run the store tests on this PostgreSQL")
    real_data: Path | None = Field(None, description="tests: where the real plume files are (default ../shared)")

    @field_validator("max_file_bytes", "max_rows", "max_columns", "max_unpacked_bytes", "max_reject_rows",
                     "max_json_bytes", mode="before")
    @classmethod
    def _count(cls, v: object) -> object:
        """Counts may be written as ``1e9`` (``limits`` reads them as numbers too)."""
        if isinstance(v, str) and v.strip():
            try:
                f = float(v)
            except ValueError:
                return v
            return int(f) if f.is_integer() else v
        return v

    @field_validator("config_dir")
    @classmethod
    def _folder_exists(cls, v: Path | None) -> Path | None:
        if v is not None and not Path(v).expanduser().is_dir():
            raise ValueError(f"folder '{v}' does not exist")
        return v

    @field_validator("watch_config", "alerts_config")
    @classmethod
    def _file_exists(cls, v: Path | None) -> Path | None:
        if v is not None and not Path(v).expanduser().is_file():
            raise ValueError(f"file '{v}' does not exist")
        return v

    @field_validator("db")
    @classmethod
    def _db_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is blank")
        return v

    def config_file(self, name: str, explicit: Path | None) -> Path | None:
        """``explicit`` (a ``MLPE_*_CONFIG`` variable or a command-line option), else ``name`` in
        ``MLPE_CONFIG_DIR``, else None."""
        if explicit is not None:
            return Path(explicit).expanduser()
        if self.config_dir is not None and (Path(self.config_dir).expanduser() / name).is_file():
            return Path(self.config_dir).expanduser() / name
        return None

    def public(self) -> dict:
        """The values, secrets replaced by whether they are set (what a run record's snapshot keeps)."""
        out = {}
        for k, v in self.model_dump().items():
            if isinstance(getattr(self, k), SecretStr):
                out[k] = "set"
            elif k in ("password", "token", "new_password", "smtp_password"):
                out[k] = None
            else:
                out[k] = str(v) if isinstance(v, Path) else v
        return out


KNOWN = {f"{PREFIX}{k.upper()}" for k in Settings.model_fields}


def unknown_variables(environ: dict | None = None) -> list[str]:
    """Warnings for ``MLPE_*`` variables no setting reads, with the nearest known name."""
    env = os.environ if environ is None else environ
    out = []
    for name in sorted(n for n in env if n.upper().startswith(PREFIX) and n.upper() not in KNOWN):
        near = difflib.get_close_matches(name.upper(), sorted(KNOWN), n=1)
        out.append(f"{name} is not a setting MLPE reads" + (f" (did you mean {near[0]}?)" if near else ""))
    return out


def load() -> Settings:
    """The settings from the environment, checked; :class:`SettingsError` names every variable that is wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            field = str(e["loc"][0]) if e.get("loc") else "?"
            got = e.get("input")
            lines.append(f"{PREFIX}{field.upper()}={got!r}: {e['msg']}" if isinstance(got, str | int | float)
                         else f"{PREFIX}{field.upper()}: {e['msg']}")
        raise SettingsError("bad setting: " + "; ".join(lines)) from None


def describe() -> list[dict]:
    """One row per setting (variable, default, meaning): the README's table is checked against it."""
    rows = []
    for k, f in Settings.model_fields.items():
        default = f.default
        rows.append({"variable": f"{PREFIX}{k.upper()}", "default": default, "description": f.description or ""})
    return rows
