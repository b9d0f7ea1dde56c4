"""The Rankings page's review tabs: changes since the last review, overrides, dispatch approval, model comparison."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts, dispatching, review, tables
from app import common as c
from mlpe_core import desk
from mlpe_core.text import md


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
        tables.show(ch["new"], "review", "rev_new", where=left, height=tables.height(len(ch["new"]), 320))
        mid.markdown("**Moved up**")
        tables.show(ch["up"], "review", "rev_up", where=mid, height=tables.height(len(ch["up"]), 320))
        right.markdown("**Dropped out** (visited, repaired or re-fused)")
        tables.show(ch["dropped"], "review", "rev_dropped", where=right, height=tables.height(len(ch["dropped"]),
                                                                                             320))
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
        labels = {r.leak_id: f"#{r.rank} {r.leak_id} · {c.label('band', r.risk_band).lower()} · "
                  f"{c.rate(r.priority_score)}" for r in rk.itertuples()}
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
        tables.show(ov, "overrides", "ovr_table", height=tables.height(len(ov), 300))


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
            tables.show(stops[["crew", "stop", "leak_id", "rank", "risk_band", "est_rate_kg_h", "due_by"]], "stops",
                        f"appr_stops_{r.id}", height=tables.height(len(stops), 300))
            dispatching.approve_controls(int(r.id), "approve_flash", f"appr_{r.id}")
    done = ls[ls["status"] != "draft"].head(5) if len(ls) else ls
    if len(done):
        st.caption("Recent lists")
        tables.show(done[["id", "plan_date", "status", "n_items", "total_km", "created_by", "approved_by"]], "lists",
                    "appr_recent", height=tables.height(len(done), 250))


def compare_models(ver: tuple) -> None:
    mf = c.load("models")
    if len(mf) < 2:
        st.info("Only one model version so far. Train one on the Model page (from recorded field outcomes); then "
                "compare here how each would rank today's leaks.", icon=":material/info:")
        return
    names = {int(r.id): f"v{r.id} · {c.label('model_kind', r.kind).lower()}" + (" (live)" if r.active else "")
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
    tables.show(cmp[["leak_id", "rank_a", "rank_b", "change", "p_real_a", "p_real_b", "priority_score_a",
                     "priority_score_b", "risk_band_a", "risk_band_b"]], "compare", "cmp_table", where=left, height=380)
    with right:
        charts.plot(charts.rank_scatter(cmp, names[va].split(" ")[0], names[vb].split(" ")[0]), "cmp_plot",
                    "mlpe_model_comparison")
