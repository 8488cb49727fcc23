"""The results atlas: an SQLite database with one row per certified solve.

A row is keyed by a hash of the problem (:func:`problem_key`: counts, tau, loss,
relaxation, requested level and both tolerances). It holds the spec, the status, loss,
lower bounds and gaps at both levels, the solver and time, package versions, the geometry
(the block Gram, and the class Gram for ``k <= CLASS_GRAM_MAX``), the summary measures of
:mod:`scconvex.certificates.measures` and the full certificate JSON, which
:func:`scconvex.certificates.verify.verify_data` re-checks. Tightness rows live in a second table,
keyed by the solve key, ``d``, the number of restarts, the seed and the non-convex level;
a row that claims ``tight`` also holds the best restart's features (up to
:data:`FEATURES_MAX` numbers), from which ``atlas verify`` re-derives the claim.

Only one process writes (the sweep client); every batch of rows is one transaction, and
the database runs in WAL mode, so a killed writer leaves a database that opens and holds
every committed row.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..certificates.certify import DEFAULT_EXCESS_TOL, DEFAULT_GAP_TOL
from ..errors import InvalidInputError
from ..files import dumps, jsonable
from ..levels import get_level

ATLAS_SCHEMA = 3
"""Schema 2 added the ``features`` and ``features_note`` columns of the tightness table;
schema 3 the cosine-bar columns of the solves table (:data:`BAR_COLUMNS`)."""

CLASS_GRAM_MAX = 64
"""Largest ``k`` whose ``k x k`` class Gram is stored in its own column."""

FEATURES_MAX = 200_000
"""Most numbers (``rows x d``) of non-convex features stored with a tight tightness row
(1.6 MB of float64, a few MB of JSON). Larger sample-level points are not stored: the row
says so in ``features_note`` and ``atlas verify`` reports it as not re-derivable."""

FEATURES_UNIT_TOL = 1e-8
"""Largest deviation from 1 of the norm of a stored feature row that ``atlas verify``
accepts (the solver's rows are unit to rounding, and JSON keeps float64 exactly)."""

MEASURE_COLUMNS = ("etf_distance", "cos_min", "cos_mean", "cos_max", "cos_maj_maj",
                   "cos_min_min", "cos_maj_min", "minority_collapse", "angle_min_deg",
                   "angle_max_deg")

SOLVE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", "TEXT PRIMARY KEY"), ("created", "TEXT"), ("family", "TEXT"),
    ("dataset", "TEXT"), ("k", "INTEGER"), ("n", "INTEGER"), ("R", "REAL"), ("rho", "REAL"),
    ("n_min", "INTEGER"), ("n_max", "INTEGER"), ("tau", "REAL"), ("counts", "TEXT"),
    ("loss_name", "TEXT"), ("relaxation", "TEXT"), ("level_requested", "TEXT"),
    ("level", "TEXT"), ("gap_tol", "REAL"), ("excess_tol", "REAL"), ("status", "TEXT"),
    ("loss", "REAL"), ("excess_loss", "REAL"), ("lower_bound", "REAL"), ("gap", "REAL"),
    ("rel_gap", "REAL"), ("excess_gap", "REAL"), ("sample_lower_bound", "REAL"),
    ("sample_gap", "REAL"), ("sample_rel_gap", "REAL"), ("sample_excess_gap", "REAL"),
    ("solver", "TEXT"), ("seconds", "REAL"), ("rank", "INTEGER"),
    *((name, "REAL") for name in MEASURE_COLUMNS),
    ("versions", "TEXT"), ("block_gram", "TEXT"), ("class_gram", "TEXT"),
    ("measures", "TEXT"), ("certificate", "TEXT"),
    ("max_bar", "REAL"), ("unique_proof", "INTEGER"), ("collapse_delta", "REAL"),
)
"""Columns of the ``solves`` table (name, SQL type)."""

BAR_COLUMNS = ("max_bar", "unique_proof", "collapse_delta")
"""Columns of schema 3, copied from the certificate's ``cosine_bounds`` and ``unique``: the
widest proven cosine bar, the uniqueness proof (1 proven unique, 0 proven not unique, NULL
not proven) and the proven within-class ``collapse_delta`` (NULL without bars). An older
atlas opens without them and gets them, empty, on its first write."""

TIGHTNESS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", "TEXT"), ("d", "INTEGER"), ("restarts", "INTEGER"), ("seed", "INTEGER"),
    ("nc_level", "TEXT"), ("tight", "INTEGER"), ("reached", "INTEGER"),
    ("best_loss", "REAL"), ("rel_gap", "REAL"), ("excess_gap", "REAL"),
    ("gram_distance", "REAL"), ("seconds", "REAL"), ("features", "TEXT"),
    ("features_note", "TEXT"),
)
"""Columns of the ``tightness`` table (name, SQL type)."""

ADDED_TIGHTNESS_COLUMNS = ("features", "features_note")
"""Tightness columns of schema 2. An older atlas opens without them (its tight rows are
not re-derivable) and gets them, empty, on its first write."""

LEGACY_NOTE = "not re-derivable: written before features were stored (atlas schema 1)"
"""``features_note`` given, on the upgrade to schema 2, to the tight rows of an older
atlas. Only an atlas that records such an upgrade (or still lacks the features column)
may hold tight rows without features and without the cap as their reason."""

CLAIM_COLUMNS = ("status", "loss", "excess_loss", "lower_bound", "gap", "rel_gap",
                 "excess_gap", "sample_lower_bound", "sample_gap", "sample_rel_gap",
                 "sample_excess_gap", "gap_tol", "excess_tol", "rank", "solver")
"""Columns that must equal the stored certificate's values."""

SPEC_COLUMNS = ("k", "n", "tau", "counts", "loss_name", "relaxation", "level_requested",
                "level")
"""Columns that describe the problem and must equal the certificate's spec (and level)."""


