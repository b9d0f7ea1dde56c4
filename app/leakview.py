"""Pieces of the Leak detail page: the leak picker, cached reads, metrics, notes, assets, clocks, detections."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import common as c
from app import tables
from mlpe_core import desk, present
from mlpe_core.text import md


def pick_leak(lk: pd.DataFrame, where) -> str:
    """The leak picker (in ``where``), following ``?leak=`` and the leak last opened from another page."""
    ss = st.session_state
    ids = lk.sort_values(["rank", "leak_id"], na_position="last")["leak_id"].tolist()
    labels = {r.leak_id: f"{r.leak_id} · " + (f"#{int(r.rank)} {c.label('band', r.risk_band).lower()}"
                                             if pd.notna(r.rank) else c.label("status", r.status).lower())
              for r in lk.itertuples()}
    want = st.query_params.get("leak") or ss.get("leak_id")
    if want in labels and want != ss.get("leak_pick"):
        ss["leak_pick"] = want

    def _sync() -> None:
        st.query_params["leak"] = ss["leak_id"] = ss["leak_pick"]

    leak_id = where.selectbox("Leak", c.capped(ids, ss.get("leak_pick")), key="leak_pick", on_change=_sync,
                              format_func=lambda i: labels.get(i, i), accept_new_options=len(ids) > c.MAX_OPTIONS)
    if leak_id not in labels:  # a typed id that is no leak
        where.error(f"No leak '{md(leak_id)}'.")
        leak_id = ids[0]
    asked = st.query_params.get("leak")
    if asked and asked not in labels:  # a hand-edited or stale link: say so, not silently another leak
        top = leak_id == ids[0] and lk["rank"].notna().any()
        shown = f"the top-ranked leak {leak_id}" if top else f"leak {leak_id}"
        st.warning(f"No leak {md(asked)} in this store; showing {md(shown)}.", icon=":material/link_off:")
    st.query_params["leak"] = ss["leak_id"] = leak_id
    return leak_id


@st.cache_data(show_spinner=False, max_entries=32)
def detail(leak_id: str, ver: tuple) -> dict:
    """``desk.leak_detail`` of one leak at store version ``ver``, from the ranking every page has cached (reading
    it again took 0.09 s of the 0.24 s a leak's detail costs on the demo basin)."""
    ranked = c.frame("leaks", ver)
    with c.session() as s:
        return desk.leak_detail(s, leak_id, ranked=ranked)


def metrics(L: dict, now: pd.Timestamp) -> None:
    m = st.columns(6)
    m[0].metric("Rank", f"#{L['rank']}" if L["rank"] else "not ranked",
                help="1 = visit first; only open leaks are ranked")
    m[1].metric("Risk band", c.label("band", L["risk_band"]) or "–", help=md(present.rules_in_text(L.get("band_why"))))
    m[2].metric("P(real)", c.pct(L["p_real"]), help="probability that a crew on site finds a real leak")
    lo, hi = L["rate_lo_kg_h"], L["rate_hi_kg_h"]
    m[3].metric("Estimated rate", c.rate(L["est_rate_kg_h"]), help="best estimate; the range below is ±1σ",
                delta=(f"{present.number(present.convert(lo, c.unit()))}–{c.rate(hi)}"
                       + ("" if L["rate_quantified"] else " (not quantified)")) if lo else None,
                delta_color="off", delta_arrow="off")
    m[4].metric("Priority", c.rate(L["priority_score"]),
                help=f"expected rate ({c.unit()}) a visit finds: P(real) × the rate it finds on average (the "
                     "estimated rate pulled toward typical leak sizes as far as it is uncertain), plus a running "
                     f"compliance clock's urgency × P(real) × min(that rate, {c.rate(20.0)})")
    due = pd.Timestamp(L["due_by"]) if L["due_by"] else None
    due = due.tz_localize("UTC") if due is not None and due.tzinfo is None else due
    left = (due - now).days if due is not None else None
    m[5].metric("Due by", f"{due:%Y-%m-%d}" if due is not None else "–",
                help=f"compliance clock: {md(present.rule_title(L['due_rule']))}"
                if L["due_rule"] else "no compliance clock runs", delta=None if left is None else
                f"{-left} days overdue" if left < 0 else f"{left} days left", delta_color="inverse" if left is not None
                and left < 0 else "off", delta_arrow="off")


def add_note(s, leak_id: str, text: str) -> str:
    """A note on a leak is an audit event (action ``note``): who, when, what; never edited."""
    if not text.strip():
        raise ValueError("write the note first")
    desk.add_note(s, c.user(), leak_id, text)
    return "Note recorded in the audit trail."


def notes(n: pd.DataFrame) -> None:
    for r in n.head(5).itertuples():
        st.caption(f":material/sticky_note_2: **{md(r.actor)}** · {r.at:%Y-%m-%d %H:%M} UTC — {md(r.note)}")
    if len(n) > 5:
        st.caption(f"… {len(n) - 5} older notes in the Audit tab below.")


def assets(L: dict, candidates: list) -> None:
    """The attributed asset and every candidate nearby with how likely the leak is theirs."""
    cand = pd.DataFrame(candidates)
    tail = " — candidates within reach:" if len(cand) else ": no asset within reach of its location."
    st.markdown(f"Attributed to **{md(L['asset_id']) or 'no asset'}**" + tail)
    if len(cand):
        a = c.load("assets")
        cand = cand.merge(a[["asset_id", *[k for k in ("asset_type", "operator") if k in a]]], on="asset_id",
                          how="left")
        tables.show(cand, "candidates", "cand", height=tables.height(len(cand), 250))


def clocks(ck: pd.DataFrame, now: pd.Timestamp) -> None:
    """Every running regulatory clock of the leak, as of the scores' clock."""
    if ck.empty:
        st.caption("No compliance clock runs for this leak (no rule in the compliance rules applies).")
        return
    days = (ck["due_by"] - now).dt.days
    ck = ck.assign(left=[f"{-d} days overdue" if o else f"{d} days left" for d, o in zip(days, ck["overdue"],
                                                                                           strict=True)],
                   state=["overdue" if o else "due soon" if s else "running"
                          for o, s in zip(ck["overdue"], ck["due_soon"], strict=True)])
    tables.show(ck[["state", "due_rule", "due_by", "left", "citation"]], "clocks", "clocks",
                height=tables.height(len(ck), 250))
    st.caption(f"Time left as of {now:%Y-%m-%d} (the scores' clock).")


def detections_table(dets: pd.DataFrame) -> None:
    tables.show(dets.sort_values("observed_at", ascending=False), "detections", "dets",
                height=tables.height(len(dets), 420))


def words(x) -> str:
    """A recorded detail (JSON) in words (``present.detail_text``)."""
    return present.detail_text(x)
