"""The alert rules file: rules, teams, routes, areas and channels, validated on load.

Why validated: a route to a team nobody defined, or a team whose webhook is misspelt, would drop alerts on
the floor without a word. Every cross-reference is checked when the file is read and the error names the
file and the field (``settings.ConfigFileError``). The packaged ``config/alerts.yaml`` has the five rules
and no channel (the in-app inbox only); ``MLPE_ALERTS_CONFIG`` or ``alerts.yaml`` in ``MLPE_CONFIG_DIR``
replaces it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..settings import config_error, read_yaml

Kind = Literal["new_high_leak", "obligation_due", "failed_repair", "burst", "worsening_site"]
NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    kind: Kind
    enabled: bool = True
    severity: Literal["high", "medium", "info"] = "high"
    lookback_hours: float = Field(72.0, gt=0, le=24 * 3650, description="events older than this never alert "
                                  "(a backfill of old data does not page anyone)")
    within_days: float | None = Field(None, ge=0, le=3650, description="obligation_due: due within this many days")
    count: int | None = Field(None, ge=2, le=100_000, description="burst: this many alarms ...")
    within_minutes: float | None = Field(None, gt=0, le=7 * 24 * 60, description="burst: ... within this window")
    source_types: list[str] = Field(default_factory=lambda: ["continuous_monitor", "scada"],
                                    description="burst: which sensors' detections count as alarms")

    @model_validator(mode="after")
    def _kind_fields(self) -> Rule:
        if self.kind == "burst" and (self.count is None or self.within_minutes is None):
            raise ValueError(f"rule '{self.name}': a burst needs count and within_minutes")
        if self.kind == "obligation_due" and self.within_days is None:
            self.within_days = 2.0
        from ..schema import SOURCE_TYPES

        bad = sorted(set(self.source_types) - set(SOURCE_TYPES))
        if bad:
            raise ValueError(f"rule '{self.name}': source type '{bad[0]}' is not one of {', '.join(SOURCE_TYPES)}")
        return self


class Area(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bbox: tuple[float, float, float, float] = Field(description="min lon, min lat, max lon, max lat")

    @field_validator("bbox")
    @classmethod
    def _order(cls, b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        if not (-180 <= b[0] < b[2] <= 180 and -90 <= b[1] < b[3] <= 90):
            raise ValueError("needs min lon < max lon within ±180 and min lat < max lat within ±90")
        return b

    def contains(self, lat: float | None, lon: float | None) -> bool:
        if lat is None or lon is None or lat != lat or lon != lon:
            return False
        return self.bbox[0] <= lon <= self.bbox[2] and self.bbox[1] <= lat <= self.bbox[3]


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    url: str | None = None
    url_env: str | None = Field(None, description="environment variable holding the URL (Slack and Teams URLs "
                                "are secrets)")
    format: Literal["json", "slack", "teams"] = "json"

    @model_validator(mode="after")
    def _one_url(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError(f"webhook '{self.name}': give url or url_env (one of them)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook '{self.name}': url must start with http:// or https://")
        return self

    def resolved_url(self) -> str:
        if self.url:
            return self.url
        v = os.environ.get(self.url_env or "")
        if not v:
            raise ValueError(f"webhook '{self.name}': environment variable {self.url_env} is not set")
        return v


class Email(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    to: list[str] = Field(min_length=1)

    @field_validator("to")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for a in v:
            if "@" not in a or any(c in a for c in " \r\n,;<>"):
                raise ValueError(f"'{a}' is not an e-mail address")
        return v


class Team(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    webhooks: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)


class Route(BaseModel):
    """Alerts matching every field given here go to ``team`` (first matching route wins)."""

    model_config = ConfigDict(extra="forbid")

    team: str
    rules: list[str] = Field(default_factory=list, description="only these rules (default: all)")
    operator: list[str] = Field(default_factory=list)
    asset_type: list[str] = Field(default_factory=list)
    area: str | None = None


class AlertConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    areas: dict[str, Area] = Field(default_factory=dict)
    webhooks: list[Webhook] = Field(default_factory=list)
    emails: list[Email] = Field(default_factory=list)
    default_team: str = Field("unrouted", pattern=NAME)

    @model_validator(mode="after")
    def _references(self) -> AlertConfig:
        for what, items in (("rule", self.rules), ("team", self.teams), ("webhook", self.webhooks),
                            ("email", self.emails)):
            names = [i.name for i in items]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{what} name '{dup[0]}' is used twice")
        teams = {t.name for t in self.teams} | {self.default_team}
        hooks, mails, rules = {w.name for w in self.webhooks}, {e.name for e in self.emails}, {r.name for r in
                                                                                               self.rules}
        for t in self.teams:
            for w in t.webhooks:
                if w not in hooks:
                    raise ValueError(f"team '{t.name}': webhook '{w}' is not defined under webhooks")
            for e in t.emails:
                if e not in mails:
                    raise ValueError(f"team '{t.name}': email '{e}' is not defined under emails")
        for i, r in enumerate(self.routes):
            if r.team not in teams:
                raise ValueError(f"routes[{i}]: team '{r.team}' is not defined under teams")
            if r.area is not None and r.area not in self.areas:
                raise ValueError(f"routes[{i}]: area '{r.area}' is not defined under areas")
            for name in r.rules:
                if name not in rules:
                    raise ValueError(f"routes[{i}]: rule '{name}' is not defined under rules")
        return self

    def team(self, name: str) -> Team:
        return next((t for t in self.teams if t.name == name), Team(name=name))

    def channels(self, team: str) -> list[tuple[str, str]]:
        """(channel, name) of every webhook and e-mail list of ``team`` (the inbox is always there)."""
        t = self.team(team)
        return [("webhook", w) for w in t.webhooks] + [("email", e) for e in t.emails]

    def webhook(self, name: str) -> Webhook | None:
        return next((w for w in self.webhooks if w.name == name), None)

    def email(self, name: str) -> Email | None:
        return next((e for e in self.emails if e.name == name), None)


def load_alert_config(path: Path | str) -> AlertConfig:
    """The validated alert configuration in ``path``."""
    data = read_yaml(Path(path))
    try:
        return AlertConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(path, exc) from None