def problem_key(spec: dict, gap_tol: float, excess_tol: float) -> str:
    """Hash of a problem: counts, tau, loss, relaxation, batches, level and both tolerances.

    ``spec`` is :meth:`scconvex.problem.spec.ProblemSpec.to_dict`. Floats enter through their
    shortest round-trip text, so equal numbers give equal keys.
    """
    data = {"counts": [int(c) for c in spec["counts"]], "tau": float(spec["tau"]),
            "loss": spec["loss"], "relaxation": spec["relaxation"], "level": spec["level"],
            "gap_tol": float(gap_tol), "excess_tol": float(excess_tol)}
    if spec.get("batches") is not None:
        # Batch-wise problems differ from the full-batch one with the same counts.
        data["batches"] = [[int(i) for i in b] for b in spec["batches"]]
    return hashlib.sha256(dumps(data).encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=1)
def _versions() -> str:
    return dumps(package_versions())


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a result (missing ones are left out)."""
    import platform
    from importlib import metadata

    from .._version import __version__

    out = {"scconvex": __version__, "python": platform.python_version()}
    for name in ("numpy", "scipy", "cvxpy", "clarabel", "scs"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _float(x) -> float | None:
    """SQLite has no NaN: store non-finite numbers as NULL."""
    if x is None or isinstance(x, str):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class VerifyRow:
    """Outcome of re-checking one atlas row."""

    key: str
    ok: bool
    status: str
    reasons: tuple[str, ...]
    rederived: tuple[str, ...] = ()
    """Tight tightness rows re-derived from their stored features (one line each)."""
    not_rederivable: tuple[str, ...] = ()
    """Tight tightness rows without stored features: checked for consistency only."""
    gap_tol: float | None = None
    """The row's own ``gap_tol`` (None when unreadable); reported, never judged by."""
    excess_tol: float | None = None
    """The row's own ``excess_tol`` (None when unreadable); reported, never judged by."""


class Atlas:
    """An open atlas database (a context manager that closes it).

    Parameters
    ----------
    path : path-like
        SQLite file (not ``""`` or ``":memory:"``, which would store nothing).
    create : bool
        Create the file and tables if missing; otherwise a missing file is an error.
    readonly : bool
        Open for reading only, without writing anything (also no WAL files where the
        folder is read-only): what ``atlas list|show|export|verify`` and ``plot`` use.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = False,
                 readonly: bool = False) -> None:
        if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
            raise InvalidInputError(f"the atlas must be a file name, got {path!r}")
        self.path = os.fspath(path)
        if self.path in ("", ":memory:"):
            raise InvalidInputError(f"the atlas {self.path!r} would be a temporary database "
                                    "that stores nothing; give a file name")
        if not create and not os.path.isfile(self.path):
            raise InvalidInputError(f"no atlas at {self.path!r}")
        self.readonly = readonly and not create
        try:
            if self.readonly:
                self.conn = _connect_readonly(self.path)
            else:
                self.conn = sqlite3.connect(self.path, timeout=30)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.row_factory = sqlite3.Row
            if create:
                self._create()
            tables = {r[0] for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            self._tightness_columns = {r[1] for r in self.conn.execute(
                "PRAGMA table_info(tightness)")}
        except sqlite3.DatabaseError as exc:
            raise InvalidInputError(f"{self.path!r} is not an atlas database ({exc})") from None
        if not {"solves", "tightness", "meta"} <= tables:
            self.conn.close()
            raise InvalidInputError(f"{self.path!r} is not an atlas database (tables missing)")

    def _create(self) -> None:
        with self.conn:
            cols = ", ".join(f"{n} {t}" for n, t in SOLVE_COLUMNS)
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS solves ({cols})")
            cols = ", ".join(f"{n} {t}" for n, t in TIGHTNESS_COLUMNS)
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS tightness ({cols}, PRIMARY KEY "
                              f"(key, d, restarts, seed, nc_level))")
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, "
                              "value TEXT)")
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                              (str(ATLAS_SCHEMA),))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Atlas:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def add(self, records: Iterable[dict]) -> int:
        """Store records (from :func:`make_record`) in one transaction; returns solves stored.

        A record with a solve row replaces any row of the same key **together with its
        tightness rows**, which were measured against the replaced solve; its own
        tightness rows are then stored. A record whose ``solve`` is None (tightness rows
        measured against the stored solve, :func:`tightness_record`) adds or replaces
        tightness rows of a solve the atlas holds.
        """
        names = [n for n, _ in SOLVE_COLUMNS]
        solve_sql = (f"INSERT OR REPLACE INTO solves ({', '.join(names)}) VALUES "
                     f"({', '.join('?' * len(names))})")
        tnames = [n for n, _ in TIGHTNESS_COLUMNS]
        tight_sql = (f"INSERT OR REPLACE INTO tightness ({', '.join(tnames)}) VALUES "
                     f"({', '.join('?' * len(tnames))})")
        added = 0
        with self.conn:
            self._upgrade()
            for rec in records:
                row = rec["solve"]
                if row is not None:
                    self.conn.execute("DELETE FROM tightness WHERE key = ?", (row["key"],))
                    cur = self.conn.execute(solve_sql, [row.get(n) for n in names])
                    added += cur.rowcount
                elif self.conn.execute("SELECT 1 FROM solves WHERE key = ?",
                                       (rec["key"],)).fetchone() is None:
                    continue  # no solve to refer to: nothing to measure against
                for t in rec.get("tightness", ()):
                    self.conn.execute(tight_sql, [t.get(n) for n in tnames])
        return added

    def stored(self, key: str) -> tuple[str | None, str | None]:
        """``(status, certificate)`` of the solve row of ``key``, or ``(None, None)``."""
        row = self.conn.execute("SELECT status, certificate FROM solves WHERE key = ?",
                                (key,)).fetchone()
        return (None, None) if row is None else (row[0], row[1])

    def _upgrade(self) -> None:
        """Add the columns of later schemas to an older atlas (inside the caller's
        transaction)."""
        missing = [n for n in ADDED_TIGHTNESS_COLUMNS if n not in self._tightness_columns]
        for name in missing:
            self.conn.execute(f"ALTER TABLE tightness ADD COLUMN {name} TEXT")
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(solves)")}
        types = dict(SOLVE_COLUMNS)
        for name in BAR_COLUMNS:
            if name not in have:
                self.conn.execute(f"ALTER TABLE solves ADD COLUMN {name} {types[name]}")
                missing.append(name)
        if missing:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                              (str(ATLAS_SCHEMA),))
            legacy = self.conn.execute("UPDATE tightness SET features_note = ? WHERE "
                                       "tight = 1 AND features IS NULL", (LEGACY_NOTE,))
            if legacy.rowcount:
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('legacy_tight', ?)",
                                  (str(legacy.rowcount),))
            self._tightness_columns.update(missing)

    # ------------------------------------------------------------------ reading
    def keys(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT key FROM solves")}

    def statuses(self) -> dict[str, str]:
        """Status of every stored solve, by key."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT key, status FROM solves")}

    def tightness_keys(self) -> set[tuple]:
        return {tuple(r) for r in self.conn.execute(
            "SELECT key, d, restarts, seed, nc_level FROM tightness")}

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM solves").fetchone()[0])

    def rows(self, where: Sequence[tuple[str, str]] = ()) -> list[dict]:
        """Solve rows as dictionaries, ordered by family, k, R, tau; ``where`` filters.

        ``where`` holds ``(column, value)`` pairs; numeric columns compare as numbers.
        """
        names = {n for n, _ in SOLVE_COLUMNS}
        clauses, params = [], []
        for col, value in where:
            if col not in names:
                raise InvalidInputError(f"--where: unknown column {col!r}")
            if col == "key":  # a prefix, taken literally (LIKE would read _ and %)
                clauses.append("substr(key, 1, ?) = ?")
                params += [len(value), value]
                continue
            value = _coerce(value)
            if isinstance(value, int) and not -2**63 <= value < 2**63:
                # Beyond SQLite's integers: compared as a number (no stored row has it).
                value = (math.inf if value > 0 else -math.inf) if abs(value) > 2**1023 \
                    else float(value)
            if isinstance(value, float) or dict(SOLVE_COLUMNS)[col] == "REAL":
                try:
                    value = float(value)
                except ValueError:
                    raise InvalidInputError(f"--where {col}: {value!r} is not a number") \
                        from None
                if not math.isfinite(value):  # never stored (NULL): matches nothing
                    clauses.append("0")
                    continue
                # Grid values come from arithmetic (linspace, R rounding): compare to 1e-9.
                clauses.append(f"ABS({col} - ?) <= 1e-9 * MAX(1.0, ABS(?))")
                params += [value, value]
                continue
            clauses.append(f"{col} = ?")
            params.append(value)
        sql = "SELECT * FROM solves"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY family, k, R, tau, counts"
        return [_readable(r) for r in self.conn.execute(sql, params)]

    def tightness_rows(self, key: str | None = None) -> list[dict]:
        sql = "SELECT * FROM tightness"
        params: list = []
        if key is not None:
            sql += " WHERE key = ?"
            params.append(key)
        return [_readable(r) for r in self.conn.execute(sql + " ORDER BY key, d", params)]

    @property
    def predates_features(self) -> bool:
        """Whether this atlas may hold tight rows written before features were stored:
        it lacks the features column, or its upgrade to schema 2 found such rows."""
        if "features" not in self._tightness_columns:
            return True
        return self.conn.execute(
            "SELECT 1 FROM meta WHERE name = 'legacy_tight'").fetchone() is not None

    def min_tight_dims(self) -> dict[str, int]:
        """Smallest tight ``d`` of every key that has a tight tightness row.

        A ``d`` below the stored rank of a solve whose certificate says its optimum is
        unique is left out: every optimum then has that rank, so no point of lower rank
        attains it (such a row can only be tight within its tolerance, or forged).
        """
        out: dict[str, int] = {}
        rows = self.conn.execute(
            "SELECT t.key, t.d, s.rank FROM tightness t JOIN solves s ON s.key = t.key "
            "WHERE t.tight = 1 ORDER BY t.key, t.d")
        for key, d, rank in rows:
            if key in out or not isinstance(d, int) or isinstance(key, bytes):
                continue
            if isinstance(rank, int) and d < rank and self._unique(key):
                continue
            out[key] = d
        return out

    def _unique(self, key: str) -> bool:
        """Whether the stored certificate of ``key`` says its optimum is unique."""
        row = self.conn.execute("SELECT certificate FROM solves WHERE key = ?",
                                (key,)).fetchone()
        try:
            return json.loads(row[0]).get("unique") is True
        except (TypeError, ValueError, AttributeError, RecursionError):
            return False


