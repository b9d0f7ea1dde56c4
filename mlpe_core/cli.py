"""The ``mlpe`` command line (contract §3): what users' scripts and acceptance checks call.

Exit codes: 0 done; 2 bad input or usage, with one line on stderr naming the file, row and column;
1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__

EXIT_OK, EXIT_FAIL, EXIT_BAD = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with one line, as the contract says
        # prog is the command as typed so far ("mlpe export", "mlpe dispatch plan"): its help is the one to read
        raise UsageError(f"usage: {message} (see `{self.prog} --help`)")


DESCRIPTION = """\
Methane Leak Prioritization Engine: loads methane detections from satellites, aircraft,
continuous monitors, SCADA and OGI crews, groups them into leaks, ranks the leaks by what a
crew visit is worth, and plans the crews' day. Every command works on one store (--db: a
SQLite file, or a SQLAlchemy URL for a shared database)."""

EPILOG = """\
examples:
  mlpe ingest plumes.csv cms_alarms.csv   validate and load detection files
  mlpe fuse                               group the detections into leaks
  mlpe score                              score and rank every open leak, with reasons
  mlpe export leaks -o leaks.csv          the ranked leaks (also --format geojson, kml, xlsx)
  mlpe dispatch plan --top 12             a routed day for the crews (a draft until approved)

