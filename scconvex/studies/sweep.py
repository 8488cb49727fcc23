"""Sweeps: many certified solves over a grid, on dask.distributed, stored in an atlas.

A sweep is a list of *points* (plain dictionaries, one per problem) built from a grid
(:func:`build_points`): STEP problems over ``R`` and ``tau``, long-tail problems, or lists
of count vectors (datasets) over ``tau``; optionally with tightness rows for some
dimensions. :func:`run_sweep` skips the points the atlas already holds, groups the others
into batches (a group-level solve takes milliseconds, so one task per solve would be all
overhead), runs the batches on a dask cluster (or in this process) and stores each batch
in the atlas in one transaction as soon as it returns. Workers only compute; only the
calling process writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError, ScconvexError, missing_extra
from ..files import read_input
from ..problem.inputs import (
    parse_counts,
    parse_ints,
    parse_values,
    read_counts_table,
    read_labels_classes,
)
from ..problem.spec import ProblemSpec

log = logging.getLogger(__name__)

GRID_KEYS = ("step_k", "rho", "n_min", "long_tail_k", "n_max", "R", "tau", "counts",
             "counts_files", "labels_files", "dims", "restarts", "seed", "nc_level", "level",
             "solver", "gap_tol", "excess_tol", "time_limit")
"""Settings of a sweep grid: the keys of a TOML spec and of :func:`build_points`."""

RUN_KEYS = ("workers", "scheduler", "task_size", "atlas")
"""Settings of how a sweep runs (also allowed in a TOML spec)."""

MAX_BATCH = 50

SPEC_FILE_MAX = 2**20
"""Largest TOML sweep spec read (1 MiB)."""


def load_spec_file(path: str | os.PathLike) -> dict:
    """Settings of a sweep from a TOML file (keys of :data:`GRID_KEYS` and :data:`RUN_KEYS`).

    The settings may sit at the top level or under a ``[sweep]`` table. Values are what
    the command-line options take: numbers, lists, or range strings such as
    ``"logspace:1:1e4:13"``.
    """
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError as exc:
            raise missing_extra("sweep", exc) from None
    raw = read_input(path, "--spec", SPEC_FILE_MAX)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInputError(f"--spec {os.fspath(path)!r}: not a text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"--spec {os.fspath(path)!r}: not valid TOML ({exc})") from None
    if isinstance(data.get("sweep"), dict):
        data = data["sweep"]
    data = {k.replace("-", "_"): v for k, v in data.items()}
    if "batch_size" in data and "task_size" not in data:
        data["task_size"] = data.pop("batch_size")  # the earlier name of task_size
    unknown = set(data) - set(GRID_KEYS) - set(RUN_KEYS)
    if unknown:
        raise InvalidInputError(f"--spec {os.fspath(path)!r}: unknown settings "
                                f"{sorted(unknown)}; allowed: {sorted(GRID_KEYS + RUN_KEYS)}")
    where = f"--spec {os.fspath(path)!r}"
    for name, kinds in (("atlas", str), ("scheduler", str), ("workers", int),
                        ("batch_size", int)):
        if name in data and (isinstance(data[name], bool)
                             or not isinstance(data[name], kinds)):
            raise InvalidInputError(f"{where}: {name} must be {_KIND_WORDS[kinds]}, got "
                                    f"{data[name]!r}")
    base = os.path.dirname(os.path.abspath(path))
    for name in ("counts_files", "labels_files"):
        if name in data:
            files = data[name] if isinstance(data[name], list) else [data[name]]
            if not all(isinstance(f, str) and f for f in files):
                raise InvalidInputError(f"{where}: {name} must be file names, got "
                                        f"{data[name]!r}")
            data[name] = [f if os.path.isabs(f) else os.path.join(base, f) for f in files]
    if isinstance(data.get("counts"), str):
        data["counts"] = [data["counts"]]
    return data


_KIND_WORDS = {str: "text", int: "an integer"}


def _scalar(settings: dict, name: str, kind: type, default=None):
    value = settings.get(name, default)
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise InvalidInputError(f"{name} takes one value, got {value!r}")
        value = value[0]
    values = parse_values(value, name) if not isinstance(value, str) or kind is not str \
        else [value]
    if kind is str:
        return str(values[0])
    v = values[0]
    if kind is int:
        if v != int(v):
            raise InvalidInputError(f"{name} must be an integer, got {value!r}")
        return int(v)
    return float(v)


def build_points(settings: dict, refused: list | None = None) -> list[dict]:
    """The points of a sweep grid.

    Parameters
    ----------
    refused : list, optional
        Where grid points that make no valid problem go, each as ``{"point": text,
        "reason": message}`` (a long tail whose smallest class rounds to 0 samples at a
        large ``R``); the other points are returned. Without it the first such point
        raises.
    settings : dict
        Keys of :data:`GRID_KEYS`:

        * STEP grid: ``step_k``, ``rho``, ``n_min``, ``R`` and ``tau``. ``R`` is rounded
          so that ``R * n_min`` is an integer; the point records the ratio actually used.
        * long-tail grid: ``long_tail_k``, ``n_max``, ``R`` and ``tau``.
        * datasets: ``counts`` (list of count texts), ``counts_files``, ``labels_files``,
          each crossed with ``tau``.
        * ``dims`` (with ``restarts``, ``seed``, ``nc_level``): tightness rows per point.
        * ``level``, ``solver``, ``gap_tol``, ``excess_tol``: solve options.
        * ``time_limit``: seconds for each point (its solve and its tightness rows); not
          part of the problem, so not of its key.

    Returns
    -------
    list of dict
        One per distinct problem, each with ``key``, ``spec`` and the grid coordinates.
    """
    from ..features.nonconvex import NONCONVEX_LEVELS
    from ..pipeline.solve import DEFAULT_EXCESS_TOL, DEFAULT_GAP_TOL, SOLVERS
    from .atlas import problem_key

    unknown = set(settings) - set(GRID_KEYS)
    if unknown:
        raise InvalidInputError(f"unknown sweep settings {sorted(unknown)}")
    if settings.get("tau") is None:
        raise InvalidInputError("a sweep needs --tau (one or more temperatures)")
    taus = parse_values(settings["tau"], "--tau")
    level = _scalar(settings, "level", str, "auto")
    solver = _scalar(settings, "solver", str, "auto")
    if solver not in SOLVERS:
        raise InvalidInputError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
    gap_tol = _scalar(settings, "gap_tol", float, DEFAULT_GAP_TOL)
    excess_tol = _scalar(settings, "excess_tol", float, DEFAULT_EXCESS_TOL)
    dims = parse_ints(settings["dims"], "--dims") if settings.get("dims") is not None else []
    restarts = _scalar(settings, "restarts", int, 10)
    seed = _scalar(settings, "seed", int, 0)
    nc_level = _scalar(settings, "nc_level", str, "class")
    time_limit = _scalar(settings, "time_limit", float, None)
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
        raise InvalidInputError(f"--time-limit must be finite and > 0, got {time_limit!r}")
    if restarts < 1 or seed < 0 or nc_level not in NONCONVEX_LEVELS:
        raise InvalidInputError("need restarts >= 1, seed >= 0 and nc_level class or sample")

    problems: list[tuple[ProblemSpec, dict]] = []
    step_keys = ("step_k", "rho", "n_min")
    if any(settings.get(k) is not None for k in step_keys):
        if any(settings.get(k) is None for k in (*step_keys, "R")):
            raise InvalidInputError("a STEP grid needs --step-k, --rho, --n-min and --R")
        k = _scalar(settings, "step_k", int)
        rho = _scalar(settings, "rho", float)
        n_min = _scalar(settings, "n_min", int)
        if n_min is None or n_min < 1:
            raise InvalidInputError(f"--n-min must be a positive integer, got {n_min!r}")
        for ratio in parse_values(settings["R"], "--R"):
            if ratio < 1:
                raise InvalidInputError(f"--R: the imbalance ratio must be >= 1, got {ratio}")
            n_maj = max(1, round(ratio * n_min))
            used = n_maj / n_min
            for tau in taus:
                spec = _grid_spec(refused, f"STEP k={k}, rho={rho:g}, n_min={n_min}, "
                                  f"R={used:g}, tau={tau:g}", ProblemSpec.step, k, rho,
                                  used, n_min, tau, level=level)
                if spec is not None:
                    problems.append((spec, {"family": "step", "R": used, "rho": rho,
                                            "n_min": n_min}))
    if settings.get("long_tail_k") is not None or settings.get("n_max") is not None:
        if settings.get("long_tail_k") is None or settings.get("n_max") is None \
                or settings.get("R") is None:
            raise InvalidInputError("a long-tail grid needs --long-tail-k, --n-max and --R")
        k = _scalar(settings, "long_tail_k", int)
        n_max = _scalar(settings, "n_max", int)
        for ratio in parse_values(settings["R"], "--R"):
            for tau in taus:
                spec = _grid_spec(refused, f"long tail k={k}, n_max={n_max}, R={ratio:g}, "
                                  f"tau={tau:g}", ProblemSpec.long_tail, k, ratio, n_max,
                                  tau, level=level)
                if spec is not None:
                    problems.append((spec, {"family": "long_tail", "R": ratio,
                                            "n_max": n_max}))
    datasets: list[tuple[str, tuple[int, ...], tuple[str, ...] | None]] = []
    for text in settings.get("counts") or []:
        datasets.append((text, parse_counts(text), None))
    for path in settings.get("counts_files") or []:
        datasets.append((os.path.basename(path), *read_counts_table(path)))
    for path in settings.get("labels_files") or []:
        datasets.append((os.path.basename(path), *read_labels_classes(path)))
    for name, counts, names in datasets:
        for tau in taus:
            spec = ProblemSpec(counts, tau, level=level, names=names)
            problems.append((spec, {"family": "counts", "dataset": name,
                                    "R": max(counts) / min(counts)}))
    if not problems and refused:
        raise InvalidInputError(f"every point of the sweep is refused; the first, "
                                f"{refused[0]['point']}: {refused[0]['reason']}")
    if not problems:
        raise InvalidInputError("the sweep has no problems: give a STEP grid (--step-k, "
                                "--rho, --n-min, --R), a long-tail grid (--long-tail-k, "
                                "--n-max, --R) or datasets (--counts, --counts-file, "
                                "--labels-file)")
    points, seen = [], set()
    for spec, coords in problems:
        key = problem_key(spec.to_dict(), gap_tol, excess_tol)
        if key in seen:
            continue
        seen.add(key)
        points.append({"key": key, "spec": spec.to_dict(), "solver": solver,
                       "gap_tol": gap_tol, "excess_tol": excess_tol, "dims": dims,
                       "time_limit": time_limit,
                       "restarts": restarts, "seed": seed, "nc_level": nc_level,
                       "dataset": None, "R": None, "rho": None, "n_min": None,
                       "n_max": None, "minority": None, **coords})
    return points


def _grid_spec(refused: list | None, point: str, make, *args, **kwargs):
    """``make(*args, **kwargs)``, or None with the refusal recorded in ``refused``."""
    try:
        return make(*args, **kwargs)
    except InvalidInputError as exc:
        if refused is None:
            raise InvalidInputError(f"{point}: {exc}") from None
        refused.append({"point": point, "reason": str(exc)})
        return None


# ---------------------------------------------------------------------- worker side
@dataclass(frozen=True)
class _Bound:
    lower_bound: float
    excess_gap: float


@dataclass(frozen=True)
class StoredSolve:
    """A solve the atlas holds, recomputed from its stored geometry: the reference that
    new tightness rows are measured against (what :func:`scconvex.features.tightness.tightness`
    reads of a relaxed solve), so that they agree with the row they are stored with."""

    loss: float
    excess_loss: float
    class_gram: np.ndarray
    rank: int
    status: str
    certificate: _Bound
    sample_certificate: _Bound

    @classmethod
    def from_certificate(cls, text: str, gap_tol: float, excess_tol: float
                         ) -> StoredSolve | None:
        """The stored certificate re-verified (:func:`verify_data` with its own
        tolerances), or None when it does not verify (then the point is solved again)."""
        from ..certificates.measures import geometry_of
        from ..certificates.verify import verify_data

        try:
            data = json.loads(text)
            report = verify_data(data, tol=gap_tol, excess_tol=excess_tol)
            geo = geometry_of(data) if report.ok else None
        except (TypeError, ValueError, KeyError, RecursionError):
            return None
        if geo is None:
            return None
        return cls(loss=report.loss, excess_loss=report.excess_loss,
                   class_gram=geo.class_gram(), rank=report.rank, status="optimal",
                   certificate=_Bound(report.lower_bound, report.excess_gap),
                   sample_certificate=_Bound(report.sample_lower_bound,
                                             report.sample_excess_gap))


def run_point(point: dict) -> dict:
    """Solve one point (and its tightness rows); returns an atlas record.

    A point of task ``"tightness"`` (:func:`pending`) is not solved again: its missing
    tightness rows are measured against the solve the atlas holds (:class:`StoredSolve`),
    and the record holds those rows alone. If that solve no longer verifies, the point
    is solved again and the new solve replaces it, with all its tightness rows.
    """
    from ..features.tightness import tightness
    from ..pipeline.solve import solve
    from .atlas import make_record, tightness_record

    spec = ProblemSpec.from_dict(point["spec"])
    limit = point.get("time_limit")
    deadline = math.inf if limit is None else time.perf_counter() + limit

    def rows_for(relaxed, dims) -> list[dict]:
        left = deadline - time.perf_counter()
        if left <= 0:
            return []
        rep = tightness(spec, dims, restarts=point["restarts"], level=point["nc_level"],
                        seed=point["seed"], relaxed=relaxed,
                        time_limit=None if limit is None else left)
        # Rows cut short by the time limit are not stored: the next run computes them.
        return [{**r.to_dict(), "restarts": point["restarts"], "seed": point["seed"],
                 "nc_level": point["nc_level"], "features": r.features} for r in rep.rows
                if r.restarts == point["restarts"]]

    if point.get("task") == "tightness":
        stored = StoredSolve.from_certificate(point["stored"], point["gap_tol"],
                                              point["excess_tol"])
        if stored is not None:
            return tightness_record(point["key"], rows_for(stored, point["missing_dims"]))
    res = solve(spec, solver=point["solver"], gap_tol=point["gap_tol"],
                excess_tol=point["excess_tol"],
                options=None if limit is None else {"time_limit": limit})
    rows = []
    if point["dims"] and res.class_gram is not None:
        rows = rows_for(res, point["dims"])
    return make_record(res.to_dict(), point, rows, seconds=res.seconds)


def solve_batch(points: Sequence[dict]) -> list[dict]:
    """Run a batch of points with BLAS pinned to one thread (the dask task)."""
    from ..threads import blas_threads

    with blas_threads(1):
        return [run_point(p) for p in points]


# ---------------------------------------------------------------------- client side
@dataclass
class SweepSummary:
    """What a sweep did.

    Attributes
    ----------
    points : int
        Distinct problems in the grid.
    solved : int
        Points computed by this run (and stored).
    from_atlas : int
        Points the atlas already held (not recomputed).
    retried : int
        Points stored as not certified that this run solved again (they replace the
        stored rows); included in ``solved``.
    not_certified : int
        Solved points whose status is not ``optimal``.
    errors : list of str
        Batches that raised (their points are not stored and will be retried).
    refused : list of dict
        Grid points that make no valid problem (``point``, ``reason``), not solved.
    interrupted : bool
    seconds : float
    workers : int
        Workers used (0 = in this process).
    batches : int
    """

    points: int
    solved: int = 0
    from_atlas: int = 0
    retried: int = 0
    not_certified: int = 0
    errors: list = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0
    workers: int = 0
    batches: int = 0
    refused: list = field(default_factory=list)

    @property
    def message(self) -> str:
        text = f"{self.solved} solved, {self.from_atlas} from the atlas"
        if self.retried:
            text += (f" ({self.retried} retried: stored as not certified before, solved "
                     f"again)")
        if self.refused:
            first = self.refused[0]
            text += (f", {len(self.refused)} refused (first: {first['point']}: "
                     f"{first['reason']})")
        if self.not_certified:
            text += f", {self.not_certified} not certified"
        if self.errors:
            text += f", {len(self.errors)} batches failed ({self.errors[0]})"
        if self.interrupted:
            text += f"; interrupted, {self.points - self.solved - self.from_atlas} left"
        return text

    def to_dict(self) -> dict:
        return {"points": self.points, "solved": self.solved, "from_atlas": self.from_atlas,
                "retried": self.retried, "not_certified": self.not_certified,
                "errors": list(self.errors),
                "interrupted": self.interrupted, "seconds": self.seconds,
                "workers": self.workers, "batches": self.batches,
                "refused": list(self.refused), "message": self.message}


def pending(points: Sequence[dict], atlas, retry: bool = True) -> list[dict]:
    """The points to run, each a copy with its ``task``.

    * ``"solve"``: the atlas has no solve of the point;
    * ``"retry"``: its solve is stored as not certified and ``retry`` is set; it is
      solved again, and the new solve replaces the stored one with its tightness rows;
    * ``"tightness"``: a certified solve is stored but some tightness rows are missing;
      only those (``missing_dims``) are computed, against the stored solve (``stored``:
      its certificate), so that every tightness row refers to the solve stored with it.
    """
    statuses = atlas.statuses()
    tight = atlas.tightness_keys() if any(p["dims"] for p in points) else set()
    out = []
    for p in points:
        key = p["key"]
        missing = [d for d in p["dims"]
                   if (key, d, p["restarts"], p["seed"], p["nc_level"]) not in tight]
        if key not in statuses:
            out.append({**p, "task": "solve"})
        elif statuses[key] != "optimal":
            if retry:
                out.append({**p, "task": "retry"})
        elif missing:
            out.append({**p, "task": "tightness", "missing_dims": missing,
                        "stored": atlas.stored(key)[1]})
    return out


def worker_bytes(points: Sequence[dict]) -> float:
    """Estimated peak memory of one worker running ``points``: its largest solve
    (:meth:`scconvex.levels.Level.memory_bound`: the side of the point's largest level,
    ``k``, or ``n`` at sample level) and its largest non-convex problem, each with the
    interpreter's own memory."""
    from ..levels import choose, get_level
    from ..losses import loss_of
    from ..resources import nonconvex_bytes

    worst = 0.0
    for p in points:
        spec = ProblemSpec.from_dict(p["spec"])
        # The level the solve will build ("auto" is the sample level for a loss that
        # reduces at no other).
        level = choose(spec, spec.level, loss_of(spec).levels)
        solver = "native" if p["solver"] == "auto" else p["solver"]
        need = level.memory_bound(spec, solver)
        if p["dims"]:
            rows = get_level(p["nc_level"]).rows(spec)
            need = max(need, nonconvex_bytes(rows, max(p["dims"]), p["restarts"]))
        worst = max(worst, need)
    return worst


