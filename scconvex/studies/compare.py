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
  rotation of the features changes nothing. ``M*`` carries proven bars (every optimal
  cosine lies within ``optimum_resolution`` of it, :mod:`scconvex.certificates.bars`), so
  a distance to it is known to that accuracy; where uniqueness is not proven
  (:attr:`scconvex.pipeline.solve.SolveResult.unique`), ``M*`` is one optimum and the
  distances are to it; the comparison says so.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..certificates.measures import default_minority
from ..errors import InvalidInputError
from ..files import SCHEMA_VERSION, jsonable, open_input, version
from ..losses import loss_of
from ..losses.streamed import normalized_rows, streamed_batch_loss, streamed_loss
from ..pipeline.solve import SolveResult, solve
from ..problem.batches import epoch_batches
from ..problem.model import build_model
from ..problem.spec import ProblemSpec

STATS_BLOCK_BYTES = 1 << 26
"""Rows read at a time by the statistics pass (64 MiB of float64 rows)."""


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
        """The fields as a plain dictionary."""
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
        """Coefficient of variation of the raw feature norms, ``norm_std / norm_mean``."""
        return self.norm_std / self.norm_mean

    def to_dict(self) -> dict:
        """JSON-safe fields (the per-class cosines as a list)."""
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
    nonnegative : bool
        Every feature entry is >= 0 (as ReLU outputs are).
    batch_scheme : dict or None
        ``batch_size``, ``epochs`` and ``batch_seed`` of the mini-batch objective (None:
        full batch). The batches themselves are in ``spec`` (and in ``--certificate``).
    optimum_unique : bool or None
        Whether the optimum is proven unique (None: not proven, or not certified).
    optimum_resolution : float
        The widest proven cosine bar of ``M*``: every optimal cosine is within this of it
        (nan without bars).
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
    nonnegative: bool
    batch_scheme: dict | None
    notes: tuple
    result: SolveResult
    seconds: float
    timings: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of classes."""
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
        """The simplex ETF's class Gram: 1 on the diagonal, ``-1/(k-1)`` elsewhere."""
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
        # The batches of a mini-batch objective are n E indices: the JSON names the scheme
        # that makes them (the certificate file of the optimum carries them in full).
        spec = {key: value for key, value in self.spec.to_dict().items() if key != "batches"}
        return jsonable({
            "kind": "scconvex.compare", "schema_version": SCHEMA_VERSION,
            "scconvex_version": version(), "spec": spec, "batch_scheme": self.batch_scheme,
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
            "optimum_resolution": self.optimum_resolution, "nonnegative": self.nonnegative,
            "notes": list(self.notes),
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
            block_rows: int | None = None, batch_size: int | None = None,
            epochs: int = 1, batch_seed: int = 0,
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
        Rows read at a time (default: 64 MiB of float64 rows).
    batch_size, epochs, batch_seed : int, optional
        The network was trained with mini-batches: compare with the optimum of the SC loss
        summed over ``epochs`` random partitions into batches of ``batch_size`` (seed
        ``batch_seed``; :func:`scconvex.problem.batches.epoch_batches`, over the samples
        listed class by class). The features' loss is then that sum too (float64).
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
    batches = None if batch_size is None else epoch_batches(n, batch_size, epochs, batch_seed)
    spec = ProblemSpec(tuple(int(c) for c in counts), tau, loss=loss,
                       relaxation="dnn" if relu else "elliptope", batches=batches)
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
            (result.spec.loss, result.spec.relaxation) != (spec.loss, spec.relaxation) or \
            result.spec.batches != spec.batches:
        raise InvalidInputError("the given result solves another problem (counts, tau, "
                                "loss or relaxation differ)")
    timings["solve"] = time.perf_counter() - t0
    if result.class_gram is None:
        raise InvalidInputError(f"the optimum could not be computed: {result.message}")

    t0 = time.perf_counter()
    loss_obj = loss_of(spec)
    if batches is None:
        value = streamed_loss(features, y, tau, loss=loss, precision=precision,
                              block_rows=block_rows, threads=threads, progress=progress)
        collapsed = float(loss_obj.block_terms(M, np.ones(k, dtype=int), counts, tau).value)
    else:
        # The spec lists samples class by class: its sample j is row order[j] here.
        order = np.argsort(y, kind="stable")
        value = streamed_batch_loss(features, y, [order[list(b)] for b in batches], tau,
                                    loss=loss)
        collapsed = float(loss_obj.class_form(build_model(spec, "class"), M).value)
    timings["loss"] = time.perf_counter() - t0
    lower = float(result.sample_lower_bound)
    gap = value.value - lower
    M_opt = result.class_gram
    eye = np.eye(k)
    etf = np.full((k, k), -1.0 / (k - 1)) + (1.0 + 1.0 / (k - 1)) * eye
    bars = result.bars
    notes = []
    resolved = gap > value.error
    if not resolved:
        notes.append(f"the gap {gap:.3g} is within the loss's error bound "
                     f"{value.error:.2g}: these features are not shown to be sub-optimal "
                     "(use precision float64 for a tighter bound)")
    if batches is not None and result.status != "optimal":
        notes.append("the optimum is the best class-collapsed geometry for the batch "
                     "scheme; collapse is not proven optimal for it, and the lower bound "
                     f"over all geometries is {result.sample_gap:.3g} below it (the gap "
                     "uses that bound)")
    elif result.status != "optimal":
        notes.append(f"the optimum is not certified ({result.status}): the lower bound "
                     "still holds, but the optimum's Gram may be inaccurate")
    if bars is not None and bars.unique is not True:
        notes.append(f"the optimum's uniqueness is {bars.reason}; the distances are to one "
                     "optimum, an upper bound on the distance to the set of optima")
    if bars is not None and bars.max_half_width > 1e-3:
        notes.append(f"the optimum's cosines are proven only to within "
                     f"{bars.max_half_width:.2g}: distances to it below that are not "
                     "resolved")
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
        optimum_resolution=math.nan if bars is None else float(bars.max_half_width),
        nonnegative=bool(stats.min_entry >= 0), notes=tuple(notes), result=result,
        batch_scheme=None if batches is None else {"batch_size": batch_size, "epochs": epochs,
                                                   "batch_seed": batch_seed},
        seconds=time.perf_counter() - t_start, timings=timings)


# ---------------------------------------------------------------------- files
FEATURE_SUFFIXES = (".npy", ".npz")


def load_features(path: str | os.PathLike):
    """Features (and labels and class names, if the file has them) from a file.

    ``.npy``: the features, memory-mapped (read in blocks later, never loaded whole).
    ``.npz``: arrays ``features`` (or the only 2-D array), and optionally ``labels`` and
    ``class_names``; loaded into memory.

    Returns
    -------
    features : ndarray or memmap, shape (n, d)
    labels : ndarray or None
    class_names : tuple of str or None
    """
    where = f"--features {os.fspath(path)!r}"
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in FEATURE_SUFFIXES:
        raise InvalidInputError(f"{where}: features must be a .npy or .npz file")
    # A FIFO or a device is refused before numpy opens it (an open FIFO blocks); an
    # .npz is loaded whole, so its arrays, as they unpack, must fit in memory.
    with open_input(path, "--features", FEATURES_FILE_MAX) as fh:
        if suffix == ".npz":
            _check_npz_memory(fh, where)
    try:
        data = np.load(path, mmap_mode="r" if suffix == ".npy" else None,
                       allow_pickle=False)
    except OSError as exc:
        raise InvalidInputError(f"{where}: cannot read ({exc})") from None
    except ValueError as exc:
        raise InvalidInputError(f"{where}: not a plain numpy file ({exc})") from None
    labels = names = None
    if suffix == ".npz":
        with data:
            keys = list(data.keys())
            if "features" in keys:
                features = data["features"]
            else:
                two = [key for key in keys if data[key].ndim == 2]
                if len(two) != 1:
                    raise InvalidInputError(f"{where}: no 'features' array (arrays: "
                                            f"{', '.join(keys) or 'none'})")
                features = data[two[0]]
            labels = data["labels"] if "labels" in keys else None
            names = tuple(str(x) for x in data["class_names"]) if "class_names" in keys \
                else None
    else:
        features = data
    if features.ndim != 2:
        raise InvalidInputError(f"{where}: features must be 2-D (n, d), got shape "
                                f"{features.shape}")
    if features.dtype.kind not in "fiu":
        raise InvalidInputError(f"{where}: features must be numbers, got {features.dtype}")
    return features, labels, names


FEATURES_FILE_MAX = 2**40
"""Largest features file opened (1 TiB: a ``.npy`` file is memory-mapped and read in
blocks; an ``.npz`` file must also fit in memory unpacked)."""


def _check_npz_memory(fh, where: str) -> None:
    """The unpacked size of an ``.npz`` archive, from its directory, against the memory
    budget (a compressed archive of a few KB can unpack to GBs)."""
    import zipfile

    from ..resources import check_memory

    try:
        with zipfile.ZipFile(fh) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidInputError(f"{where}: not a plain numpy file ({exc})") from None
    check_memory(2.0 * unpacked, f"loading {where} ({unpacked} bytes unpacked)")


def read_class_names(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names, one per line (blank lines skipped); label ``i`` is line ``i``."""
    from ..problem.inputs import read_labels

    names = read_labels(path, "--class-names")
    return tuple(str(x) for x in names.tolist())


def _natural_key(path: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", os.path.basename(path))]


def checkpoint_files(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Feature files of a trajectory: files as given, folders expanded to their ``.npy``
    and ``.npz`` files in natural order (``epoch_9`` before ``epoch_10``)."""
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = sorted((os.path.join(p, f) for f in os.listdir(p)
                            if os.path.splitext(f)[1].lower() in FEATURE_SUFFIXES),
                           key=_natural_key)
            if not found:
                raise InvalidInputError(f"--features {p!r}: the folder has no .npy or .npz "
                                        "files")
            out += found
        else:
            out.append(p)
    return out


# ---------------------------------------------------------------------- trajectory
@dataclass(frozen=True, eq=False)
class Trajectory:
    """:func:`compare` over checkpoints of one training run (same samples and labels).

    Attributes
    ----------
    names : tuple of str
        One name per checkpoint (its file name).
    steps : tuple of int
        The last number in each name (the checkpoint's index if it has none).
    comparisons : tuple of Comparison
    """

    names: tuple
    steps: tuple
    comparisons: tuple

    def rows(self) -> list[dict]:
        """One summary row per checkpoint (the numbers :func:`trajectory_figure` draws)."""
        out = []
        for name, step, c in zip(self.names, self.steps, self.comparisons, strict=True):
            out.append({"checkpoint": name, "step": step, "loss": c.loss,
                        "loss_error": c.loss_error, "gap": c.gap,
                        "gap_resolved": c.gap_resolved, "excess_gap": c.excess_gap,
                        "geometry_gap": c.geometry_gap, "within_gap": c.within_gap,
                        "to_optimum_max": c.to_optimum.max_abs,
                        "to_optimum_frobenius": c.to_optimum.frobenius,
                        "to_etf_max": c.to_etf.max_abs, "to_etf_frobenius": c.to_etf.frobenius,
                        "nc1_trace_ratio": c.collapse.trace_ratio, "nc1": c.collapse.nc1,
                        "cdnv": c.collapse.cdnv, "within_cosine": c.collapse.within_cosine})
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (the ``--json`` output of ``scconvex compare`` with several
        checkpoints): the summary rows and every comparison in full."""
        last = self.comparisons[-1]
        spec = {key: value for key, value in last.spec.to_dict().items() if key != "batches"}
        return jsonable({
            "kind": "scconvex.compare_trajectory", "schema_version": SCHEMA_VERSION,
            "scconvex_version": version(), "spec": spec, "batch_scheme": last.batch_scheme,
            "class_names": list(last.class_names), "lower_bound": last.lower_bound,
            "optimum_status": last.optimum_status, "optimum_gram": last.optimum_gram,
            "rows": self.rows(), "checkpoints": [c.to_dict() for c in self.comparisons]})


def step_of(name: str, index: int) -> int:
    """The last integer in a checkpoint's file name, or ``index``."""
    numbers = re.findall(r"\d+", os.path.splitext(os.path.basename(name))[0])
    return int(numbers[-1]) if numbers else index


def trajectory(checkpoints: Sequence, labels, tau: float, *,
               names: Sequence[str] | None = None,
               progress: Callable[[int, int], None] | None = None, **options) -> Trajectory:
    """:func:`compare` at every checkpoint, with one certified solve for all of them.

    Parameters
    ----------
    checkpoints : sequence of array_like
        Features of one run at successive checkpoints (the same ``n`` samples).
    labels, tau :
        As for :func:`compare`.
    names : sequence of str, optional
        Checkpoint names (default ``"0"``, ``"1"``, ...).
    progress : callable, optional
        Called with ``(done, total)`` after each checkpoint.
    **options
        Passed to :func:`compare`.
    """
    if not checkpoints:
        raise InvalidInputError("a trajectory needs at least one checkpoint")
    names = tuple(str(i) for i in range(len(checkpoints))) if names is None else tuple(names)
    out = []
    result = options.pop("result", None)
    for i, features in enumerate(checkpoints):
        c = compare(features, labels, tau, result=result, **options)
        result = c.result
        out.append(c)
        if progress is not None:
            progress(i + 1, len(checkpoints))
    return Trajectory(names=names, steps=tuple(step_of(nm, i) for i, nm in enumerate(names)),
                      comparisons=tuple(out))


# ---------------------------------------------------------------------- text
def _num(x: float, width: int = 10) -> str:
    return f"{x:>{width}.4g}" if math.isfinite(x) else f"{x!s:>{width}}"


def decimals_for(error: float) -> int:
    """Decimals that show a number to the order of its error bound (0 to 12)."""
    if not (error > 0 and math.isfinite(error)):
        return 12
    return int(min(12, max(0, math.ceil(-math.log10(error)))))


def format_comparison(c: Comparison, *, max_classes: int = 10) -> str:
    """Readable report of a :class:`Comparison` (no trailing newline)."""
    from ..problem.inputs import format_counts

    spec = c.spec
    share = c.geometry_share
    dec = decimals_for(c.loss_error)
    lines = [
        f"scconvex compare: n={c.n} samples, d={c.d}, k={c.k} classes, tau={spec.tau:g}, "
        f"loss {spec.loss}, relaxation {spec.relaxation}",
        f"  counts        {format_counts(spec.counts)}",
        f"  optimum       status {c.optimum_status.upper()} ({c.result.level} level), "
        f"certified lower bound {c.lower_bound:.{dec}f}",
        f"  loss          {c.loss:.{dec}f} +- {c.loss_error:.1e} (proven error bound, "
        f"{c.precision})",
        f"  excess        {c.excess:.{dec}f}   (the optimum's: {c.optimum_excess:.4g})",
        f"  gap           {c.gap:.{dec}f}   "
        + ("resolved" if c.gap_resolved else "NOT resolved (within the error bound)")
        + f"   relative {c.rel_gap:.2e}   excess gap {c.excess_gap:.4g}",
        f"    geometry    {c.geometry_gap:.{dec}f}"
        + ("" if math.isnan(share) else f" ({100 * share:.0f}%)")
        + "   the class means, collapsed, against the bound",
        f"    within      {c.within_gap:.{dec}f}"
        + ("" if math.isnan(share) else f" ({100 * (1 - share):.0f}%)")
        + "   the spread of samples around their class means",
        f"  collapse      NC1 tr(Sw)/tr(Sb) {c.collapse.trace_ratio:.3e}   "
        f"tr(Sw Sb^+)/k {c.collapse.nc1:.3e}   CDNV {c.collapse.cdnv:.3e} "
        f"(max {c.collapse.cdnv_max:.3e})",
        f"                within-class cosine {c.collapse.within_cosine:.4f}   feature norms "
        f"mean {c.collapse.norm_mean:.4g}, std/mean {c.collapse.norm_cv:.3f}",
        f"  class-mean Gram against the optimum: max {c.to_optimum.max_abs:.4f}, "
        f"Frobenius {c.to_optimum.frobenius:.4f};  against the ETF: max "
        f"{c.to_etf.max_abs:.4f}, Frobenius {c.to_etf.frobenius:.4f}",
    ]
    if c.nonnegative:
        lines.append(f"  against the orthogonal frame M = I: max {c.to_orthogonal.max_abs:.4f}, "
                     f"Frobenius {c.to_orthogonal.frobenius:.4f}")
    groups = c.groups()
    if len(groups) > 1:
        lines.append(f"  {'cosines by group':<24}{'pairs':>6}  {'trained mean':>12}  "
                     f"{'[min, max]':>19}  {'optimum':>9}  {'ETF':>8}")
        for g in groups:
            lines.append(f"    {g['groups']:<22}{g['pairs']:>6}  {g['trained_mean']:>12.4f}  "
                         f"[{g['trained_min']:>8.4f},{g['trained_max']:>8.4f}]  "
                         f"{g['optimum']:>9.4f}  {g['etf']:>8.4f}")
    names = [nm if len(nm) <= 8 else nm[:7] + "~" for nm in c.class_names]
    if c.k <= max_classes:
        for title, M in (("trained", c.class_gram), ("certified optimum", c.optimum_gram)):
            lines.append(f"  cosines between class means, {title}:")
            lines.append(" " * 12 + "".join(f"{nm:>9}" for nm in names))
            for i in range(c.k):
                lines.append(f"    {names[i]:<8}" + "".join(f"{M[i, j]:>9.4f}"
                                                      for j in range(c.k)))
    else:
        worst = sorted(c.pairs(), key=lambda r: -abs(r["error"]))[:5]
        lines.append("  largest differences from the optimum (all pairs in --json):")
        for r in worst:
            lines.append(f"    {r['i']} / {r['j']}: trained {r['trained']:.4f}, optimum "
                         f"{r['optimum']:.4f}")
    lines += [f"  note: {note}" for note in c.notes]
    return "\n".join(lines)


def format_trajectory(t: Trajectory) -> str:
    """One line per checkpoint (no trailing newline)."""
    first = t.comparisons[0]
    lines = [f"scconvex compare: {len(t.comparisons)} checkpoints, n={first.n}, k={first.k}, "
             f"tau={first.spec.tau:g}; certified lower bound {first.lower_bound:.10g} "
             f"({first.optimum_status})",
             f"  {'checkpoint':<20}{'gap':>11}{'excess gap':>11}{'geometry':>11}"
             f"{'to opt max':>11}{'to ETF max':>11}{'NC1 ratio':>11}{'within cos':>11}"]
    for row in t.rows():
        name = row["checkpoint"]
        name = name if len(name) <= 19 else "~" + name[-18:]
        gap = _num(row["gap"], 11) + ("" if row["gap_resolved"] else "*")
        lines.append(f"  {name:<20}{gap}{_num(row['excess_gap'], 11)}"
                     f"{_num(row['geometry_gap'], 11)}{row['to_optimum_max']:>11.4f}"
                     f"{row['to_etf_max']:>11.4f}{_num(row['nc1_trace_ratio'], 11)}"
                     f"{row['within_cosine']:>11.4f}")
    if not all(r["gap_resolved"] for r in t.rows()):
        lines.append("  * gap within the loss's error bound: not resolved")
    return "\n".join(lines)