`mlpe COMMAND --help` tells more about each command. Exit codes: 0 done; 2 bad input or
usage (one line on stderr naming the file, row and column); 1 an unexpected failure."""

# What `mlpe COMMAND --help` says above the options, where a line more than the list's one is worth it (the others
# repeat their line of the list)
DESCRIPTIONS = {
    "mlpe ingest": "Validate detection files and load their good rows: the canonical CSV (contract §1), Carbon Mapper "
                   "and MARS plume lists, monitor and SCADA exports (the format is recognised from the header unless "
                   "--format says). Bad rows are rejected one by one with file, row, column and reason; a file that "
                   "cannot be read or lacks a required column loads nothing. Loading a file twice changes nothing.",
    "mlpe assets import": "Load or update the asset registry from a CSV with asset_id, latitude, longitude and "
                          "optionally asset_type and operator. Assets already known are updated; bad rows are "
                          "rejected with their reasons.",
    "mlpe validations import": "Record what field crews found, from a CSV with leak_id, visited_at, outcome "
                               "(confirmed, not_found, already_repaired, not_accessible) and optionally "
                               "measured_rate_kg_h, component, repaired_at, crew, notes. Visited leaks leave the "
                               "ranking; an outcome already recorded is not recorded twice.",
    "mlpe notifications import": "Record regulators' and programs' notices (CSV, XLSX or JSON with notification_id, "
                                 "received_at, program and detection_ref or latitude/longitude), match each to the "
                                 "leak it concerns and start the legal clocks its program triggers. A notification "
                                 "already recorded adds nothing.",
    "mlpe train": "Fit the scoring model on the recorded field outcomes and promote it only if it beats the current "
                  "model on held-out data; prints the decision.",
    "mlpe status": "Count what the store holds: detections, leaks, assets, validations, batches and models.",
}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mlpe", description=DESCRIPTION, epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"mlpe {__version__}")
    p.add_argument("--db", default=None, help="store path or SQLAlchemy URL (default $MLPE_DB or data/mlpe.db)")
    p.add_argument(
        "--user",
        default=None,
        help="who is acting (default $MLPE_USER, else $USER). Once the store has users, prove it with "
        "$MLPE_PASSWORD (or the prompt in a terminal) or use $MLPE_TOKEN instead",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    ing = sub.add_parser("ingest", help="validate and load detection files")
    ing.add_argument("files", nargs="+", type=Path, metavar="FILE",
                     help="detection files: CSV, XLSX, Parquet, GeoJSON or JSON")
    ing.add_argument(
        "--format", default="auto", choices=["auto", "canonical", "carbonmapper", "mars", "cms", "scada", "cms_report",
                                             "cms_windows", "aircraft_report", "coverage"],
        help="the files' format (default auto: recognised from each file's header)",
    )  # = ingest.FORMATS
    ing.add_argument("--source-name", default=None, help="override source_name for every row")
    ing.add_argument("--asset", default=None, help="the site of files that name none (monitor and aircraft reports)")
    ing.add_argument("--rejects", type=_output_file, default=None, metavar="FILE",
                     help="write rejected rows with reasons to this CSV")

    assets = sub.add_parser("assets", help="asset registry")
    asub = assets.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ai = asub.add_parser("import", help="load or update assets")
    ai.add_argument("file", type=Path, help="CSV: asset_id, latitude, longitude[, asset_type, operator]")

    fz = sub.add_parser("fuse", help="group all detections into leaks")
    fz.add_argument(
        "--full",
        action="store_true",
        help="re-fuse every detection (default: only the area that detections new since the last fuse affect)",
    )
    sc = sub.add_parser("score", help="score and rank every open leak")
    sc.add_argument("--as-of", default=None, help="ISO 8601 time to score at (default: now)")

    val = sub.add_parser("validations", help="field outcomes")
    vsub = val.add_subparsers(dest="action", required=True, parser_class=_Parser)
    vi = vsub.add_parser("import", help="record field outcomes from a CSV")
    vi.add_argument("file", type=Path, help="CSV: leak_id, visited_at, outcome[, measured_rate_kg_h, component, "
                    "repaired_at, crew, notes]")

    nt = sub.add_parser("notifications", help="notices (EPA super-emitter, MARS, state) that start legal clocks")
    nsub = nt.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ni = nsub.add_parser("import", help="record notifications from a CSV, XLSX or JSON file and match them to leaks")
    ni.add_argument("file", type=Path, help="CSV, XLSX or JSON: notification_id, received_at, program[, notifier, "
                    "detection_ref, latitude, longitude, rate_kg_h, notes]")

    sub.add_parser("train", help="fit the scoring model from validations; promote only if better")

    ex = sub.add_parser("export", help="write leaks, detections, dispatch or validations")
    ex.add_argument("what", choices=["leaks", "detections", "dispatch", "validations"],
                    help="ranked leaks, detections with their leak, the next visits, or the field outcomes")
    ex.add_argument("-o", "--output", required=True, type=_output_file, metavar="FILE",
                    help="the file to write (whole or not at all)")
    ex.add_argument(
        "--format",
        default=None,
        choices=["csv", "geojson", "kml", "xlsx", "workorder"],
        help="csv and geojson are for machines (the contract's columns, kg/h); kml and xlsx for people (labels, "
             "--unit); workorder: JSON work orders for maintenance systems (dispatch only; docs/workorder.schema.json)."
             " Default: what the file's name says (.csv, .geojson or .json, .kml, .xlsx; any other name: csv); a "
             "format the name contradicts is refused",
    )
    ex.add_argument("--top", type=_count, default=None, metavar="K",
                    help="leaks: the K first in rank order; dispatch: the K leaks to visit next (default: the crews' "
                         "capacity for a day); detections: the detections of the K first leaks, in their rank order. "
                         "Not for validations: field outcomes have no rank, so a K there would be arbitrary")
    ex.add_argument("--unit", default="kg/h", choices=["kg/h", "scf/h", "Mcf/d", "t/yr"],
                    help="rates in files for people (kml descriptions, xlsx); csv and geojson stay in kg/h")

    demo = sub.add_parser("demo", help="fill the store with a simulated basin and run the pipeline")
    demo.add_argument("--seed", type=_count, default=0, help="random seed of the simulated basin (default 0; the same "
                      "seed gives the same basin)")
    demo.add_argument("--assets", type=_at_least_two, default=2000, help="number of simulated assets (at least 2)")
    demo.add_argument("--if-empty", action="store_true", help="do nothing when the store already has detections")

    sub.add_parser("status", help="what the store holds")
    rk = sub.add_parser("ranking", help="the effective ranking: the model's order with supervisors' overrides; "
                                        "marks and deadlines are shown beside it (the dispatch list, not this order, "
                                        "puts overdue leaks first)")
    rk.add_argument("--top", type=_count, default=None, metavar="K", help="only the K best-ranked leaks (default: all)")
    rk.add_argument("--json", action="store_true", help="one JSON list of objects on stdout")
    ob = sub.add_parser("obligations", help="every running regulatory clock, soonest first")
    ob.add_argument("--json", action="store_true", help="one JSON list of objects on stdout")
    si = sub.add_parser("sites", help="roll-up per site: leaks, expected kg/h, repairs, clocks met, trend")
    si.add_argument("--json", action="store_true", help="one JSON list of objects on stdout")
    op = sub.add_parser("operators", help="roll-up per operator: leaks, repairs, clocks met, false alarms, worsening")
    op.add_argument("--json", action="store_true", help="one JSON list of objects on stdout")
    rp = sub.add_parser("report", help="the regulator's report for an operator and period (PDF, XLSX or JSON)")
    rp.add_argument("--operator", required=True, help="the operator, as the asset registry names it")
    rp.add_argument("--from", dest="start", default=None, help="YYYY-MM-DD (default: the last full quarter)")
    rp.add_argument("--to", dest="end", default=None, help="YYYY-MM-DD, included")
    rp.add_argument("-o", "--output", required=True, type=_output_file, metavar="FILE",
                    help="FILE.pdf, FILE.xlsx or FILE.json")
    us = sub.add_parser("users", help="users and roles (the first user must be an admin; it ends open mode)")
    usub = us.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ua = usub.add_parser("add", help="add a user (admins); the new password is read from $MLPE_NEW_PASSWORD "
                         "(for the first admin also $MLPE_PASSWORD) or asked for")
    ua.add_argument("username", help="1-64 ASCII letters, digits, '.', '_' or '-'")
    ua.add_argument("--role", required=True, choices=["analyst", "supervisor", "field_lead", "admin"],
                    help="what the user may do (docs: roles)")
    usub.add_parser("list", help="list users and roles (admins)")
    tk = usub.add_parser("token", help="API and command-line tokens (admins): shown once, stored as a hash")
    tsub = tk.add_subparsers(dest="token_action", required=True, parser_class=_Parser)
    tc = tsub.add_parser("create", help="create a token for a user and print it once")
    tc.add_argument("username", help="the user the token acts as")
    tc.add_argument("--label", default=None, help="what the token is for, e.g. the system that uses it")
    tc.add_argument("--expires-days", type=float, default=None, help="default: does not expire until revoked")
    tr = tsub.add_parser("revoke", help="revoke a token by its id (see `mlpe users token list`)")
    tr.add_argument("token_id", type=int, help="the token's id")
    tsub.add_parser("list", help="every token: id, user, label, kind, created, expires, revoked")
    au = sub.add_parser("audit", help="the audit trail")
    ausub = au.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ausub.add_parser("verify", help="check the hash chains of the audit trail and leak history; "
                     "exit 1 naming the first broken link")
    bk = sub.add_parser("backup", help="consistent copy of a SQLite store, safe while others write (admins)")
    bk.add_argument("-o", "--output", required=True, type=_output_file, metavar="FILE",
                    help="the backup file (must not exist)")
    rs = sub.add_parser("restore", help="replace the store with a backup made by `mlpe backup` (admins; audited; "
                        "the replaced store is kept beside it)")
    rs.add_argument("file", type=Path, help="a backup made by `mlpe backup`")
    rs.add_argument("--allow-open-mode", action="store_true",
                    help="restore a backup without users into a store that has them (sign-in is switched off)")
    _add_ops_parsers(sub)
    _add_live_parsers(sub)
    _describe(p)
    return p


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give every sub-command's own --help a description: its entry of DESCRIPTIONS, else its line in the list
    (argparse shows that line only in the parent's list, so `mlpe train --help` said nothing but -h)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sp = action.choices[choice.dest]
                if sp.description is None:
                    text = DESCRIPTIONS.get(sp.prog) or choice.help or ""
                    sp.description = text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
                _describe(sp)


_ENGINES: dict = {}


def _session(db: str | None):
    from sqlmodel import Session

    from .store.db import get_engine

    if db not in _ENGINES:  # one engine (and one migration check) per command
        _ENGINES[db] = get_engine(db)
    return Session(_ENGINES[db])


# the API authenticates each request itself; status counts rows; config reads no store
NO_IDENTITY = ("serve", "status", "config")


def _acting_user(args) -> str:
    """Who this command acts as (``auth.resolve_actor``): the name given while the store has no users; once it
    has, the owner of ``$MLPE_TOKEN`` or the user whose password ``$MLPE_PASSWORD`` (or the prompt) gives."""
    from .auth import PermissionDenied, open_mode, resolve_actor

    named = args.user or os.environ.get("MLPE_USER")
    with _session(args.db) as s:
        if open_mode(s):
            if named:
                return resolve_actor(s, named, default="cli")
            try:  # the login name is only a default: one that cannot be recorded (a space, 'system') is not fatal
                return resolve_actor(s, os.environ.get("USER"), default="cli")
            except PermissionDenied:
                return "cli"
        token = os.environ.get("MLPE_TOKEN")
        password = os.environ.get("MLPE_PASSWORD")
        if not token and password is None and sys.stdin.isatty():
            import getpass

            named = named or os.environ.get("USER")
            password = getpass.getpass(f"password for {named}: ")
        return resolve_actor(s, named if token else (named or os.environ.get("USER")), password=password,
                             token=token)


def _count(value: str) -> int:
    """A ``--top`` or ``--limit``: a whole number ≥ 0."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, not {n}")
    return n


