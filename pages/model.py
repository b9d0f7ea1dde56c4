"""Model: which scoring model is live, how it did on held-out visits, training and roll back."""

import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import charts, tables
from app import common as c
from mlpe_core import desk


@st.dialog("Make this model version live?", on_dismiss=c.answered)
def confirm_activate(v: int) -> None:
    st.write(f"v{v} becomes the live model and every leak is re-scored with it (a few seconds). The change is "
             "recorded with your name; you can roll back the same way.")
    if st.button("Activate and re-score", key="dlg_activate", type="primary"):
        c.answered()
        with st.spinner("Re-scoring every leak…"):
            done = c.act("activate_model", lambda s: desk.activate_model(s, c.user(), v))
        c.flash("model_flash", done is not None and f"v{v} is live; leaks re-scored.")


st.title("Model")
mf = c.load("models")
act = mf[mf["active"]]
if act.empty:
    st.info("No scoring model yet: it is registered at the first *Fuse and score* (Upload page) or `mlpe score`.")
else:
    cur = act.iloc[0]
    st.subheader(f"Live model: v{cur['id']} · {c.label('model_kind', cur['kind']).lower()}")
    st.caption(f"created {cur['created_at']:%Y-%m-%d %H:%M} UTC · decision then: {cur['decision']}")
    if cur["kind"] == "cold_start":
        st.warning("P(real) is a **prior from instrument knowledge** (each sensor's precision, repeat sightings, "
                   "confidence, recency), not a calibrated probability: no model learned from field outcomes has been "
                   "promoted yet. Record validations, then train.", icon=":material/info:")
    else:
        st.success(f"P(real) comes from a model fitted on {cur['n_train']} field outcomes and calibrated on "
                   "held-out visits" + ("; it was promoted because it beat the model live at the time on those visits."
                                        if cur["promoted"] else " (activated by hand)."))

nv = len(c.load("validations"))
st.caption(f"{c.plural(nv, 'field outcome')} recorded. Training fits a model on the older visits and checks it on the "
           "most recent ones; it goes live only if it beats the live model there.")
if c.can("train") and st.button("Train now", key="train", type="primary", icon=":material/model_training:",
                                help="promotes the new model only if it beats the live one on held-out visits"):
    def train(s) -> dict:
        return desk.train(s, c.user())  # a promoted model re-scores every leak in the same action

    with st.spinner("Training and comparing on held-out visits…"):
        c.flash("train_result", c.act("train", train))  # the live model shown above may have changed
if res := st.session_state.get("train_result"):
    if res["promoted"]:
        st.success(res["decision"] + " — leaks re-scored with it.")
    else:
        st.info(res["decision"])

metrics = [(r["id"], json.loads(r["metrics"] or "{}")) for _, r in mf.iterrows()]
latest = next(((i, m) for i, m in metrics if "candidate" in m), None)
if latest:
    vid, m = latest
    promoted = bool(mf.loc[mf["id"] == vid, "promoted"].iloc[0])
    st.subheader(f"Hold-out check of v{vid} ({'promoted' if promoted else 'not promoted'})")
    refit = f"; once promoted, fitted again on all {m['n_train_final']} (the versions table's count)" \
        if m.get("n_train_final") else ""
    st.caption(f"fitted on the {m.get('n_train', '?')} older visits and compared on the {m.get('n_holdout', '?')} most "
               f"recent ones{refit}")
    who_name = {"candidate": f"v{vid} (candidate)", "current": "Live at the time"}
    rows = pd.DataFrame([{"model": who_name[who], "n_visits": m[who].get("n"),
                          **{k: m[who].get(k) for k in ("brier", "log_loss", "auc")}}
                         for who in ("candidate", "current") if who in m])
    left, right = st.columns([2, 3])
    tables.show(rows, "holdout", key="holdout", where=left)
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="Perfect"))
    for who, colour in (("candidate", "#0f6e6e"), ("current", "#f08c00")):
        cal = pd.DataFrame(m.get(who, {}).get("calibration", []))
        if len(cal):
            fig.add_scatter(x=cal["mean_p"], y=cal["observed"], mode="lines+markers", name=who_name[who], marker={
                "size": 6 + 2 * cal["n"].clip(upper=12), "color": colour}, text=cal["n"].map("{} visits".format))
    fig.update_layout(height=300, margin={"t": 30, "b": 10}, title="Calibration on held-out visits",
                      xaxis_title="predicted P(real)", yaxis_title="share found real", xaxis_range=[0, 1],
                      yaxis_range=[0, 1.05])
    with right:
        charts.plot(fig, "calibration", "mlpe_calibration")

st.subheader("Model versions")
c.flashed("model_flash")
tables.show(mf[["id", "created_at", "kind", "active", "promoted", "n_train", "n_holdout", "decision"]], "models",
            "models", height=tables.height(len(mf), 300))
if len(mf) > 1 and c.can("activate_model"):
    a, b = st.columns([1, 3], vertical_alignment="bottom")
    v = a.selectbox("Roll back / forward to", mf["id"], format_func=lambda i: f"v{i}", key="model_pick")
    if b.button("Activate and re-score", key="model_activate"):
        c.ask("activate", int(v))
    if a := c.asked("activate"):
        confirm_activate(*a)
st.caption("Compare how two versions rank today's leaks on the Rankings page (*Compare models*).")
