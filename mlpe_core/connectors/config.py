"""The watch and connectors file (``MLPE_WATCH_CONFIG``, ``--config``, or ``watch.yaml`` in ``MLPE_CONFIG_DIR``):
how the folder watcher waits for files to settle, and which remote catalogues to pull on which schedule.

Validated on load: an unknown key, a bad duration, a URL that is not http(s) or two connectors with one name
are refused with the file and the field named (``settings.ConfigFileError``), before the watcher starts.

```yaml
watch:
  settle_s: 2          # a file must keep its size and time this long before it is read
  interval_s: 1        # how often the folder is looked at when no event wakes the watcher
connectors:
  - name: carbonmapper
    kind: plumes_json  # or stac
    url: https://example.org/api/plumes
    every: 6h          # 90s, 15m, 6h, 1d
    since: 2025-01-01T00:00:00Z
```
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..settings import config_error, read_yaml

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
IGNORED = (".*", "*.part", "*.tmp", "*.crdownload", "*.partial", "*.swp", "*~")


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``90s``, ``15m``, ``6h``, ``1d`` (a bare number is seconds)."""
    if isinstance(text, int | float):
        if text <= 0:
            raise ValueError("must be more than 0 seconds")
        return float(text)
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"'{text}' is not a duration like 90s, 15m, 6h or 1d")
    s = float(m.group(1)) * _UNIT[m.group(2)]
    if s <= 0:
        raise ValueError("must be more than 0 seconds")
    return s


class WatchOptions(BaseModel):
    """How ``mlpe watch`` treats the folder."""

    model_config = ConfigDict(extra="forbid")

    settle_s: float = Field(2.0, ge=0, le=3600, description="size and time unchanged this long: the file is done")
    interval_s: float = Field(1.0, gt=0, le=3600, description="look at the folder at least this often")
    format: str = Field("auto", description="the ingest format of every file (auto recognises it)")
    source_name: str | None = None
    asset: str | None = Field(None, description="the site of monitor files that name none")
    ignore: list[str] = Field(default_factory=lambda: list(IGNORED), description="file name patterns never read "
                              "(files still being written under a temporary name)")
    retries: int = Field(3, ge=1, le=100, description="an unexpected failure on a file is retried this often, then "
                         "the file goes to rejects/")

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        from ..ingest import FORMATS

        if v not in FORMATS:
            raise ValueError(f"'{v}' is not one of {', '.join(FORMATS)}")
        return v


class PullConnector(BaseModel):
    """A remote plume catalogue read on a schedule."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["stac", "plumes_json"]
    url: str
    every: float = Field(description="the schedule: 90s, 15m, 6h, 1d")
    since: datetime | None = Field(None, description="the first watermark (default: everything)")
    page_size: int = Field(100, ge=1, le=10_000)
    max_pages: int = Field(100, ge=1, le=100_000, description="a cycle stops after this many pages (the rest "
                           "comes next time, from the watermark)")
    retries: int = Field(4, ge=0, le=20, description="retries of a failed request (5xx, 429, time-out)")
    backoff_s: float = Field(1.0, ge=0, le=600, description="first retry wait; doubles each time (Retry-After wins)")
    timeout_s: float = Field(30.0, gt=0, le=600)
    headers: dict[str, str] = Field(default_factory=dict)
    token_env: str | None = Field(None, description="environment variable holding a bearer token")
    params: dict[str, str | int | float | bool | list] = Field(default_factory=dict, description="extra query "
                                                               "parameters, or STAC search fields (collections, bbox)")
    since_param: str = Field("since", description="plumes_json: the query parameter for the watermark")
    limit_param: str = "limit"
    offset_param: str = "offset"
    source_type: str = Field("satellite", description="stac: what kind of sensor the items come from")
    source_name: str | None = Field(None, description="stac: the instrument name (default: the item's platform)")
    format: str = "auto"

    @field_validator("every", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)  # type: ignore[arg-type]

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"'{v}' is not an http:// or https:// URL")
        return v

    @field_validator("since")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        from datetime import UTC

        return None if v is None else (v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC))


class WatchConfig(BaseModel):
    """The whole file: watch options and pull connectors."""

    model_config = ConfigDict(extra="forbid")

    watch: WatchOptions = Field(default_factory=WatchOptions)
    connectors: list[PullConnector] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> WatchConfig:
        names = [c.name for c in self.connectors]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"connector name '{dup[0]}' is used twice")
        return self


def load_watch_config(path: Path | str | None) -> WatchConfig:
    """The validated file at ``path`` (None: the defaults, folder watching only)."""
    if path is None:
        return WatchConfig()
    data = read_yaml(Path(path))
    try:
        return WatchConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(path, exc) from None
