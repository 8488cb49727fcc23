"""Command-line interface: ``scconvex solve``, ``scconvex verify``, ``scconvex tightness``.

Exit codes: 0 success, 1 failure (solver failure, uncertified answer, verification
failed), 2 invalid input or usage. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import InvalidInputError, ScconvexError

DEBUG_ENV = "SCCONVEX_DEBUG"
"""Set to 1 to get Python tracebacks for unexpected errors (for developers)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage)
        raise _UsageError(f"{self.prog}: error: {message}")


class _UsageError(Exception):
    pass


def _spec_from_args(args):
    from ..problem.inputs import spec_from_args

    spec = spec_from_args(args)
    variant = {"loss": getattr(args, "loss", "sc"),
               "relaxation": "dnn" if getattr(args, "relu", False) else "elliptope"}
    if variant != {"loss": spec.loss, "relaxation": spec.relaxation}:
        spec = spec.with_(**variant)
    batches = _batches(args, spec.n)
    return spec if batches is None else spec.with_(batches=batches)


def _batches(args, n: int):
    """The batch scheme of ``--batches`` or ``--batch-size``/``--epochs``/``--batch-seed``
    (or None)."""
    from ..problem.batches import epoch_batches, load_batches

    path, size, seed, epochs = (getattr(args, a, None)
                                for a in ("batches", "batch_size", "batch_seed", "epochs"))
    if path is not None and (size is not None or seed is not None or epochs is not None):
        raise InvalidInputError("give --batches or --batch-size/--epochs/--batch-seed, "
                                "not both")
    if path is not None:
        return load_batches(path)
    if size is None:
        if seed is not None or epochs is not None:
            raise InvalidInputError("--batch-seed and --epochs need --batch-size")
        return None
    return epoch_batches(n, size, 1 if epochs is None else epochs, 0 if seed is None else seed)


