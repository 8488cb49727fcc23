"""Trained features against the certified optimum: :func:`compare`.

A network trained with the SC loss ends with features ``H`` (one row per sample). This
module measures how far they are from the geometry that minimises the loss for the same
class counts and temperature, with a proof for the part that is proven:

* **Optimality gap.** The SC loss of the normalised features (streamed, with its own
  error bound: :func:`scconvex.losses.streamed.streamed_loss`) minus the sample-level
  certified lower bound of :func:`scconvex.pipeline.solve.solve` for the same counts and
  ``tau``. The lower bound holds for every geometry of ``n`` unit vectors, so the gap is an
  upper bound on how much the loss can still fall; a gap below the loss's error bound is
  reported as not resolved.
* **Where the gap comes from.** With ``M_hat`` the cosines between the normalised class
  means of the features, the *collapsed* features (every sample replaced by its class's
  mean direction) have the class-level loss ``L(M_hat)``. Then
  ``gap = [L(M_hat) - LB] + [L(H) - L(M_hat)]``: the first part (``geometry_gap``, >= 0 up to
  the certificate's gap) is what the class-mean geometry costs, the second
  (``within_gap``, signed) what the spread of samples around their class mean costs on top
  of it. A negative ``within_gap`` means the spread helps at this mean geometry (it cannot
  beat the optimum, which is collapsed).
* **Collapse (NC1).** On the unit features: ``tr(S_W) / tr(S_B)`` with ``S_W`` the
  within-class and ``S_B`` the between-class covariance (class means weighted equally),
  Papyan's ``tr(S_W S_B^+) / k``, the class-distance normalised variance (CDNV, Galanti et
  al. 2022) ``(V_c + V_c') / (2 ||mu_c - mu_c'||^2)`` averaged over pairs, the mean cosine
  between two samples of one class, and the spread of the raw feature norms.
* **Geometry.** ``M_hat`` against the certified optimum's class Gram ``M*`` and against the
  simplex ETF: largest entry difference, Frobenius norm of the difference (both over
  off-diagonal entries, each pair counted once), a per-pair table and a table by
  count group (majority / minority under STEP). Grams are compared, never features, so a
  rotation of the features changes nothing. When the optimum is not unique
  (:attr:`scconvex.pipeline.solve.SolveResult.unique`), ``M*`` is one optimum and the
  distances are to it, an upper bound on the distance to the set of optima; the
  comparison says so.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..certificates.measures import default_minority
from ..errors import InvalidInputError
from ..files import SCHEMA_VERSION, jsonable, version
from ..losses import loss_of
from ..losses.streamed import normalized_rows, streamed_loss
from ..pipeline.solve import SolveResult, solve
from ..problem.spec import ProblemSpec

STATS_BLOCK_BYTES = 1 << 27
"""Rows read at a time by the statistics pass (128 MiB of float64 rows)."""


@dataclass(frozen=True)
class GramDistance:
    """Distance between two class-mean Grams over their off-diagonal entries.

    Attributes
    ----------
    max_abs : float
        Largest ``|A_ij - B_ij|``, ``i < j``.
    frobenius : float
        ``sqrt(sum_{i<j} (A_ij - B_ij)^2)``.
    rms : float
        Root mean square over the ``k (k - 1) / 2`` pairs.
    """

    max_abs: float
    frobenius: float
    rms: float

    def to_dict(self) -> dict:
        return {"max_abs": self.max_abs, "frobenius": self.frobenius, "rms": self.rms}


def gram_distance_offdiag(A: np.ndarray, B: np.ndarray) -> GramDistance:
    """:class:`GramDistance` between two ``k x k`` Grams (off-diagonal entries only)."""
    iu = np.triu_indices(A.shape[0], 1)
    diff = np.asarray(A)[iu] - np.asarray(B)[iu]
    return GramDistance(max_abs=float(np.max(np.abs(diff))),
                        frobenius=float(np.linalg.norm(diff)),
                        rms=float(np.sqrt(np.mean(diff**2))))


@dataclass(frozen=True)
class Collapse:
    """Within-class collapse of the unit features (module docstring).

    Attributes
    ----------
    trace_ratio : float
        ``tr(S_W) / tr(S_B)``.
    nc1 : float
        ``tr(S_W S_B^+) / k`` (Papyan et al. 2020).
    cdnv : float
        Mean CDNV over pairs of classes.
    cdnv_max : float
        Largest CDNV over pairs.
    within_cosine : float
        Mean cosine between two different samples of one class, classes weighted by
        their number of samples.
    class_within_cosine : ndarray, shape (k,)
        The same per class.
    norm_mean, norm_std, norm_min, norm_max : float
        Raw feature norms before normalisation; ``norm_cv = norm_std / norm_mean``.
    """

    trace_ratio: float
    nc1: float
    cdnv: float
    cdnv_max: float
    within_cosine: float
    class_within_cosine: np.ndarray
    norm_mean: float
    norm_std: float
    norm_min: float
    norm_max: float

    @property
    def norm_cv(self) -> float:
        return self.norm_std / self.norm_mean

    def to_dict(self) -> dict:
        return {"trace_ratio": self.trace_ratio, "nc1": self.nc1, "cdnv": self.cdnv,
                "cdnv_max": self.cdnv_max, "within_cosine": self.within_cosine,
                "class_within_cosine": self.class_within_cosine.tolist(),
                "norm_mean": self.norm_mean, "norm_std": self.norm_std,
                "norm_cv": self.norm_cv, "norm_min": self.norm_min, "norm_max": self.norm_max}


@dataclass(frozen=True, eq=False)
class Comparison:
    """What :func:`compare` measured (module docstring for the definitions).

    Attributes
    ----------
    spec : ProblemSpec
        Counts (classes in :attr:`class_names` order), ``tau``, loss and relaxation.
    class_names : tuple of str
    n, d : int
    loss, loss_error : float
        Loss of the normalised features and its proven error bound.
    precision : str
        Working precision of the loss.
    lower_bound : float
        Certified lower bound of the optimum over all ``n x n`` Grams.
    optimum_loss : float
        Loss at the certified optimum (``>= lower_bound`` by its certified gap).
    optimum_status : str
        Status of the solve (``"optimal"`` when certified).
    constant : float
        The loss's geometry-independent bound ``sum n_c log(n_c - 1)`` (SC).
    gap : float
        ``loss - lower_bound``: at most this much loss is left to gain.
    gap_resolved : bool
        ``gap > loss_error``: only then is the features' sub-optimality established.
    collapsed_loss : float
        Loss of the collapsed features (class level, at ``M_hat``).
    geometry_gap, within_gap : float
        ``collapsed_loss - lower_bound`` and ``loss - collapsed_loss``.
    collapse : Collapse
    class_gram : ndarray, shape (k, k)
        ``M_hat``, cosines between the normalised class means of the features.
    optimum_gram : ndarray, shape (k, k)
        ``M*``, the certified optimum's class Gram.
    to_optimum, to_etf : GramDistance
    to_orthogonal : GramDistance
        Against ``M = I`` (the claimed optimum of ReLU features).
    optimum_unique : bool or None
        Whether the certified optimum determines its cosines (None if not certified).
    optimum_resolution : float
        How far cosines within the certified gap may be from the optimum (estimate).
    notes : tuple of str
        Sentences that qualify the numbers (not resolved, not unique, not certified).
    result : SolveResult
        The certified optimum used.
    seconds : float
    timings : dict
    """

    spec: ProblemSpec
    class_names: tuple
    n: int
    d: int
    loss: float
    loss_error: float
    precision: str
    lower_bound: float
    optimum_loss: float
    optimum_status: str
    constant: float
    gap: float
    gap_resolved: bool
    collapsed_loss: float
    geometry_gap: float
    within_gap: float
    collapse: Collapse
    class_gram: np.ndarray
    optimum_gram: np.ndarray
    to_optimum: GramDistance
    to_etf: GramDistance
    to_orthogonal: GramDistance
    optimum_unique: bool | None
    optimum_resolution: float
    notes: tuple
    result: SolveResult
    seconds: float
    timings: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.spec.k

    @property
    def excess(self) -> float:
        """``loss - constant``: the part of the loss that depends on the geometry."""
        return self.loss - self.constant

    @property
    def optimum_excess(self) -> float:
        """``lower_bound - constant``: the certified optimum's excess (a lower bound)."""
        return self.lower_bound - self.constant

    @property
    def rel_gap(self) -> float:
        """``gap / |loss|``."""
        return self.gap / abs(self.loss) if self.loss else math.inf

    @property
    def excess_gap(self) -> float:
        """``gap / optimum_excess``: how many times the optimum's excess the features
        still carry above it (0 at the optimum)."""
        ex = self.optimum_excess
        return self.gap / ex if ex > 0 else math.inf

    @property
    def geometry_share(self) -> float:
        """``geometry_gap / gap`` (nan when the gap is not resolved)."""
        return self.geometry_gap / self.gap if self.gap_resolved else math.nan

    @property
    def etf_gram(self) -> np.ndarray:
        k = self.k
        E = np.full((k, k), -1.0 / (k - 1))
        np.fill_diagonal(E, 1.0)
        return E

    def pairs(self) -> list[dict]:
        """One row per pair of classes ``i < j``: names, counts, trained, optimum, ETF."""
        k = self.k
        etf = -1.0 / (k - 1)
        out = []
        for i in range(k):
            for j in range(i + 1, k):
                out.append({"i": self.class_names[i], "j": self.class_names[j],
                            "n_i": self.spec.counts[i], "n_j": self.spec.counts[j],
                            "trained": float(self.class_gram[i, j]),
                            "optimum": float(self.optimum_gram[i, j]), "etf": etf,
                            "error": float(self.class_gram[i, j] - self.optimum_gram[i, j])})
        return out

    def groups(self) -> list[dict]:
        """Cosines by pair of class groups: majority/minority (by the largest ratio between
        distinct counts, :func:`scconvex.certificates.measures.default_minority`), or
        one group per distinct count when there are at most 6 of them and more than 2."""
        return group_table(self.class_gram, self.optimum_gram, self.spec.counts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (the ``--json`` output of ``scconvex compare``)."""
        return jsonable({
            "kind": "scconvex.compare", "schema_version": SCHEMA_VERSION,
            "scconvex_version": version(), "spec": self.spec.to_dict(),
            "class_names": list(self.class_names), "counts": list(self.spec.counts),
            "n": self.n, "d": self.d, "k": self.k, "tau": self.spec.tau,
            "loss": self.loss, "loss_error": self.loss_error, "precision": self.precision,
            "lower_bound": self.lower_bound, "optimum_loss": self.optimum_loss,
            "optimum_status": self.optimum_status, "constant": self.constant,
            "excess": self.excess, "optimum_excess": self.optimum_excess,
            "gap": self.gap, "gap_resolved": self.gap_resolved, "rel_gap": self.rel_gap,
            "excess_gap": self.excess_gap, "collapsed_loss": self.collapsed_loss,
            "geometry_gap": self.geometry_gap, "within_gap": self.within_gap,
            "geometry_share": self.geometry_share, "collapse": self.collapse.to_dict(),
            "class_gram": self.class_gram, "optimum_gram": self.optimum_gram,
            "to_optimum": self.to_optimum.to_dict(), "to_etf": self.to_etf.to_dict(),
            "to_orthogonal": self.to_orthogonal.to_dict(),
            "optimum_unique": self.optimum_unique,
            "optimum_resolution": self.optimum_resolution, "notes": list(self.notes),
            "pairs": self.pairs(), "groups": self.groups(), "seconds": self.seconds,
            "timings": self.timings,
        })


# ---------------------------------------------------------------------- labels
def class_labels(labels, class_names: Sequence[str] | None = None
                 ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class index of each sample and the class names, in class order.

    Without ``class_names`` the classes are the distinct label values, sorted (numbers as
    numbers), named by their value. With ``class_names``, integer labels index into it
    (0-based) and other labels must be among the names; the classes are the names that
    occur, in the order of ``class_names``.

    Raises
    ------
    InvalidInputError
        For a label that is not a class of ``class_names``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise InvalidInputError(f"labels must be a non-empty 1-D array, got shape "
                                f"{labels.shape}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)):
            raise InvalidInputError("labels contain NaN or infinity")
        if np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
    if class_names is None:
        values, y = np.unique(labels, return_inverse=True)
        return y.astype(np.intp), tuple(str(v) for v in values.tolist())
    names = tuple(str(x) for x in class_names)
    if len(set(names)) != len(names):
        raise InvalidInputError("class names must be distinct")
    if labels.dtype.kind in "iu":
        bad = (labels < 0) | (labels >= len(names))
        if np.any(bad):
            raise InvalidInputError(f"label {labels[bad][0]} is not a class: the class "
                                    f"names list {len(names)} classes (labels 0 to "
                                    f"{len(names) - 1})")
        index = labels.astype(np.intp)
    else:
        lookup = {name: i for i, name in enumerate(names)}
        text = labels.astype(str)
        unknown = sorted(set(text.tolist()) - set(lookup))
        if unknown:
            raise InvalidInputError(f"unknown class {unknown[0]!r} in the labels (not "
                                    f"among the {len(names)} class names)")
        index = np.array([lookup[t] for t in text.tolist()], dtype=np.intp)
    present, y = np.unique(index, return_inverse=True)
    return y.astype(np.intp), tuple(names[i] for i in present)


# ---------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class FeatureStats:
    """One pass over the features: what :func:`compare` needs besides the loss."""

    n: int
    d: int
    counts: np.ndarray
    class_sums: np.ndarray
    scatter: np.ndarray
    norm_sum: float
    norm_sq_sum: float
    norm_min: float
    norm_max: float
    min_entry: float


def feature_stats(features, y: np.ndarray, k: int, *,
                  block_rows: int | None = None) -> FeatureStats:
    """Class sums, second moment and norm statistics of the unit rows, streamed.

    Memory O(block_rows d + k d + d^2).
    """
    n, d = features.shape
    rows = block_rows or max(1, min(n, STATS_BLOCK_BYTES // (8 * d)))
    sums = np.zeros((k, d))
    scatter = np.zeros((d, d))
    nsum = nsq = 0.0
    nmin, nmax, emin = math.inf, 0.0, math.inf
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        raw = np.asarray(features[r0:r1], dtype=np.float64)
        try:
            X = normalized_rows(raw, 0, r1 - r0)
        except InvalidInputError as exc:  # name the row of the whole array
            raise InvalidInputError(_shift_row(str(exc), r0)) from None
        norms = np.linalg.norm(raw, axis=1)
        nsum += float(norms.sum())
        nsq += float(np.dot(norms, norms))
        nmin, nmax = min(nmin, float(norms.min())), max(nmax, float(norms.max()))
        emin = min(emin, float(raw.min()))
        np.add.at(sums, y[r0:r1], X)
        scatter += X.T @ X
    return FeatureStats(n, d, np.bincount(y, minlength=k), sums, scatter, nsum, nsq, nmin,
                        nmax, emin)


def _shift_row(message: str, offset: int) -> str:
    return re.sub(r"row (\d+)", lambda m: f"row {int(m.group(1)) + offset}", message)


def collapse_measures(stats: FeatureStats) -> Collapse:
    """:class:`Collapse` from :func:`feature_stats` (module docstring)."""
    n, k = stats.n, len(stats.counts)
    counts = stats.counts.astype(float)
    mu = stats.class_sums / counts[:, None]
    sq_mu = np.einsum("cd,cd->c", mu, mu)
    # Per class: V_c = mean ||h_i - mu_c||^2 = 1 - ||mu_c||^2 for unit rows.
    var = np.maximum(1.0 - sq_mu, 0.0)
    tr_w = float(np.sum(counts * var)) / n
    center = mu.mean(axis=0)
    dev = mu - center
    tr_b = float(np.sum(dev * dev)) / k
    S_w = (stats.scatter - (mu * counts[:, None]).T @ mu) / n
    S_b = dev.T @ dev / k
    nc1 = float(np.trace(S_w @ np.linalg.pinv(S_b, rcond=1e-10, hermitian=True))) / k
    sq = np.sum((mu[:, None, :] - mu[None, :, :]) ** 2, axis=2)
    iu = np.triu_indices(k, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cdnv = (var[:, None] + var[None, :])[iu] / (2.0 * sq[iu])
    # Mean cosine of two different samples of class c: (||S_c||^2 - n_c) / (n_c (n_c - 1)).
    ssq = np.einsum("cd,cd->c", stats.class_sums, stats.class_sums)
    within = (ssq - counts) / (counts * (counts - 1.0))
    mean = stats.norm_sum / n
    std = math.sqrt(max(stats.norm_sq_sum / n - mean * mean, 0.0))
    return Collapse(trace_ratio=tr_w / tr_b if tr_b > 0 else math.inf, nc1=nc1,
                    cdnv=float(np.mean(cdnv)), cdnv_max=float(np.max(cdnv)),
                    within_cosine=float(np.sum(counts * within) / n),
                    class_within_cosine=within, norm_mean=mean, norm_std=std,
                    norm_min=stats.norm_min, norm_max=stats.norm_max)


def mean_gram(class_sums: np.ndarray, names: Sequence[str] = ()) -> np.ndarray:
    """Cosines between the class means (rows of ``class_sums``, normalised)."""
    norms = np.linalg.norm(class_sums, axis=1)
    if np.any(norms == 0):
        c = int(np.flatnonzero(norms == 0)[0])
        name = names[c] if names else str(c)
        raise InvalidInputError(f"the features of class {name!r} average to zero: its mean "
                                "direction, and so the class-mean geometry, is undefined")
    U = class_sums / norms[:, None]
    M = U @ U.T
    M = 0.5 * (M + M.T)
    np.fill_diagonal(M, 1.0)
    return np.clip(M, -1.0, 1.0)


# ---------------------------------------------------------------------- tables
def _group_names(counts: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    counts = np.asarray(counts)
    distinct = sorted(set(counts.tolist()), reverse=True)
    if 2 < len(distinct) <= 6:
        index = np.array([distinct.index(c) for c in counts])
        return index, [f"n={c}" for c in distinct]
    minority = default_minority(counts)
    if not np.any(minority):
        return np.zeros(len(counts), dtype=int), ["all"]
    return minority.astype(int), ["majority", "minority"]


def group_table(M: np.ndarray, M_opt: np.ndarray, counts: Sequence[int]) -> list[dict]:
    """Cosines by pair of class groups (see :meth:`Comparison.groups`).

    Each row: the two group names, the number of class pairs, the trained cosines' mean,
    min and max, the optimum's mean (constant within a pair of groups of equal counts at
    a unique optimum) and the ETF value.
    """
    k = len(counts)
    index, names = _group_names(counts)
    out = []
    for p in range(len(names)):
        for q in range(p, len(names)):
            a, b = np.flatnonzero(index == p), np.flatnonzero(index == q)
            mask = np.zeros((k, k), dtype=bool)
            mask[np.ix_(a, b)] = True
            mask = np.triu(mask | mask.T, 1)
            if not np.any(mask):
                continue
            t, o = M[mask], M_opt[mask]
            out.append({"groups": f"{names[p]}-{names[q]}", "pairs": int(mask.sum()),
                        "trained_mean": float(t.mean()), "trained_min": float(t.min()),
                        "trained_max": float(t.max()), "optimum": float(o.mean()),
                        "etf": -1.0 / (k - 1),
                        "error": float(t.mean() - o.mean())})
    return out


# ---------------------------------------------------------------------- compare
def compare(features, labels, tau: float, *, class_names: Sequence[str] | None = None,
            loss: str = "sc", relu: bool = False, precision: str = "float32",
            result: SolveResult | None = None, threads: int | None = 2,
            block_rows: int | None = None,
            progress: Callable[[float], None] | None = None) -> Comparison:
    """Compare trained features with the certified optimal geometry for their counts.

    Parameters
    ----------
    features : array_like, shape (n, d)
        Features, one row per sample (a numpy array or a memory-mapped ``.npy``:
        ``np.load(path, mmap_mode="r")``; read in blocks). Rows are normalised, as in the
        SC loss. ``d >= 2``.
    labels : array_like, shape (n,)
        Class of each sample. Every class needs at least two samples.
    tau : float
        Temperature the network was trained with.
    class_names : sequence of str, optional
        Names of the classes: integer labels index into it, other labels must be in it.
        Default: the label values.
    loss : {"sc", "negatives-only"}
        The loss the network was trained with.
    relu : bool
        Features are ReLU outputs (non-negative): the optimum is that of the doubly
        non-negative relaxation (MATH.md section 8), which needs non-negative features.
    precision : {"float32", "float64"}
        Working precision of the features' loss (:func:`streamed_loss`).
    result : SolveResult, optional
        A certified optimum for the same spec (to reuse across checkpoints); solved when
        None.
    threads : int, optional
        Threads for the features' loss (default 2).
    block_rows : int, optional
        Rows read at a time (default: 128 MiB blocks).
    progress : callable, optional
        Called with the fraction of the loss evaluation done.

    Returns
    -------
    Comparison

    Raises
    ------
    InvalidInputError
        Mismatched lengths, ``d < 2``, NaN or infinite features, a zero row, a class with
        one sample, labels outside ``class_names``, negative features with ``relu``, or a
        ``result`` for another problem.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> E = np.array([[1.0, 0.0], [-0.5, 3**0.5 / 2], [-0.5, -3**0.5 / 2]])  # simplex ETF
    >>> y = np.repeat([0, 1, 2], 20)
    >>> H = E[y] + 0.05 * rng.standard_normal((60, 2))
    >>> c = compare(H, y, tau=0.5)
    >>> c.optimum_status, c.gap_resolved, c.gap > 0, c.geometry_gap < c.within_gap
    ('optimal', True, True, True)
    >>> round(c.to_optimum.max_abs, 2), c.collapse.within_cosine > 0.99
    (0.03, True)
    """
    t_start = time.perf_counter()
    shape = getattr(features, "shape", None)
    if shape is None:
        features = np.asarray(features, dtype=float)
        shape = features.shape
    if len(shape) != 2:
        raise InvalidInputError(f"features must be a 2-D array (n, d), got shape {shape}")
    n, d = int(shape[0]), int(shape[1])
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InvalidInputError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.shape[0] != n:
        raise InvalidInputError(f"{n} feature rows but {labels.shape[0]} labels: the "
                                "lengths must match")
    if d < 2:
        raise InvalidInputError(f"features have dimension d = {d}: on the unit sphere in "
                                "d = 1 every feature is +1 or -1; use d >= 2")
    y, names = class_labels(labels, class_names)
    k = len(names)
    counts = np.bincount(y, minlength=k)
    if k < 2:
        raise InvalidInputError(f"need at least 2 classes, got {k}")
    single = np.flatnonzero(counts < 2)
    if single.size:
        raise InvalidInputError(f"class {names[single[0]]!r} has one sample: it has no "
                                "positive and no within-class spread; drop it or give it "
                                "more samples")
    spec = ProblemSpec(tuple(int(c) for c in counts), tau, loss=loss,
                       relaxation="dnn" if relu else "elliptope")
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    stats = feature_stats(features, y, k, block_rows=block_rows)
    if relu and stats.min_entry < 0:
        raise InvalidInputError(f"relu: the features have a negative entry "
                                f"({stats.min_entry:.3g}); ReLU outputs are >= 0")
    collapse = collapse_measures(stats)
    M = mean_gram(stats.class_sums, names)
    timings["statistics"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if result is None:
        result = solve(spec)
    elif result.spec.counts != spec.counts or result.spec.tau != spec.tau or \
            (result.spec.loss, result.spec.relaxation) != (spec.loss, spec.relaxation):
        raise InvalidInputError("the given result solves another problem (counts, tau, "
                                "loss or relaxation differ)")
    timings["solve"] = time.perf_counter() - t0
    if result.class_gram is None:
        raise InvalidInputError(f"the optimum could not be computed: {result.message}")

    t0 = time.perf_counter()
    value = streamed_loss(features, y, tau, loss=loss, precision=precision,
                          block_rows=block_rows, threads=threads, progress=progress)
    timings["loss"] = time.perf_counter() - t0

    loss_obj = loss_of(spec)
    collapsed = float(loss_obj.block_terms(M, np.ones(k, dtype=int), counts, tau).value)
    lower = float(result.sample_lower_bound)
    gap = value.value - lower
    M_opt = result.class_gram
    eye = np.eye(k)
    etf = np.full((k, k), -1.0 / (k - 1)) + (1.0 + 1.0 / (k - 1)) * eye
    uniq = result.uniqueness
    notes = []
    resolved = gap > value.error
    if not resolved:
        notes.append(f"the gap {gap:.3g} is within the loss's error bound "
                     f"{value.error:.2g}: these features are not shown to be sub-optimal "
                     "(use precision float64 for a tighter bound)")
    if result.status != "optimal":
        notes.append(f"the optimum is not certified ({result.status}): the lower bound "
                     "still holds, but the optimum's Gram may be inaccurate")
    if uniq is not None and not uniq.unique:
        notes.append(f"the optimum is not unique or not determined ({uniq.note}); the "
                     "distances are to one optimum, an upper bound on the distance to "
                     "the set of optima")
    return Comparison(
        spec=spec, class_names=names, n=n, d=d, loss=value.value, loss_error=value.error,
        precision=precision, lower_bound=lower, optimum_loss=float(result.loss),
        optimum_status=result.status, constant=float(spec.constant), gap=gap,
        gap_resolved=bool(resolved), collapsed_loss=collapsed,
        geometry_gap=collapsed - lower, within_gap=value.value - collapsed,
        collapse=collapse, class_gram=M, optimum_gram=M_opt,
        to_optimum=gram_distance_offdiag(M, M_opt), to_etf=gram_distance_offdiag(M, etf),
        to_orthogonal=gram_distance_offdiag(M, eye),
        optimum_unique=result.unique,
        optimum_resolution=math.nan if uniq is None else float(uniq.resolution),
        notes=tuple(notes), result=result, seconds=time.perf_counter() - t_start,
        timings=timings)