def _at_least_two(value: str) -> int:
    n = _count(value)
    if n < 2:
        raise argparse.ArgumentTypeError(f"a basin needs at least 2 assets, not {n}")
    return n


def _output_file(value: str) -> Path:
    """An ``-o`` file: refused here, before anything is read or written, when it names a folder, a device or a pipe
    (the file is written beside it and moved into place: that would replace ``/dev/stdout`` itself). A link is
    followed to the file it names."""
    if value.endswith(("/", os.sep)) or Path(value).is_dir():
        raise argparse.ArgumentTypeError(f"{value} names a folder; give a file name")
    p = Path(value)
    if p.is_symlink():  # a link to a file: write the file it points to, and keep the link
        p = p.resolve()
    if p.exists() and not p.is_file():
        raise argparse.ArgumentTypeError(f"{value} is not a plain file (a device or a pipe): give a file name")
    return p


def _check_usage(args) -> None:
    """The checks of the arguments argparse cannot make, before the store is opened."""
    if args.command == "export" and args.top is not None and args.what == "validations":
        from .desk import NO_TOP_VALIDATIONS

        raise UsageError(NO_TOP_VALIDATIONS)
    if (args.command == "export" or (args.command == "dispatch" and args.action == "show")) and args.output:
        from .export import format_for

        try:  # the file's name says the format when --format does not; a name and a format that disagree: refused
            args.format = format_for(args.output, args.format)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    if args.command == "export" and args.format == "workorder" and args.what != "dispatch":
        raise UsageError(f"--format workorder is for `export dispatch`, not `export {args.what}`")
    if args.command == "report" and args.output.suffix.lower() not in (".pdf", ".xlsx", ".json"):
        raise UsageError(f"-o {args.output}: the report is written as .pdf, .xlsx or .json")


# Commands that only read the store, or act on what it already holds (a leak, list, work order, alert, user or
# token named by id): on a SQLite file that does not exist they stop (exit 2) instead of creating an empty store, so
# a mistyped --db is said at once (a dispatch plan needs a ranking, alert deliveries need alerts). The others
# (ingest, imports, demo, fuse, score, train, watch, pull, serve, users add, alerts check, restore) create the store,
# as the first command on a new one does.
NEEDS_STORE = {"export", "status", "ranking", "obligations", "sites", "operators", "report", "runs", "backup",
               "audit", "leak", "workorder"}
NEEDS_STORE_ACTIONS = {"dispatch": {"plan", "approve", "withdraw", "list", "show"},
                       "alerts": {"list", "ack", "snooze", "deliver"},
                       "users": {"list", "token"}}


def _needs_store(args) -> bool:
    return args.command in NEEDS_STORE or getattr(args, "action", None) in NEEDS_STORE_ACTIONS.get(args.command, ())


