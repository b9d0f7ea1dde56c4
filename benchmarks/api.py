#!/usr/bin/env python3
"""API load benchmark: ``mlpe serve`` on loopback over the basin, polled by concurrent clients (issue 22).

The basin is the one ``benchmarks/basin.py`` builds (100,000 assets at 500 m over 16 days, seed 0): simulated,
written as CSV and run through ``mlpe assets import``, ``ingest``, ``fuse`` and ``score`` by that script's own
functions. ``--basin DIR`` keeps it (the store is ``DIR/basin.db``) and reuses it on the next run.

Then, for each mode, ``mlpe serve`` starts on a free loopback port and ``--clients`` client processes (each one
keep-alive HTTP connection, standard library only) send a bounded number of requests per endpoint, all clients
at once. Per endpoint: requests, throughput (requests / wall time from the start until the last client is done)
and latency p50/p95/max as each client measured them (request sent to response read):

* ``/health``: the baseline, measured in the same run (nothing read from the store);
* ``/leaks?limit=50``, the first page, and ``/leaks?limit=50&offset=...`` at random offsets over every page;
* ``/dispatch`` (the contract's list of the leaks to visit next) and ``/leaks/{id}`` (the top 20 leaks, as a
  dashboard polls them);
* a 304: ``/leaks?limit=50`` with ``If-None-Match`` naming the ETag the first answer carried.

Modes: **open** (the store has no users, as in the issue's measurement) and **tokens**: a copy of the store with
an admin and an API token, every request carrying ``Authorization: Bearer <token>``; then the ratio of the two.
Both servers run at once and each endpoint is measured on one then the other, ``--rounds`` times, so the load of
a shared machine falls on both modes alike; the best round of each is reported.
Answers are computed once per store version: before the timed requests, one request per distinct URL warms the
cache, and those first (cold) answers are reported apart. Load averages are printed with the numbers: the
machine may be shared. Nothing is written into the repository.

    python benchmarks/api.py [--basin DIR] [--assets N] [--clients 8] [--requests 100] [--rounds 2]
                             [--modes open,tokens]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SELF = Path(__file__).resolve()
ROOT = SELF.parents[1]
sys.path.insert(0, str(SELF.parent))
import basin  # noqa: E402  (benchmarks/basin.py: the basin builder)

N_DETAIL_IDS = 20


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


# ----------------------------------------------------------------------------------- the basin


def build_basin(folder: Path, n_assets: int, seed: int) -> Path:
    """The basin's store in ``folder`` (built once: reused when ``folder/basin.json`` says it is complete)."""
    db, done = folder / "basin.db", folder / "basin.json"
    if db.exists() and done.exists() and json.loads(done.read_text()).get("n_assets") == n_assets:
        print(f"  reusing the basin in {folder}")
        return db
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    files = basin.child("write", str(folder / "feeds"), str(seed), str(n_assets), str(basin.SIZES["100k"]["n_days"]))
    basin.cli_pipeline(ROOT, files, db, folder / "commands.log")
    done.write_text(json.dumps({"n_assets": n_assets, "seed": seed, "n_detections": files["n_detections"]}))
    print(f"  built the basin in {time.perf_counter() - t0:.0f} s ({folder})")
    return db