def _readable(row: sqlite3.Row) -> dict:
    """A row as a dictionary; a BLOB (never written by scconvex, only by hand) becomes a
    text that says so, so that every reader sees text or numbers."""
    return {name: (f"<BLOB of {len(v)} bytes>" if isinstance(v, bytes) else v)
            for name, v in zip(row.keys(), row, strict=True)}


def _connect_readonly(path: str) -> sqlite3.Connection:
    """A connection that never writes: ``mode=ro``, or, where SQLite cannot create the WAL
    index of a WAL database (a read-only folder), ``immutable=1``. Immutable is safe only
    without a pending write-ahead log (no writer can add one in a read-only folder); with
    one, the atlas is refused rather than read without its last transactions."""
    from urllib.parse import quote

    uri = "file:" + quote(os.path.abspath(path))
    conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=30)
    try:
        conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError:
        conn.close()
    wal = path + "-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        raise InvalidInputError(f"{path!r} cannot be read here: its write-ahead log "
                                f"{wal!r} holds transactions that only a writable folder "
                                "can apply (open it once where the folder is writable)")
    return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, timeout=30)


def _coerce(value: str):
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def make_record(result: dict, point: dict, tightness_rows: Sequence[dict] = (),
                seconds: float | None = None) -> dict:
    """An atlas record from a solve result dictionary and its sweep point.

    Parameters
    ----------
    result : dict
        :meth:`scconvex.pipeline.solve.SolveResult.to_dict` (the certificate).
    point : dict
        The sweep point: ``key``, ``family``, ``dataset``, ``R``, ``rho``, ``n_min``,
        ``n_max`` and ``minority`` (class mask, or None for the default rule).
    tightness_rows : sequence of dict
        :meth:`scconvex.features.tightness.TightnessRow.to_dict` plus ``restarts``, ``seed``,
        ``nc_level`` and ``features`` (:attr:`scconvex.features.tightness.TightnessRow.features`),
        which is stored for a tight row of at most :data:`FEATURES_MAX` numbers.
    """
    from ..certificates.measures import geometry_of, summary

    spec = result["spec"]
    geo = geometry_of(result)
    tight = [t["d"] for t in tightness_rows if t["tight"]]
    measures = None
    bounds = result.get("cosine_bounds")
    if geo is not None:
        minority = point.get("minority")
        measures = summary(geo, None if minority is None else np.asarray(minority, bool),
                           counts=spec["counts"], rank=result["rank"], tight_dims=tight,
                           bounds=_claimed_intervals(bounds, geo))
    from ..problem.inputs import format_counts

    row = {
        "key": point["key"], "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "family": point.get("family", "counts"), "dataset": point.get("dataset"),
        "k": result["k"], "n": result["n"], "R": point.get("R"), "rho": point.get("rho"),
        "n_min": point.get("n_min"), "n_max": point.get("n_max"), "tau": result["tau"],
        "counts": format_counts(spec["counts"]), "loss_name": spec["loss"],
        "relaxation": spec["relaxation"], "level_requested": spec["level"],
        "level": result["level"], "gap_tol": result["gap_tol"],
        "excess_tol": result["excess_tol"], "solver": result["solver"],
        "seconds": _float(seconds if seconds is not None else result["seconds"]),
        "rank": result["rank"], "versions": _versions(),
        "block_gram": None if geo is None else dumps(geo.to_dict()),
        "class_gram": (dumps(geo.class_gram()) if geo is not None
                       and geo.k <= CLASS_GRAM_MAX else None),
        "measures": None if measures is None else dumps(measures),
        "certificate": dumps(result),
        **_bar_columns(result),
    }
    for name in ("status", "loss", "excess_loss", "lower_bound", "gap", "rel_gap",
                 "excess_gap", "sample_lower_bound", "sample_gap", "sample_rel_gap",
                 "sample_excess_gap"):
        row[name] = result[name] if name == "status" else _float(result[name])
    for name in MEASURE_COLUMNS:
        row[name] = None if measures is None else _float(measures[name])
    return {**tightness_record(point["key"], tightness_rows), "solve": row}