def _require_store(db: str | None) -> None:
    """Exit 2 when ``db`` names a SQLite file that does not exist (nothing is created)."""
    from .store.db import sqlite_file

    path = sqlite_file(db)
    if path is not None and not path.exists():
        raise UsageError(f"no store at {path} (create one with `mlpe demo` or `mlpe ingest FILE`)")


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    out = sys.stdout
    _check_usage(args)
    if _needs_store(args):
        _require_store(args.db)
    if args.command not in NO_IDENTITY:
        args.user = _acting_user(args)
    if args.command == "ingest":
        from . import desk

        with _session(args.db) as s:
            reports = desk.ingest(s, args.user, args.files, args.format, args.source_name, asset=args.asset)
            total = {"accepted": 0, "rejected": 0, "duplicate": 0}
            all_rejects = []
            for f, rep in zip(args.files, reports, strict=True):
                print(rep.summary(), file=out)
                _print_rejects(f, rep.rejects, out, hint="use --rejects FILE")
                all_rejects.append(rep.rejects.assign(file=str(f)))
                total["accepted"] += rep.n_accepted
                total["rejected"] += rep.n_rejected
                total["duplicate"] += rep.n_duplicate
            if args.rejects:
                import pandas as pd

                from .export import write_csv

                _atomic_write(args.rejects, lambda p: write_csv(pd.concat(all_rejects), p))
            print(
                f"total: {total['accepted']} accepted, {total['rejected']} rejected, "
                f"{total['duplicate']} already loaded",
                file=out,
            )
        return EXIT_OK
    if args.command == "assets":
        from . import desk

        with _session(args.db) as s:
            r = desk.import_assets(s, args.user, args.file)
        print(
            f"{r['file']}: {r['rows']} rows, {r['new']} new, {r['updated']} updated, {r['rejected']} rejected", file=out
        )
        _print_rejects(args.file, r["rejects"], out)
        return EXIT_OK
    if args.command == "fuse":
        from . import desk
        from .pipeline import fuse_summary

        with _session(args.db) as s:
            r = desk.fuse(s, args.user, full=args.full, progress=_progress)
        print(fuse_summary(r), file=out)
        return EXIT_OK
    if args.command == "score":
        from . import desk

        as_of = _when(args.as_of, "--as-of")
        with _session(args.db) as s:
            r = desk.score(s, args.user, as_of, progress=_progress)
        if not r["scored"]:
            print("no leaks to score: run `mlpe ingest` and `mlpe fuse` first", file=out)
        else:
            print(
                f"scored {r['scored']} leaks as of {r['as_of']:%Y-%m-%d %H:%M} UTC ({r['ranked']} open and ranked): "
                f"{r['high']} HIGH, {r['medium']} MEDIUM, {r['low']} LOW; model version {r['model_version']}",
                file=out,
            )
        return EXIT_OK
    if args.command == "validations":
        from . import desk

        with _session(args.db) as s:
            r = desk.import_outcomes(s, args.user, args.file)
        ch = r["changes"]
        print(
            f"{r['file']}: {r['rows']} rows, {r['recorded']} recorded, {r['duplicates']} already recorded, "
            f"{r['rejected']} rejected; {len(ch['left_ranking'])} leaks left the ranking, {ch['moved']} others moved",
            file=out,
        )
        _print_rejects(args.file, r["rejects"], out)
        return EXIT_OK
    if args.command == "notifications":
        from . import desk

        with _session(args.db) as s:
            r = desk.import_notifications(s, args.user, args.file)
        print(
            f"{r['file']}: {r['rows']} rows, {r['recorded']} recorded, {r['duplicates']} already recorded, "
            f"{r['matched']} matched to a leak, {r['unmatched']} unmatched, {r['rejected']} rejected",
            file=out,
        )
        _print_rejects(args.file, r["rejects"], out)
        return EXIT_OK
    if args.command == "train":
        from . import desk

        with _session(args.db) as s:
            r = desk.train(s, args.user)
        print(r["decision"], file=out)
        return EXIT_OK
    if args.command == "export":
        from . import desk
        from .export import write

        if args.format == "workorder":
            from .export import write_workorders

            with _session(args.db) as s:
                doc = desk.work_orders(s, top=args.top)
            _atomic_write(args.output, lambda p: write_workorders(doc, p))
            print(f"wrote {len(doc['work_orders'])} work orders (draft, routed per crew) to {args.output}", file=out)
            return EXIT_OK
        if args.format == "xlsx":
            from .export import write_xlsx

            with _session(args.db) as s:
                sheets = desk.workbook(s, args.what, args.top, args.unit)
            _atomic_write(args.output, lambda p: write_xlsx(sheets, p))
            n = len(next(iter(sheets.values()))[0]) if sheets else 0
            print(f"wrote a workbook of {len(sheets)} sheets ({', '.join(sheets)}; {n} rows in the first) to "
                  f"{args.output}", file=out)
            return EXIT_OK
        with _session(args.db) as s:  # dispatch: the routed file every face writes (desk.dispatch_file)
            df = desk.dispatch_file(s, args.top) if args.what == "dispatch" else desk.export_frame(s, args.what,
                                                                                                   args.top)
        table = {"detections": "detections", "validations": "validations"}.get(args.what, "leaks")
        title = desk.dispatch_title() if args.what == "dispatch" else f"MLPE {args.what}"
        _atomic_write(args.output, lambda p: write(df, p, args.format, args.unit, table, title))
        print(f"wrote {len(df)} {args.what} rows to {args.output}", file=out)
        return EXIT_OK
    if args.command == "demo":
        from . import desk

        with _session(args.db) as s:
            if args.if_empty and desk.status(s)["detections"] > 0:
                print("store already has detections; demo not loaded", file=out)
                return EXIT_OK
            r = desk.demo(s, args.user, seed=args.seed, n_assets=args.assets, progress=_progress)
        print(
            f"demo basin (seed {r['seed']}): {r['assets']} assets, {r['detections']} detections, "
            f"{r['fuse_leaks']} leaks, {r.get('validations', 0) + r.get('compliance_visits', 0)} field outcomes "
            f"({r.get('validations', 0)} visits after its detections, {r.get('compliance_visits', 0)} past compliance "
            "visits)",
            file=out,
        )
        return EXIT_OK
    if args.command == "status":
        from . import desk

        with desk.engine(args.db).connect() as conn:  # no ORM session: counting rows needs no table classes
            for k, v in desk.status(conn).items():
                print(f"{k}: {v}", file=out)
        return EXIT_OK
    if args.command in ("ranking", "obligations", "sites", "operators"):
        return _print_table(args, out)
    if args.command == "report":
        from . import desk

        fmt = args.output.suffix.lower().lstrip(".")
        with _session(args.db) as s:
            rep = desk.report(s, args.operator, args.start, args.end, user=args.user)
        data = desk.render_report(rep, fmt)
        _atomic_write(args.output, lambda p: p.write_bytes(data))
        m = rep.meta
        print(f"wrote the report of {m['operator']} for {m['period_start']:%Y-%m-%d} to {m['period_end']:%Y-%m-%d} "
              f"to {args.output}: {len(rep.notifications)} notifications, {len(rep.ldar)} LDAR findings, "
              f"{len(rep.action_levels)} action-level exceedances", file=out)
        return EXIT_OK
    if args.command == "users":
        return _run_users(args, out)
    if args.command == "audit":
        from .store.audit import verify_all

        with _session(args.db) as s:
            reports = verify_all(s)
        for r in reports:
            print(r.line(), file=out)
        broken = [r for r in reports if not r.ok]
        if broken:
            print(f"mlpe: audit trail tampered with: {broken[0].line()}", file=sys.stderr)
            return EXIT_FAIL
        return EXIT_OK
    if args.command == "backup":
        from .auth import require
        from .store.db import backup

        with _session(args.db) as s:
            require(s, args.user, "backup")
        size = backup(args.db, args.output)
        print(f"backed up the store to {args.output} ({size / 1e6:.1f} MB)", file=out)
        return EXIT_OK
    if args.command == "restore":
        from .auth import require
        from .store.db import restore

        with _session(args.db) as s:
            require(s, args.user, "restore")
        for eng in _ENGINES.values():
            eng.dispose()  # no pooled connection holds the old store open while it is replaced
        kept = restore(args.db, args.file, actor=args.user, allow_open_mode=args.allow_open_mode)
        print(f"restored the store from {args.file} (recorded in its audit trail; the replaced store is kept as "
              f"{kept})", file=out)
        return EXIT_OK
    if args.command in OPS_COMMANDS:
        return _run_ops(args, out)
    if args.command in LIVE_COMMANDS:
        return _run_live(args, out)
    raise UsageError(f"unknown command {args.command}")


TABLES = {
    "ranking": ["rank", "leak_id", "risk_band", "p_real", "est_rate_kg_h", "priority_score", "due_by", "asset_id",
                "status", "marked", "override_reason", "top_reasons"],
    "obligations": ["due_by", "state", "leak_id", "site", "title", "action", "started_text", "citation", "rank",
                    "status"],
    "sites": ["asset_id", "n_leaks", "n_open", "expected_kg_h", "n_confirmed", "n_repaired", "median_days_to_repair",
              "met_on_time", "met_late", "overdue", "worsening", "operator", "asset_type"],
    "operators": ["operator", "n_leaks", "n_sites", "n_open", "expected_kg_h", "n_confirmed", "n_repaired",
                  "median_days_to_repair", "on_time_share", "false_alarm_share", "n_worsening"],
}
PEOPLE_TABLES = {"ranking": "leaks", "obligations": "obligations"}  # the presentation layer's tables they show
EMPTY = {"ranking": "no ranked leak (run `mlpe score`)", "obligations": "no compliance clock is running",
         "sites": "no site has a leak (run `mlpe fuse`)", "operators": "no leak at an operator's site"}


