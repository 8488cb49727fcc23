"""The ``sweep``, ``atlas`` and ``plot`` subcommands (wired into :mod:`scconvex.cli`).

The library modules (:mod:`~scconvex.studies.sweep`, :mod:`~scconvex.studies.atlas`,
:mod:`~scconvex.studies.plot`) never print; this module decides what the user sees.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import InvalidInputError
from .compare import _cmd_compare, add_compare

ATLAS_HELP = "SQLite atlas written by scconvex sweep"


def add_commands(sub) -> None:
    """Add ``sweep``, ``atlas`` and ``plot`` to the subparsers of the main parser."""
    p = sub.add_parser("sweep", help="certified solves over a grid, stored in an atlas",
                       description="Solve a grid of problems on dask.distributed and store "
                       "every certified answer in an SQLite atlas. Points the atlas already "
                       "holds are skipped. Values take lists (1,2,5) and ranges "
                       "(logspace:1:1e4:13, linspace:0.1:1:10).")
    p.add_argument("--spec", metavar="FILE.toml", help="grid settings from a TOML file "
                   "(command-line options override it)")
    p.add_argument("--atlas", metavar="FILE", help="SQLite atlas (default runs.sqlite)")
    g = p.add_argument_group("STEP grid")
    g.add_argument("--step-k", metavar="K", help="number of classes")
    g.add_argument("--rho", help="fraction of majority classes")
    g.add_argument("--n-min", metavar="N", help="samples per minority class")
    g.add_argument("--R", dest="R", metavar="VALUES",
                   help="imbalance ratios (STEP: rounded so that R*n_min is an integer)")
    g = p.add_argument_group("long-tail grid (uses --R)")
    g.add_argument("--long-tail-k", metavar="K", help="number of classes of the long tail")
    g.add_argument("--n-max", metavar="N", help="samples of the largest class")
    g = p.add_argument_group("datasets (each crossed with --tau)")
    g.add_argument("--counts", action="append", metavar="COUNTS",
                   help="a count vector such as 500x5,50x5 (repeatable)")
    g.add_argument("--counts-file", dest="counts_files", action="append", metavar="FILE",
                   help="counts file (repeatable)")
    g.add_argument("--labels-file", dest="labels_files", action="append", metavar="FILE",
                   help="labels file (repeatable)")
    p.add_argument("--tau", metavar="VALUES", help="temperatures")
    g = p.add_argument_group("tightness rows")
    g.add_argument("--dims", metavar="VALUES", help="dimensions d for tightness rows")
    g.add_argument("--restarts", metavar="N", help="restarts per d (default 10)")
    g.add_argument("--seed", metavar="N", help="root seed (default 0)")
    g.add_argument("--nc-level", choices=("class", "sample"), default=None,
                   help="level of the non-convex restarts (default class)")
    g = p.add_argument_group("solve options")
    g.add_argument("--level", choices=("auto", "group", "class", "sample"), default=None,
                   help="level of each solve, as solve's --level (default auto)")
    g.add_argument("--solver", choices=("auto", "native", "clarabel", "scs"), default=None,
                   help="backend of each solve, as solve's --solver (default auto)")
    g.add_argument("--gap-tol", default=None, metavar="VALUES",
                   help="largest certified gap relative to the loss for an optimal row "
                        "(default 1e-6, as solve)")
    g.add_argument("--excess-tol", default=None, metavar="VALUES",
                   help="largest certified gap relative to the excess loss (default 1e-3)")
    g.add_argument("--time-limit", default=None, metavar="SECONDS",
                   help="time limit of each point (its solve and tightness rows); a point "
                        "cut short is stored as not certified, or without the rows it did "
                        "not finish, and the next run tries it again")
    g = p.add_argument_group("execution")
    g.add_argument("--workers", type=int, default=None,
                   help="local dask workers, one thread each (default 2; 0 = in this process)")
    g.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="use an existing dask scheduler instead of a local cluster")
    g.add_argument("--task-size", type=int, default=None, metavar="N",
                   help="points per dask task (default: about 4 tasks per worker, at most "
                        "50)")
    # Its earlier name, still accepted: solve's --batch-size means loss batches.
    g.add_argument("--batch-size", type=int, default=None, dest="task_size",
                   help=argparse.SUPPRESS)
    g.add_argument("--no-retry", action="store_true",
                   help="keep the points stored as not certified (by default they are "
                        "solved again)")
    p.add_argument("--json", action="store_true", help="print one JSON summary, no progress")

    add_compare(sub)

    p = sub.add_parser("atlas", help="list, show, export or verify an atlas")
    asub = p.add_subparsers(dest="atlas_command", required=True, parser_class=type(p))
    q = asub.add_parser("list", help="one line per stored solve")
    q.add_argument("atlas", help=ATLAS_HELP)
    _add_where(q)
    q.add_argument("--json", action="store_true", help="print one JSON list")
    q = asub.add_parser("show", help="one row in full (by key prefix)")
    q.add_argument("atlas", help=ATLAS_HELP)
    q.add_argument("key", help="the row's key, or a prefix that matches one row")
    q = asub.add_parser("export", help="CSV (and Parquet with pyarrow), one row per solve")
    q.add_argument("atlas", help=ATLAS_HELP)
    q.add_argument("--csv", metavar="FILE", nargs="?", const="-",
                   help="CSV file (default, or '-': standard output)")
    q.add_argument("--parquet", metavar="FILE",
                   help="Parquet file ('-': standard output; needs pyarrow)")
    _add_where(q)
    q = asub.add_parser("verify", help="re-check every stored certificate")
    q.add_argument("atlas", help=ATLAS_HELP)
    q.add_argument("--gap-tol", type=float, default=None,
                   help="largest accepted recomputed gap relative to the loss (default "
                        "1e-6, as verify's; never the row's own gap_tol)")
    q.add_argument("--tol", type=float, default=None, dest="gap_tol", help=argparse.SUPPRESS)
    q.add_argument("--excess-tol", type=float, default=None,
                   help="largest accepted recomputed gap relative to the excess loss "
                        "(default 1e-3, as verify's; never the row's own excess_tol)")
    q.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("plot", help="figures from an atlas, or from the JSON of scconvex "
                       "compare (--kind trajectory); needs the [plot] extra")
    p.add_argument("atlas", help="atlas file (or compare JSON for --kind trajectory)")
    p.add_argument("--kind", required=True,
                   choices=("cosines", "tau", "gram", "sphere", "gap", "phase", "landscape",
                            "trajectory", "uniqueness"),
                   help="the figure (docs/sweeps.md and docs/compare.md show each)")
    p.add_argument("--out", required=True, metavar="FILE.png|.pdf|.svg",
                   help="image file; its suffix picks the format ('-': PNG to standard "
                        "output)")
    p.add_argument("--key", help="row (key prefix) for --kind gram and sphere")
    p.add_argument("--dim", type=int, default=None, help="2 or 3 for --kind sphere")
    _add_where(p)


def _add_where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                   help="keep rows with this value (repeatable), e.g. k=10 or tau=0.5")


def _where(items) -> list[tuple[str, str]]:
    out = []
    for item in items:
        col, sep, value = item.partition("=")
        if not sep or not col:
            raise InvalidInputError(f"--where needs COLUMN=VALUE, got {item!r}")
        out.append((col.strip(), value.strip()))
    return out


# ---------------------------------------------------------------------- sweep
def _cmd_sweep(args) -> int:
    from ..files import dumps
    from ..studies.atlas import Atlas
    from ..studies.sweep import GRID_KEYS, build_points, load_spec_file, run_sweep

    settings = load_spec_file(args.spec) if args.spec else {}
    run = {k: settings.pop(k) for k in ("workers", "scheduler", "task_size", "atlas")
           if k in settings}
    for name in GRID_KEYS:
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    for name in ("workers", "scheduler", "task_size", "atlas"):
        if getattr(args, name) is not None:
            run[name] = getattr(args, name)
    refused: list[dict] = []
    points = build_points(settings, refused)
    bar = _progress_bar(args.json, len(points))
    with Atlas(run.get("atlas", "runs.sqlite"), create=True) as atlas:
        try:
            summary = run_sweep(points, atlas, workers=run.get("workers", 2),
                                scheduler=run.get("scheduler"),
                                batch_size=run.get("task_size"),
                                progress=bar.update if bar else None,
                                retry=not args.no_retry)
        finally:
            if bar:
                bar.close()
    summary.refused = refused
    if args.json:
        print(dumps(summary.to_dict()))
    else:
        if summary.batches:
            where = (f"{summary.workers} worker{'s' * (summary.workers != 1)}"
                     if summary.workers else "in process")
            tasks = f"{summary.batches} task{'s' * (summary.batches != 1)}"
            print(f"{summary.message} ({summary.seconds:.1f} s, {tasks}, {where})")
        else:
            print(summary.message)
    if summary.interrupted:
        print("scconvex: interrupted; every finished solve is saved", file=sys.stderr)
        return 130
    return 1 if summary.errors else 0


def _progress_bar(quiet: bool, total: int):
    if quiet or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="solve", file=sys.stderr, dynamic_ncols=True)


# ---------------------------------------------------------------------- atlas
def _cmd_atlas(args) -> int:
    from ..studies.atlas import Atlas

    with Atlas(args.atlas, readonly=True) as atlas:
        return {"list": _atlas_list, "show": _atlas_show, "export": _atlas_export,
                "verify": _atlas_verify}[args.atlas_command](atlas, args)


def _atlas_list(atlas, args) -> int:
    from ..files import dumps

    rows = atlas.rows(_where(args.where))
    if args.json:
        print(dumps([{k: r[k] for k in ("key", "family", "k", "n", "R", "tau", "status",
                                         "loss", "rel_gap", "sample_rel_gap")}
                     for r in rows]))
        return 0
    print(f"{'key':<12} {'family':<9} {'k':>5} {'R':>9} {'tau':>7} {'status':<11} "
          f"{'loss':>16} {'sample gap':>10} {'counts'}")
    for r in rows:
        counts = _cell(r["counts"], "")
        counts = counts if len(counts) <= 30 else counts[:27] + "..."
        print(f"{_cell(r['key'], '')[:12]:<12} {_cell(r['family'], ''):<9} "
              f"{_cell(r['k'], 'd'):>5} {_cell(r['R'], '.4g'):>9} {_cell(r['tau'], '.4g'):>7} "
              f"{_cell(r['status'], ''):<11} {_cell(r['loss'], '.10g'):>16} "
              f"{_cell(r['sample_rel_gap'], '.1e'):>10} {counts}")
    print(f"{len(rows)} rows")
    return 0


def _cell(value, spec: str) -> str:
    """A table cell: empty for NULL, the stored text when a damaged row holds the wrong
    type, with control characters escaped (never sent raw to the terminal)."""
    from ..studies.atlas import printable

    if value is None:
        return ""
    try:
        return printable(format(value, spec))
    except (TypeError, ValueError):
        return printable(value)


def _atlas_show(atlas, args) -> int:
    from ..files import dumps
    from ..studies.atlas import show

    print(dumps(show(atlas, args.key)))
    return 0


def _atlas_export(atlas, args) -> int:
    from ..studies.atlas import table, write_csv, write_parquet

    rows = table(atlas, _where(args.where))
    csv_out = args.csv is not None or not args.parquet
    if args.parquet == "-" and csv_out and args.csv in (None, "-"):
        raise InvalidInputError("--parquet - and the CSV cannot both go to standard output; "
                                "give --csv FILE")
    if args.parquet:
        write_parquet(rows, None if args.parquet == "-" else args.parquet,
                      sys.stdout.buffer)
    if csv_out:
        path = None if args.csv in (None, "-") else args.csv
        write_csv(rows, path, sys.stdout)
    return 0


def _atlas_verify(atlas, args) -> int:
    from ..certificates.certify import DEFAULT_EXCESS_TOL, DEFAULT_GAP_TOL
    from ..files import dumps
    from ..studies.atlas import verify_atlas

    tol = DEFAULT_GAP_TOL if args.gap_tol is None else args.gap_tol
    excess_tol = DEFAULT_EXCESS_TOL if args.excess_tol is None else args.excess_tol
    results = verify_atlas(atlas, tol, excess_tol)
    bad = [r for r in results if not r.ok]
    certified = sum(r.ok and r.status == "optimal" for r in results)
    rederived = sum(len(r.rederived) for r in results if r.ok)
    trusted = [{"key": r.key, "rows": list(r.not_rederivable)} for r in results
               if r.ok and r.not_rederivable]
    own: dict[tuple, int] = {}
    for r in results:
        own[r.gap_tol, r.excess_tol] = own.get((r.gap_tol, r.excess_tol), 0) + 1
    if args.json:
        print(dumps({"ok": not bad, "rows": len(results), "certified": certified,
                     "tol": tol, "excess_tol": excess_tol,
                     "row_tolerances": [{"gap_tol": g, "excess_tol": e, "rows": n}
                                        for (g, e), n in own.items()],
                     "tight_rederived": rederived, "tight_not_rederivable": trusted,
                     "rejected": [{"key": r.key, "reasons": list(r.reasons),
                                   "gap_tol": r.gap_tol, "excess_tol": r.excess_tol}
                                  for r in bad]}))
    else:
        line = (f"{len(results)} rows: {certified} certificates re-checked, "
                f"{len(results) - certified - len(bad)} stored as not certified, "
                f"{len(bad)} rejected")
        if rederived or trusted:
            line += (f"; tight rows: {rederived} re-derived from their features, "
                     f"{sum(len(t['rows']) for t in trusted)} not re-derivable (checked "
                     f"for consistency only)")
        print(line)
        if results:
            stated = "; ".join(f"gap_tol {_cell(g, 'g') or '?'}, excess_tol "
                               f"{_cell(e, 'g') or '?'} ({n} row{'s' * (n != 1)})"
                               for (g, e), n in own.items())
            print(f"judged at --gap-tol {tol:g} --excess-tol {excess_tol:g}; the rows state "
                  f"{stated}")
    for r in bad:
        print(f"scconvex: rejected {_cell(r.key, '')[:12]}: "
              f"{_cell('; '.join(r.reasons), '')}", file=sys.stderr)
    return 1 if bad else 0


# ---------------------------------------------------------------------- plot
def _cmd_plot(args) -> int:
    from ..studies.atlas import Atlas
    from ..studies.plot import (
        figure_bytes,
        figure_format,
        make_figure,
        save_figure,
        trajectory_figure,
    )

    if args.out != "-":
        figure_format(args.out)  # a wrong suffix or target is refused before any work
    if args.kind == "trajectory":
        fig = trajectory_figure(_read_compare_json(args.atlas))
    else:
        with Atlas(args.atlas, readonly=True) as atlas:
            fig = make_figure(atlas, args.kind, where=_where(args.where), key=args.key,
                              dim=args.dim)
    if args.out == "-":  # a PNG on standard output, nothing else there
        sys.stdout.flush()
        sys.stdout.buffer.write(figure_bytes(fig, ".png"))
        return 0
    save_figure(fig, args.out)
    print(f"wrote {args.out}")
    return 0


COMPARE_JSON_MAX = 256 * 2**20
"""Largest ``compare`` JSON read by ``plot --kind trajectory`` (256 MiB)."""


def _read_compare_json(path: str) -> dict:
    import json

    from ..files import check_json_memory, read_input

    raw = read_input(path, "plot", COMPARE_JSON_MAX)  # no FIFO, no device, bounded
    check_json_memory(raw, repr(path))
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8, 5000-digit integers
        raise InvalidInputError(f"{path!r} is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") not in ("scconvex.compare",
                                                             "scconvex.compare_trajectory"):
        raise InvalidInputError(f"{path!r} is not the JSON of scconvex compare (--out or "
                                "--json)")
    return data


def _database_errors(handler):
    """A damaged atlas file is bad input (exit 2), a locked or unwritable one a failure
    (exit 1): one line either way, never an "internal error"."""
    import functools
    import sqlite3

    from ..errors import ScconvexError

    @functools.wraps(handler)
    def run(args) -> int:
        name = repr(args.atlas) if getattr(args, "atlas", None) else "the atlas"
        try:
            return handler(args)
        except sqlite3.OperationalError as exc:
            if str(exc).startswith("no such"):  # a table or column: not an atlas
                raise InvalidInputError(f"{name} is not an atlas database ({exc})") from None
            raise ScconvexError(f"atlas {name}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise InvalidInputError(f"{name} is not a readable atlas database ({exc})") \
                from None

    return run


HANDLERS = {**{name: _database_errors(handler) for name, handler in
               (("sweep", _cmd_sweep), ("atlas", _cmd_atlas), ("plot", _cmd_plot))},
            "compare": _cmd_compare}
"""Handlers of the subcommands added by :func:`add_commands`."""