def tightness_record(key: str, tightness_rows: Sequence[dict]) -> dict:
    """An atlas record of tightness rows alone, measured against the solve the atlas
    holds for ``key`` (``tightness_rows`` as for :func:`make_record`)."""
    rows = [{**{n: t.get(n) for n, _ in TIGHTNESS_COLUMNS},
             "key": key, "tight": int(bool(t["tight"])),
             **{n: _float(t[n]) for n in ("best_loss", "rel_gap", "excess_gap",
                                          "gram_distance", "seconds")},
             **_features_columns(t)}
            for t in tightness_rows]
    return {"solve": None, "key": key, "tightness": rows}


def _bar_columns(cert: dict) -> dict:
    """The :data:`BAR_COLUMNS` of a certificate (None where it claims no bars)."""
    bounds = cert.get("cosine_bounds")
    # A version 1 certificate held an estimate under "unique", not a proof.
    unique = cert.get("unique") if cert.get("schema_version", 2) != 1 else None
    return {"max_bar": None if bounds is None else _float(bounds.get("max_half_width")),
            "unique_proof": None if unique is None else int(bool(unique)),
            "collapse_delta": None if bounds is None else _float(bounds.get("collapse_delta"))}


def _claimed_intervals(bounds: dict | None, geo):
    """The intervals of the optimum's cosines that a certificate's ``cosine_bounds`` claim
    (``geo`` +- the bars, the listed intervals of the cosines between single-sample
    classes), within ``[-1, 1]``; None without bars. Verified claims are proven bounds."""
    if bounds is None:
        return None
    half = np.asarray(bounds["half_width"], dtype=float)
    if half.shape != geo.gram.shape:
        raise InvalidInputError("cosine_bounds do not match the geometry")
    lower = np.clip(geo.gram - half, -1.0, 1.0)
    upper = np.clip(geo.gram + half, -1.0, 1.0)
    for p, q, lo, hi in bounds.get("intervals", []):
        lower[p, q] = lower[q, p] = max(float(lo), -1.0)
        upper[p, q] = upper[q, p] = min(float(hi), 1.0)
    return lower, upper


def _features_columns(t: dict) -> dict:
    """``features`` and ``features_note`` of a tightness row: only a tight claim needs its
    features (they are what ``atlas verify`` re-derives it from)."""
    if not t["tight"]:
        return {"features": None, "features_note": None}
    X = t.get("features")
    if X is None:
        return {"features": None, "features_note": "not re-derivable: no features were "
                                                    "recorded"}
    X = np.asarray(X, dtype=float)
    if X.size > FEATURES_MAX:
        return {"features": None,
                "features_note": f"not re-derivable: the {X.shape[0]} x {X.shape[1]} "
                                 f"features exceed the cap of {FEATURES_MAX} numbers"}
    return {"features": dumps(X.tolist()), "features_note": None}


# ---------------------------------------------------------------------- checking
def _close(a, b, tol: float = 1e-12, relative: bool = False) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = float(a), float(b)
    return abs(a - b) <= tol * (max(abs(a), abs(b)) if relative else max(1.0, abs(a)))


