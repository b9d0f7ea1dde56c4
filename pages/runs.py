"""Runs: every ingest, fuse, score, train and connector cycle, with its stage times, counts and configuration."""

import json

import pandas as pd
import plotly.express as px
import streamlit as st

from app import common as c
from app import tables
from app.charts import plot
from mlpe_core import desk
from mlpe_core.text import md


@st.cache_data(show_spinner=False, max_entries=8)
def recorded_runs(ver: tuple, kind: str | None) -> pd.DataFrame:
    with c.session() as s:
        return desk.runs(s, 500, kind)


@st.cache_data(show_spinner=False, max_entries=8)
def connectors(ver: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    with c.session() as s:
        return desk.connectors_status(s), desk.watched_files(s, 200)


@st.cache_data(show_spinner=False, max_entries=16)
def snapshot(h: str) -> dict | None:
    with c.session() as s:
        return desk.run_config(s, h)


st.title("Runs")
st.caption("Every ingest, fuse, score, train, alert check and connector cycle leaves a record: when, how long each "
           "stage took, what went in and came out, the model and code versions and the configuration it used.")
ver = c.version()
every = recorded_runs(ver, None)
if every.empty:
    st.info("No runs recorded yet. Load a file on the Upload page, run `mlpe ingest`, or start `mlpe watch DIR`.",
            icon=":material/info:")
    st.stop()
kinds = sorted(every["kind"].unique())
kind = st.segmented_control("Kind", kinds, key="runs_kind", help="show one kind of run",
                            format_func=lambda k: c.label("run_kind", k))
rs = every if not kind else every[every["kind"] == kind]
last = rs.iloc[0]
m = st.columns(4)
m[0].metric("Runs recorded", f"{len(rs):,}")
m[1].metric("Failed", f"{int((rs['outcome'] == 'failed').sum()):,}")
m[2].metric("Newest", f"{c.label('run_kind', last['kind'])} · {c.label('run_outcome', last['outcome'])}",
            help=f"run {last['id']}")
m[3].metric("Its time", f"{last['seconds']:.2f} s")

n_chart = min(40, len(rs))
tail = rs.head(n_chart).iloc[::-1]
long = pd.DataFrame([{"run": f"{r.id} {c.label('run_kind', r.kind)}", "stage": c.label("stage", st_), "seconds": sec}
                     for r in tail.itertuples() for st_, sec in r.stages])
st.subheader(f"Stage times of the last {n_chart} runs" if n_chart > 1 else "Stage times of the run")
if len(long):
    fig = px.bar(long, x="run", y="seconds", color="stage", height=340)
    fig.update_layout(margin={"t": 10, "b": 10}, xaxis_title=None, yaxis_title="seconds", legend_title=None,
                      xaxis={"type": "category"})
    plot(fig, "runs_chart", "mlpe_run_stages")

view = rs.assign(stages=rs["stages"].map(lambda st_: ", ".join(f"{c.label('stage', k)} {v:.2f}" for k, v in st_)),
                 config_hash=rs["config_hash"].str[:12])
tables.show(view.drop(columns=["detail"]), "runs", "runs_table", height=330)
pick = st.selectbox("A run's record", rs["id"].tolist(), key="runs_pick",
                    format_func=lambda i: f"{i}: {c.label('run_kind', rs.set_index('id').at[i, 'kind'])}")
if pick is not None:
    r = rs.set_index("id").loc[pick]
    a, b = st.columns(2)
    with a:
        said_kind, said_end = c.label("run_kind", r["kind"]), c.label("run_outcome", r["outcome"]).lower()
        st.markdown(f"**Run {pick}** ({md(said_kind)}, {md(said_end)}) by {md(r['actor'])} from "
                    f"{md(c.label('face', r['source']) if r['source'] else 'an unknown place')}: {r['seconds']:.2f} s")
        if isinstance(r["error"], str) and r["error"]:
            st.error(md(r["error"]), icon=":material/error:")
        tables.show(pd.DataFrame(r["stages"], columns=["stage", "seconds"]), "run_stages", "runs_stages")
        if said := c.present.detail_text(r["detail"]):
            st.caption(md(said))
    with b:
        cfg = snapshot(r["config_hash"])
        st.markdown(f"**Configuration** `{md(r['config_hash'][:16])}`, code `{md(r['code_version'])}`")
        if cfg:
            tables.show(c.present.settings_rows(cfg.get("settings")), "settings", "runs_settings", height=260)
            for name, f in (cfg.get("files") or {}).items():
                if f and f.get("text") is not None:
                    with st.expander(f"{name} ({f.get('path', '')})"):
                        st.code(f["text"], language="yaml")

st.subheader("Connectors")
cons, files = connectors(ver)
if cons.empty:
    st.caption("No connector has run yet: `mlpe watch DIR` watches a folder; its watch file names pull connectors.")
else:
    tables.show(cons, "connectors", "runs_connectors")
if len(files):
    st.caption("Files the folder watcher took, newest first (loaded ones are in done/, refused ones in rejects/ "
               "with their reasons).")
    tables.show(files.assign(sha256=files["sha256"].str[:12]), "watched_files", "runs_files")
st.download_button("Download runs (JSON)", lambda rs=rs: json.dumps(
    [{**{k: v for k, v in r.items() if k not in ("started_at", "ended_at")},
      "started_at": str(r["started_at"]), "ended_at": str(r["ended_at"])} for r in rs.to_dict("records")],
    default=str), "mlpe_runs.json", "application/json", key="runs_dl", on_click="ignore")
