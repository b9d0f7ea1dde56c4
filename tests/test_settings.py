"""Configuration (issue 18): every MLPE_* variable is validated at start and a wrong one is named; the README's
table lists them all; `mlpe config check` validates the configuration files, naming the file and the field."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlpe_core.settings import Settings, SettingsError, describe, load, unknown_variables

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "mlpe_core.cli"]


def _mlpe(env_extra: dict, *args: str, tmp: Path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPE_")}
    env.update({"MLPE_DB": str(tmp / "m.db"), **env_extra})
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_defaults_need_no_configuration(monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith("MLPE_"):
            monkeypatch.delenv(k)
    s = load()
    assert s.db == "data/mlpe.db" and s.max_rows == 3_000_000 and s.smtp_host is None and s.live_poll_s == 5


@pytest.mark.parametrize("env, named", [
    ({"MLPE_MAX_ROWS": "lots"}, "MLPE_MAX_ROWS='lots'"),
    ({"MLPE_SMTP_PORT": "0"}, "MLPE_SMTP_PORT='0'"),
    ({"MLPE_CONFIG_DIR": "/no/such/folder"}, "MLPE_CONFIG_DIR"),
    ({"MLPE_ALERTS_CONFIG": "/no/such.yaml"}, "MLPE_ALERTS_CONFIG"),
    ({"MLPE_LIVE_POLL_S": "0.01"}, "MLPE_LIVE_POLL_S"),
    ({"MLPE_SMTP_STARTTLS": "perhaps"}, "MLPE_SMTP_STARTTLS"),
])
def test_a_bad_variable_stops_the_cli_at_start_naming_it(tmp_path, env, named):
    r = _mlpe(env, "status", tmp=tmp_path)
    assert r.returncode == 2, r.stderr
    assert named in r.stderr and r.stderr.startswith("mlpe: bad setting:")
    assert not (tmp_path / "m.db").exists()  # nothing ran


def test_two_bad_variables_are_both_named(monkeypatch):
    monkeypatch.setenv("MLPE_MAX_ROWS", "x")
    monkeypatch.setenv("MLPE_WEBHOOK_TIMEOUT_S", "-1")
    with pytest.raises(SettingsError) as e:
        load()
    assert "MLPE_MAX_ROWS" in str(e.value) and "MLPE_WEBHOOK_TIMEOUT_S" in str(e.value)


def test_a_misspelt_variable_is_a_warning_with_the_likely_name(tmp_path):
    assert unknown_variables({"MLPE_DBB": "x", "MLPE_DB": "y", "HOME": "/"}) == [
        "MLPE_DBB is not a setting MLPE reads (did you mean MLPE_DB?)"]
    r = _mlpe({"MLPE_MAX_ROW": "5"}, "config", "check", tmp=tmp_path)  # (status now wants an existing store)
    assert r.returncode == 0 and "did you mean MLPE_MAX_ROWS?" in r.stderr


def test_secrets_never_reach_a_snapshot(monkeypatch):
    monkeypatch.setenv("MLPE_SMTP_PASSWORD", "hunter22")
    monkeypatch.setenv("MLPE_PASSWORD", "s3cret-pass")
    pub = load().public()
    assert pub["smtp_password"] == "set" and pub["password"] == "set"
    assert "hunter22" not in str(pub) and "s3cret-pass" not in str(pub)


def test_readme_lists_every_variable():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\|\s*`(MLPE_[A-Z_]+)`", readme, re.M))
    known = {row["variable"] for row in describe()}
    assert known == listed, f"missing from README: {sorted(known - listed)}; not settings: {sorted(listed - known)}"
    assert set(Settings.model_fields) == {v.removeprefix("MLPE_").lower() for v in known}


def test_config_check_names_the_file_and_field(tmp_path):
    ok = _mlpe({}, "config", "check", tmp=tmp_path)
    assert ok.returncode == 0 and "alerts file:" in ok.stdout and "5 rules" in ok.stdout
    bad = tmp_path / "alerts.yaml"
    bad.write_text("rules:\n  - {name: b, kind: burst, count: 1, within_minutes: 5}\n")
    r = _mlpe({"MLPE_ALERTS_CONFIG": str(bad)}, "config", "check", tmp=tmp_path)
    assert r.returncode == 2 and str(bad) in r.stderr and "rules.0.count" in r.stderr
    w = tmp_path / "watch.yaml"
    w.write_text("connectors:\n  - {name: x, kind: ftp, url: 'http://h', every: 1h}\n")
    r = _mlpe({"MLPE_CONFIG_DIR": str(tmp_path)}, "config", "check", tmp=tmp_path)  # watch.yaml found in the dir
    assert r.returncode == 2 and "watch.yaml" in r.stderr and "connectors.0.kind" in r.stderr
    r = _mlpe({"MLPE_ALERTS_CONFIG": str(bad)}, "watch", str(tmp_path), "--once", tmp=tmp_path)
    assert r.returncode == 2 and "rules.0.count" in r.stderr  # the watcher refuses to start on a bad rules file
