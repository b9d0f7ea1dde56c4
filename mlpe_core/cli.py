"""The ``mlpe`` command line (contract §3): what users' scripts and acceptance checks call.

Exit codes: 0 done; 2 bad input or usage, with one line on stderr naming the file, row and column;
1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sqlmodel import Session

from . import __version__

EXIT_OK, EXIT_FAIL, EXIT_BAD = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with one line, as the contract says
        raise UsageError(f"usage: {message} (see `mlpe --help`)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mlpe", description="Methane Leak Prioritization Engine")
    p.add_argument("--version", action="version", version=f"mlpe {__version__}")
    p.add_argument("--db", default=None, help="store path or SQLAlchemy URL (default $MLPE_DB or data/mlpe.db)")
    p.add_argument("--user", default=os.environ.get("MLPE_USER", os.environ.get("USER", "cli")),
                   help="who is acting (recorded in the audit trail)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ing = sub.add_parser("ingest", help="validate and load detection files")
    ing.add_argument("files", nargs="+", type=Path)
    ing.add_argument("--format", default="auto", choices=["auto", "canonical", "carbonmapper", "mars"])
    ing.add_argument("--source-name", default=None, help="override source_name for every row")
    ing.add_argument("--rejects", type=Path, default=None, help="write rejected rows with reasons to this CSV")

    assets = sub.add_parser("assets", help="asset registry")
    asub = assets.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ai = asub.add_parser("import", help="load or update assets")
    ai.add_argument("file", type=Path)

    sub.add_parser("fuse", help="group all detections into leaks")
    sc = sub.add_parser("score", help="score and rank every open leak")
    sc.add_argument("--as-of", default=None, help="ISO time to score at (default: latest detection)")

    val = sub.add_parser("validations", help="field outcomes")
    vsub = val.add_subparsers(dest="action", required=True, parser_class=_Parser)
    vi = vsub.add_parser("import", help="record field outcomes from a CSV")
    vi.add_argument("file", type=Path)

    sub.add_parser("train", help="fit the scoring model from validations; promote only if better")

    ex = sub.add_parser("export", help="write leaks, detections, dispatch or validations")
    ex.add_argument("what", choices=["leaks", "detections", "dispatch", "validations"])
    ex.add_argument("-o", "--output", required=True, type=Path)
    ex.add_argument("--format", default="csv", choices=["csv", "geojson", "kml"])
    ex.add_argument("--top", type=int, default=None)

    demo = sub.add_parser("demo", help="fill the store with a simulated basin and run the pipeline")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--assets", type=int, default=2000, help="number of simulated assets")
    demo.add_argument("--if-empty", action="store_true", help="do nothing when the store already has detections")

    sub.add_parser("status", help="what the store holds")
    bk = sub.add_parser("backup", help="consistent copy of a SQLite store, safe while others write")
    bk.add_argument("-o", "--output", required=True, type=Path)
    rs = sub.add_parser("restore", help="replace the store with a backup made by `mlpe backup`")
    rs.add_argument("file", type=Path)
    return p


def _session(db: str | None) -> Session:
    from .db import get_engine

    return Session(get_engine(db))


def run(argv: list[str]) -> int:
    from .ingest import IngestError

    args = build_parser().parse_args(argv)
    out = sys.stdout
    if args.command == "ingest":
        from .ingest import ingest_file

        with _session(args.db) as s:
            # check every file's structure first: a bad file among several loads nothing
            from .ingest import read_table, to_canonical

            for f in args.files:
                to_canonical(read_table(f, str(f)), args.format, args.source_name, str(f))
            total = {"accepted": 0, "rejected": 0, "duplicate": 0}
            all_rejects = []
            for f in args.files:
                rep = ingest_file(s, f, args.format, args.source_name, user=args.user, label=str(f))
                print(rep.summary(), file=out)
                for r in rep.rejects.head(20).itertuples():
                    print(f"  rejected {f}, row {r.row}, column '{r.column}': {r.reason}", file=out)
                if len(rep.rejects) > 20:
                    print(f"  ... {len(rep.rejects) - 20} more (use --rejects FILE)", file=out)
                all_rejects.append(rep.rejects.assign(file=str(f)))
                total["accepted"] += rep.n_accepted
                total["rejected"] += rep.n_rejected
                total["duplicate"] += rep.n_duplicate
            if args.rejects:
                import pandas as pd

                pd.concat(all_rejects).to_csv(args.rejects, index=False)
            print(f"total: {total['accepted']} accepted, {total['rejected']} rejected, "
                  f"{total['duplicate']} already loaded", file=out)
        return EXIT_OK
    if args.command == "assets":
        from .store import import_assets

        with _session(args.db) as s:
            r = import_assets(s, args.file, user=args.user)
        print(f"{r['file']}: {r['rows']} rows, {r['new']} new, {r['updated']} updated, {r['rejected']} rejected", file=out)
        for x in r["rejects"].head(20).itertuples():
            print(f"  rejected {args.file}, row {x.row}, column '{x.column}': {x.reason}", file=out)
        return EXIT_OK
    if args.command == "fuse":
        from .pipeline import run_fuse

        with _session(args.db) as s:
            r = run_fuse(s, user=args.user, progress=_progress)
        print(f"fused {r['detections']} detections into {r['leaks']} leaks ({r.get('kept', 0)} kept ids, "
              f"{r.get('new', 0)} new, {r.get('retired', 0)} retired, {r.get('ambiguous', 0)} ambiguous detections)",
              file=out)
        return EXIT_OK
    if args.command == "score":
        import pandas as pd

        from .pipeline import run_score

        as_of = None
        if args.as_of:
            as_of = pd.to_datetime(args.as_of, utc=True, errors="coerce")
            if pd.isna(as_of):
                raise UsageError(f"--as-of '{args.as_of}' is not an ISO 8601 time")
        with _session(args.db) as s:
            r = run_score(s, as_of=as_of, user=args.user, progress=_progress)
        if not r["scored"]:
            print("no leaks to score: run `mlpe ingest` and `mlpe fuse` first", file=out)
        else:
            print(f"scored {r['scored']} leaks ({r['ranked']} open and ranked): {r['high']} HIGH, {r['medium']} MEDIUM, "
                  f"{r['low']} LOW; model version {r['model_version']}", file=out)
        return EXIT_OK
    if args.command == "validations":
        from .store import import_validations

        with _session(args.db) as s:
            r = import_validations(s, args.file, user=args.user)
        print(f"{r['file']}: {r['rows']} rows, {r['recorded']} recorded, {r['duplicates']} already recorded, "
              f"{r['rejected']} rejected", file=out)
        for x in r["rejects"].head(20).itertuples():
            print(f"  rejected {args.file}, row {x.row}, column '{x.column}': {x.reason}", file=out)
        return EXIT_OK
    if args.command == "train":
        from .pipeline import run_train

        with _session(args.db) as s:
            r = run_train(s, user=args.user)
        print(r["decision"], file=out)
        return EXIT_OK
    if args.command == "export":
        from .export import write
        from .pipeline import export_frame

        if args.top is not None and args.top < 0:
            raise UsageError("--top must be ≥ 0")
        with _session(args.db) as s:
            df = export_frame(s, args.what, args.top)
        if not args.output.parent.exists():
            raise IngestError(str(args.output), "output folder does not exist")
        tmp = args.output.with_name(args.output.name + ".part")
        write(df, tmp, args.format)
        tmp.replace(args.output)  # a reader never sees a half-written file
        print(f"wrote {len(df)} {args.what} rows to {args.output}", file=out)
        return EXIT_OK
    if args.command == "demo":
        from .pipeline import run_demo
        from .store import counts

        with _session(args.db) as s:
            if args.if_empty and counts(s)["detections"] > 0:
                print("store already has detections; demo not loaded", file=out)
                return EXIT_OK
            r = run_demo(s, seed=args.seed, n_assets=args.assets, progress=_progress)
        print(f"demo basin (seed {r['seed']}): {r['assets']} assets, {r['detections']} detections, "
              f"{r['fuse_leaks']} leaks, {r.get('validations', 0)} field outcomes", file=out)
        return EXIT_OK
    if args.command == "status":
        from .store import counts

        with _session(args.db) as s:
            for k, v in counts(s).items():
                print(f"{k}: {v}", file=out)
        return EXIT_OK
    if args.command == "backup":
        from .db import backup

        size = backup(args.db, args.output)
        print(f"backed up the store to {args.output} ({size / 1e6:.1f} MB)", file=out)
        return EXIT_OK
    if args.command == "restore":
        from .db import restore

        restore(args.db, args.file)
        print(f"restored the store from {args.file}", file=out)
        return EXIT_OK
    raise UsageError(f"unknown command {args.command}")


def _progress(frac: float, text: str) -> None:
    if sys.stderr.isatty():
        print(f"\r[{frac:4.0%}] {text:60s}", end="" if frac < 1 else "\n", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    from .comply import RuleError
    from .ingest import IngestError

    argv = sys.argv[1:] if argv is None else argv
    try:
        code = run(argv)
    except UsageError as exc:
        print(f"mlpe: {exc}", file=sys.stderr)
        code = EXIT_BAD
    except SystemExit as exc:  # --help / --version
        code = exc.code if isinstance(exc.code, int) else EXIT_OK
    except (IngestError, RuleError) as exc:
        print(f"mlpe: {exc}", file=sys.stderr)
        code = EXIT_BAD
    except (KeyError, ValueError) as exc:
        print(f"mlpe: {exc}", file=sys.stderr)
        code = EXIT_BAD
    except KeyboardInterrupt:
        print("mlpe: interrupted; nothing partial was written", file=sys.stderr)
        code = EXIT_FAIL
    except Exception as exc:  # noqa: BLE001 - the contract's exit 1
        print(f"mlpe: unexpected failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = EXIT_FAIL
    return code


if __name__ == "__main__":
    sys.exit(main())