def _spec_reasons(row: dict, cert: dict) -> list[str]:
    """The columns that describe the problem must be those of the certificate's spec, and
    the grid coordinates (``R``, ``rho``, ``n_min``, ``n_max``) must generate its counts."""
    from ..problem.inputs import format_counts
    from ..problem.spec import ProblemSpec

    try:
        spec = ProblemSpec.from_dict(cert["spec"])
    except (InvalidInputError, TypeError, KeyError) as exc:
        return [f"unreadable certificate spec ({exc})"]
    described = {"k": spec.k, "n": spec.n, "tau": spec.tau,
                 "counts": format_counts(spec.counts), "loss_name": spec.loss,
                 "relaxation": spec.relaxation, "level_requested": spec.level,
                 "level": cert.get("level")}
    reasons = [f"column {name} ({row.get(name)!r}) differs from the certificate "
               f"({value!r})" for name, value in described.items()
               if not _close(row.get(name), value)]
    family = row.get("family")
    try:
        if family == "step":
            made = ProblemSpec.step(row["k"], row["rho"], row["R"], row["n_min"], spec.tau)
        elif family == "long_tail":
            made = ProblemSpec.long_tail(row["k"], row["R"], row["n_max"], spec.tau)
        elif family == "counts":
            made = spec if _close(row.get("R"), max(spec.counts) / min(spec.counts)) else None
        else:
            return reasons + [f"unknown family {family!r}"]
    except (InvalidInputError, TypeError, KeyError):
        made = None
    if made is None or made.counts != spec.counts:
        reasons.append(f"the {family} coordinates (R, rho, n_min, n_max) do not give the "
                       f"certificate's counts")
    return reasons


def _tightness_reasons(rows: Sequence[dict], cert: dict, report=None,
                       predates_features: bool = False
                       ) -> tuple[list[str], list[str], list[str]]:
    """Tightness rows must be consistent with the certificate, and a tight claim must be
    re-derivable from its stored features.

    Every row: a feasible loss is never below the certified lower bound, ``rel_gap`` is
    measured from that bound, the stated excess gap agrees with the loss, and ``tight``
    follows the verdict rule of :mod:`scconvex.features.tightness` (at least one restart within
    both tolerances). A row claiming ``tight`` with stored features is re-derived
    (:func:`_rederive`) from those features and ``report``, the certificate recomputed by
    :func:`scconvex.certificates.verify.verify_data`. One without features is accepted,
    checked for consistency only and listed as not re-derivable, in two cases alone: its
    features exceed :data:`FEATURES_MAX` (checked: ``rows x d`` must), or the atlas
    ``predates_features`` and the row does not give the cap as its reason. Even then a
    ``d`` below the recomputed rank of an optimum proven unique (by the bars that
    :func:`scconvex.certificates.verify.verify_data` re-derives) is rejected: every
    optimum has that rank. A row claiming not
    tight needs no features.

    Returns
    -------
    reasons, rederived, not_rederivable : list of str
    """
    from ..certificates.certify import dense_rounding
    from ..features.nonconvex import NONCONVEX_LEVELS
    from ..features.tightness import DEFAULT_EXCESS_RTOL, DEFAULT_RTOL
    from ..problem.spec import ProblemSpec

    if not rows:
        return [], [], []
    try:
        spec = ProblemSpec.from_dict(cert["spec"])
        lbs = [_float(cert.get(name)) for name in ("lower_bound", "sample_lower_bound")]
        gaps = [_float(cert.get(name)) for name in ("excess_gap", "sample_excess_gap")]
        excess = _float(cert.get("excess_loss"))
    except (InvalidInputError, TypeError, KeyError, ValueError) as exc:
        return [f"unreadable certificate spec ({exc})"], [], []
    eps = float(np.finfo(float).eps)
    reasons: list[str] = []
    rederived: list[str] = []
    not_rederivable: list[str] = []
    for t in rows:
        where = f"tightness row d={t.get('d')!r}"
        d, restarts, reached, tight = (t.get(name) for name in ("d", "restarts", "reached",
                                                                 "tight"))
        ints = (d, restarts, reached, tight)
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in ints) \
                or d < 1 or restarts < 1 or not 0 <= reached <= restarts \
                or tight not in (0, 1) or t.get("nc_level") not in NONCONVEX_LEVELS:
            reasons.append(f"{where}: malformed (d, restarts, reached, tight or nc_level)")
            continue
        best, rel, ex = (_float(t.get(name)) for name in ("best_loss", "rel_gap",
                                                           "excess_gap"))
        if tight and not (reached >= 1 and rel is not None and ex is not None
                          and rel <= DEFAULT_RTOL and ex <= DEFAULT_EXCESS_RTOL):
            reasons.append(f"{where}: tight, but its gaps or reached restarts say otherwise")
        if tight:
            if t.get("features") is None:
                bad = _missing_features(t, spec, report, cert, predates_features)
                if bad:
                    reasons.append(f"{where}: tight claim rejected: {bad}")
                else:
                    note = t.get("features_note") or "not re-derivable: no features " \
                                                     "stored (the atlas predates them)"
                    not_rederivable.append(f"{where}: {printable(note)}")
            else:
                bad, note = _rederive(t, spec, report)
                if bad:
                    reasons.append(f"{where}: tight claim rejected: {bad}")
                else:
                    rederived.append(f"{where}: {note}")
        if best is None or None in lbs:
            continue
        lb = min(lbs)
        per_sample = get_level(t["nc_level"]).dense
        resolution = dense_rounding(spec.n, spec.tau) if per_sample else 0.0
        slack = 16 * eps * max(abs(best), abs(lb), abs(spec.constant)) + resolution
        if best < lb - slack:
            reasons.append(f"{where}: best_loss {best!r} is below the certified lower "
                           f"bound {lb!r}")
        if rel is None or not _close(rel, (best - lb) / abs(lb), 1e-9):
            reasons.append(f"{where}: rel_gap {rel!r} is not (best_loss - lower_bound) / "
                           f"|lower_bound|")
        if ex is not None and excess is not None and None not in gaps and max(gaps) < 1:
            excess_lb = excess * (1.0 - max(gaps))
            if abs(excess_lb * (1.0 + ex) - (best - spec.constant)) > slack:
                reasons.append(f"{where}: excess_gap {ex!r} does not match best_loss")
    return reasons, rederived, not_rederivable


