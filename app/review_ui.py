"""The Rankings page's review tabs: changes since the last review, overrides, dispatch approval, model comparison."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts, dispatching, review
from app import common as c
from mlpe_core import desk
from mlpe_core.text import md

N = st.column_config.NumberColumn


def since_last_review(ver: tuple) -> None:
    c.flashed("review_flash")
    last = review.changes(ver)
    if last is None:
        st.info("Nobody has marked the ranking as reviewed yet. Mark it once you have gone through it: from then "
                "on this tab shows which leaks are new, moved up or dropped out since.", icon=":material/info:")
    else:
        ch = last
        st.caption(f"Compared with the ranking **{md(last['by'])}** reviewed on {last['at']:%Y-%m-%d %H:%M} UTC "
                   f"({last['n_then']:,} ranked leaks then, {last['n_now']:,} now).")
        m = st.columns(4)
        for col, (k, label) in zip(m, (("new", "New"), ("up", "Moved up"), ("down", "Moved down"),
                                       ("dropped", "Dropped")), strict=True):
            col.metric(label, f"{len(ch[k]):,}")
        left, mid, right = st.columns(3)
        left.markdown("**New in the ranking**")
        left.dataframe(ch["new"], hide_index=True, key="rev_new", column_config={
            "leak_id": "leak", "now": N("rank now", format="%d"), "priority_score": N("priority (kg/h)", format="%.2f"),
            "risk_band": "risk"})
        mid.markdown("**Moved up**")
        mid.dataframe(ch["up"], hide_index=True, key="rev_up", column_config={
            "leak_id": "leak", "was": N("was", format="%d"), "now": N("now", format="%d"),
            "moved": N("places up", format="%d")})
        right.markdown("**Dropped out** (visited, repaired or re-fused)")
        right.dataframe(ch["dropped"], hide_index=True, key="rev_dropped", column_config={
            "leak_id": "leak", "was": N("was", format="%d")})
    if c.can("review_ranking"):
        if st.button("Mark as reviewed", key="rev_mark", type="primary", icon=":material/done_all:",
                     help="records the ranking as you see it now (an audit event) for the next comparison"):
            n = c.act("review_ranking", lambda s: desk.mark_reviewed(s, c.user()))
            c.flash("review_flash", n is not None and f"Ranking of {n:,} leaks marked as reviewed.")
    else:
        st.caption("A supervisor marks the ranking as reviewed.")


def overrides(rk: pd.DataFrame, ver: tuple) -> None:
    c.flashed("override_flash")
    ov = review.overrides(ver)
    if c.can("override_rank"):
        labels = {r.leak_id: f"#{r.rank} {r.leak_id} · {r.risk_band} · {c.rate(r.priority_score)}"
                  for r in rk.itertuples()}
        with st.form("override", width=640):
            st.markdown("**Override a leak's rank** — the reason is recorded with your name and the ranks before "
                        "and after.")
            leak = st.selectbox("Leak", list(labels), format_func=labels.get, key="ovr_leak")
            new = st.number_input("New rank", min_value=1, max_value=max(len(rk), 1), value=1, step=1,
                                  key="ovr_rank")
            reason = st.text_input("Reason", key="ovr_reason", placeholder="e.g. operator reports a blowdown there")
            clear = st.checkbox("Clear this leak's override instead (back to the model's rank)", key="ovr_clear")
            sent = st.form_submit_button("Record override", type="primary")
        if sent:
            c.flash("override_flash", c.act("override_rank", lambda s: desk.override_rank(
                s, c.user(), leak, None if clear else int(new), reason)))
    else:
        st.caption("A supervisor can override a leak's rank, with a reason.")
    if ov.empty:
        st.caption("No rank is overridden: the ranking is the model's.")
    else:
        st.dataframe(ov, hide_index=True, key="ovr_table", column_config={
            "override": N("rank set to", format="%d"), "at": st.column_config.DatetimeColumn(format="YYYY-MM-DD")})


def approval(ver: tuple) -> None:
    c.flashed("approve_flash")
    ls = dispatching.lists(ver)
    drafts = ls[ls["status"] == "draft"] if len(ls) else ls
    if drafts.empty:
        st.info("No dispatch list is waiting for approval. The Dispatch page plans today's list from the ranking; "
                "it then waits here as a draft.", icon=":material/info:")
    for r in drafts.itertuples():
        with st.container(border=True):
            st.markdown(f"**List {r.id}** for {r.plan_date} · {r.n_items} stops · {r.total_km:,.1f} km · planned by "
                        f"{md(r.created_by)} on {r.created_at:%Y-%m-%d %H:%M}")
            with c.session() as s:
                stops = desk.list_stops(s, int(r.id))
            st.dataframe(stops[["crew", "stop", "leak_id", "rank", "risk_band", "est_rate_kg_h", "due_by"]],
                         hide_index=True, key=f"appr_stops_{r.id}", height=min(38 + 35 * len(stops), 300))
            dispatching.approve_controls(int(r.id), "approve_flash", f"appr_{r.id}")
    done = ls[ls["status"] != "draft"].head(5) if len(ls) else ls
    if len(done):
        st.caption("Recent lists")
        st.dataframe(done[["id", "plan_date", "status", "n_items", "total_km", "created_by", "approved_by"]],
                     hide_index=True, key="appr_recent")


def compare_models(ver: tuple) -> None:
    mf = c.load("models")
    if len(mf) < 2:
        st.info("Only one model version so far. Train one on the Model page (from recorded field outcomes); then "
                "compare here how each would rank today's leaks.", icon=":material/info:")
        return
    names = {int(r.id): f"v{r.id} · {r.kind.replace('_', ' ')}" + (" (live)" if r.active else "")
             for r in mf.itertuples()}
    ids = list(names)
    live = int(mf.loc[mf["active"], "id"].iloc[0]) if mf["active"].any() else ids[0]
    a, b = st.columns(2)
    va = a.selectbox("Model A", ids, index=ids.index(live), format_func=names.get, key="cmp_a")
    vb = b.selectbox("Model B", ids, index=next(i for i, v in enumerate(ids) if v != va), format_func=names.get,
                     key="cmp_b")
    if not st.toggle("Score today's leaks with both", key="cmp_on", help="takes a few seconds on a big basin"):
        st.caption("Pick two versions, then switch this on to see how each would rank today's open leaks.")
        return
    with st.spinner("Scoring today's leaks with both versions…"):
        cmp, summary = review.compare(va, vb, ver)
    m = st.columns(3)
    m[0].metric(f"Shared in both top {summary['top']}", f"{summary['overlap']} of {summary['top']}",
                help="the top = one day of the crews' visits")
    m[1].metric("Rank correlation (Spearman)", f"{summary['spearman']:.2f}")
    m[2].metric("Leaks moved 10+ places", f"{(cmp['change'].abs() >= 10).sum():,}")
    left, right = st.columns([3, 2])
    left.dataframe(cmp[["leak_id", "rank_a", "rank_b", "change", "p_real_a", "p_real_b", "priority_score_a",
                        "priority_score_b", "risk_band_a", "risk_band_b"]], hide_index=True, key="cmp_table",
                   height=380, column_config={
                       "rank_a": N(f"rank {names[va].split(' ')[0]}", format="%d"),
                       "rank_b": N(f"rank {names[vb].split(' ')[0]}", format="%d"),
                       "change": N("places up under B", format="%+d"),
                       "p_real_a": N("P(real) A", format="%.2f"), "p_real_b": N("P(real) B", format="%.2f"),
                       "priority_score_a": N("priority A", format="%.2f"),
                       "priority_score_b": N("priority B", format="%.2f"),
                       "risk_band_a": "risk A", "risk_band_b": "risk B"})
    with right:
        charts.plot(charts.rank_scatter(cmp, names[va].split(" ")[0], names[vb].split(" ")[0]), "cmp_plot",
                    "mlpe_model_comparison")
