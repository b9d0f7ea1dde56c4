"""Runs: every ingest, fuse, score, train and connector cycle, with its stage times, counts and configuration."""

import json

import pandas as pd
import plotly.express as px
import streamlit as st

from app import common as c
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
kind = st.segmented_control("Kind", kinds, key="runs_kind", help="show one kind of run")
rs = every if not kind else every[every["kind"] == kind]
last = rs.iloc[0]
m = st.columns(4)
m[0].metric("Runs recorded", f"{len(rs):,}")
m[1].metric("Failed", f"{int((rs['outcome'] == 'failed').sum()):,}")
m[2].metric("Newest", f"{last['kind']} · {last['outcome']}", help=f"run {last['id']}")
m[3].metric("Its time", f"{last['seconds']:.2f} s")

n_chart = min(40, len(rs))
tail = rs.head(n_chart).iloc[::-1]
long = pd.DataFrame([{"run": f"{r.id} {r.kind}", "stage": st_, "seconds": sec}
                     for r in tail.itertuples() for st_, sec in r.stages])
st.subheader(f"Stage times of the last {n_chart} runs")
if len(long):
    fig = px.bar(long, x="run", y="seconds", color="stage", height=340)
    fig.update_layout(margin={"t": 10, "b": 10}, xaxis_title=None, yaxis_title="seconds", legend_title=None,
                      xaxis={"type": "category"})
    plot(fig, "runs_chart", "mlpe_run_stages")

view = rs.assign(stages=rs["stages"].map(lambda st_: ", ".join(f"{k} {v:.2f}s" for k, v in st_)),
                 config_hash=rs["config_hash"].str[:12], seconds=rs["seconds"].round(2),
                 started_at=pd.to_datetime(rs["started_at"], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S"))
st.dataframe(view.drop(columns=["detail"]), hide_index=True, placeholder="", key="runs_table", height=330,
             column_order=["id", "kind", "outcome", "started_at", "seconds", "n_in", "n_out", "n_rejected", "stages",
                           "source", "target", "actor", "model_version", "code_version", "config_hash", "error"],
             column_config={"started_at": st.column_config.TextColumn("started (UTC)", width="medium"),
                            "seconds": st.column_config.NumberColumn("s", format="%.2f"),
                            "n_in": "in", "n_out": "out", "n_rejected": "rejected",
                            "config_hash": "config (sha256)"})
pick = st.selectbox("A run's record", rs["id"].tolist(), key="runs_pick",
                    format_func=lambda i: f"{i}: {rs.set_index('id').at[i, 'kind']}")
if pick is not None:
    r = rs.set_index("id").loc[pick]
    a, b = st.columns(2)
    with a:
        st.markdown(f"**Run {pick}** ({md(r['kind'])}, {md(r['outcome'])}) by {md(r['actor'])} from "
                    f"{md(r['source'] or '-')}: {r['seconds']:.2f} s")
        if isinstance(r["error"], str) and r["error"]:
            st.error(md(r["error"]), icon=":material/error:")
        st.dataframe(pd.DataFrame(r["stages"], columns=["stage", "seconds"]).round({"seconds": 2}), hide_index=True,
                     key="runs_stages", placeholder="",
                     column_config={"seconds": st.column_config.NumberColumn(format="%.2f")})
        if said := c.present.detail_text(r["detail"]):
            st.caption(md(said))
    with b:
        cfg = snapshot(r["config_hash"])
        st.markdown(f"**Configuration** `{md(r['config_hash'][:16])}`, code `{md(r['code_version'])}`")
        if cfg:
            st.dataframe(c.present.settings_rows(cfg.get("settings")), hide_index=True, placeholder="",
                         key="runs_settings", height=260)
            for name, f in (cfg.get("files") or {}).items():
                if f and f.get("text") is not None:
                    with st.expander(f"{name} ({f.get('path', '')})"):
                        st.code(f["text"], language="yaml")

st.subheader("Connectors")
cons, files = connectors(ver)
if cons.empty:
    st.caption("No connector has run yet: `mlpe watch DIR` watches a folder; its watch file names pull connectors.")
else:
    st.dataframe(cons, hide_index=True, placeholder="", key="runs_connectors", column_config={
        "lag_s": st.column_config.NumberColumn("lag (s)", format="%.0f"),
        "last_ok_at": st.column_config.DatetimeColumn("last success (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "last_run_at": st.column_config.DatetimeColumn("last run (UTC)", format="YYYY-MM-DD HH:mm:ss")})
if len(files):
    st.caption("Files the folder watcher took, newest first (loaded ones are in done/, refused ones in rejects/ "
               "with their reasons).")
    st.dataframe(files.assign(sha256=files["sha256"].str[:12]), hide_index=True, placeholder="", key="runs_files",
                 column_order=["updated_at", "name", "state", "reason", "batch_id", "size", "attempts", "sha256",
                               "folder"])
st.download_button("Download runs (JSON)", json.dumps(
    [{**{k: v for k, v in r.items() if k not in ("started_at", "ended_at")},
      "started_at": str(r["started_at"]), "ended_at": str(r["ended_at"])} for r in rs.to_dict("records")],
    default=str), "mlpe_runs.json", "application/json", key="runs_dl", on_click="ignore")