def copy_store(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite store (the backup API: WAL content included)."""
    for p in dst.parent.glob(dst.name + "*"):
        p.unlink()
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def add_token(db: Path) -> str:
    """Users and tokens on: an admin (which ends open mode) and an API token for it. Returns the token."""
    code = ("import sys; from sqlmodel import Session; from mlpe_core import auth; "
            "from mlpe_core.store.db import get_engine\n"
            "with Session(get_engine(sys.argv[1])) as s:\n"
            "    auth.add_user(s, 'bench', 'bench', 'admin', 'bench-password-not-secret')\n"
            "    print(auth.create_token(s, 'bench', 'bench', label='benchmarks/api.py')[0])\n")
    r = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, check=False,
                       env=basin.env_for(ROOT), cwd=tempfile.gettempdir())
    if r.returncode:
        raise SystemExit(f"could not create the benchmark's user and token:\n{r.stderr[-2000:]}")
    return r.stdout.strip().splitlines()[-1]


# ----------------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    out = open(log, "ab")  # noqa: SIM115 - the server's whole life
    p = subprocess.Popen([sys.executable, "-m", "mlpe_core.cli", "--db", str(db), "serve", "--port", str(port)],
                         stdout=out, stderr=subprocess.STDOUT, env=basin.env_for(ROOT), cwd=tempfile.gettempdir())
    deadline = time.time() + 120
    while time.time() < deadline:
        if p.poll() is not None:
            raise SystemExit(f"mlpe serve exited ({p.returncode}); its log: {log}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return p, port
        except OSError:
            time.sleep(0.2)
    p.terminate()
    raise SystemExit(f"mlpe serve did not answer /health within 120 s; its log: {log}")


def stop_server(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()


def get(conn: http.client.HTTPConnection, path: str, headers: dict) -> tuple[int, bytes, dict]:
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    return r.status, r.read(), dict(r.getheaders())


# ----------------------------------------------------------------------------------- the clients


def client(port: int, paths: list[str], headers: dict, expect: int, start: mp.Barrier, out: mp.Queue) -> None:
    """One client: its requests in turn on one keep-alive connection; latencies in seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    lat, bad = [], []
    start.wait()
    for p in paths:
        t0 = time.perf_counter()
        status, _, _ = get(conn, p, headers)
        lat.append(time.perf_counter() - t0)
        if status != expect:
            bad.append(f"{p} -> {status}")
    conn.close()
    out.put((lat, bad, time.perf_counter()))


def phase(port: int, paths_per_client: list[list[str]], headers: dict, expect: int = 200) -> dict:
    """Every client at once; throughput over the wall time until the last is done, latencies of all requests."""
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(len(paths_per_client) + 1), ctx.Queue()
    procs = [ctx.Process(target=client, args=(port, ps, headers, expect, start, out)) for ps in paths_per_client]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    wall = max(r[2] for r in results) - t0
    lat = sorted(x for r in results for x in r[0])
    bad = [b for r in results for b in r[1]]
    if bad:
        raise SystemExit(f"unexpected answers ({len(bad)}), e.g. {bad[:3]}")

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))] * 1000

    return {"n": len(lat), "rps": len(lat) / wall, "p50": pct(0.50), "p95": pct(0.95), "max": lat[-1] * 1000}