def _print_table(args, out) -> int:
    """``mlpe ranking``, ``obligations``, ``sites`` and ``operators``: a table, or with ``--json`` one JSON list of
    objects (every column the desk returns; the table shows the main ones)."""
    import json

    from . import desk

    with _session(args.db) as s:
        if args.command == "ranking":
            df = desk.ranking(s, desk.LeakFilter(ranked_only=True))
            df = df.head(args.top) if args.top is not None else df
        elif args.command == "obligations":
            df = desk.obligations(s)
        elif args.command == "sites":
            df = desk.sites(s)
        else:
            df = desk.operators(s)
    if args.command in ("ranking", "obligations"):
        df = df.reindex(columns=TABLES[args.command])
    if args.json:
        from .export import json_records

        print(json.dumps(json_records(df)), file=out)
    elif df.empty:
        print("nothing to show: " + EMPTY[args.command], file=out)
    elif args.command in PEOPLE_TABLES:
        from .present import text_table

        print(text_table(df, PEOPLE_TABLES[args.command], TABLES[args.command]), file=out)
    else:  # sites, operators: the contract (§3) names their columns, so the headers stay; values in words, blanks
        from .present import label

        t = df.reindex(columns=TABLES[args.command]).round(2).astype(object)
        if "asset_type" in t:
            t["asset_type"] = t["asset_type"].map(lambda v: label("asset_type", v) if isinstance(v, str) else v)
        if "worsening" in t:
            t["worsening"] = t["worsening"].map(lambda v: {True: "yes", False: "no"}.get(v, v))
        print(t.where(t.notna(), "").to_string(index=False, max_colwidth=60), file=out)
    return EXIT_OK


