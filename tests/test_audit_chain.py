"""Finding 5 of issue 16: history cannot be rewritten without it showing.

Audit and leak events are append-only (triggers refuse UPDATE and DELETE on SQLite and PostgreSQL) and
hash-chained; these tests break the chain on purpose, as someone with the database shell would (dropping the
triggers first), and ``verify_chain`` / ``mlpe audit verify`` name the first broken link.
"""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from mlpe_core import cli, store
from mlpe_core.store.audit import verify_all, verify_chain
from mlpe_core.store.db import get_engine
from mlpe_core.store.leaks import LeakState, save_states
from mlpe_core.store.models import Leak

T = pd.Timestamp("2025-03-03T10:00:00Z")


def _history(s: Session, n: int = 5) -> None:
    s.add(Leak(leak_id="L000001", latitude=32, longitude=-102, radius_m=5, n_detections=1, n_sources=1,
               source_types="ogi", first_seen=T.to_pydatetime(), last_seen=T.to_pydatetime()))
    for i in range(n):
        store.audit(s, "ana", "note", "L000001", {"i": i})
    st = LeakState("L000001")
    moves = [("dispatch", "open", "dispatched"), ("visit", "dispatched", "confirmed")]
    st.events = [{"leak_id": "L000001", "at": T + pd.Timedelta(hours=i), "event": e, "from_status": a,
                  "to_status": b, "actor": "ana", "source": "test", "detail": None}
                 for i, (e, a, b) in enumerate(moves)]
    save_states(s, {"L000001": st})
    s.commit()


def _unguard(s: Session) -> None:
    """Drop the append-only triggers, as a person with the database shell could."""
    if s.get_bind().dialect.name == "sqlite":
        for t in ("auditevent", "leakevent"):
            for w in ("update", "delete"):
                s.execute(text(f"DROP TRIGGER IF EXISTS {t}_no_{w}"))
    else:
        for t in ("auditevent", "leakevent"):
            s.execute(text(f"DROP TRIGGER IF EXISTS {t}_append_only ON {t}"))
    s.commit()


@pytest.mark.parametrize("sql", ["UPDATE auditevent SET actor = 'eve' WHERE id = 2", "DELETE FROM auditevent",
                                 "UPDATE leakevent SET to_status = 'repaired'", "DELETE FROM leakevent WHERE id = 1"])
def test_triggers_refuse_edits_of_history(session, sql) -> None:
    _history(session)
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text(sql))
    session.rollback()
    assert all(r.ok for r in verify_all(session))
    assert [r.n for r in verify_all(session)] == [7, 2]  # 5 notes + 2 lifecycle audits; 2 leak events


def test_a_changed_event_is_found(session) -> None:
    _history(session)
    _unguard(session)
    session.execute(text("UPDATE auditevent SET detail = '{\"i\": 99}' WHERE id = 3"))
    session.commit()
    r = verify_chain(session, "auditevent")
    assert not r.ok and r.broken_id == 3 and "content does not match" in r.reason


def test_a_removed_event_is_found_at_the_next_one(session) -> None:
    _history(session)
    _unguard(session)
    session.execute(text("DELETE FROM auditevent WHERE id = 2"))
    session.execute(text("UPDATE leakevent SET actor = 'eve' WHERE id = 2"))
    session.commit()
    a, e = verify_all(session)
    assert (a.ok, a.broken_id) == (False, 3) and "prev_hash" in a.reason
    assert (e.ok, e.broken_id) == (False, 2)


def test_removing_the_newest_events_shows_at_the_head(session) -> None:
    _history(session)
    _unguard(session)
    session.execute(text("DELETE FROM auditevent WHERE id = (SELECT max(id) FROM auditevent)"))
    session.commit()
    r = verify_chain(session, "auditevent")
    assert not r.ok and r.broken_id is None and "head records 7 events" in r.reason


