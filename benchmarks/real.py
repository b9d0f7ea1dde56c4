#!/usr/bin/env python3
"""Real-data benchmark: real monitors' and aircraft's reports through ingest → fuse → score, against the meter.

Reads ``../shared/data/real`` (relative to the repository; ``--data`` elsewhere) and prints, per set of real
reports of the Stanford 2022 controlled releases (one release stack, so every report is of ONE source):

* leaks: how many leaks the set fused into (the truth is 1), and detections outside the largest;
* P(real) and rank of the largest leak, scored as of its own last report (``mlpe score --as-of``);
* its ``est_rate_kg_h`` (with the ±1 sigma interval) against the metered time-average over its alarm windows
  (the union of the windows of its detections; the 1-minute meter, informal-testing minutes excluded), and
  the ratio (the target: within a factor 2);
* the log-space average of its readings (the former estimate) for comparison.

Sets: every continuous monitor alone (``stanford_cms_2022/vendor_reports/<vendor>_event_windows.csv``, P/N/NA
timelines; all vendors found there are used, so a folder with other vendors of the same campaign is measured
the same way), all of them together, the same vendors' controlled-release template
(``detection_reports.csv``), and every aircraft operator's stage-1 reports
(``stanford_aircraft_2022/operator_reports_clean/*_1_clean.csv``; the metered rate of each detected pass from
``aircraft_overpasses_with_metered_truth.csv``).

The store is in memory; the pad is the registry's one asset at the release stack. Skips (exit 0, with the
reason) when the real data are absent.

    python benchmarks/real.py [--data DIR] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mlpe_core import pipeline, store  # noqa: E402
from mlpe_core.ingest import ingest_file  # noqa: E402
from mlpe_core.store.db import get_engine  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
PAD = "STANFORD_PAD"


def _pad(data: Path) -> pd.DataFrame:
    site = pd.read_csv(data / "stanford_cms_2022" / "ground_truth" / "release_point_and_site.csv")
    stack = site[site["feature"].str.startswith("release_point")].iloc[0]
    return pd.DataFrame({"asset_id": [PAD], "latitude": [float(stack["latitude"])],
                         "longitude": [float(stack["longitude"])], "asset_type": ["well_pad"],
                         "operator": ["Stanford"]})


def meter(data: Path) -> pd.Series:
    """Metered CH4 kg/h per minute (UTC), informal-testing minutes (tag_mode 1) left out."""
    m = pd.read_csv(data / "stanford_cms_2022" / "ground_truth" / "metered_release_rate_1min.csv")
    m["minute_utc"] = pd.to_datetime(m["minute_utc"], utc=True)
    m = m[m["tag_mode"] != 1]
    return m.set_index("minute_utc")["true_ch4_kgh_mean"].astype(float)


def metered_over(windows: pd.DataFrame, rate: pd.Series) -> tuple[float, float]:
    """Metered time-average over the union of ``windows`` (start_at, end_at) and the hours it covers."""
    if windows.empty:
        return float("nan"), 0.0
    minutes = rate.index
    inside = np.zeros(len(minutes), dtype=bool)
    for s, e in zip(windows["start_at"], windows["end_at"], strict=True):
        lo = minutes.searchsorted(pd.Timestamp(s).floor("min"), "left")
        hi = minutes.searchsorted(pd.Timestamp(e), "right")
        inside[lo:max(hi, lo + 1)] = True
    vals = rate.to_numpy()[inside]
    return (float(np.nanmean(vals)) if len(vals) else float("nan")), float(inside.sum()) / 60.0


def run_set(files: list[tuple[Path, str]], data: Path, rate: pd.Series, pass_truth: pd.DataFrame | None = None
            ) -> dict:
    """Ingest ``files`` ((path, source name)) with the pad as their site, fuse, score as of the last report."""
    engine = get_engine("sqlite://")
    with Session(engine) as s, contextlib.redirect_stdout(io.StringIO()):
        pipeline.store_assets(s, _pad(data), "bench")
        n_det = 0
        for path, name in files:
            n_det += ingest_file(s, path, source_name=name, asset=PAD, user="bench").n_accepted
        pipeline.run_fuse(s, user="bench")
        dets = store.detections_frame(s)
        as_of = dets["observed_at"].max()
        pipeline.run_score(s, as_of=as_of, user="bench")
        leaks = store.leaks_frame(s)
        cov = store.coverage_frame(s)
    engine.dispose()
    leaks = leaks[leaks["active"]].sort_values("n_detections", ascending=False)
    top = leaks.iloc[0]
    mine = dets[dets["leak_id"] == top["leak_id"]]
    keys = set(zip(mine["source_name"], mine["detection_id"], strict=True))
    win = cov[cov["state"].eq("detected")]
    win = win[[k in keys for k in zip(win["source_name"], win["detection_id"], strict=True)]]
    if pass_truth is not None:  # aircraft: the meter at each detected pass
        truth = pass_truth.reindex(mine["detection_id"]).dropna()
        metered, hours = float(truth.mean()) if len(truth) else float("nan"), float("nan")
    else:
        metered, hours = metered_over(win, rate)
    q = mine["rate_kg_h"].to_numpy(float)
    q = q[np.isfinite(q) & (q > 0)]
    return {
        "detections": n_det, "leaks": int(len(leaks)), "outside_largest": int(n_det - top["n_detections"]),
        "sensors": int(top["n_sources"]), "p_real": float(top["p_real"]), "rank": int(top["rank"]),
        "est_rate_kg_h": float(top["est_rate_kg_h"]), "rate_lo_kg_h": float(top["rate_lo_kg_h"]),
        "rate_hi_kg_h": float(top["rate_hi_kg_h"]), "metered_kg_h": metered, "alarm_hours": hours,
        "ratio": float(top["est_rate_kg_h"]) / metered if metered > 0 else float("nan"),
        "log_mean_reading_kg_h": float(np.exp(np.log(q).mean())) if len(q) else float("nan"),
        "reasons": str(top["top_reasons"]),
    }


def cms_sets(data: Path) -> dict[str, list[tuple[Path, str]]]:
    folder = data / "stanford_cms_2022" / "vendor_reports"
    vendors = sorted(folder.glob("*_event_windows.csv"))
    sets = {f"CMS {p.name.split('_event_windows')[0]} (P/N/NA timeline)": [(p, p.name.split("_event_windows")[0])]
            for p in vendors}
    sets[f"CMS all {len(vendors)} vendors (timelines)"] = [(p, p.name.split("_event_windows")[0]) for p in vendors]
    report = folder / "detection_reports.csv"
    if report.exists():
        sets["CMS all vendors (controlled-release template)"] = [(report, "")]
    return sets


def aircraft_sets(data: Path) -> tuple[dict[str, list[tuple[Path, str]]], dict[str, pd.Series]]:
    folder = data / "stanford_aircraft_2022" / "operator_reports_clean"
    over = pd.read_csv(data / "stanford_aircraft_2022" / "aircraft_overpasses_with_metered_truth.csv")
    sets, truth = {}, {}
    for path in sorted(folder.glob("*_1_clean.csv")):
        raw = pd.read_csv(path)
        op = str(raw["Operator"].iloc[0])
        key = path.name.split("_")[0]
        prefix = {"cm": "Carbon Mapper", "ghg": "GHGSat", "kairos": "Kairos", "mair": "MethaneAIR",
                  "sciav": "Scientific Aviation"}.get(key, key)
        o = over[over["operator"].str.startswith(prefix) & (over["stage"] == 1)]
        if key == "kairos":
            o = o[o["operator"].str.contains("LS23")] if o["operator"].str.contains("LS23").any() else o
        pid = o["overpass_id"].astype(float).astype(int).astype(str)
        truth[f"aircraft {op}"] = pd.Series(o["release_rate_kgh"].to_numpy(float), index="stage1-pass" + pid)
        sets[f"aircraft {op}"] = [(path, "")]
    return sets, truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--calibration", action="store_true",
                    help="only the rate calibration of monitors and aircraft (rate_bias of config/instruments.yaml)")
    args = ap.parse_args(argv)
    if not (args.data / "stanford_cms_2022").exists():
        print(f"skipped: real data not found in {args.data} (../shared is absent)")
        return 0
    rate = meter(args.data)
    if args.calibration:
        cal = cms_calibration(args.data, rate)
        with pd.option_context("display.width", 200):
            print("Continuous monitors: reported vs metered over each P window")
            print(cal.round(3).to_string(index=False))
            print(f"between-vendor sd of ln(mean_ratio): {cal.attrs['between_vendor_log_sd']:.3f}\n")
            print("Aircraft (stage 1, QC passes): reported vs metered per detected, quantified pass")
            print(aircraft_calibration(args.data).round(3).to_string(index=False))
        return 0
    rows = []
    for name, files in cms_sets(args.data).items():
        rows.append({"set": name, **run_set(files, args.data, rate)})
    air, truth = aircraft_sets(args.data)
    for name, files in air.items():
        rows.append({"set": name, **run_set(files, args.data, rate, truth[name])})
    out = pd.DataFrame(rows)
    if args.json:
        print(out.to_json(orient="records", indent=1))
        return 0
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 60):
        cols = ["set", "detections", "leaks", "outside_largest", "sensors", "p_real", "rank", "est_rate_kg_h",
                "rate_lo_kg_h", "rate_hi_kg_h", "metered_kg_h", "ratio", "log_mean_reading_kg_h"]
        print(out[cols].round(3).to_string(index=False))
        print()
        for r in out.itertuples():
            print(f"{r.set}: {r.reasons}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def cms_calibration(data: Path, rate: pd.Series) -> pd.DataFrame:
    """Per continuous-monitor vendor: how its reported rates compare with the meter over its P windows.

    For every P window with a reported rate and metered gas: ln(reported / metered mean over the window).
    Columns: windows, mean_ratio (time-weighted mean reported / time-weighted mean metered: the bias a
    time-average must divide out), median_ratio, log_sd (sd of the log ratio), slope (ln reported on ln
    metered: below 1 is saturation), resid_sd (sd around that line), window_min (median window length),
    windows_per_day (P windows per covered day). Pooled over vendors in the row ``all``."""
    rows, pooled = [], []
    for path in sorted((data / "stanford_cms_2022" / "vendor_reports").glob("*_event_windows.csv")):
        d = pd.read_csv(path, parse_dates=["EmissionStartDateTime", "EmissionEndDateTime"])
        p = d[d["ReportLabel"] == "P"]
        rcol = next(c for c in d.columns if c.lower().startswith("reported release rate"))
        out = []
        for s, e, r in zip(p["EmissionStartDateTime"], p["EmissionEndDateTime"], p[rcol], strict=True):
            m = rate[(rate.index >= pd.Timestamp(s, tz="UTC").floor("min")) & (rate.index <= pd.Timestamp(e, tz="UTC"))]
            out.append((r, m.mean() if len(m) else np.nan, (e - s).total_seconds() / 3600))
        w = pd.DataFrame(out, columns=["y", "r", "h"])
        covered = (d["EmissionEndDateTime"] - d["EmissionStartDateTime"]).dt.total_seconds().sum() / 86400
        row = {"vendor": path.name.split("_event_windows")[0], "windows": len(p),
               "window_min": float(np.median(w["h"]) * 60), "windows_per_day": len(p) / max(covered, 1e-9)}
        ok = w[(w["y"] > 0) & (w["r"] > 0)]
        if len(ok) >= 3:
            pooled.append(ok)
            row |= _ratio_stats(ok)
        rows.append(row)
    if pooled:
        rows.append({"vendor": "all", "windows": sum(r["windows"] for r in rows), **_ratio_stats(pd.concat(pooled))})
    out = pd.DataFrame(rows)
    quant = out[out["vendor"].ne("all") & out["mean_ratio"].notna()] if "mean_ratio" in out else out.iloc[0:0]
    out.attrs["between_vendor_log_sd"] = float(np.log(quant["mean_ratio"]).std(ddof=1)) if len(quant) > 1 else np.nan
    return out


def _ratio_stats(w: pd.DataFrame) -> dict:
    lr = np.log(w["y"] / w["r"])
    slope, icpt = np.polyfit(np.log(w["r"]), np.log(w["y"]), 1)
    resid = np.log(w["y"]) - (icpt + slope * np.log(w["r"]))
    return {"quantified": len(w), "mean_ratio": float((w["y"] * w["h"]).sum() / (w["r"] * w["h"]).sum()),
            "median_ratio": float(np.exp(lr.median())), "log_sd": float(lr.std(ddof=1)), "slope": float(slope),
            "resid_sd": float(resid.std(ddof=2))}


def aircraft_calibration(data: Path) -> pd.DataFrame:
    """Per aircraft operator (stage 1, passes that passed both QC): the ratio of mean reported to mean metered
    rate over detected, quantified passes (the bias a time-average divides out), the median ratio and the sd
    of the log ratio."""
    over = pd.read_csv(data / "stanford_aircraft_2022" / "aircraft_overpasses_with_metered_truth.csv")
    o = over[(over["stage"] == 1) & over["pass_all_qc"].astype(bool) & over["operator_detected"].astype(bool)]
    o = o[(o["operator_quantification"] > 0) & (o["release_rate_kgh"] > 0)]
    rows = []
    for op, g in o.groupby("operator"):
        lr = np.log(g["operator_quantification"] / g["release_rate_kgh"])
        rows.append({"operator": op, "passes": len(g),
                     "mean_ratio": float(g["operator_quantification"].sum() / g["release_rate_kgh"].sum()),
                     "median_ratio": float(np.exp(lr.median())), "log_sd": float(lr.std(ddof=1))})
    return pd.DataFrame(rows)