def _missing_features(t: dict, spec, report, cert: dict,
                      predates_features: bool) -> str | None:
    """Why a tight row without features cannot be accepted, or None (see
    :func:`_tightness_reasons`)."""
    level, d = t["nc_level"], t["d"]
    numbers = get_level(level).rows(spec) * d
    note = t.get("features_note")
    if numbers > FEATURES_MAX:
        pass  # too large to store: the one reason a new atlas has
    elif isinstance(note, str) and "cap" in note:
        return (f"its note says the features exceed the cap, but {numbers} numbers "
                f"({level} level, d={d}) are within the cap of {FEATURES_MAX}")
    elif not predates_features:
        return (f"no stored features, though its {numbers} numbers are within the cap of "
                f"{FEATURES_MAX} and the atlas stores the features of every tight row")
    if report is None or report.rank < 0:
        return "the certificate does not recompute (no rank to judge the claim against)"
    if d < report.rank and report.details.get("unique") is True:
        return (f"d={d} is below the rank {report.rank} of the certified optimum, which is "
                f"unique: no point of rank {d} attains it")
    return None


def printable(text: object) -> str:
    """A stored text for a terminal: control and other unprintable characters escaped
    (an edited atlas may hold terminal escape sequences)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _rederive(t: dict, spec, report) -> tuple[str | None, str]:
    """Re-derive a tight claim from the row's stored features alone.

    The features must be finite, of shape ``(k, d)`` (class level) or ``(n, d)`` (sample
    level), with rows of unit norm within :data:`FEATURES_UNIT_TOL`. Their loss is
    recomputed with the spec's loss object (block form of ``U U^T`` at class level, as the
    non-convex class cost; the sample loss of ``H`` at sample level), and must meet
    :func:`scconvex.features.tightness.judge` with the default tolerances (those the sweep judged
    with) against the lower bounds of ``report``, the recomputed certificate, exactly as
    :func:`scconvex.features.tightness.tightness` does against the relaxed solve. The stored
    ``best_loss`` must be that loss.

    Returns
    -------
    reason, note : str or None, str
        ``reason`` is None when the claim is re-derived; ``note`` then says how.
    """
    from ..certificates.certify import dense_rounding
    from ..features.tightness import DEFAULT_EXCESS_RTOL, DEFAULT_RTOL, judge
    from ..losses import loss_of, relaxation_of

    level, d = t["nc_level"], t["d"]
    rows = get_level(level).rows(spec)
    try:
        X = np.asarray(json.loads(t["features"]), dtype=float)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"the features column is not a numeric matrix ({exc})", ""
    if X.shape != (rows, d):
        return (f"stored features have shape {X.shape}, not ({rows}, {d}) ({level} level, "
                f"d={d})"), ""
    if not np.all(np.isfinite(X)):
        return "stored features are not all finite", ""
    norms = np.linalg.norm(X, axis=1)
    worst = float(np.max(np.abs(norms - 1.0)))
    if not worst <= FEATURES_UNIT_TOL:
        return (f"stored feature rows are not unit-norm (largest deviation {worst:.2e} > "
                f"{FEATURES_UNIT_TOL:g})"), ""
    if not relaxation_of(spec).spheres or spec.batches is not None:
        return "tightness is defined for the elliptope relaxation without batches only", ""
    bounds = (report.lower_bound, report.sample_lower_bound, report.excess_loss,
              report.excess_gap, report.sample_excess_gap) if report is not None else ()
    if not bounds or not all(math.isfinite(float(x)) for x in bounds):
        return "the certificate does not recompute to a lower bound to judge it against", ""
    X = X / norms[:, None]
    loss = loss_of(spec)
    if not get_level(level).dense:
        terms = loss.block_terms(X @ X.T, np.ones(spec.k, dtype=int),
                                 np.asarray(spec.counts), spec.tau)
        value, excess, resolution = float(terms.value), float(terms.excess), 0.0
    else:
        value = float(loss.features_value(X, spec.labels, spec.tau))
        excess = value - spec.constant
        resolution = dense_rounding(spec.n, spec.tau)
    lb = min(report.lower_bound, report.sample_lower_bound)
    worst_gap = max(report.excess_gap, report.sample_excess_gap)
    excess_lb = report.excess_loss * (1.0 - worst_gap) if worst_gap < 1 else 0.0
    rel, ex, tight = judge(value, excess, lb, excess_lb, rtol=DEFAULT_RTOL,
                           excess_rtol=DEFAULT_EXCESS_RTOL, resolution=resolution)
    if not tight:
        return (f"the loss of the stored features, {value!r}, does not meet the rule "
                f"(rel gap {rel:.2e}, limit {DEFAULT_RTOL:g}; excess gap {ex:.2e} with "
                f"rounding {resolution:.1e}, limit {DEFAULT_EXCESS_RTOL:g}; from the "
                f"recomputed lower bound {lb!r})"), ""
    best = _float(t.get("best_loss"))
    if best is None or abs(best - value) > 1e-9 * max(1.0, abs(value)) + resolution:
        return f"best_loss {best!r} is not the loss of the stored features ({value!r})", ""
    return None, (f"tight, re-derived from its stored {rows} x {d} {level}-level features "
                  f"(loss {value:.12g}, rel gap {rel:.1e}, excess gap {ex:.1e})")


def check_row(row: dict, tol: float = DEFAULT_GAP_TOL,
              tightness_rows: Sequence[dict] = (), *,
              excess_tol: float = DEFAULT_EXCESS_TOL,
              predates_features: bool = False) -> VerifyRow:
    """Re-check one atlas row against its certificate, trusting no stored number.

    The certificate is verified from scratch (:func:`scconvex.certificates.verify.verify_data`)
    with the tolerances the *verifier* chooses, ``tol`` and ``excess_tol`` (defaults those
    of ``verify``), never with the row's own ``gap_tol`` and ``excess_tol``: those are
    part of the row, so a forger sets them too. They are reported in the result, and a row
    that is certified only under its own looser tolerances is rejected with a reason that
    says so. The key must be the hash of the certificate's problem; the columns that
    describe the problem, the geometry columns and the claimed values must equal the
    certificate's, the grid coordinates must generate its counts, and the measures must
    equal those recomputed from the certificate's geometry. ``tightness_rows`` (the row's
    tightness table rows) must be consistent with the certificate, and a tight one is
    re-derived from its stored features when it has them (:func:`_tightness_reasons`;
    ``predates_features`` says whether the atlas may hold tight rows written before
    features were stored). A row that cannot be read (damaged JSON, a text where a number
    belongs) is rejected.

    Raises
    ------
    InvalidInputError
        If a tolerance is not a finite number > 0.
    """
    from ..checks import check_tolerance

    tols = (check_tolerance(tol, "tol"), check_tolerance(excess_tol, "excess_tol"))
    own = (_float(row.get("gap_tol")), _float(row.get("excess_tol")))
    try:
        result = _check_row(row, tols, tightness_rows, predates_features)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError,
            OverflowError) as exc:
        # Includes InvalidInputError (a ValueError), e.g. a row without a gap_tol.
        result = VerifyRow(str(row.get("key")), False, str(row.get("status") or "?"),
                           (f"unreadable row ({type(exc).__name__}: {exc})",))
    return replace(result, gap_tol=own[0], excess_tol=own[1])


def _check_row(row: dict, tols: tuple[float, float], tightness_rows: Sequence[dict],
               predates_features: bool) -> VerifyRow:
    from ..certificates.measures import BlockGeometry, geometry_of, step_minority, summary
    from ..certificates.verify import verify_data

    key, status = str(row["key"]), str(row.get("status") or "?")
    reasons: list[str] = []
    try:
        cert = json.loads(row["certificate"])
        spec = cert["spec"]
        want = problem_key(spec, cert["gap_tol"], cert["excess_tol"])
    except (TypeError, KeyError, ValueError) as exc:
        return VerifyRow(key, False, status, (f"unreadable certificate ({exc})",))
    if want != key:
        reasons.append("key does not match the certificate's problem")
    reasons += _spec_reasons(row, cert)
    for name in CLAIM_COLUMNS:
        value = cert.get(name)
        value = value if name in ("status", "solver", "rank") else _float(value)
        # Both sides are the same float64 (JSON and SQLite REAL round-trip exactly), so
        # the comparison is relative: a gap of 1e-14 edited to 0 is a change.
        if not _close(row.get(name), value, relative=True):
            reasons.append(f"column {name} ({row.get(name)!r}) differs from the "
                           f"certificate ({value!r})")
    report = None
    if status == "optimal" or any(t.get("tight") for t in tightness_rows):
        # Also the recomputed lower bounds (and rank) a tight claim is judged against.
        report = verify_data(cert, tol=tols[0], excess_tol=tols[1])
    tight_reasons, rederived, trusted = _tightness_reasons(tightness_rows, cert, report,
                                                           predates_features)
    reasons += tight_reasons

    def outcome() -> VerifyRow:
        return VerifyRow(key, not reasons, status, tuple(reasons), tuple(rederived),
                         tuple(trusted))

    geo = geometry_of(cert)
    if geo is None:
        if row.get("block_gram") is not None:
            reasons.append("geometry stored for a solve without one")
        if status == "optimal":
            reasons.append("claims optimal without a geometry")
        return outcome()
    try:
        stored = BlockGeometry.from_dict(json.loads(row["block_gram"]))
        same = (stored.gram.shape == geo.gram.shape
                and np.array_equal(stored.sizes, geo.sizes)
                and np.array_equal(stored.block_of, geo.block_of)
                and np.max(np.abs(stored.gram - geo.gram)) <= 1e-12)
    except (TypeError, KeyError, ValueError):
        same = False
    if not same:
        reasons.append("block_gram column differs from the certificate's geometry")
    if row.get("class_gram") is not None:
        M = np.asarray(json.loads(row["class_gram"]), dtype=float)
        if M.shape != (geo.k, geo.k) or np.max(np.abs(M - geo.class_gram())) > 1e-12:
            reasons.append("class_gram column differs from the certificate's geometry")
    stored_measures = json.loads(row["measures"]) if row.get("measures") else {}
    bounds = _claimed_intervals(cert.get("cosine_bounds"), geo)
    if stored_measures.get("measures_version") is None and row.get("measures"):
        # Measures of version 1 (older atlases): the STEP minority and 1 - cos_min_min.
        minority = (step_minority(geo.k, row["rho"]) if row.get("family") == "step"
                    and row.get("rho") is not None else None)
        fresh = summary(geo, minority, counts=spec["counts"], rank=cert.get("rank"),
                        bounds=bounds, version=1)
    else:
        fresh = summary(geo, counts=spec["counts"], rank=cert.get("rank"), bounds=bounds)
    for name in MEASURE_COLUMNS:
        want = _float(fresh[name])
        if not (_close(row.get(name), want, 1e-9)
                and _close(_float(stored_measures.get(name)), want, 1e-9)):
            reasons.append(f"measure {name} differs from the certificate's geometry")
    # The proven intervals of the measures follow from the certificate's bars, which
    # verify_data re-derives below (a row without them claims none).
    stored_bounds = stored_measures.get("bounds") if stored_measures else None
    if stored_bounds is not None or fresh["bounds"] is not None:
        if not _same_bounds(stored_bounds, fresh["bounds"]):
            reasons.append("measure bounds differ from those of the certificate's bars")
    for name, value in _bar_columns(cert).items():
        if row.get(name, value) != value and not _close(row.get(name), value, 1e-12,
                                                        relative=True):
            reasons.append(f"column {name} ({row.get(name)!r}) differs from the "
                           f"certificate ({value!r})")
    if status == "optimal":
        reasons.extend(report.reasons)
        if not report.ok:
            reasons += _loose_reasons(row, tols)
    elif _claims_bars(cert):
        # Only a certified answer has bars (solve writes none otherwise), and only an
        # optimal row is re-verified: bars on any other row would be shown unchecked.
        reasons.append(f"a {status!r} row claims proven bars, uniqueness or measure "
                       "intervals, which only a certified answer has")
    return outcome()


def _claims_bars(cert: dict) -> bool:
    """Whether a certificate claims anything about the optimum's geometry."""
    measures = cert.get("measures")
    return (cert.get("cosine_bounds") is not None or _bar_columns(cert)["unique_proof"]
            is not None or isinstance(measures, dict) and measures.get("bounds") is not None)


