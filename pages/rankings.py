"""Rankings: the supervisor's desk — the ranked table, what changed since the last review, rank overrides with
reasons, dispatch approval and two model versions side by side."""

import streamlit as st

from app import common as c
from app import filters, review, review_ui, tables
from mlpe_core import desk
from mlpe_core.desk import LEAK_EXPORT_COLUMNS
from mlpe_core.export import render, to_csv_text
from mlpe_core.text import md


def workbook(flt, unit):
    """The workbook, built on click (``desk.workbook_bytes``: what `mlpe export leaks --format xlsx` writes)."""
    def build() -> bytes:
        with c.session() as s:
            return desk.workbook_bytes(s, "leaks", unit, flt)
    return build



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
    n_filtered = len(df)
    if q:
        df = df[df["leak_id"].str.contains(q, case=False, regex=False)
                | df["asset_id"].fillna("").str.contains(q, case=False, regex=False)]
    df = df.sort_values(["rank", "priority_score"], ascending=[True, False], na_position="last")
    with sb:
        if q and df.empty and n_filtered:  # the search emptied it, not the sidebar: say so
            st.caption(f"No leak matches the search '{md(q)}' (of {n_filtered:,} leaks the sidebar filters show).")
        else:
            filters.filter_note(len(df), len(lk))
    GROUPS = {"leak": None, "site": "asset_id", "operator": "operator"}
    if st.query_params.get("group") in GROUPS and "rank_group" not in st.session_state:
        st.session_state["rank_group"] = st.query_params["group"]
    by = st.segmented_control("Group by", list(GROUPS), key="rank_group", default="leak", format_func=str.capitalize,
                              help="one row per leak, or the same leaks grouped by site or operator") or "leak"
    if by == "leak":
        st.query_params.pop("group", None)
    else:
        st.query_params["group"] = by
        g = desk.group_ranking(df, GROUPS[by])
        st.caption(f"The leaks above grouped by {by}, best rank first: priority and expected rate summed over the "
                   "group's leaks, its worst band and soonest deadline. Pick *Leak* to select and export single leaks.")
        tables.show(g, "rank_groups", key=f"rank_groups_{by}", height=tables.height(len(g)))
        st.download_button("Download CSV", tables.people_csv(g, "rank_groups"), f"mlpe_ranking_by_{by}.csv",
                           "text/csv", key="rank_groups_csv", icon=":material/download:", on_click="ignore",
                           help=f"{tables.PEOPLE_CSV_HELP}; the leak list for scripts is the CSV under Group by "
                                "*Leak*")
    if by == "leak":
        st.caption("Rank 1 = visit first; a supervisor's override (with its reason) moves a leak, the model's rank is "
                   "kept beside it. Priority = expected rate a visit finds. Click a cell of a row (or tick its box) "
                   "to open the leak; the eye icon above the table shows more columns (model rank, override, "
                   "sensors, asset, operator, status…).")
        # a click on a cell selects it (single-cell), the box at the row's start selects the row: either opens it
        ev = tables.show(df, "leaks", "rank_table", on_select="rerun", selection_mode=["single-row", "single-cell"],
                         height=tables.height(len(df)))
        sel = ev.selection if ev else {}  # (a selection set through the session may lack the other mode's key)
        if rows := sel.get("rows") or [cell[0] for cell in sel.get("cells") or []]:  # one click opens the leak
            pick = df.iloc[rows[0]]["leak_id"]
            st.session_state["leak_id"] = pick
            st.switch_page(c.PAGES["leak"], query_params={"leak": pick})
        bar = st.container(horizontal=True, vertical_alignment="center")
        out = df[list(LEAK_EXPORT_COLUMNS)].assign(override_rank=df["override"], override_reason=df["override_reason"])
        dl = dict(icon=":material/download:", on_click="ignore")
        bar.download_button("CSV", lambda: to_csv_text(out), "mlpe_leaks.csv", "text/csv", key="rank_csv", **dl,
                            help="for machines: `mlpe export leaks` columns, kg/h")
        bar.download_button("GeoJSON", lambda: render(out, "geojson"), "mlpe_leaks.geojson", "application/geo+json",
                            key="rank_geojson", **dl)
        bar.download_button("KML", lambda: render(out, "kml", c.unit(), "MLPE ranking"), "mlpe_leaks.kml",
                            "application/vnd.google-earth.kml+xml", key="rank_kml", **dl)
        bar.download_button("Excel workbook", workbook(filters.current(), c.unit()), "mlpe_leaks.xlsx",
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key="rank_xlsx", **dl,
                            help="for people: ranked leaks, today's dispatch per crew and the obligations")
with tabs[1]:
    review_ui.since_last_review(ver)
with tabs[2]:
    review_ui.overrides(rk, ver)
with tabs[3]:
    review_ui.approval(ver)
with tabs[4]:
    review_ui.compare_models(ver)