def _add_problem(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("problem (one of)")
    g.add_argument("--counts", metavar="C1,C2,...",
                   help="samples per class; NxM is M classes of N (e.g. 500x5,50x5)")
    g.add_argument("--counts-file", metavar="FILE",
                   help="counts, one per line, CSV or a JSON list")
    g.add_argument("--labels-file", metavar="FILE",
                   help="labels (.npy, or text with one label per line); counts per label")
    g.add_argument("--step", metavar="K,RHO,R,NMIN",
                   help="STEP imbalance: K classes, a fraction RHO of majority classes "
                        "with R*NMIN samples, the others with NMIN")
    g.add_argument("--long-tail", metavar="K,R,NMAX",
                   help="long tail: n_c = floor(NMAX R^(-c/(K-1)))")
    p.add_argument("--tau", type=float, required=True, help="temperature (> 0)")
    p.add_argument("--loss", choices=("sc", "negatives-only"), default="sc",
                   help="sc (default): positives in the denominator; negatives-only: "
                        "denominator over negatives only")
    p.add_argument("--relu", action="store_true",
                   help="non-negative (ReLU) features: Gram entries >= 0 (the doubly "
                        "non-negative relaxation)")


def _add_batches(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("batch-wise loss (class level, certified over sample Grams)")
    g.add_argument("--batches", metavar="FILE",
                   help="JSON list of batches, each a list of sample indices (samples "
                        "listed class by class)")
    g.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="random batches of B samples, reshuffled every epoch (the last "
                        "batch of an epoch is smaller when B does not divide n)")
    g.add_argument("--epochs", type=int, default=None, metavar="E",
                   help="epochs of random batches: the loss is summed over all of them "
                        "(default 1)")
    g.add_argument("--batch-seed", type=int, default=None, metavar="S",
                   help="seed of the random batches (default 0)")


def add_tolerances(p: argparse.ArgumentParser, what: str, old: tuple[str, ...] = ()) -> None:
    """``--gap-tol`` and ``--excess-tol``, the two tolerances of a certified verdict, with
    the same names and defaults in every command (None: the default). ``old`` are earlier
    names of the two flags, still accepted (not shown in the help)."""
    for i, (flag, relative, default) in enumerate((
            ("--gap-tol", "the loss", "1e-6"), ("--excess-tol", "the excess loss", "1e-3"))):
        dest = flag[2:].replace("-", "_")
        p.add_argument(flag, type=float, default=None, dest=dest,
                       help=f"{what} relative to {relative} (default {default})")
        if i < len(old) and old[i] != flag:
            p.add_argument(old[i], type=float, default=None, dest=dest,
                           help=argparse.SUPPRESS)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scconvex", description="Certified optimal geometries of "
                     "supervised contrastive learning.")
    parser.add_argument("--version", action="version", version=f"scconvex {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("solve", help="solve and certify the convex relaxation")
    _add_problem(p)
    p.add_argument("--level", choices=("auto", "group", "class", "sample"), default="auto",
                   help="model to solve (default auto: group when counts repeat, else class)")
    p.add_argument("--solver", choices=("auto", "native", "clarabel", "scs"), default="auto",
                   help="backend (default auto: native, falling back to clarabel)")
    add_tolerances(p, "largest certified gap for success,")
    p.add_argument("--time-limit", type=float, default=None,
                   help="time limit in seconds for the whole solve, any solver (the auto "
                        "solver's clarabel fallback gets what is left)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--certificate", metavar="FILE",
                   help="write the result, a re-checkable certificate, as JSON ('-': to "
                        "standard output, instead of the report)")
    _add_batches(p)
    p.add_argument("--full-gram", action="store_true",
                   help="write the k x k class Gram in JSON even for k > 200 at group level")
    _add_threads(p)

    p = sub.add_parser("verify", help="re-check a certificate file from scratch")
    p.add_argument("file", help="certificate file written by solve --certificate")
    add_tolerances(p, "largest accepted recomputed gap,", old=("--tol",))
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("compare-batching",
                       help="the batch-wise optimum next to the full-batch one, certified")
    _add_problem(p)
    _add_batches(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("tightness", help="compare the relaxation with non-convex solves")
    _add_problem(p)
    p.add_argument("--dims", required=True, metavar="D1,D2,...", help="feature dimensions")
    p.add_argument("--restarts", type=int, default=10, help="random restarts per dimension")
    p.add_argument("--level", choices=("class", "sample"), default="class",
                   help="non-convex problem over k class means (default) or n samples")
    p.add_argument("--seed", type=int, default=0,
                   help="root seed of the random restarts (default 0)")
    add_tolerances(p, "tight when both gaps to the certified lower bound are within this:",
                   old=("--rtol", "--excess-rtol"))
    p.add_argument("--time-limit", type=float, default=None,
                   help="time limit in seconds for the relaxed solve and the restarts; "
                        "dimensions not reached are reported as such (exit 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_threads(p)
    from .commands import add_commands

    add_commands(sub)
    return parser


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="BLAS threads (default 1, the fastest measured on 2 cores)")


def _progress(enabled: bool, total: int, label: str):
    """A minimal progress bar on stderr, shown only on a terminal."""
    if not enabled or not sys.stderr.isatty():
        return lambda *a, **k: None
    state = {"done": 0}

    def tick(*_args, **_kwargs) -> None:
        state["done"] += 1
        done = min(state["done"], total)
        bar = "#" * int(30 * done / total)
        sys.stderr.write(f"\r{label} [{bar:<30}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return tick


class _Ticker:
    """Elapsed time and stage on one stderr line while a solve runs (terminals only)."""

    def __init__(self, enabled: bool, label: str) -> None:
        import threading

        self.enabled = enabled and sys.stderr.isatty()
        self.label = label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import time

        t0 = time.perf_counter()
        frames = "|/-\\"
        i = 0
        while not self._stop.wait(0.2):
            sys.stderr.write(f"\r{frames[i % 4]} {self.label} {time.perf_counter() - t0:6.1f} s")
            sys.stderr.flush()
            i += 1

    def __enter__(self):
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
            sys.stderr.write("\r" + " " * (len(self.label) + 12) + "\r")
            sys.stderr.flush()


def _time_limit(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise InvalidInputError(f"--time-limit must be finite and > 0, got {value!r}")
    return value


def _cmd_solve(args) -> int:
    from ..files import check_writable, dump, write_json
    from ..pipeline.report import format_result
    from ..pipeline.solve import DEFAULT_EXCESS_TOL, DEFAULT_GAP_TOL, solve
    from ..resources import check_memory, class_gram_bytes

    spec = _spec_from_args(args)
    limit = _time_limit(args.time_limit)
    options = None if limit is None else {"time_limit": limit}
    to_stdout = args.certificate == "-"  # "-" is standard output, as everywhere
    if args.certificate is not None and not to_stdout:
        check_writable(args.certificate)  # refuse a bad target before a long solve
    if args.full_gram:
        check_memory(class_gram_bytes(spec.k), f"--full-gram ({spec.k} x {spec.k} cosines)",
                     "leave out --full-gram: the group Gram determines it exactly")
    gap_tol = DEFAULT_GAP_TOL if args.gap_tol is None else args.gap_tol
    excess_tol = DEFAULT_EXCESS_TOL if args.excess_tol is None else args.excess_tol
    label = f"solving k={spec.k}, n={spec.n} ({args.solver} solver, {args.level} level)"
    with _Ticker(not args.json, label):
        res = solve(spec, level=args.level, solver=args.solver, options=options,
                    gap_tol=gap_tol, excess_tol=excess_tol, threads=args.threads)
    # The JSON form only where it is written: at 2,987 blocks building it takes longer than
    # the solve.
    wanted = args.json or args.certificate is not None
    data = res.to_dict(full_gram=args.full_gram) if wanted else None
    write_failure = None
    if args.certificate is not None and not to_stdout:
        try:
            write_json(args.certificate, data)
        except (OSError, ScconvexError) as exc:  # the result is still printed below
            write_failure = getattr(exc, "strerror", None) or str(exc)
    if args.json or to_stdout:
        # The certificate is the JSON result: on standard output it is printed once, alone,
        # and streamed (the group Gram of 21841 classes in 2987 blocks is 9e6 numbers).
        dump(data, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(format_result(res))
    sys.stdout.flush()
    problems = []  # one stderr line, whatever went wrong
    if not res.success:
        # An uncertified message says "not certified: ..." itself.
        problems.append(res.message if res.message.startswith("not certified")
                        else f"{res.status}: {res.message}")
    if write_failure is not None:
        problems.append(f"error: certificate not written to {args.certificate}: "
                        f"{write_failure}")
    if problems:
        print("scconvex: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


def _cmd_verify(args) -> int:
    from ..certificates.verify import verify
    from ..files import dumps
    from ..levels import get_level
    from ..pipeline.solve import DEFAULT_EXCESS_TOL, DEFAULT_GAP_TOL

    tol = DEFAULT_GAP_TOL if args.gap_tol is None else args.gap_tol
    excess_tol = DEFAULT_EXCESS_TOL if args.excess_tol is None else args.excess_tol
    if not os.path.lexists(args.file):
        # A file name that names nothing is a usage error, as for --counts-file (exit 2);
        # a file that exists and cannot be read or proven is a failed verification.
        raise InvalidInputError(f"cannot read {args.file!r}: no such file")
    report = verify(args.file, tol=tol, excess_tol=excess_tol)
    if args.json:
        print(dumps(report.to_dict()))
    elif report.ok:
        if get_level(report.level).dense:  # one certificate: say its numbers once
            gaps = (f"gap relative to the loss {report.rel_gap:.2e} (sample level) <= "
                    f"{tol:.1e}; relative to the excess loss {report.excess_gap:.2e} <= "
                    f"{excess_tol:.1e}")
        else:
            gaps = (f"gap relative to the loss {report.rel_gap:.2e} ({report.level} level), "
                    f"{report.sample_rel_gap:.2e} (sample level) <= {tol:.1e}; relative to "
                    f"the excess loss {report.excess_gap:.2e}, "
                    f"{report.sample_excess_gap:.2e} <= {excess_tol:.1e}")
        print(f"verified ({report.variant}): loss {report.loss:.12g}; {gaps}")
        widest = report.details.get("max_half_width", math.nan)
        if math.isfinite(widest):
            proof = {True: "unique", False: "not unique", None: "uniqueness not proven"}[
                report.details.get("unique")]
            from ..certificates.bars import round_up, width_note

            print(f"  proven: every optimal cosine within {float(round_up(widest)):.2e} of the "
                  f"stored one{width_note(widest)}; {proof}; claimed bars, uniqueness and "
                  "measures re-derived")
        if report.nonnegative_dimension is not None:
            print(f"verified: non-negative (ReLU) features in d = "
                  f"{report.nonnegative_dimension} attain it (the stored factor H >= 0, "
                  f"H H^T = the geometry)")
        for note in report.notes:
            print(f"note: {note}")
    if not report.ok:
        print(f"scconvex: verification failed ({report.variant}): "
              f"{'; '.join(report.reasons)}", file=sys.stderr)
        return 1
    return 0


def _cmd_compare_batching(args) -> int:
    from ..files import SCHEMA_VERSION, dumps
    from ..studies.compare_batching import compare_batching, format_comparison

    spec = _spec_from_args(args)
    if spec.batches is None:
        raise InvalidInputError("compare-batching needs --batches or --batch-size")
    pair = compare_batching(spec, spec.batches)
    if args.json:
        print(dumps({"kind": "scconvex.compare_batching", "spec": spec.to_dict(),
                     "full_batch": pair[0].to_dict(), "batch_wise": pair[1].to_dict(),
                     "scconvex_version": __version__, "schema_version": SCHEMA_VERSION}))
    else:
        print(format_comparison(spec, pair, spec.batches))
    if any(g.status != "optimal" for g in pair):
        print("scconvex: not every geometry is certified", file=sys.stderr)
        return 1
    return 0


def _cmd_tightness(args) -> int:
    from ..features.tightness import format_table, tightness
    from ..files import dumps

    spec = _spec_from_args(args)
    from ..problem.inputs import parse_ints

    dims = parse_ints(args.dims, "--dims")
    limit = _time_limit(args.time_limit)
    tick = _progress(not args.json, len(dims) * max(args.restarts, 1), "tightness")
    tols = {name: value for name, value in (("rtol", args.gap_tol),
                                            ("excess_rtol", args.excess_tol))
            if value is not None}
    report = tightness(spec, dims, restarts=args.restarts, level=args.level, seed=args.seed,
                       progress=tick, time_limit=limit, threads=args.threads, **tols)
    if args.json:
        from ..files import SCHEMA_VERSION

        print(dumps({**report.to_dict(), "kind": "scconvex.tightness",
                     "scconvex_version": __version__, "schema_version": SCHEMA_VERSION}))
    else:
        print(format_table(report))
    done = [r.d for r in report.rows]
    short = [r.d for r in report.rows if r.restarts < args.restarts]
    missing = [d for d in dims if d not in done]
    if missing or short:
        sys.stdout.flush()
        print(f"scconvex: time limit {limit:g} s reached: dimensions not tested "
              f"{missing or 'none'}, with fewer restarts {short or 'none'}", file=sys.stderr)
        return 1
    return 0


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so that the final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class _Terminated(BaseException):
    """SIGTERM, raised as an exception so that ``finally`` blocks (temporary files) run."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scconvex`` command; returns the exit code.

    Every failure is one line on stderr: exit 2 for invalid input or usage (including a run
    refused for its memory estimate), 1 for anything else. A closed stdout (``| head``)
    ends the command quietly.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        previous = None
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 1
    except OSError as exc:  # the output could not be written (a full disk: /dev/full)
        _quiet_stdout()
        print(f"scconvex: error: cannot write the output: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


LEVEL_COMMANDS = ("solve", "tightness", "compare-batching", "compare")
"""Commands whose memory a coarser --level reduces (the out-of-memory message says so)."""


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = None
    command = None
    try:
        args = parser.parse_args(argv)
        command = args.command
        from .commands import HANDLERS

        handler = {"solve": _cmd_solve, "verify": _cmd_verify,
                   "tightness": _cmd_tightness,
                   "compare-batching": _cmd_compare_batching, **HANDLERS}[args.command]
        return handler(args)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except InvalidInputError as exc:
        print(f"scconvex: invalid input: {exc}", file=sys.stderr)
        return 2
    except ScconvexError as exc:
        print(f"scconvex: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("scconvex: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("scconvex: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        raise
    except MemoryError as exc:
        if command in LEVEL_COMMANDS:
            batchwise = args is not None and any(
                getattr(args, name, None) is not None for name in ("batches", "batch_size"))
            # A batch-wise loss reduces to the class level at most: never suggest group.
            level = ("a coarser --level (class), " if batchwise
                     else "a coarser --level (group or class), ")
            hint = f"try {level}a smaller problem, or see SCCONVEX_MEMORY_LIMIT"
        else:  # verify, sweep, atlas, plot: no level to choose
            hint = "see SCCONVEX_MEMORY_LIMIT (the memory budget)"
        print(f"scconvex: error: out of memory ({_one_line(exc) or 'MemoryError'}); {hint}",
              file=sys.stderr)
        return 1
    except OSError as exc:  # the machine, not the program: a full disk, an I/O error
        what = ""
        try:
            sys.stdout.flush()
        except OSError:  # it was the output: drop it, or the exit repeats the error
            _quiet_stdout()
            what = "cannot write the output: "
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"scconvex: error: {what}{exc.strerror or _one_line(exc)}{where}",
              file=sys.stderr)
        return 1
    except Exception as exc:  # the last net: one line, never a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"scconvex: internal error: {type(exc).__name__}: {_one_line(exc)} (please "
              f"report it; {DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