def _same_bounds(stored, fresh) -> bool:
    """Stored measure intervals against those re-derived (nan equals nan)."""
    if not isinstance(stored, dict) or fresh is None or set(stored) != set(fresh):
        return False
    for name, pair in fresh.items():
        got = stored[name]
        if not isinstance(got, list) or len(got) != 2:
            return False
        for a, b in zip(map(_float, got), pair, strict=True):
            b = _float(b)  # non-finite (a measure without minority classes) as None
            if not (a is None and b is None or a is not None and b is not None
                    and _close(a, b, 1e-9)):
                return False
    return True


def _loose_reasons(row: dict, tols: tuple[float, float]) -> list[str]:
    """Say so when a rejected row states tolerances looser than the verifier's."""
    out = []
    for name, flag, mine in (("gap_tol", "--gap-tol", tols[0]),
                             ("excess_tol", "--excess-tol", tols[1])):
        own = _float(row.get(name))
        if own is not None and own > mine:
            out.append(f"the row states {name} {own:g}, looser than the {mine:g} it is "
                       f"judged by: it claims to be certified only at that tolerance "
                       f"(pass {flag} {own:g} to judge it there)")
    return out


def verify_atlas(atlas: Atlas, tol: float = DEFAULT_GAP_TOL,
                 excess_tol: float = DEFAULT_EXCESS_TOL) -> list[VerifyRow]:
    """:func:`check_row` for every row of the atlas, judged by ``tol`` and ``excess_tol``.

    Raises
    ------
    InvalidInputError
        If a tolerance is not a finite number > 0.
    """
    from ..checks import check_tolerance

    tol = check_tolerance(tol, "tol")
    excess_tol = check_tolerance(excess_tol, "excess_tol")
    legacy = atlas.predates_features
    return [check_row(row, tol, atlas.tightness_rows(row["key"]) if row["key"] is not None
                      else (), excess_tol=excess_tol, predates_features=legacy)
            for row in atlas.rows()]