def check_workers(points: Sequence[dict], workers: int) -> None:
    """Refuse a local cluster whose workers do not fit in memory together.

    Raises
    ------
    ResourceLimitError
        Naming the estimate per worker and how many workers fit.
    """
    from ..resources import available_memory, check_memory, format_bytes

    if workers <= 1 or not points:
        return
    each = worker_bytes(points)
    fit = int(available_memory() // each) if each > 0 else workers
    check_memory(workers * each, f"--workers {workers} (about {format_bytes(each)} each)",
                 f"at most {max(fit, 0)} workers fit; use --workers {max(fit, 1)} or fewer")


def _batches(points: list[dict], workers: int, batch_size: int | None) -> list[list[dict]]:
    if batch_size is None:
        batch_size = 1 if workers == 0 else \
            max(1, min(MAX_BATCH, math.ceil(len(points) / (4 * workers))))
    if batch_size < 1:
        raise InvalidInputError(f"--task-size must be >= 1, got {batch_size}")
    return [points[i:i + batch_size] for i in range(0, len(points), batch_size)]


def run_sweep(points: Sequence[dict], atlas, *, workers: int = 2, scheduler: str | None = None,
              batch_size: int | None = None,
              progress: Callable[[int], None] | None = None,
              retry: bool = True) -> SweepSummary:
    """Run the points the atlas does not hold, storing each batch as it finishes.

    Parameters
    ----------
    points : sequence of dict
        From :func:`build_points`.
    atlas : scconvex.studies.atlas.Atlas
        Open atlas; the only writer.
    workers : int
        Workers of a local dask cluster (one thread each); 0 runs in this process.
    scheduler : str, optional
        Address of an existing dask scheduler (``tcp://HOST:PORT``); overrides
        ``workers``.
    batch_size : int, optional
        Points per task (the command line's ``--task-size``); default about four tasks per
        worker, at most 50 points each.
    progress : callable, optional
        Called with the number of points the atlas already holds (if any), then with the
        number of points of each stored batch.
    retry : bool
        Solve again the points stored as not certified (a better solver, more time);
        without it they are kept as they are (see :func:`pending`).

    Returns
    -------
    SweepSummary
        A Ctrl-C (KeyboardInterrupt) stops the sweep and returns with ``interrupted``
        set; every batch stored before it stays in the atlas.
    """
    t0 = time.perf_counter()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise InvalidInputError(f"--workers must be an integer >= 0, got {workers!r}")
    todo = pending(points, atlas, retry)
    if scheduler is None:
        check_workers(todo, workers)
    summary = SweepSummary(points=len(points), from_atlas=len(points) - len(todo))
    retrying = {p["key"] for p in todo if p["task"] == "retry"}
    if progress is not None and summary.from_atlas:
        progress(summary.from_atlas)

    def store(records: list[dict]) -> None:
        atlas.add(records)
        summary.solved += len(records)
        solves = [r["solve"] for r in records if r["solve"] is not None]
        summary.not_certified += sum(row["status"] != "optimal" for row in solves)
        summary.retried += sum(row["key"] in retrying for row in solves)
        if progress is not None:
            progress(len(records))

    try:
        if not todo:
            pass
        elif scheduler is None and workers == 0:
            batches = _batches(todo, 0, batch_size)
            summary.batches = len(batches)
            for batch in batches:
                store(solve_batch(batch))
        else:
            _run_dask(todo, store, summary, workers, scheduler, batch_size)
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.seconds = time.perf_counter() - t0
    return summary


def _run_dask(todo, store, summary: SweepSummary, workers: int, scheduler: str | None,
              batch_size: int | None) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise missing_extra("sweep", exc) from None
    cluster = None
    try:
        if scheduler is not None:
            if not isinstance(scheduler, str) or not scheduler.strip():
                raise InvalidInputError(f"--scheduler must be an address such as "
                                        f"tcp://HOST:PORT, got {scheduler!r}")
            try:
                client = Client(scheduler, timeout=20)
            except (ValueError, TypeError) as exc:  # e.g. "missing port number"
                raise InvalidInputError(f"--scheduler {scheduler!r} is not a scheduler "
                                        f"address such as tcp://HOST:PORT ({exc})") from None
            except (OSError, TimeoutError) as exc:
                raise ScconvexError(f"cannot connect to the dask scheduler at "
                                    f"{scheduler!r}: {exc}") from None
        else:
            with _children_ignore_sigint():
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None,
                                       silence_logs=logging.CRITICAL)
            client = Client(cluster)
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    futures = []
    try:
        if scheduler is not None:
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                raise ScconvexError(f"the dask scheduler at {scheduler!r} has no workers "
                                    f"(waited 60 s)") from None
        n_workers = len(client.scheduler_info().get("workers", {})) or max(workers, 1)
        summary.workers = n_workers
        batches = _batches(todo, n_workers, batch_size)
        summary.batches = len(batches)
        futures = client.map(solve_batch, batches, pure=False)
        for fut in as_completed(futures):
            try:
                records = fut.result()
            except Exception as exc:  # a bug or a lost worker: keep going, report it
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                summary.errors.append(f"{type(exc).__name__}: {first}")
                log.debug("a sweep batch failed", exc_info=True)
                continue
            store(records)
    finally:
        if futures:
            client.cancel(futures)
        client.close()
        if cluster is not None:
            cluster.close()


@contextlib.contextmanager
def _children_ignore_sigint():
    """Start processes with SIGINT ignored, so that a Ctrl-C reaches only the client.

    A terminal sends SIGINT to the whole process group; worker processes would die
    mid-batch with tracebacks. An ignored signal stays ignored in spawned children (and
    Python keeps it so), while the client restores its handler and stops cleanly.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