def test_mlpe_audit_verify_exits_1_naming_the_first_broken_link(tmp_path, capsys) -> None:
    db = tmp_path / "s.db"
    with Session(get_engine(str(db))) as s:
        _history(s)
    assert cli.main(["--db", str(db), "--user", "ana", "audit", "verify"]) == 0
    assert "auditevent: 7 events, chain intact" in capsys.readouterr().out
    with Session(get_engine(str(db))) as s:
        _unguard(s)
        s.execute(text("UPDATE auditevent SET actor = 'eve' WHERE id = 4"))
        s.commit()
    cli._ENGINES.clear()
    assert cli.main(["--db", str(db), "--user", "ana", "audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert "auditevent: chain broken at event 4" in err


def test_a_rolled_back_event_is_not_linked_to_in_a_fresh_process(tmp_path) -> None:
    """The cached chain head is forgotten at rollback. The listener that forgets it is registered by the first
    event a process chains (not at import, for start-up): checked in a fresh interpreter, where nothing else has
    registered it yet."""
    import subprocess
    import sys

    code = f"""
import sys
from sqlmodel import Session
from mlpe_core import store
from mlpe_core.store.audit import verify_all
from mlpe_core.store.db import get_engine
with Session(get_engine({str(tmp_path / "s.db")!r})) as s:
    store.audit(s, "ana", "note", "x", {{"i": 0}})
    s.rollback()
    store.audit(s, "ana", "note", "x", {{"i": 1}})
    s.commit()
    bad = [r.line() for r in verify_all(s) if not r.ok]
print(bad)
sys.exit(1 if bad else 0)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_jsonable_turns_pandas_and_numpy_values_into_plain_json() -> None:
    import json

    import numpy as np

    from mlpe_core.store.audit import detail_json, jsonable

    got = jsonable({"nan": float("nan"), "npnan": np.float64("nan"), "inf": float("inf"), "nat": pd.NaT,
                    "na": pd.NA, "f": np.float64(1.5), "i": np.int64(7), "b": np.bool_(True),
                    "t": pd.Timestamp("2026-12-02T09:00:00Z"), "dt64": np.datetime64("NaT"),
                    "arr": np.array([1, 2]), "tup": (np.int32(1), None), np.int64(3): "numpy key"})
    assert got == {"nan": None, "npnan": None, "inf": None, "nat": None, "na": None, "f": 1.5, "i": 7, "b": True,
                   "t": "2026-12-02 09:00:00+00:00", "dt64": None, "arr": [1, 2], "tup": [1, None], 3: "numpy key"}
    assert type(got["f"]) is float and type(got["i"]) is int and type(got["b"]) is bool
    text = detail_json({"match": np.nan, "n": np.int64(2)})
    assert text == '{"match": null, "n": 2}' and json.loads(text) == {"match": None, "n": 2}
    assert detail_json({}) is None and detail_json(None) is None
    with pytest.raises(TypeError, match="cannot record a object"):
        jsonable({"x": object()})


def test_events_with_nan_nat_and_numpy_values_verify(session) -> None:
    """An unmatched notice's audit event had a NaN target and ``"match": NaN`` in its detail: hashed as NaN, read
    back as NULL, and `mlpe audit verify` said the chain was broken. Every event written must verify."""
    import numpy as np

    _history(session, n=1)
    store.audit(session, "ana", "notification", float("nan"), {"match": np.nan, "at": pd.NaT, "n": np.int64(2)})
    store.audit(session, "ana", "note", np.str_("L000001"), {"score": np.float64(0.25)})
    st = LeakState("L000001")
    st.events = [{"leak_id": "L000001", "at": T + pd.Timedelta(hours=3), "event": "repair", "from_status": "confirmed",
                  "to_status": "repaired", "actor": "ana", "source": float("nan"),
                  "detail": {"rate": np.float64("nan"), "when": pd.NaT, "k": np.int64(1)}}]
    save_states(session, {"L000001": st})
    session.commit()
    assert [r.line() for r in verify_all(session) if not r.ok] == []
    ev = store.audit_events(session, action="notification").iloc[0]
    assert ev["target"] is None and ev["detail"] == '{"match": null, "at": null, "n": 2}'


def test_an_event_written_before_the_nan_fix_still_verifies_and_a_change_to_it_does_not(session, monkeypatch) -> None:
    """Stores written before 2026-12-06 hold events hashed with a NaN target (stored as NULL). They were never
    changed, so `mlpe audit verify` (and restoring their backups) must pass; a change to such an event must not."""
    import hashlib
    import importlib
    import json

    from mlpe_core.store.models import AuditEvent

    audit_mod = importlib.import_module("mlpe_core.store.audit")  # the module (``store.audit`` is its function)

    def old_hash(table: str, values: dict, prev_hash: str) -> str:  # the hash as the old code computed it
        body = [table, *(audit_mod._canon(values.get(k)) for k in audit_mod.CHAIN_FIELDS[table]), prev_hash]
        return hashlib.sha256(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()

    _history(session, n=1)
    with monkeypatch.context() as m:  # the old chain(): fields hashed as given, NaN included
        m.setattr(audit_mod, "_stored", lambda k, v: v)
        m.setattr(audit_mod, "event_hash", old_hash)
        audit_mod.chain(session, AuditEvent(at=audit_mod.now(), actor="ana", action="notification",
                                            target=float("nan"), detail='{"match": NaN}'))
        session.commit()
    store.audit(session, "ana", "note", "L000001", {"after": "the upgrade"})
    session.commit()
    ev = store.audit_events(session, action="notification").iloc[0]
    assert ev["target"] in (None, "NaN")  # NaN went in; NULL (SQLite) or 'NaN' (PostgreSQL) came back
    assert [r.line() for r in verify_all(session) if not r.ok] == []
    _unguard(session)
    session.execute(text("UPDATE auditevent SET actor = 'mallory' WHERE action = 'notification'"))
    session.commit()
    report = verify_chain(session, "auditevent")
    assert not report.ok and report.broken_id == int(ev["id"])