# ---------------------------------------------------------------------- export
EXPORT_COLUMNS = ("key", "family", "dataset", "k", "n", "R", "rho", "n_min", "n_max", "tau",
                  "counts", "loss_name", "relaxation", "level", "solver", "status", "loss",
                  "excess_loss", "lower_bound", "gap", "rel_gap", "excess_gap",
                  "sample_lower_bound", "sample_gap", "sample_rel_gap", "sample_excess_gap",
                  "gap_tol", "excess_tol", "seconds", "rank", "min_tight_dim",
                  *MEASURE_COLUMNS, *BAR_COLUMNS)
"""Columns of ``atlas export``; the tolerances are there so that a row certified under
looser tolerances than the defaults is visible in the table, not only in its certificate."""


def table(atlas: Atlas, where: Sequence[tuple[str, str]] = ()) -> list[dict]:
    """Export rows: one per solve, with named cosines and ``min_tight_dim``.

    The majority/minority cosines are left empty unless the counts have at most two
    distinct values (STEP structure); ``cos_min/mean/max`` are always given.
    """
    from ..certificates.measures import minority_collapse

    tight = atlas.min_tight_dims()
    out = []
    for row in atlas.rows(where):
        rec = {name: row.get(name) for name in EXPORT_COLUMNS}
        rec["min_tight_dim"] = tight.get(row["key"])
        if (row.get("measures") and '"measures_version"' not in row["measures"]
                and isinstance(row.get("cos_min_min"), float) and (row.get("k") or 0) >= 2):
            # A row of an older atlas stores 1 - cos_min_min: export today's definition.
            rec["minority_collapse"] = minority_collapse(row["cos_min_min"], row["k"])
        if row.get("family") != "step" and _distinct_counts(row["counts"]) > 2:
            for name in ("cos_maj_maj", "cos_min_min", "cos_maj_min"):
                rec[name] = None
        out.append(rec)
    return out


def _distinct_counts(text: str) -> int:
    from ..problem.inputs import parse_counts

    return len(set(parse_counts(text)))


def write_csv(rows: Sequence[dict], path: str | os.PathLike | None, stream=None) -> None:
    """Write export rows as CSV to ``path`` (atomically) or to ``stream``."""
    import io

    from ..files import write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for rec in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in rec.items()})
    if path is None:
        stream.write(buf.getvalue())
    else:
        write_text(path, buf.getvalue())


def write_parquet(rows: Sequence[dict], path: str | os.PathLike | None,
                  stream=None) -> None:
    """Write export rows as Parquet to ``path`` (atomically) or to the binary ``stream``
    (needs pyarrow: the ``parquet`` extra).

    The columns are those of the CSV export, in the same order; an empty cell of the CSV
    is a null here.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInputError("Parquet export needs pyarrow (pip install "
                                "'scconvex[parquet]' or pip install pyarrow)") from None
    from ..files import write_bytes

    columns = {name: [rec.get(name) for rec in rows] for name in EXPORT_COLUMNS}
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    if path is None:
        stream.write(sink.getvalue().to_pybytes())
        stream.flush()
    else:
        write_bytes(path, sink.getvalue().to_pybytes())


def show(atlas: Atlas, key: str) -> dict:
    """One row (by key prefix) with its geometry, measures and tightness rows, JSON-safe."""
    rows = atlas.rows([("key", key)])
    if not rows:
        raise InvalidInputError(f"no row with key {key!r}")
    if len(rows) > 1:
        raise InvalidInputError(f"key prefix {key!r} matches {len(rows)} rows")
    row = rows[0]
    out = {k: v for k, v in row.items() if k not in ("certificate",)}
    for name in ("versions", "block_gram", "class_gram", "measures"):
        if out.get(name) is not None:
            try:
                out[name] = json.loads(out[name])
            except (TypeError, ValueError):
                pass  # a damaged column is shown as stored (atlas verify rejects it)
    if isinstance(out.get("measures"), dict):
        # Tightness rows added after the solve (or replaced with it) decide, not the
        # value the sweep knew when it stored the solve.
        out["measures"]["min_tight_dim"] = atlas.min_tight_dims().get(row["key"])
    out["tightness"] = atlas.tightness_rows(row["key"])
    for t in out["tightness"]:
        if t.get("features") is not None:
            try:
                t["features"] = json.loads(t["features"])
            except (TypeError, ValueError):
                pass  # shown as stored (atlas verify rejects it)
    return jsonable(out)