def warm(port: int, headers: dict) -> dict:
    """The first answers after start, one client (the cold cache); returns them with what the timed phases ask."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    cold = {}
    for path in ("/leaks?limit=50", "/dispatch"):
        t0 = time.perf_counter()
        status, body, hdr = get(conn, path, headers)
        cold[path] = (time.perf_counter() - t0) * 1000
        if status != 200:
            raise SystemExit(f"GET {path} -> {status}: {body[:300]!r}")
        if path == "/leaks?limit=50":
            first, etag = json.loads(body), hdr.get("etag") or hdr.get("ETag")
    ids = [x["leak_id"] for x in first["leaks"][:N_DETAIL_IDS]]
    t0 = time.perf_counter()
    for lid in ids:  # every detail once: the cold answers
        status, body, _ = get(conn, f"/leaks/{lid}", headers)
        if status != 200:
            raise SystemExit(f"GET /leaks/{lid} -> {status}: {body[:300]!r}")
    cold[f"/leaks/{{id}} (each of {len(ids)})"] = (time.perf_counter() - t0) * 1000 / max(len(ids), 1)
    t0 = time.perf_counter()
    get(conn, "/leaks?limit=50&offset=50", headers)
    cold["next page"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    status, _, _ = get(conn, "/leaks?limit=50", {**headers, "If-None-Match": etag})
    cold["one 304"] = (time.perf_counter() - t0) * 1000
    conn.close()
    return {"cold": cold, "leaks": first["count"], "ids": ids, "etag": etag}


def cases(w: dict, headers: dict, clients: int, requests: int, seed: int) -> dict:
    rng = random.Random(seed)
    pages, ids = max(1, (w["leaks"] + 49) // 50), w["ids"]

    def each(make) -> list[list[str]]:
        return [[make(c, i) for i in range(requests)] for c in range(clients)]

    return {
        "/health": (each(lambda c, i: "/health"), {}, 200),
        "/leaks?limit=50": (each(lambda c, i: "/leaks?limit=50"), headers, 200),
        "/leaks?limit=50&offset=...": (each(lambda c, i: f"/leaks?limit=50&offset={50 * rng.randrange(pages)}"),
                                       headers, 200),
        "/dispatch": (each(lambda c, i: "/dispatch"), headers, 200),
        "/leaks/{id}": (each(lambda c, i: f"/leaks/{ids[(c + i) % len(ids)]}"), headers, 200),
        "304 /leaks?limit=50": (each(lambda c, i: "/leaks?limit=50"), {**headers, "If-None-Match": w["etag"]}, 304),
    }


def measure(dbs: dict[str, Path], tokens: dict[str, str | None], clients: int, requests: int, rounds: int,
            log: Path, seed: int) -> dict:
    """Both servers up at once; each endpoint measured in turn on each, ``rounds`` times, alternating (so a
    shared machine's load weighs on both modes alike); the round with the best throughput is kept."""
    servers, out = {}, {}
    try:
        for mode, db in dbs.items():
            servers[mode] = start_server(db, log)
        for mode, (_, port) in servers.items():
            headers = {"Authorization": f"Bearer {tokens[mode]}"} if tokens[mode] else {}
            w = warm(port, headers)
            out[mode] = {"cold": w["cold"], "leaks": w["leaks"], "warm": {},
                         "cases": cases(w, headers, clients, requests, seed)}
        for name in next(iter(out.values()))["cases"]:
            for _ in range(rounds):
                for mode, (_, port) in servers.items():
                    paths, hdr, expect = out[mode]["cases"][name]
                    r = phase(port, paths, hdr, expect)
                    if name not in out[mode]["warm"] or r["rps"] > out[mode]["warm"][name]["rps"]:
                        out[mode]["warm"][name] = r
        return out
    finally:
        for p, _ in servers.values():
            stop_server(p)


def report(mode: str, r: dict) -> None:
    print(f"\n  {mode}: {r['leaks']:,} ranked leaks ({load()})")
    print("    first answers after start (cold cache, one client): " + "; ".join(
        f"{k} {v:.1f} ms" for k, v in r["cold"].items()))
    print(f"    {'request':30s} {'n':>6s} {'req/s':>8s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}")
    for k, v in r["warm"].items():
        print(f"    {k:30s} {v['n']:6d} {v['rps']:8.1f} {v['p50']:8.1f} {v['p95']:8.1f} {v['max']:8.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--basin", type=Path, default=None, help="folder to build the basin in and reuse (default: a "
                    "temp folder, removed)")
    ap.add_argument("--assets", type=int, default=basin.SIZES["100k"]["n_assets"], help="assets in the basin "
                    "(default 100,000; fewer for a quick try)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=100, help="requests per client per endpoint")
    ap.add_argument("--rounds", type=int, default=2, help="measurements of each endpoint per mode (best kept)")
    ap.add_argument("--modes", default="open,tokens", help="open, tokens or both (comma-separated)")
    a = ap.parse_args()
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"open", "tokens"}:
        ap.error("--modes: give open, tokens or open,tokens")
    if a.clients < 1 or a.requests < 1 or a.rounds < 1:
        ap.error("--clients, --requests and --rounds must be at least 1")
    work = a.basin or Path(tempfile.mkdtemp(prefix="mlpe-bench-api-"))
    print(f"# API benchmark: python {sys.version.split()[0]}, {os.cpu_count()} cores, {a.clients} clients x "
          f"{a.requests} requests per endpoint, {load()}")
    try:
        db = build_basin(work, a.assets, a.seed)
        dbs, tokens = {}, {}
        for mode in modes:
            dbs[mode] = work / f"serve-{mode}.db"
            copy_store(db, dbs[mode])
            tokens[mode] = add_token(dbs[mode]) if mode == "tokens" else None
        out = measure(dbs, tokens, a.clients, a.requests, a.rounds, work / "serve.log", a.seed)
        for mode in modes:
            report(mode, out[mode])
        if len(out) == 2:
            print("\n  tokens / open:  throughput ratio, p95 ratio")
            for k in out["open"]["warm"]:
                o, t = out["open"]["warm"][k], out["tokens"]["warm"][k]
                print(f"    {k:30s} {t['rps'] / o['rps']:6.2f}x  {t['p95'] / o['p95']:6.2f}x")
    finally:
        if a.basin is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
