"""Trends: is a site (or an operator) getting worse? A coverage-aware change test, and the unsupervised baseline.

Why: the people above the analyst ask which sites keep leaking and which operator is getting worse. A count of
detections is not an answer: a monitor that was offline half of June, a satellite that passed twice as often in
July, one alarm repeated twelve times in an afternoon all change counts without any change in emissions. The test
here compares like with like: each sensor's **watched days** only, before and after a change point.

The data (:func:`sensor_days`): one row per group (a site, or an operator's sites), sensor and UTC day the sensor
watched the site, with ``detected`` (at least one detection that day) and ``log_rate`` (the mean log of that day's
quantified readings). What counts as watched depends on the kind of sensor:

* continuous monitors: days their coverage windows (watching or detected) touch; a monitor without coverage rows
  at a site watches it from its first to its last reading there (as ``comply.action_levels`` assumes);
* satellites: every day the satellite reported anything in the basin (a pass sees every site; clouds ignored);
* SCADA: every day of the window (the alarm system is always on);
* aircraft: no count evidence (a campaign flies part of the basin and its flight lines are not in the store): only
  the rates of its readings are compared; OGI surveys (one visit) give none.

The test (:func:`change_test`), for a group and each candidate change day ``k`` (whole weeks, at least
``MIN_SIDE_DAYS`` from either end of the window):

* count score: per sensor, the number of detected days after ``k`` against its expectation when the detected days
  are a random subset of the watched days (hypergeometric mean and variance), summed over sensors;
* rate score: per sensor, the sum of the daily log rates after ``k`` against its expectation when the days' values
  are exchangeable (the two-sample permutation mean and variance, the spread floored at ``LOG_SD_FLOOR``);
* the two standardised scores are added (Stouffer, divided by sqrt 2) and the largest over ``k`` is the statistic.

Its p-value is a conditional randomisation test: the same statistic after reordering each sensor's watched days at
random (``n_perm`` times), i.e. the null hypothesis is that, per sensor, which watched days detected the site and
how high the readings were does not depend on when. Scanning every ``k`` inside the test keeps its level. The
reorderings stop early once ``H_STOP`` of them (more when ``alpha`` needs it) reach the observed statistic (Besag &
Clifford 1991, sequential Monte Carlo p-values, Biometrika 78(2):301-304: p = H_STOP / reorderings drawn, still a
valid p-value): such a site is nowhere near ``alpha``, and most sites are such, so a basin of 100,000 sites is
tested in a fraction of the time. A group whose p could reach ``alpha`` never stops early and gets exactly the p of
all ``n_perm`` reorderings, so which groups are flagged does not depend on the early stop. Each group draws its
reorderings from its own seed (the run's seed and the group's name), so its p does not depend on which other groups
are tested. A group is **worsening** when p <= ``alpha`` and the estimated emission ratio after/before (detected-day
share ratio times the geometric-mean reading ratio) is at least ``min_ratio``. Assumptions and measured precision
and recall against an Isolation Forest baseline (:func:`isolation_forest_flags`) on the simulator's injected
changes: ``docs/sites.md``.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

COUNT_KINDS = {"continuous_monitor": "coverage", "satellite": "scene", "scada": "always"}  # how exposure is known
RATE_KINDS = {"continuous_monitor", "satellite", "aerial"}  # whose readings enter the rate score
MAX_LOCATION_M = 1000.0  # a detection less precise than this locates no site (CoarseSat's 5 km pixels)
MIN_SIDE_DAYS = 14  # a change point leaves at least two weeks on either side
LOG_SD_FLOOR = 0.5  # spread of daily log rates at least this (one source's rate varies 0.54 between episodes)
ALPHA = 0.01
MIN_RATIO = 1.5
N_PERM = 499
H_STOP = 10  # reorderings reaching the observed statistic after which a group's test stops (Besag & Clifford)
FIRST_BATCH = 49  # reorderings drawn before the first look at H_STOP; the rest after
DAY_COLUMNS = ["group", "site", "source_name", "source_type", "day", "detected", "n_readings", "log_rate", "counts"]
RESULT_COLUMNS = ["group", "worsening", "p_value", "ratio", "changed_on", "z_count", "z_rate", "n_days",
                  "n_detected_days", "evidence"]


def _utc_days(t: pd.Series) -> pd.Series:
    return pd.to_datetime(t, utc=True).dt.floor("D")


def detection_sites(dets: pd.DataFrame, leaks: pd.DataFrame) -> pd.Series:
    """The site of each detection: its own ``asset_id`` (site-level sensors), else its leak's attributed asset;
    None for ambiguous or coarse ones (they locate no site)."""
    own = dets["asset_id"].where(dets["asset_id"].notna() & (dets["asset_id"].astype(str) != ""), None) \
        if "asset_id" in dets else pd.Series(None, index=dets.index, dtype=object)
    by_leak = dets["leak_id"].map(leaks.set_index("leak_id")["asset_id"]) if len(leaks) else own
    site = own.where(own.notna(), by_leak)
    bad = dets["location_uncertainty_m"].fillna(0) > MAX_LOCATION_M
    if "ambiguous" in dets:
        bad |= dets["ambiguous"].fillna(False).astype(bool)
    return site.where(~bad & site.notna(), None)


def sensor_days(dets: pd.DataFrame, leaks: pd.DataFrame, coverage: pd.DataFrame | None, start: pd.Timestamp,
                end: pd.Timestamp, groups: dict[str, str] | None = None, only: set[str] | None = None) -> pd.DataFrame:
    """Per group, site, sensor and watched UTC day in [start, end): detected, n_readings, log_rate (``DAY_COLUMNS``).

    ``groups`` maps a site to its group (e.g. its operator); by default each site is its own group; ``only`` keeps
    these sites (a satellite's pass days still come from all its detections). ``counts`` says whether the row enters
    the count score (its sensor's watched days are known) or only the rate score."""
    start, end = pd.Timestamp(start).floor("D"), pd.Timestamp(end)
    days = pd.date_range(start, end, freq="D", inclusive="left", tz="UTC")
    d = dets.assign(site=detection_sites(dets, leaks), day=_utc_days(dets["observed_at"]))
    d = d[d["site"].notna() & (d["day"] >= start) & (d["day"] < end)]
    d = d[d["source_type"].isin(set(COUNT_KINDS) | RATE_KINDS)]
    if only is not None:
        d = d[d["site"].isin(only)]
    if d.empty or not len(days):
        return pd.DataFrame(columns=DAY_COLUMNS)
    r = d["rate_kg_h"].where(d["rate_kg_h"] > 0)
    d = d.assign(lr=np.log(r), has=r.notna())
    per = d.groupby(["site", "source_name", "day"]).agg(source_type=("source_type", "first"), n=("has", "sum"),
                                                      log_rate=("lr", "mean")).reset_index()
    per["detected"] = True
    kind = d.groupby("source_name")["source_type"].first()
    out = pd.concat([per, _quiet_days(per, kind, dets, coverage, start, end, len(days))], ignore_index=True)
    out["counts"] = out["source_type"].map(COUNT_KINDS).notna()
    out = out[out["counts"] | out["n"].gt(0)]
    out["group"] = out["site"] if groups is None else out["site"].map(groups)
    out = out[out["group"].notna()].rename(columns={"n": "n_readings"})
    out["n_readings"] = out["n_readings"].astype(int)
    # sorted on codes (each factorised in sorted order), not on the text: 17 million rows at 100,000 sites
    keys = [pd.factorize(out[c], sort=True)[0] for c in ("group", "site", "source_name")]
    order = np.lexsort([pd.DatetimeIndex(out["day"]).asi8, *keys[::-1]])
    return out.iloc[order].reset_index(drop=True)[DAY_COLUMNS]


def _quiet_days(per: pd.DataFrame, kind: pd.Series, dets: pd.DataFrame, coverage: pd.DataFrame | None,
                start: pd.Timestamp, end: pd.Timestamp, n_days: int) -> pd.DataFrame:
    """The watched days without a detection of every (site, sensor) pair of ``per`` (its detected days), per kind
    of sensor (module docstring), in ``per``'s columns. One (pairs × days) matrix of watched days and one of
    detected days: per pair, sets of days and lists of Timestamps took minutes at 100,000 sites."""
    pair, pairs = pd.factorize(pd.MultiIndex.from_frame(per[["site", "source_name"]]))
    p_site = pairs.get_level_values(0).to_numpy(dtype=object)
    p_src = pairs.get_level_values(1).to_numpy(dtype=object)
    how = pd.Series(p_src).map(kind).map(COUNT_KINDS).to_numpy(dtype=object)
    dn = ((per["day"] - start) / pd.Timedelta(days=1)).astype(int).to_numpy()
    detected = np.zeros((len(pairs), n_days), dtype=bool)
    detected[pair, dn] = True
    watched = np.zeros_like(detected)
    watched[how == "always"] = True
    scene = how == "scene"
    if scene.any():  # a satellite's pass days: all its detections, sited or not
        sats = pd.unique(p_src[scene])
        full = dets[dets["source_name"].isin(set(sats))]
        fd = ((_utc_days(full["observed_at"]) - start) / pd.Timedelta(days=1)).to_numpy()
        ok = (fd >= 0) & (fd < n_days)
        sat_code = {s: i for i, s in enumerate(sats)}
        passes = np.zeros((len(sats), n_days), dtype=bool)
        passes[full["source_name"].map(sat_code).to_numpy()[ok].astype(int), fd[ok].astype(int)] = True
        watched[scene] = passes[[sat_code[s] for s in p_src[scene]]]
    cov = how == "coverage"
    if cov.any():
        with_rows = np.zeros(len(pairs), dtype=bool)
        c = _coverage_frame(coverage, start, end)
        if len(c):
            pf = pd.DataFrame({"site": p_site, "src": p_src, "row": np.arange(len(pairs))})[cov]
            m = c.astype({"site": object, "src": object}).merge(pf, on=["site", "src"], how="inner")
            rows = m["row"].to_numpy()
            watched[rows, m["dn"].to_numpy()] = True
            with_rows[rows] = True
        bare = cov & ~with_rows  # no coverage rows: from the first to the last reading at the site
        if bare.any():
            lo = np.full(len(pairs), n_days)
            hi = np.full(len(pairs), -1)
            np.minimum.at(lo, pair, dn)
            np.maximum.at(hi, pair, dn)
            span = np.arange(n_days)
            watched[bare] = (span >= lo[bare, None]) & (span <= hi[bare, None])
    qp, qd = np.nonzero(watched & ~detected)
    src = p_src[qp]
    return pd.DataFrame({"site": p_site[qp], "source_name": src,
                         "day": pd.DatetimeIndex(start + pd.to_timedelta(qd, unit="D")),
                         "source_type": pd.Series(src, dtype=object).map(kind).to_numpy(),
                         "n": 0, "log_rate": np.nan, "detected": False})


def _coverage_frame(coverage: pd.DataFrame | None, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """(site, src, dn): each UTC day (number from ``start``) a sensor's watching or detected windows touch."""
    empty = pd.DataFrame({"site": [], "src": [], "dn": np.zeros(0, dtype=int)})
    if coverage is None or coverage.empty:
        return empty
    c = coverage[coverage["state"].isin(["watching", "detected"])]
    c = c[(pd.to_datetime(c["end_at"], utc=True) > start) & (pd.to_datetime(c["start_at"], utc=True) < end)]
    if c.empty:
        return empty
    a = pd.to_datetime(c["start_at"], utc=True).dt.floor("D").clip(lower=start)
    b = pd.to_datetime(c["end_at"], utc=True).clip(upper=end - pd.Timedelta(seconds=1)).dt.floor("D")
    n = ((b - a) / pd.Timedelta(days=1)).astype(int).clip(lower=0) + 1
    idx = np.repeat(np.arange(len(c)), n.to_numpy())
    offs = np.concatenate([np.arange(k) for k in n.to_numpy()]) if len(n) else np.zeros(0, int)
    dn = ((a - start) / pd.Timedelta(days=1)).astype(int).to_numpy()[idx] + offs
    return pd.DataFrame({"site": c["asset_id"].to_numpy()[idx], "src": c["source_name"].to_numpy()[idx],
                         "dn": dn}).drop_duplicates()


# --------------------------------------------------------------------------------------------- the test


def _splits(n_days: int) -> np.ndarray:
    return np.arange(MIN_SIDE_DAYS, n_days - MIN_SIDE_DAYS + 1, 7)


def _scores(det: np.ndarray, lr: np.ndarray, has: np.ndarray, after: np.ndarray, cnt: np.ndarray,
            strata: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Standardised count and rate scores for each reordering (rows of det/lr/has) and split (columns of after).

    det, lr, has: (B, L) values at the group's L positions (lr 0 where has is False); after: (L, K) whether a
    position falls after each split; cnt: (L,) whether the position's sensor enters the count score; strata: the
    position indices of each sensor."""
    B, K = det.shape[0], after.shape[1]
    sc, vc, sr, vr = (np.zeros((B, K)) for _ in range(4))
    for idx in strata:
        a = after[idx]  # (l, K)
        wa = a.sum(axis=0).astype(float)  # positions after each split (fixed under reordering)
        w = float(len(idx))
        if cnt[idx[0]] and w > 1:
            d = det[:, idx]
            n = d[0].sum()
            if 0 < n < w:
                p = wa / w
                sc += d @ a - n * p
                vc += n * p * (1 - p) * (w - n) / (w - 1)
        h = has[:, idx]
        m = h[0].sum()
        if m > 1:
            x = lr[:, idx]
            mu = x[0].sum() / m
            s2 = max(float(((x[0] - mu) ** 2 * h[0]).sum() / m), LOG_SD_FLOOR ** 2)
            ma = h @ a  # readings after each split, per reordering
            sr += x @ a - ma * mu
            vr += ma * (m - ma) / (m - 1) * s2
    zc = np.where(vc > 0, sc / np.sqrt(np.where(vc > 0, vc, 1)), np.nan)
    zr = np.where(vr > 0, sr / np.sqrt(np.where(vr > 0, vr, 1)), np.nan)
    return zc, zr


def _combine(zc: np.ndarray, zr: np.ndarray) -> np.ndarray:
    both = ~np.isnan(zc) & ~np.isnan(zr)
    return np.where(both, (np.nan_to_num(zc) + np.nan_to_num(zr)) / math.sqrt(2),
                    np.where(np.isnan(zc), np.nan_to_num(zr, nan=-np.inf), zc))


def change_test(days: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, n_perm: int = N_PERM,
                alpha: float = ALPHA, min_ratio: float = MIN_RATIO, seed: int = 0) -> pd.DataFrame:
    """The coverage-aware change test (module docstring) for every group of :func:`sensor_days` rows.

    Returns one row per group (``RESULT_COLUMNS``): worsening, p_value, ratio (estimated emissions after/before the
    change day), changed_on, z_count and z_rate at that day, n_days (watched sensor-days), n_detected_days and the
    evidence in words. Deterministic for a ``seed``.

    The columns are taken out of the frame once and each group is a slice of plain arrays: a basin of 100,000
    sites is 100,000 groups, and a pandas group-by and frame per group cost more than the test itself."""
    if n_perm < 1:
        raise ValueError(f"n_perm must be at least 1 (got {n_perm})")
    start = pd.Timestamp(start).floor("D")
    n_days = int((pd.Timestamp(end) - start) / pd.Timedelta(days=1))
    ks = _splits(n_days)
    if days.empty or not len(ks):
        return pd.DataFrame(columns=RESULT_COLUMNS)
    gcode, gnames = pd.factorize(days["group"], sort=True)
    scode, snames = pd.factorize(days["site"], sort=True)
    ncode, nnames = pd.factorize(days["source_name"], sort=True)
    read = days["n_readings"].gt(0).to_numpy()
    cols = {"dayno": ((days["day"] - start) / pd.Timedelta(days=1)).astype(int).to_numpy(),
            "det": days["detected"].to_numpy().astype(float), "read": read,
            "has": read & days["log_rate"].notna().to_numpy(),
            "lr": days["log_rate"].to_numpy(dtype=float, na_value=np.nan),
            "cnt": days["counts"].to_numpy().astype(bool),
            "stratum": scode.astype(np.int64) * max(len(nnames), 1) + ncode}
    order = np.argsort(gcode, kind="stable")  # each group's rows together, in their order in ``days``
    cols = {k: v[order] for k, v in cols.items()}
    bounds = np.flatnonzero(np.diff(gcode[order])) + 1
    out = []
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(order)], strict=True):
        g = {k: v[lo:hi] for k, v in cols.items()}
        if g["det"].sum() + g["read"].sum() < 3:
            continue
        group = gnames[gcode[order[lo]]]
        rng = np.random.default_rng([seed, zlib.crc32(str(group).encode())])
        out.append(_test_group(group, g, snames, nnames, start, ks, rng, n_perm, alpha, min_ratio))
    return pd.DataFrame(out, columns=RESULT_COLUMNS) if out else pd.DataFrame(columns=RESULT_COLUMNS)


def _test_group(group, g: dict, snames, nnames, start: pd.Timestamp, ks: np.ndarray, rng: np.random.Generator,
                n_perm: int, alpha: float, min_ratio: float) -> list:
    """The test of one group: ``g`` holds its rows' arrays (``dayno``, ``det``, ``read``, ``has``, ``lr``, ``cnt``
    and ``stratum``: the code of its (site, sensor), site code × number of sensor names + sensor code)."""
    n = len(g["det"])
    after = g["dayno"][:, None] >= ks[None, :]
    has, det, cnt = g["has"], g["det"], g["cnt"]
    lr = np.where(has, np.nan_to_num(g["lr"]), 0.0)
    by = np.argsort(g["stratum"], kind="stable")
    strata = np.split(by, np.flatnonzero(np.diff(g["stratum"][by])) + 1)  # each sensor's rows, in row order
    af = after.astype(float)

    def stats(m: int, observed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t, zc, zr) of ``m`` reorderings, preceded by the observed order when ``observed``."""
        perm = np.tile(np.arange(n), (m + observed, 1))
        for ix in strata:  # reorder each sensor's watched days
            perm[observed:, ix] = ix[np.argsort(rng.random((m, len(ix))), axis=1)]
        zc, zr = _scores(det[perm], lr[perm], has[perm].astype(float), af, cnt, strata)
        return _combine(zc, zr), zc, zr

    # never stop a group whose full p could still reach alpha: (1 + c) / (n_perm + 1) <= alpha needs c < h
    h = max(H_STOP, math.ceil(alpha * (n_perm + 1)) + 1)
    first = min(FIRST_BATCH, n_perm)
    t, zc, zr = stats(first, True)
    best0 = t[0].max()
    reach = np.cumsum(t[1:].max(axis=1) >= best0 - 1e-12)
    if n_perm > first and reach[-1] < h:  # not yet clearly insignificant: the remaining reorderings
        rest = stats(n_perm - first, False)[0]
        reach = np.concatenate([reach, reach[-1] + np.cumsum(rest.max(axis=1) >= best0 - 1e-12)])
    if reach[-1] >= h:  # stopped at the h-th reordering reaching the observed statistic
        n_done = int(np.searchsorted(reach, h)) + 1
        p = h / n_done
    else:
        n_done = len(reach)
        p = float((1 + reach[-1]) / (n_done + 1))
    k = int(np.argmax(t[0]))
    ratio, words = _evidence(g, strata, snames, nnames, after[:, k])
    day = start + pd.Timedelta(days=int(ks[k]))
    worse = bool(p <= alpha and ratio >= min_ratio and t[0, k] > 0)
    times = f"about ×{ratio:.1f}" if ratio < 20 else "over ×20"
    why = ""  # "no clear worsening" with a small p: say which test it failed
    if not worse and p <= alpha:
        why = f" (below the ×{min_ratio:g} that counts as worsening)" if ratio < min_ratio else \
            " (emissions did not rise after the split)"
    evidence = (f"{'worsening' if worse else 'no clear worsening'} from {day:%Y-%m-%d}: {words}; emissions "
                f"{times}{why}; permutation p = {p:.3f} ({n_done} reorderings of each sensor's watched days)")
    return [group, worse, p, ratio, day, _num(zc[0, k]), _num(zr[0, k]), n, int(det.sum()), evidence]


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _kg(x: float) -> str:
    return f"{x:.2g}" if x < 10 else f"{x:,.0f}"


def _evidence(g: dict, strata: list[np.ndarray], snames, nnames, after: np.ndarray) -> tuple[float, str]:
    """The estimated emission ratio after/before a split and the per-sensor facts behind it, in words."""
    parts, share_num, share_den, dl, wl = [], [], [], [], []
    n_src = max(len(nnames), 1)
    several = len(np.unique(g["stratum"] // n_src)) > 1  # sites in the group
    has, cnt = g["has"], g["cnt"]
    for ix in strata:
        code = int(g["stratum"][ix[0]])
        site, src = snames[code // n_src], nnames[code % n_src]
        a = after[ix]
        det = g["det"][ix]
        bits = []
        if cnt[ix[0]]:
            nb, na, wb, wa = int(det[~a].sum()), int(det[a].sum()), int((~a).sum()), int(a.sum())
            bits.append(f"detected on {nb} of {wb} watched days before, {na} of {wa} after")
            share_num.append((na + 0.5) / (wa + 1) * (wb + wa))
            share_den.append((nb + 0.5) / (wb + 1) * (wb + wa))
        h = has[ix]
        lr = g["lr"][ix]
        if h[~a].any() and h[a].any():
            mb, ma = float(np.mean(lr[h & ~a])), float(np.mean(lr[h & a]))
            n = int(h.sum())
            dl.append((ma - mb) * n)
            wl.append(n)
            bits.append(f"readings {_kg(math.exp(mb))} → {_kg(math.exp(ma))} kg/h (geometric mean, as reported)")
        if bits:
            parts.append(f"{f'{site} ' if several else ''}{src}: " + ", ".join(bits))
    share = (sum(share_num) / sum(share_den)) if share_den else 1.0
    level = math.exp(sum(dl) / sum(wl)) if wl else 1.0
    return float(share * level), "; ".join(parts[:4]) + (f"; {len(parts) - 4} more sensors" if len(parts) > 4 else "")


# --------------------------------------------------------------------------------------------- series and baseline


def weekly(days: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    """Per group, sensor and week: watched days, detected days, readings and the geometric mean reading with a 90 %
    interval of that mean (the spread floored at ``LOG_SD_FLOOR``): the chart behind the test, sensor by sensor."""
    cols = ["group", "source_name", "week", "watched_days", "detected_days", "n_readings", "rate_kg_h", "rate_lo_kg_h",
            "rate_hi_kg_h"]
    if days.empty:
        return pd.DataFrame(columns=cols)
    d = days.assign(week=start.floor("D") + pd.to_timedelta(((days["day"] - start.floor("D")) /
                                                              pd.Timedelta(days=7)).astype(int) * 7, unit="D"))
    d = d.assign(has=d["log_rate"].notna())
    g = d.groupby(["group", "source_name", "week"])
    out = g.agg(watched_days=("counts", "sum"), detected_days=("detected", "sum"), n_readings=("n_readings", "sum"),
                mu=("log_rate", "mean"), sd=("log_rate", "std"), m=("has", "sum")).reset_index()
    half = 1.645 * np.maximum(out["sd"].fillna(LOG_SD_FLOOR), LOG_SD_FLOOR) / np.sqrt(out["m"].clip(lower=1))
    out["rate_kg_h"] = np.exp(out["mu"])
    out["rate_lo_kg_h"] = np.exp(out["mu"] - half).where(out["m"] > 0)
    out["rate_hi_kg_h"] = np.exp(out["mu"] + half).where(out["m"] > 0)
    return out[cols]


FEATURES = ["log_share_ratio_half", "log_share_ratio_third", "dlog_rate_half", "dlog_rate_third", "log_days"]


def window_features(days: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Per group, the windowed change features the unsupervised baseline sees: the log ratio of detected-day shares
    (count sensors) and the difference of mean log readings, second half vs first half and last third vs the rest,
    and log(1 + detected days)."""
    start = pd.Timestamp(start).floor("D")
    n = (pd.Timestamp(end) - start) / pd.Timedelta(days=1)
    if days.empty:
        return pd.DataFrame(columns=["group", *FEATURES])
    t = (days["day"] - start) / pd.Timedelta(days=1)
    rows = {}
    for name, cut in (("half", n / 2), ("third", 2 * n / 3)):
        d = days.assign(after=t >= cut)
        c = d[d["counts"]].groupby(["group", "after"])["detected"].agg(["sum", "size"]).unstack(fill_value=0)
        share = lambda side, c=c: (c[("sum", side)] + 0.5) / (c[("size", side)] + 1) if ("sum", side) in c else 0.5  # noqa: E731
        rows[f"log_share_ratio_{name}"] = np.log(share(True) / share(False))
        r = d[d["log_rate"].notna()]
        r = r.assign(x=r["log_rate"] - r.groupby(["group", "source_name"])["log_rate"].transform("mean"))
        m = r.groupby(["group", "after"])["x"].mean().unstack()
        rows[f"dlog_rate_{name}"] = (m.get(True) - m.get(False)) if True in m and False in m else pd.Series(dtype=float)
    out = pd.DataFrame(rows)
    out["log_days"] = np.log1p(days.groupby("group")["detected"].sum())
    return out.fillna(0.0).rename_axis("group").reset_index()[["group", *FEATURES]]


def isolation_forest_flags(days: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, contamination: float = 0.05,
                           seed: int = 0) -> pd.DataFrame:
    """The unsupervised baseline: an Isolation Forest on :func:`window_features` of every group with a detection;
    a group is flagged when the forest calls it an outlier and its detected-day share or readings went up (an
    outlier that improved is not worsening). Returns group, score (higher = more anomalous), flagged."""
    from sklearn.ensemble import IsolationForest

    f = window_features(days, start, end)
    if len(f) < 10:
        return pd.DataFrame({"group": f["group"], "score": 0.0, "flagged": False})
    X = f[FEATURES].to_numpy()
    forest = IsolationForest(n_estimators=200, contamination=contamination, random_state=seed).fit(X)
    up = (f["log_share_ratio_half"] + f["dlog_rate_half"] + f["log_share_ratio_third"] + f["dlog_rate_third"]) > 0
    return pd.DataFrame({"group": f["group"], "score": -forest.score_samples(X),
                         "flagged": (forest.predict(X) == -1) & up.to_numpy()})
