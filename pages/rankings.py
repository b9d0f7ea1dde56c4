"""Rankings: the supervisor's desk — the ranked table, what changed since the last review, rank overrides with
reasons, dispatch approval and two model versions side by side."""

import json

import streamlit as st

from app import common as c
from app import filters, review, review_ui
from mlpe_core import desk
from mlpe_core.desk import LEAK_EXPORT_COLUMNS
from mlpe_core.export import to_csv_text, to_geojson
from mlpe_core.text import md

st.title("Rankings")
lk = c.leaks_with_operator()
if lk.empty:
    c.empty_store_hint()
    st.stop()
ver = c.version()
rk = lk[lk["rank"].notna()]
full = lk
if ch := review.changes(ver):
    last = ch
    st.caption(f":material/difference: Since **{md(last['by'])}** reviewed it on {last['at']:%Y-%m-%d %H:%M} UTC: "
               f"**{len(ch['new'])} new**, **{len(ch['up'])} moved up**, {len(ch['down'])} moved down, "
               f"**{len(ch['dropped'])} dropped** — see *Since last review*.")
else:
    st.caption(":material/difference: Not reviewed yet: *Since last review* → *Mark as reviewed* starts tracking "
               "what changes.")
tabs = st.tabs(["Ranking", "Since last review", "Overrides", "Dispatch approval", "Compare models"])  # fixed
# labels: a label that changes (e.g. a count) makes Streamlit reopen the first tab after every action
with tabs[0]:
    df = filters.apply_filters(full)
    sa, sb = st.columns([2, 3], vertical_alignment="bottom")
    q = sa.text_input("Search leak or asset id", key="rank_search", placeholder="e.g. L000012 or A000340").strip()
    if q:
        df = df[df["leak_id"].str.contains(q, case=False, regex=False)
                | df["asset_id"].fillna("").str.contains(q, case=False, regex=False)]
    df = df.sort_values(["rank", "priority_score"], ascending=[True, False], na_position="last")
    with sb:
        filters.filter_note(len(df), len(lk))
    GROUPS = {"leak": None, "site": "asset_id", "operator": "operator"}
    if st.query_params.get("group") in GROUPS and "rank_group" not in st.session_state:
        st.session_state["rank_group"] = st.query_params["group"]
    by = st.segmented_control("Group by", list(GROUPS), key="rank_group", default="leak",
                              help="one row per leak, or the same leaks grouped by site or operator") or "leak"
    if by == "leak":
        st.query_params.pop("group", None)
    else:
        st.query_params["group"] = by
        g = desk.group_ranking(df, GROUPS[by])
        st.caption(f"The leaks above grouped by {by}, best rank first: priority and expected kg/h summed over the "
                   "group's leaks, its worst band and soonest deadline. Pick *leak* to select and export single leaks.")
        N = st.column_config.NumberColumn
        st.dataframe(g, hide_index=True, key=f"rank_groups_{by}", height=min(38 + 35 * max(len(g), 3), 560),
                     column_config={GROUPS[by]: by, "n_leaks": N("leaks", format="%d"),
                                    "n_ranked": N("ranked", format="%d"), "best_rank": N("best rank", format="%d"),
                                    "priority_score": N("priority (kg/h)", format="%.2f"),
                                    "expected_kg_h": N("expected kg/h", format="%.2f"), "worst_band": "worst band",
                                    "overdue": "overdue", "due_by": st.column_config.DatetimeColumn(
                                        "soonest deadline", format="YYYY-MM-DD"),
                                    "leak_ids": st.column_config.TextColumn("leaks", width="large")})
        st.download_button("Download CSV", to_csv_text(g), f"mlpe_ranking_by_{by}.csv", "text/csv",
                           key="rank_groups_csv", icon=":material/download:", on_click="ignore")
    if by == "leak":
        st.caption("Rank 1 = visit first; a supervisor's override (with its reason) moves a leak, the model's rank is "
                   "kept beside it. Priority = expected kg/h a visit finds, P(real) × rate, plus urgency × P(real) × "
                   "min(rate, 20) when a compliance clock runs (urgency 0.5 due soon, 1 overdue). "
                   "Click a column header to sort.")
        view = df.assign(p_pct=df["p_real"] * 100,
                         sensors=df["source_types"].str.replace("_", " ").str.replace(",", ", "),
                         due=df["due_by"].dt.strftime("%Y-%m-%d").fillna("–"))
        cols = ["rank", "leak_id", "risk_band", "p_pct", "est_rate_kg_h", "priority_score", "due", "top_reasons",
                "model_rank", "override_reason", "n_detections", "sensors", "asset_id", "operator", "status",
                "last_seen"]
        N = st.column_config.NumberColumn
        ev = st.dataframe(
            view[cols], hide_index=True, key="rank_table", on_select="rerun", selection_mode="single-row",
            height=min(38 + 35 * max(len(view), 3), 560),
            column_config={
                "rank": N("rank", format="%d", width="small"), "leak_id": st.column_config.TextColumn("leak"),
                "risk_band": st.column_config.TextColumn("risk", width="small"),
                "p_pct": st.column_config.ProgressColumn("P(real)", min_value=0, max_value=100, format="%.1f%%",
                                                         width="small"),
                "est_rate_kg_h": N("rate (kg/h)", format="%.1f"), "priority_score": N("priority (kg/h)", format="%.2f"),
                "due": st.column_config.TextColumn("due by", help="compliance deadline, when a rule applies"),
                "model_rank": N("model rank", format="%d", width="small", help="before any override"),
                "override_reason": st.column_config.TextColumn("override reason"),
                "n_detections": N("detections", format="%d", width="small"),
                "asset_id": st.column_config.TextColumn("asset"),
                "last_seen": st.column_config.DatetimeColumn("last seen", format="YYYY-MM-DD"),
                "top_reasons": st.column_config.TextColumn("why", width="large")})
        rows = ev.selection.rows if ev else []
        bar = st.container(horizontal=True, vertical_alignment="center")
        out = df[list(LEAK_EXPORT_COLUMNS)].assign(override_rank=df["override"], override_reason=df["override_reason"])
        bar.download_button("Download CSV", to_csv_text(out), "mlpe_leaks.csv", "text/csv",
                            key="rank_csv", icon=":material/download:", on_click="ignore")
        bar.download_button("Download GeoJSON", json.dumps(to_geojson(out), default=str), "mlpe_leaks.geojson",
                            "application/geo+json", key="rank_geojson", icon=":material/download:", on_click="ignore")
        if rows:
            pick = df.iloc[rows[0]]["leak_id"]
            if bar.button(f"Open {pick} in Leak detail", key="rank_open", type="primary",
                          icon=":material/arrow_forward:"):
                st.session_state["leak_id"] = pick
                st.switch_page(c.PAGES["leak"], query_params={"leak": pick})
        else:
            bar.caption("Tick a row to open that leak.")
with tabs[1]:
    review_ui.since_last_review(ver)
with tabs[2]:
    review_ui.overrides(rk, ver)
with tabs[3]:
    review_ui.approval(ver)
with tabs[4]:
    review_ui.compare_models(ver)