def _new_password(s, username: str) -> str:
    """The password for a new account: $MLPE_NEW_PASSWORD, for the first admin also $MLPE_PASSWORD (the acting
    admin's own password proves identity once users exist, so it is never reused), else asked twice."""
    from .auth import open_mode

    password = os.environ.get("MLPE_NEW_PASSWORD")
    if password is None and open_mode(s):
        password = os.environ.get("MLPE_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("set MLPE_NEW_PASSWORD or run in a terminal to be asked for the new user's password")
        import getpass

        password = getpass.getpass(f"new password for {username}: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    return password


def _run_users(args, out) -> int:
    """``mlpe users add | list | token create | token revoke | token list`` (admins, once users exist)."""
    from . import auth

    with _session(args.db) as s:
        if args.action == "list":
            auth.require(s, args.user, "manage_users")
            for u in auth.store.users(s):
                print(f"{u.username}\t{u.role}\t{'active' if u.active else 'inactive'}", file=out)
            return EXIT_OK
        if args.action == "add":
            auth.add_user(s, args.user, args.username, args.role, _new_password(s, args.username))
            print(f"added {args.username} ({args.role})", file=out)
            return EXIT_OK
        if args.token_action == "create":
            token, rec = auth.create_token(s, args.user, args.username, args.label, args.expires_days)
            print(f"token {rec.id} for {rec.username} (shown once; store it now):", file=sys.stderr)
            print(token, file=out)
            return EXIT_OK
        if args.token_action == "revoke":
            rec = auth.revoke_token(s, args.user, args.token_id)
            print(f"token {rec.id} of {rec.username} revoked", file=out)
            return EXIT_OK
        for t in auth.tokens(s, args.user):
            state = "revoked" if t.revoked_at else "active"
            print(f"{t.id}\t{t.username}\t{t.kind}\t{t.label or '-'}\t{t.created_at:%Y-%m-%d}\t"
                  f"{f'{t.expires_at:%Y-%m-%d}' if t.expires_at else 'never'}\t{state}", file=out)
        return EXIT_OK


# ------------------------------------------------------------------ serve, dispatch lists, work orders, lifecycle

OPS_COMMANDS = ("serve", "dispatch", "workorder", "leak")


def _add_ops_parsers(sub) -> None:
    sv = sub.add_parser("serve", help="start the HTTP API for other systems (OpenAPI docs at /docs)")
    sv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine)")
    sv.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")

    dp = sub.add_parser("dispatch", help="plan, approve and export routed dispatch lists")
    dsub = dp.add_subparsers(dest="action", required=True, parser_class=_Parser)
    pl = dsub.add_parser("plan", help="plan one day's routed list from the ranking (a draft until approved)")
    pl.add_argument("--top", type=_count, default=None, metavar="K",
                    help="stops (default: the crews' capacity for a day)")
    pl.add_argument("--date", default=None, help="YYYY-MM-DD the crews go out (default today)")
    pl.add_argument("--note", default=None, help="a note kept with the plan")
    ap = dsub.add_parser("approve", help="supervisor approval: the list becomes final, its leaks dispatched")
    ap.add_argument("list_id", type=int, help="the list's id (see `mlpe dispatch list`)")
    ap.add_argument("--note", default=None, help="a note kept with the approval")
    wd = dsub.add_parser("withdraw", help="withdraw a list (its leaks not yet visited return to open)")
    wd.add_argument("list_id", type=int, help="the list's id (see `mlpe dispatch list`)")
    dsub.add_parser("list", help="every dispatch list")
    sh = dsub.add_parser("show", help="a list's stops per crew, or write them to a file")
    sh.add_argument("list_id", type=int, help="the list's id (see `mlpe dispatch list`)")
    sh.add_argument("-o", "--output", type=_output_file, default=None, metavar="FILE",
                    help="write the stops to this file (default: print them)")
    sh.add_argument("--format", default=None, choices=["csv", "geojson", "kml", "xlsx", "workorder"],
                    help="the file's format (geojson and kml carry the routes); default: what the file's name says "
                         "(.csv, .geojson or .json, .kml, .xlsx; else csv)")
    sh.add_argument("--unit", default="kg/h", choices=["kg/h", "scf/h", "Mcf/d", "t/yr"],
                    help="rates in files for people (kml descriptions, xlsx)")

    wo = sub.add_parser("workorder", help="record a work order's progress (as a maintenance system would)")
    wo.add_argument("id", help="work order id (MLPE-00001-L000123) or leak id")
    wo.add_argument(
        "status",
        choices=["dispatched", "in_progress", "repair_attempted", "repaired", "delayed", "closed", "cancelled"],
        help="the work order's new status",
    )
    wo.add_argument("--at", default=None, help="when (ISO 8601; default now)")
    wo.add_argument("--crew", default=None, help="the crew that did the work")
    wo.add_argument("--note", default=None, help="a note kept in the leak's history")
    wo.add_argument("--reason", default=None, help="why repair is delayed (status delayed)")

    lk = sub.add_parser("leak", help="a leak's lifecycle: history and deadlines, or close / reopen / release")
    lsub = lk.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ls = lsub.add_parser("show", help="status, deadlines and lifecycle history")
    ls.add_argument("leak_id", help="e.g. L000123")
    le = lsub.add_parser("set", help="close a repaired or not-found leak, reopen one, or release a dispatched one")
    le.add_argument("leak_id", help="e.g. L000123")
    le.add_argument("event", choices=["close", "reopen", "release", "dispatch"],
                    help="dispatch marks the leak for the next plan whatever its rank")
    le.add_argument("--at", default=None, help="when (ISO 8601; default now)")
    le.add_argument("--note", default=None, help="a note kept in the leak's history")
    lo = lsub.add_parser("override", help="a supervisor moves a leak to a rank, with the reason (recorded)")
    lo.add_argument("leak_id", help="e.g. L000123")
    lo.add_argument("--rank", type=int, default=None, help="the rank to move it to (1 = visit first)")
    lo.add_argument("--clear", action="store_true", help="go back to the model's rank")
    lo.add_argument("--reason", required=True, help="why (recorded: evidence for the regulator)")


def _when(value: str | None, flag: str = "--at"):
    import pandas as pd

    if value is None:
        return None
    t = pd.to_datetime(value, utc=True, errors="coerce")
    if pd.isna(t):
        raise UsageError(f"{flag} '{value}' is not an ISO 8601 time")
    return t


def _atomic_write(path: Path, write_fn) -> None:
    """Write ``path`` whole or not at all: ``write_fn`` writes ``path.part`` beside it, which then replaces ``path``.
    The ``.part`` file never stays behind, whatever fails; a missing folder or a place that cannot be written is bad
    input (exit 2) naming the path (a folder, a device or a pipe as ``path`` was refused with the arguments:
    :func:`_output_file`)."""
    if not path.parent.is_dir():
        raise UsageError(f"{path}: output folder does not exist")
    tmp = path.with_name(path.name + ".part")
    try:
        write_fn(tmp)
        tmp.replace(path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc} (check the folder's permissions and free "
                         "space, or give another -o)") from exc
    finally:
        tmp.unlink(missing_ok=True)  # gone after a successful replace; a partial file after any failure


def _run_ops(args, out) -> int:
    if args.command == "serve":
        from .api import serve

        print(f"MLPE API on http://{args.host}:{args.port} (docs at /docs); Ctrl-C stops it", file=out, flush=True)
        serve(args.db, args.host, args.port)
        return EXIT_OK
    from . import desk

    with _session(args.db) as s:
        if args.command == "dispatch":
            return _dispatch(s, args, out)
        if args.command == "workorder":
            from .store import item_by_work_order

            is_wo = item_by_work_order(s, args.id) is not None
            r = desk.set_work_order_status(s, args.user, args.status, work_order_id=args.id if is_wo else None,
                                           leak_id=None if is_wo else args.id, at=_when(args.at), crew=args.crew,
                                           note=args.note, reason=args.reason)
            print(f"{args.id}: {args.status}; leak {r['leak_id']} is now {r['leak_status']}", file=out)
            return EXIT_OK
        if args.action == "set":
            status = desk.leak_event(s, args.user, args.leak_id, args.event, _when(args.at), note=args.note,
                                     source="cli")
            print(f"leak {args.leak_id} is now {status}", file=out)
            return EXIT_OK
        if args.action == "override":
            if args.rank is None and not args.clear:
                raise UsageError("give --rank N, or --clear to go back to the model's rank")
            print(desk.override_rank(s, args.user, args.leak_id, None if args.clear else args.rank, args.reason),
                  file=out)
            return EXIT_OK
        d = desk.leak_detail(s, args.leak_id)
    from . import present as pr

    L = d["leak"]
    flag = " (possible failed repair: seen again after repair)" if L["failed_repair"] else ""
    rank = f"rank {L['rank']}" if L["rank"] is not None else "not ranked"
    risk = f"{pr.label('band', L['risk_band'])} risk" if L["risk_band"] else "no risk band"
    print(f"leak {L['leak_id']}: {pr.label('status', L['status'])}{flag}; {rank}, {risk}, asset "
          f"{L['asset_id'] or '-'} (as of {pr.when(d['as_of'])})", file=out)
    for c in d["clocks"].itertuples():
        late = " OVERDUE" if c.overdue else ""
        print(f"  due {pr.when(c.due_by)}{late}: {pr.rule_title(c.due_rule)} ({c.citation})", file=out)
    for e in d["events"].itertuples():
        move = " → ".join(x for x in (pr.label("status", e.from_status), pr.label("status", e.to_status)) if x)
        print(f"  {pr.when(e.at)} {pr.label('event', e.event)}: {move} by {e.actor}", file=out)
    return EXIT_OK


def _dispatch(s, args, out) -> int:
    from . import desk

    if args.action == "plan":
        lid = desk.plan_list(s, args.user, args.top, args.date, note=args.note)
        df = desk.list_stops(s, lid)
        km = desk.lists(s).set_index("id").loc[lid, "total_km"]
        print(f"planned dispatch list {lid}: {len(df)} stops for {df['crew'].nunique()} crews, {km:.1f} km of "
              f"driving (draft: a supervisor approves it with `mlpe dispatch approve {lid}`)", file=out)
        for crew, g in df.groupby("crew"):
            print(f"  {crew}: " + " → ".join(g["leak_id"]), file=out)
    elif args.action == "approve":
        r = desk.approve_list(s, args.user, args.list_id, args.note)
        print(f"dispatch list {r['list_id']} approved by {r['approved_by']}: {r['items']} leaks dispatched", file=out)
    elif args.action == "withdraw":
        r = desk.withdraw_list(s, args.user, args.list_id)
        print(f"dispatch list {r['list_id']} withdrawn; {r['released']} leaks back to open", file=out)
    elif args.action == "list":
        lists = desk.lists(s)
        if lists.empty:
            print("no dispatch lists yet: `mlpe dispatch plan`", file=out)
        from .present import label

        for r in lists.itertuples():
            who = f", approved by {r.approved_by}" if r.approved_by else ""
            print(f"{r.id}: {r.plan_date} {label('list_status', r.status).lower()}, {r.n_items} stops, "
                  f"{r.total_km:.1f} km, planned by {r.created_by}{who}", file=out)
    else:  # show
        from .export import write, write_workorders

        df = desk.dispatch_file(s, list_id=args.list_id)
        if args.output is None:
            from .present import text_table

            cols = ["crew", "stop", "rank", "leak_id", "asset_id", "risk_band", "due_by", "leg_km", "work_order_id",
                    "wo_status"]
            print(text_table(df, "dispatch", cols, args.unit), file=out)
            return EXIT_OK
        if args.format == "workorder":
            doc = desk.work_orders(s, args.list_id)
            _atomic_write(args.output, lambda p: write_workorders(doc, p))
        elif args.format == "xlsx":
            data = desk.dispatch_download(s, "xlsx", list_id=args.list_id, unit=args.unit)
            _atomic_write(args.output, lambda p: Path(p).write_bytes(data))
        else:
            _atomic_write(args.output, lambda p: write(df, p, args.format, args.unit, "dispatch",
                                                       desk.dispatch_title(args.list_id)))
        print(f"wrote {len(df)} stops of list {args.list_id} to {args.output}", file=out)
    return EXIT_OK


def _print_rejects(file, rejects, out, limit: int = 20, hint: str = "") -> None:
    """One line per rejected row (file, row, column, reason), the first ``limit`` of them."""
    for x in rejects.head(limit).itertuples():
        print(f"  rejected {file}, row {x.row}, column '{x.column}': {x.reason}", file=out)
    if len(rejects) > limit:
        print(f"  ... {len(rejects) - limit} more" + (f" ({hint})" if hint else ""), file=out)


def _progress(frac: float, text: str) -> None:
    if sys.stderr.isatty():
        print(f"\r[{frac:4.0%}] {text:60s}", end="" if frac < 1 else "\n", file=sys.stderr, flush=True)


# Errors that mean bad input or a refused action (exit 2): the project's own classes, never a bare ValueError or
# KeyError (those are bugs: exit 1, "unexpected failure"). Looked up only among modules already imported: a module
# that was never imported raised nothing, and importing them all up front would cost every command a second.
BAD_INPUT_ERRORS = (("mlpe_core.errors", "BadInput"), ("mlpe_core.errors", "NotFound"),
                    ("mlpe_core.auth", "PermissionDenied"), ("mlpe_core.auth", "IdentityRequired"),
                    ("mlpe_core.comply.rules", "RuleError"), ("mlpe_core.ingest.errors", "IngestError"),
                    ("mlpe_core.lifecycle", "TransitionError"), ("mlpe_core.settings", "SettingsError"),
                    ("mlpe_core.settings", "ConfigFileError"), ("mlpe_core.store.db", "StoreUnavailable"),
                    ("mlpe_core.dispatch.settings", "DispatchConfigError"))


def _bad_input(exc: BaseException) -> bool:
    kinds = tuple(getattr(sys.modules[m], name) for m, name in BAD_INPUT_ERRORS if m in sys.modules)
    return isinstance(exc, kinds)


def _stdout_gone() -> bool:
    """Whether our stdout is a pipe whose reader has closed it (poll says POLLERR), not some other pipe or socket
    that broke (a connector's HTTP peer, say), which is a failure like any other."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object without a file (tests capture it)
        return False
    if not hasattr(select, "poll"):  # Windows: no poll; a broken pipe there is almost surely stdout
        return True
    p = select.poll()
    p.register(fd, select.POLLOUT)
    return any(ev & select.POLLERR for _, ev in p.poll(0))


def _closed_stdout(exc: BrokenPipeError) -> int:
    """``mlpe sites | head -1``: the reader took what it wanted and closed the pipe. End quietly, as ``git`` and
    ``ls`` do (they die of SIGPIPE without a word), but exit 0 rather than their 141: the contract knows 0, 1 and 2,
    the command did its work, and under ``set -o pipefail`` a 141 would fail a script's ``mlpe ... | head``.
    stdout is pointed at /dev/null so the flush at exit does not raise again (the recipe of Python's signal docs).
    """
    if not _stdout_gone():
        print(f"mlpe: unexpected failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        from . import runlog
        from .settings import load, unknown_variables

        runlog.set_face("cli")
        load()  # every MLPE_* variable checked before anything runs; bad ones named (no heavy import: settings only)
        for w in unknown_variables():
            print(f"mlpe: warning: {w}", file=sys.stderr)
        code = run(argv)
        sys.stdout.flush()  # a reader that left early shows here, handled below, not at the interpreter's exit
    except BrokenPipeError as exc:
        code = _closed_stdout(exc)
    except UsageError as exc:
        print(f"mlpe: {exc}", file=sys.stderr)
        code = EXIT_BAD
    except SystemExit as exc:  # --help / --version
        code = exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        print("mlpe: interrupted; nothing partial was written", file=sys.stderr)
        code = EXIT_FAIL
    except Exception as exc:  # noqa: BLE001 - bad input is exit 2, anything else the contract's exit 1
        if _bad_input(exc):
            print(f"mlpe: {exc}", file=sys.stderr)
            code = EXIT_BAD
        else:
            print(f"mlpe: unexpected failure: {type(exc).__name__}: {exc}", file=sys.stderr)
            code = EXIT_FAIL
    return code


def console() -> None:
    """The installed ``mlpe`` program: :func:`main`, then leave without the interpreter's teardown.

    Tearing down pandas, SQLAlchemy, scikit-learn and the rest module by module cost a command a quarter to half a
    second after its work was done. Everything a normal exit does that matters still happens first: exit handlers
    run, the store's connections close (SQLite checkpoints its WAL) and the output is flushed.
    """
    code = main()
    try:
        import atexit

        atexit._run_exitfuncs()
        if "mlpe_core.store.db" in sys.modules:
            sys.modules["mlpe_core.store.db"].dispose_engines()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - anything odd: leave the normal way, with its full teardown
        sys.exit(code)
    os._exit(code)

# ------------------------------------------------------------------ always on: watch, pull, runs, alerts, config

LIVE_COMMANDS = ("watch", "pull", "runs", "alerts", "config")


def _add_live_parsers(sub) -> None:
    w = sub.add_parser("watch", help="ingest files as they land in DIR, then fuse, score and check alerts (until "
                       "stopped); also runs the pull connectors of the watch file on their schedules")
    w.add_argument("folder", type=Path, help="the folder files land in (DIR)")
    w.add_argument("--config", type=Path, default=None,
                   help="watch and connectors file (default $MLPE_WATCH_CONFIG, else watch.yaml in $MLPE_CONFIG_DIR)")
    w.add_argument("--once", action="store_true", help="handle what is in the folder now, then stop")
    w.add_argument("--settle", type=float, default=None, help="seconds a file must stay unchanged (default 2)")
    w.add_argument("--interval", type=float, default=None, help="look at the folder at least this often (s)")
    w.add_argument("--alerts-every", type=float, default=900.0,
                   help="check the alert rules at least this often when nothing new arrives (s; default 900)")

    pl = sub.add_parser("pull", help="run the pull connectors of the watch file once (all, or those named)")
    pl.add_argument("names", nargs="*", help="connectors to run (default: all)")
    pl.add_argument("--config", type=Path, default=None,
                    help="watch and connectors file (default $MLPE_WATCH_CONFIG, else watch.yaml in $MLPE_CONFIG_DIR)")

    r = sub.add_parser("runs", help="the recorded runs, newest first, each with its per-stage timings")
    r.add_argument("--json", action="store_true", help="one JSON list of objects on stdout")
    r.add_argument("--kind", default=None, help="only runs of this kind (ingest, fuse, score, train, watch, pull, "
                   "alerts, demo)")
    r.add_argument("--limit", type=_count, default=50, help="at most this many runs (default 50)")

    al = sub.add_parser("alerts", help="the alert inbox: list, check the rules now, acknowledge, snooze")
    asub = al.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ls = asub.add_parser("list", help="open alerts (or --all), newest first")
    ls.add_argument("--all", action="store_true", help="every alert, handled ones too")
    ls.add_argument("--team", default=None, help="only this team's alerts")
    ls.add_argument("--json", action="store_true", help="one JSON list of objects on stdout")
    asub.add_parser("check", help="run the alert rules now, record new alerts and deliver them")
    asub.add_parser("deliver", help="retry the deliveries that are due")
    ack = asub.add_parser("ack", help="acknowledge an alert (audited)")
    ack.add_argument("alert_id", type=int, help="the alert's id (see `mlpe alerts list`)")
    ack.add_argument("--reason", required=True, help="why (recorded)")
    sn = asub.add_parser("snooze", help="snooze an alert for some hours (audited)")
    sn.add_argument("alert_id", type=int, help="the alert's id (see `mlpe alerts list`)")
    sn.add_argument("--hours", type=float, required=True, help="for how long")
    sn.add_argument("--reason", required=True, help="why (recorded)")

    cf = sub.add_parser("config", help="check the MLPE_* settings and every configuration file")
    csub = cf.add_subparsers(dest="action", required=True, parser_class=_Parser)
    cc = csub.add_parser("check", help="validate everything; exit 2 naming what is wrong")
    cc.add_argument("--watch-config", type=Path, default=None,
                    help="watch and connectors file (default $MLPE_WATCH_CONFIG, else watch.yaml in $MLPE_CONFIG_DIR)")


RUN_COLUMNS = ["id", "kind", "source", "target", "actor", "started_at", "seconds", "n_in", "n_out", "n_rejected",
               "outcome", "stages"]


def _run_live(args, out) -> int:
    import json

    from . import desk
    from .export import json_records

    if args.command == "config":
        desk.settings(reload=True)
        w = desk.watch_options(args.watch_config)
        a = desk.alert_config()
        print(f"settings: ok ({len(type(desk.settings()).model_fields)} MLPE_* variables checked)", file=out)
        print(f"watch file: {desk.watch_config_path(args.watch_config) or 'none (defaults)'}: ok, "
              f"{len(w.connectors)} pull connector(s)", file=out)
        print(f"alerts file: {desk.alerts_config_path()}: ok, {len(a.rules)} rules, {len(a.teams)} teams, "
              f"{len(a.webhooks)} webhooks, {len(a.emails)} e-mail lists", file=out)
        return EXIT_OK
    if args.command == "watch":
        from .daemon import watch

        desk.set_face("watch")
        desk.alert_config()  # a bad rules file stops the watcher before it starts, naming the field
        return watch(args.db, args.folder, args.user, args.config, once=args.once, settle_s=args.settle,
                     interval_s=args.interval, alerts_every_s=args.alerts_every)
    if args.command == "pull":
        cfg = desk.watch_options(args.config)
        conns = [c for c in cfg.connectors if not args.names or c.name in args.names]
        unknown = sorted(set(args.names) - {c.name for c in cfg.connectors})
        if unknown:
            raise UsageError(f"no connector '{unknown[0]}' in the watch file")
        if not conns:
            raise UsageError("the watch file names no pull connector")
        failed = 0
        with _session(args.db) as s:
            for c in conns:
                try:
                    r = desk.pull(s, args.user, c)
                except Exception as exc:  # noqa: BLE001 - report each connector, fail at the end
                    print(f"{c.name}: failed: {exc}", file=sys.stderr)
                    failed += 1
                    continue
                print(f"{c.name}: {r['records']} records in {r['pages']} page(s), {r['accepted']} new detections; "
                      f"watermark {r['watermark'] or '-'}", file=out)
            if desk.has_unfused(s):
                desk.process_new(s, args.user)
        return EXIT_FAIL if failed else EXIT_OK
    if args.command == "runs":
        with _session(args.db) as s:
            df = desk.runs(s, args.limit, args.kind)
        if args.json:
            recs = json_records(df.drop(columns=["stages", "detail"]))
            for rec, stages, detail in zip(recs, df["stages"], df["detail"], strict=True):
                rec["stages"] = [{"stage": k, "seconds": round(v, 6)} for k, v in stages]
                rec["detail"] = detail
            print(json.dumps(recs, default=str), file=out)
            return EXIT_OK
        if df.empty:
            print("no runs recorded yet", file=out)
            return EXIT_OK
        for r in df.itertuples():
            st = ", ".join(f"{k} {v:.2f}s" for k, v in r.stages)
            err = f" ({r.error})" if isinstance(r.error, str) and r.error else ""
            print(f"{r.id:>5} {r.started_at:%Y-%m-%d %H:%M:%S} {r.kind:<7} {r.outcome:<7}{err} {r.seconds:8.2f}s "
                  f"in {r.n_in} out {r.n_out} rejected {r.n_rejected} [{r.source or '-'}] "
                  f"{r.target if isinstance(r.target, str) else ''}", file=out)
            if st:
                print(f"        stages: {st}", file=out)
        return EXIT_OK
    with _session(args.db) as s:
        if args.action == "list":
            df = desk.alerts_inbox(s, None if args.all else "open", args.team)
            cols = ["id", "created_at", "rule", "severity", "team", "state", "title", "leak_id", "asset_id",
                    "deliveries"]
            if args.json:
                print(json.dumps(json_records(df.reindex(columns=cols + ["detail", "reason", "snoozed_until"]))),
                      file=out)
            elif df.empty:
                print("no open alerts" if not args.all else "no alerts", file=out)
            else:
                print(df.reindex(columns=cols).to_string(index=False, max_colwidth=70), file=out)
            return EXIT_OK
        if args.action == "check":
            r = desk.check_alerts(s, args.user)
            d = r.get("delivery", {})
            print(f"{r['found']} conditions found, {r['new']} new alerts; deliveries: {d.get('sent', 0)} sent, "
                  f"{d.get('retrying', 0)} to retry, {d.get('failed', 0)} failed", file=out)
            return EXIT_OK
        if args.action == "deliver":
            d = desk.deliver_alerts(s)
            print(f"deliveries: {d['sent']} sent, {d['retrying']} to retry, {d['failed']} failed", file=out)
            return EXIT_OK
        if args.action == "ack":
            a = desk.acknowledge_alert(s, args.user, args.alert_id, args.reason)
        else:
            a = desk.snooze_alert(s, args.user, args.alert_id, args.reason, hours=args.hours)
        print(f"alert {a['id']} {a['state']} by {a['handled_by']}: {a['reason']}", file=out)
        return EXIT_OK


if __name__ == "__main__":
    console()
