"""Geometry: Earth-centred metres, statistically compatible groups, centres and labels."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..geo import from_ecef, to_ecef  # noqa: F401  (re-exported for the fuser)


def _days(s: pd.Series) -> np.ndarray:
    ts = pd.to_datetime(s, utc=True)
    return (ts - pd.Timestamp("2000-01-01", tz="UTC")).dt.total_seconds().to_numpy() / 86400.0


def ball_pairs(neighbours) -> tuple[np.ndarray, np.ndarray]:
    """A ``cKDTree.query_ball_point`` answer for many points (a list of index lists) as flat (point, neighbour)
    index arrays, in the answer's order: one pass in C instead of an array per point."""
    lens = np.fromiter(map(len, neighbours), np.int64, len(neighbours))
    point = np.repeat(np.arange(len(neighbours), dtype=np.int64), lens)
    return point, np.fromiter(itertools.chain.from_iterable(neighbours), np.int64, int(lens.sum()))


def _time_bounds(lab: np.ndarray, t: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    tmin = np.full(m, np.inf)
    tmax = np.full(m, -np.inf)
    ok = lab >= 0
    np.minimum.at(tmin, lab[ok], t[ok])
    np.maximum.at(tmax, lab[ok], t[ok])
    return tmin, tmax


def _split_in_time(lab: np.ndarray, t: np.ndarray, gap_days: float) -> np.ndarray:
    """Give each run of a label separated by more than ``gap_days`` of silence its own label."""
    lab = np.asarray(lab)
    out = np.full(len(lab), -1, dtype=np.int64)
    ok = np.flatnonzero(lab >= 0)
    if len(ok) == 0:
        return out
    order = ok[np.lexsort((t[ok], lab[ok]))]
    lo, to = lab[order], t[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (lo[1:] != lo[:-1]) | (np.diff(to) > gap_days)
    out[order] = np.cumsum(new) - 1
    return out


def _log_rate_and_sd(X: pd.DataFrame, rates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each detection's log rate and its 1-sigma in log space (from the rate's stated uncertainty).

    A lognormal error with coefficient of variation cv has log-space sigma sqrt(log(1 + cv²)); where no
    uncertainty is stated, 0.5 (a factor of 1.6) is assumed. No rate is taken as better than 1 %
    (sigma 0.01): a stated 0.0001 kg/h on 100 kg/h would otherwise outweigh every other reading.
    """
    n = len(X)
    if rates is None:
        return np.full(n, np.nan), np.full(n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        lr = np.where(np.isfinite(rates) & (rates > 0), np.log(np.where(rates > 0, rates, 1.0)), np.nan)
        unc = X["rate_uncertainty_kg_h"].to_numpy(float) if "rate_uncertainty_kg_h" in X else np.full(n, np.nan)
        cv = unc / rates
        sd = np.where(np.isfinite(cv) & (cv > 0), np.maximum(np.sqrt(np.log1p(cv**2)), 0.01), 0.5)
    return lr, np.where(np.isfinite(lr), sd, np.nan)


def _log_rate_stats(lab, lr, lr_sd, m) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance mean log rate of each label and that mean's variance (NaN where none is rated)."""
    ok = (lab >= 0) & np.isfinite(lr) & np.isfinite(lr_sd) & (lr_sd > 0)
    w = 1.0 / lr_sd[ok] ** 2
    sw = np.bincount(lab[ok], w, minlength=m)
    sy = np.bincount(lab[ok], w * lr[ok], minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sw > 0, sy / sw, np.nan), np.where(sw > 0, 1.0 / sw, np.nan)


def _compatible_components(xyz, sigma, t, k, gap_days, rates=None, max_log_ratio=np.inf, group=None) -> np.ndarray:
    """Connected components of 'within k combined sigmas and within the time gap' (for leftovers); given
    ``rates``, pairs both quantified and more than ``max_log_ratio`` apart in log-rate are not linked; given
    ``group``, pairs in different groups are not linked either (``link_components``)."""
    n = len(xyz)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    tree = cKDTree(xyz)
    pairs = tree.query_pairs(k * np.sqrt(2.0) * float(sigma.max()), output_type="ndarray")
    if len(pairs):
        a, b = pairs[:, 0], pairs[:, 1]
        d = np.linalg.norm(xyz[a] - xyz[b], axis=1)
        keep = (d <= k * np.sqrt(sigma[a] ** 2 + sigma[b] ** 2)) & (np.abs(t[a] - t[b]) <= gap_days)
        if rates is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                lr = np.log(np.where(rates > 0, rates, np.nan))
            keep &= ~(np.abs(lr[a] - lr[b]) > max_log_ratio)  # NaN (unquantified) never refuses
        if group is not None:
            keep &= group[a] == group[b]
        a, b = a[keep], b[keep]
    else:
        a = b = np.zeros(0, dtype=np.int64)
    g = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    return comp.astype(np.int64)


def _centres(xyz: np.ndarray, sigma: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance centre and its 1-sigma for each label (noise, -1, ignored)."""
    ok = lab >= 0
    k = lab[ok]
    w = 1.0 / sigma[ok] ** 2
    m = int(k.max()) + 1 if ok.any() else 0
    sw = np.bincount(k, w, minlength=m)
    c = np.column_stack([np.bincount(k, w * xyz[ok, d], minlength=m) for d in range(3)])
    with np.errstate(invalid="ignore", divide="ignore"):
        return c / sw[:, None], 1.0 / np.sqrt(sw)


def _log_rates(lab: np.ndarray, rates: np.ndarray, m: int) -> np.ndarray:
    """Mean log rate of each label's quantified members (NaN where none is quantified)."""
    ok = (lab >= 0) & np.isfinite(rates) & (rates > 0)
    n = np.bincount(lab[ok], minlength=m).astype(float)
    s = np.bincount(lab[ok], np.log(rates[ok]), minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / n, np.nan)


def _relabel_keep_noise(lab: np.ndarray) -> np.ndarray:
    out = np.full(len(lab), -1, dtype=np.int64)
    ok = lab >= 0
    if ok.any():
        out[ok] = np.unique(lab[ok], return_inverse=True)[1]
    return out


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, inv = np.unique(labels, return_inverse=True)
    return inv.astype(np.int64)


# Distances below this are taken as this (coincident fixes): HDBSCAN's 1/distance would be infinite.
_MIN_LINK_M = 1e-3


def link_forest(xyz: np.ndarray, link_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Euclidean minimum spanning tree's edges shorter than ``link_m``, and the components they make.

    Returns (component of each point, edge ends a, b, edge lengths). Two points are in one component when a
    chain of points, each less than ``link_m`` from the next, joins them. The edges are a minimum spanning
    forest of the graph of pairs closer than ``link_m``, which is the Euclidean MST cut at ``link_m``: the
    single-linkage hierarchy below ``link_m``, all HDBSCAN with ``min_samples=1`` needs (its mutual
    reachability is then the Euclidean distance).
    """
    from scipy.sparse.csgraph import minimum_spanning_tree

    n = len(xyz)
    tree = cKDTree(xyz) if n > 1 else None
    if tree is not None and (tree.count_neighbors(tree, link_m) - n) // 2 > max(MAX_LINK_PAIRS, 20 * n):
        # a crowd (thousands of fixes of one source): every pair would not fit in memory (5,000 fixes within a
        # few metres are 12.5 million pairs), so the spanning tree comes from dual-tree Borůvka instead
        a, b, d = _boruvka_mst(xyz)
        keep = d < link_m
        a, b, d = a[keep], b[keep], np.maximum(d[keep], _MIN_LINK_M)
        forest = coo_matrix((d, (a, b)), shape=(n, n))
        _, comp = connected_components(forest, directed=False)
        return comp.astype(np.int64), a.astype(np.int64), b.astype(np.int64), d
    pairs = tree.query_pairs(link_m, output_type="ndarray") if tree is not None else np.zeros((0, 2), np.int64)
    d = np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=1)
    keep = d < link_m
    a, b, d = pairs[keep, 0], pairs[keep, 1], np.maximum(d[keep], _MIN_LINK_M)
    mst = minimum_spanning_tree(coo_matrix((d, (a, b)), shape=(n, n)).tocsr()).tocoo()
    _, comp = connected_components(mst, directed=False)
    return comp.astype(np.int64), mst.row.astype(np.int64), mst.col.astype(np.int64), mst.data


MAX_LINK_PAIRS = 2_000_000  # more pairs closer than the link distance than this: the spanning tree by Borůvka


def import_clusterer() -> None:
    """Import the ``hdbscan`` package and the parts of it the fusion calls (~1.3 s the first time in a process:
    a long-running watcher pays it at start, not in its first cycle; ``pipeline.warm_up``)."""
    import hdbscan  # noqa: F401
    from hdbscan._hdbscan_linkage import label  # noqa: F401
    from hdbscan.hdbscan_ import _tree_to_labels  # noqa: F401


def _boruvka_mst(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Euclidean minimum spanning tree (edge ends a, b and lengths) in O(n log n) memory: the ``hdbscan``
    package's dual-tree Borůvka with ``min_samples=1``, whose mutual reachability is the Euclidean distance
    (each point's core distance is its nearest neighbour's, never more than its distance to any other point)."""
    import hdbscan

    model = hdbscan.HDBSCAN(min_cluster_size=2, min_samples=1, gen_min_span_tree=True, approx_min_span_tree=False,
                            algorithm="boruvka_kdtree", core_dist_n_jobs=1).fit(xyz)
    e = model.minimum_spanning_tree_._mst
    return e[:, 0].astype(np.int64), e[:, 1].astype(np.int64), e[:, 2].astype(float)


def link_components(xyz: np.ndarray, link_m: float) -> np.ndarray:
    """Components of 'a chain of points each less than ``link_m`` from the next' (see ``link_forest``)."""
    return link_forest(xyz, link_m)[0]


def local_hdbscan(xyz: np.ndarray, link_m: float, min_cluster_size: int) -> np.ndarray:
    """HDBSCAN (``min_samples=1``, excess-of-mass selection) run on each ``link_m`` component on its own.

    Why per component: HDBSCAN's excess of mass picks clusters over the whole tree, so in one run over a
    basin a cluster here could in principle depend on points 100 km away, and fusing new detections exactly
    meant re-running it over every precise detection of the store (a near-full fit, 52 s at 1M detections).
    Here each component is a tree of its own, born at 1/``link_m`` (as if it had just split off from the
    rest at that distance), and may itself be chosen as a cluster; its clusters depend on its own points only.
    Components smaller than ``min_cluster_size`` are noise.

    All components are handled in one call of the ``hdbscan`` package's tree code: their spanning forests are
    joined, at exactly ``link_m``, into one tree with a phantom component of ``min_cluster_size`` points (so
    that there are always two, and no real component is the root, which excess of mass never selects).
    Every join is a split into two parts of at least ``min_cluster_size`` points at λ = 1/``link_m``, so
    the join nodes have zero stability and each real component's subtree is condensed and selected as if
    alone. Returns labels (-1 noise) in the order of ``xyz``.
    """
    from hdbscan._hdbscan_linkage import label
    from hdbscan.hdbscan_ import _tree_to_labels

    n = len(xyz)
    out = np.full(n, -1, dtype=np.int64)
    if n < min_cluster_size or n < 2:
        return out
    # raw coordinates, not centred on this input's mean: a pair's distance is then the same bits whichever
    # other points are fitted with it (an incremental fit and a full one); float64 at 6.4e6 m resolves 1e-9 m
    comp, a, b, w = link_forest(xyz, link_m)
    size = np.bincount(comp)
    ok = size[comp] >= min_cluster_size
    idx = np.flatnonzero(ok)
    m = len(idx)
    if m == 0:
        return out
    pos = np.full(n, -1, dtype=np.int64)
    pos[idx] = np.arange(m)
    inner = ok[a]
    _, first = np.unique(comp[idx], return_index=True)
    reps = np.r_[first, m]  # one point of each component, then the phantom's first point
    ph = m + np.arange(min_cluster_size)
    ea = np.r_[pos[a[inner]], reps[:-1], ph[:-1]]
    eb = np.r_[pos[b[inner]], reps[1:], ph[1:]]
    ew = np.r_[w[inner], np.full(len(reps) - 1, float(link_m)), np.full(min_cluster_size - 1, link_m / 2)]
    order = np.lexsort((eb, ea, ew))  # by length; ties in a fixed order (the points' order)
    tree = label(np.column_stack([ea[order], eb[order], ew[order]]).astype(np.float64))
    lab = _tree_to_labels(None, tree, min_cluster_size, "eom", False)[0][:m]
    out[idx] = lab
    return out
