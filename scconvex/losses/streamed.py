"""The SC loss of real-sized feature matrices, streamed in row blocks, with an error bound.

:func:`streamed_loss` evaluates the supervised contrastive loss (MATH.md section 2) or the
negatives-only loss (section 8) of features ``H`` of shape ``(n, d)`` read ``block_rows``
rows at a time from any array that can be sliced by rows (a numpy array or a memory-mapped
``.npy`` file, ``np.load(path, mmap_mode="r")``). Rows are normalised to unit length in
float64, as in the unconstrained features model.

Memory is O(block_rows d + n + k d): two blocks of rows, one ``tile x tile`` product per
thread, one float64 accumulator per sample and the class sums; never ``n x n``.

How it is computed
------------------
The loss is ``sum_{i active} (LSE_i - pos_i)`` with ``LSE_i = log sum_{l != i}
exp(z_il / tau)``, ``z_il = h_i.h_l``, and ``pos_i`` the mean positive logit. The sum of
the positive terms needs only the class sums ``S_c = sum_{i in c} h_i``:
``sum_{i in c} pos_i = (||S_c||^2 - sum_{i in c} ||h_i||^2) / ((n_c - 1) tau)``, computed in
float64. The log-sum-exps need every product: the grid of ``tile x tile`` tiles of
``H H^T / tau`` is visited on and above the diagonal only (the matrix is symmetric), each
tile's exponentials summed along rows (for its row anchors) and along columns (for its
column anchors), in ``threads`` worker threads (numpy releases the GIL), one BLAS thread
each. With ``1/tau <= 80`` (float32; 600 in float64) the exponentials neither overflow nor
underflow, so no shift is needed; at smaller ``tau`` a first pass finds each row's largest
logit and the sums are taken relative to it (twice the work).

Error bound
-----------
:attr:`StreamedLoss.error` bounds ``|value - L|``, with ``L`` the exact loss of the exactly
normalised rows, for IEEE arithmetic in the precision used (unit roundoff ``u``: ``2^-24``
in float32, ``2^-53`` in float64; ``gamma_m = m u / (1 - m u)``). Derivation (docs/compare.md
has it in full):

* Products. A row is rounded to the working precision (relative error ``u`` per entry),
  one factor is multiplied by ``fl(1/tau)`` (two more roundings), and the dot product of
  length ``d`` in any summation order, FMA or not, errs by at most ``gamma_d`` times
  ``sum_k |a_k b_k|``. With unit rows, ``sum_k |h_ik h_jk| <= 1`` (Cauchy-Schwarz), so every
  computed logit is within ``delta = gamma_{d+4} / tau`` of ``z_ij / tau``. A shift adds one
  rounding of a number of size at most ``2/tau + delta``.
* ``LSE`` is 1-Lipschitz in the max norm of its arguments, so logit errors move each anchor's
  log-sum-exp by at most ``delta``.
* Exponentials: numpy's float32 ``exp`` is tested to 3 ulp; we allow :data:`EXP_ULPS` ulp,
  a relative error ``EXP_ULPS * 2u`` per term (exhaustively checked on the arguments used:
  ``benchmarks/exp_accuracy.py``). Underflow to zero or to a subnormal (shifted mode only)
  loses at most ``2^-125`` per term against a row sum of at least about 1.
* Sums: each tile sums at most ``tile`` non-negative terms in the working precision
  (relative error ``gamma_{tile-1}``, any order), tile sums are added in float64.
* A relative error ``r`` of a row sum moves its logarithm by at most ``-log(1 - r)``.
* The positive terms and the final sum are float64 (``gamma`` of float64, tiny but counted),
  and so is the normalisation (``gamma_{d+3}`` of float64 per logit).

The bound is worst-case: the actual error is typically 100 to 1000 times smaller. A gap
between two losses smaller than their error bounds is not resolved and must not be claimed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..checks import check_tau
from ..errors import InvalidInputError
from ..threads import blas_threads, check_threads

PRECISIONS = ("float32", "float64")
"""Working precision of the products and exponentials (the accumulators are float64)."""

EXP_ULPS = 16
"""Allowed error of the working-precision ``exp``, in units in the last place. numpy's own
accuracy tests allow 3 ulp for float32; ``benchmarks/exp_accuracy.py`` checks every float32
argument that can occur."""

TILE = 512
"""Side of the square tiles of ``H H^T / tau`` (one tile per worker at a time: 1 MiB in
float32). Its sums have at most this many terms, which enters the error bound."""

BLOCK_BYTES = 1 << 26
"""Default size of one block of rows read from the source (64 MiB as float64):
``block_rows = BLOCK_BYTES // (8 d)``, rounded to a multiple of :data:`TILE`."""

NO_SHIFT_MAX = {"float32": 80.0, "float64": 600.0}
"""Largest ``1/tau`` at which exponentials of logits in ``[-1/tau, 1/tau]`` (and sums of a
tile of them, and float64 sums of ``n <= 2**53`` of them) stay finite and normal."""

LOSSES = ("sc", "negatives-only")


@dataclass(frozen=True)
class StreamedLoss:
    """Value of :func:`streamed_loss`, with its error bound.

    Attributes
    ----------
    value : float
        The loss (summed over anchors, MATH.md section 2 or 8).
    error : float
        Proven bound on ``|value - L|`` (see the module docstring).
    loss : str
        ``"sc"`` or ``"negatives-only"``.
    precision : str
        Working precision of the products.
    n, d : int
        Samples and feature dimension.
    active : int
        Anchors with at least one positive (those that have a term).
    shifted : bool
        Whether the log-sum-exps were taken relative to each row's largest logit (small
        ``tau``; two passes).
    seconds : float
        Wall time.
    """

    value: float
    error: float
    loss: str
    precision: str
    n: int
    d: int
    active: int
    shifted: bool
    seconds: float

    def to_dict(self) -> dict:
        """JSON-safe fields."""
        return {"value": self.value, "error": self.error, "loss": self.loss,
                "precision": self.precision, "n": self.n, "d": self.d,
                "active": self.active, "shifted": self.shifted, "seconds": self.seconds}


def gamma(m: float, u: float) -> float:
    """``m u / (1 - m u)``: the standard bound on ``m`` accumulated relative roundings."""
    if m * u >= 0.5:
        return math.inf
    return m * u / (1.0 - m * u)


def unit_roundoff(precision: str) -> float:
    """``2^-24`` for float32, ``2^-53`` for float64."""
    return {"float32": 2.0**-24, "float64": 2.0**-53}[precision]


def anchor_error(d: int, tau: float, precision: str, *, tile: int = TILE,
                 shifted: bool = False, n: int = 0) -> float:
    """Bound on the error of one anchor's computed log-sum-exp (module docstring).

    Examples
    --------
    >>> f"{anchor_error(512, 0.1, 'float32'):.3e}"   # about (d + 4 + 512) 2^-24 / tau
    '3.399e-04'
    """
    u = unit_roundoff(precision)
    u64 = 2.0**-53
    logit = gamma(d + 4, u) / tau + 2.0 * gamma(d + 3, u64) / tau
    if shifted:
        logit += 2.0 * u * (2.0 / tau + logit) + 2.0 * u / tau
    rel = EXP_ULPS * 2.0 * u + gamma(tile - 1, u) + gamma(n + 2 * tile + 8, u64)
    if shifted:
        # Terms that underflow lose at most 2^-125 each. The shift is the row's largest
        # computed logit, from another pass: the largest term of this pass is at least
        # exp(-2 logit - rounding of the shift), so the row sum is at least that.
        floor = math.exp(-2.0 * logit - 2.0 * u * (1.0 / tau + logit))
        rel += n * 2.0**-125 / floor
    if rel >= 0.5:
        return math.inf
    return logit - math.log1p(-rel)


def _check_features(features) -> tuple[int, int]:
    shape = getattr(features, "shape", None)
    if shape is None or len(shape) != 2:
        raise InvalidInputError(f"features must be a 2-D array (n, d), got shape {shape}")
    n, d = int(shape[0]), int(shape[1])
    if n < 2:
        raise InvalidInputError(f"need at least 2 samples, got {n}")
    if d < 2:
        raise InvalidInputError(f"features have dimension d = {d}: on the unit sphere in "
                                "d = 1 every feature is +1 or -1; use d >= 2")
    dtype = getattr(features, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "fiu":
        raise InvalidInputError(f"features must be real numbers, got dtype {dtype}")
    return n, d


def normalized_rows(features, r0: int, r1: int) -> np.ndarray:
    """Rows ``r0:r1`` of ``features`` in float64, scaled to unit length.

    Raises InvalidInputError for a non-finite entry or a zero row (naming the row).
    """
    X = np.array(features[r0:r1], dtype=np.float64)
    if not np.all(np.isfinite(X)):
        bad = r0 + int(np.flatnonzero(~np.all(np.isfinite(X), axis=1))[0])
        raise InvalidInputError(f"features contain NaN or infinity (row {bad})")
    norms = np.linalg.norm(X, axis=1)
    if np.any(norms == 0):
        bad = r0 + int(np.flatnonzero(norms == 0)[0])
        raise InvalidInputError(f"feature row {bad} is zero and cannot be normalised")
    X /= norms[:, None]
    return X


def _labels(labels, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise InvalidInputError(f"labels must have shape ({n},) to match the features, "
                                f"got {labels.shape}")
    _, y, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return y.astype(np.intp), counts


def streamed_loss(features, labels, tau: float, *, loss: str = "sc",
                  precision: str = "float32", block_rows: int | None = None,
                  threads: int | None = 2,
                  progress: Callable[[float], None] | None = None) -> StreamedLoss:
    """SC (or negatives-only) loss of features streamed in row blocks, with an error bound.

    Parameters
    ----------
    features : array_like, shape (n, d)
        Features, one row per sample; any array that can be sliced by rows, e.g.
        ``np.load("F.npy", mmap_mode="r")``. Rows are normalised to unit length.
    labels : array_like, shape (n,)
        Class label of each sample (any values; anchors of a one-sample class have no term).
    tau : float
        Temperature.
    loss : {"sc", "negatives-only"}
        Denominator over all other samples, or over the negatives only.
    precision : {"float32", "float64"}
        Working precision of the products and exponentials. float32 is about twice as fast
        and its error bound about ``(d + 4) 2^-24 / tau`` per anchor; float64 is exact to
        about ``1e-13`` per anchor.
    block_rows : int, optional
        Rows read from ``features`` at a time (default: 64 MiB of float64 rows). Memory is
        O(block_rows d + n + k d); the source is read about ``n / block_rows`` times.
    threads : int, optional
        Worker threads (default 2), each with one BLAS thread. None: 1.
    progress : callable, optional
        Called with the fraction of the work done, from the calling thread.

    Returns
    -------
    StreamedLoss
        ``value`` and its proven error bound ``error`` (module docstring).

    Raises
    ------
    InvalidInputError
        For mismatched shapes, ``d < 2``, non-finite entries, a zero row, no anchor with a
        positive, or (negatives-only) a single class.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    >>> r = streamed_loss(H, [0, 0, 1, 1], tau=1.0)
    >>> round(r.value, 6), r.error < 1e-3   # 4 log(1 + 2 exp(-2))
    (0.958179, True)
    """
    t_start = time.perf_counter()
    n, d = _check_features(features)
    y, counts = _labels(labels, n)
    tau = check_tau(tau)
    if loss not in LOSSES:
        raise InvalidInputError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    if precision not in PRECISIONS:
        raise InvalidInputError(f"unknown precision {precision!r}; choose one of "
                                f"{PRECISIONS}")
    if loss == "negatives-only" and len(counts) < 2:
        raise InvalidInputError("the negatives-only loss needs at least two classes")
    workers = check_threads(threads) or 1
    rows = _block_rows(block_rows, n, d)
    npos = counts[y] - 1
    active = npos > 0
    if not np.any(active):
        raise InvalidInputError("no class has two samples: the loss has no term")
    shifted = 1.0 / tau > NO_SHIFT_MAX[precision]
    dtype = np.float32 if precision == "float32" else np.float64

    class_sums, sq_norms = _class_sums(features, y, len(counts), d, rows)
    with blas_threads(1), ThreadPoolExecutor(max_workers=workers) as pool:
        shift = None
        passes = 2 if shifted else 1
        if shifted:
            shift = _row_max(features, y, tau, dtype, rows, pool, workers, loss,
                             _scaled(progress, 0, passes))
        lse = _log_sum_exp(features, y, tau, dtype, rows, pool, workers, loss, shift,
                           _scaled(progress, passes - 1, passes))
    # Sum of the positive terms per class (module docstring), float64.
    big = counts >= 2
    pos = float(np.sum((np.einsum("cd,cd->c", class_sums, class_sums) - sq_norms)[big]
                       / (counts[big] - 1.0))) / tau
    terms = lse[active]
    value = float(np.sum(terms)) - pos

    per_anchor = anchor_error(d, tau, precision, shifted=shifted, n=n)
    u64 = 2.0**-53
    # Positive terms: ||S_c||^2 from float64 sums of n_c unit rows (each normalised with
    # relative error gamma_{d+3}), divided by n_c - 1: at most 2 gamma_{n_c+d+4} n_c^2 /
    # ((n_c - 1) tau) per class. Final float64 sum over n terms.
    c = counts[big].astype(float)
    pos_err = float(np.sum(2.0 * np.array([gamma(m + d + 4, u64) for m in c]) * c * c
                           / (c - 1.0))) / tau
    sum_err = gamma(n + 2, u64) * (float(np.sum(np.abs(terms))) + abs(pos))
    error = int(np.sum(active)) * per_anchor + pos_err + sum_err
    return StreamedLoss(value=value, error=float(error), loss=loss, precision=precision,
                        n=n, d=d, active=int(np.sum(active)), shifted=shifted,
                        seconds=time.perf_counter() - t_start)


def _scaled(progress, index: int, total: int):
    if progress is None:
        return None
    return lambda f: progress((index + f) / total)


def _block_rows(block_rows: int | None, n: int, d: int) -> int:
    if block_rows is None:
        rows = max(TILE, (BLOCK_BYTES // (8 * d)) // TILE * TILE)
        return int(min(rows, n))
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) \
            or block_rows < 1:
        raise InvalidInputError(f"block_rows must be a positive integer, got {block_rows!r}")
    return int(min(block_rows, n))


def _class_sums(features, y: np.ndarray, k: int, d: int, rows: int):
    """Class sums of the normalised rows and the class sums of their squared norms."""
    n = len(y)
    sums = np.zeros((k, d))
    sq = np.zeros(k)
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        X = normalized_rows(features, r0, r1)
        yb = y[r0:r1]
        order = np.argsort(yb, kind="stable")
        ys = yb[order]
        starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
        sums[ys[starts]] += np.add.reduceat(X[order], starts, axis=0)
        sq += np.bincount(yb, weights=np.einsum("ij,ij->i", X, X), minlength=k)
    return sums, sq


def _tiles(i0: int, i1: int, j0: int, j1: int, diagonal: bool, symmetric: bool):
    """Tiles ``(a0, a1, b0, b1)`` of rows ``i0:i1`` and columns ``j0:j1``; on a diagonal
    block pair of a symmetric pass only those on and above the diagonal."""
    out = []
    for a0 in range(i0, i1, TILE):
        for b0 in range(j0, j1, TILE):
            if symmetric and diagonal and b0 < a0:
                continue
            out.append((a0, min(i1, a0 + TILE), b0, min(j1, b0 + TILE)))
    return out


class _Worker:
    """Per-thread buffers and float64 accumulators (no locks: each thread has its own)."""

    def __init__(self, n: int, dtype) -> None:
        self.acc = np.zeros(n)
        self.buf = np.empty((TILE, TILE), dtype=dtype)
        self.dtype = dtype


def _pairs(features, rows: int, dtype, scale: float):
    """Yield ``(i0, i1, A, j0, j1, B)`` for block pairs ``J >= I``: ``A`` the rows of block
    I scaled by ``fl(1/tau)``, ``B`` the rows of block J, both in the working precision."""
    n = features.shape[0]
    t = dtype(scale)
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        Bi = normalized_rows(features, i0, i1).astype(dtype)
        A = Bi * t
        for j0 in range(i0, n, rows):
            j1 = min(n, j0 + rows)
            B = Bi if j0 == i0 else normalized_rows(features, j0, j1).astype(dtype)
            yield i0, i1, A, j0, j1, B


def _run(pool, workers, tasks, fn, progress, total_cells: float, done_cells: list):
    """Run ``fn(worker, task)`` over ``tasks`` on the pool, ``workers`` at a time."""
    futures = [pool.submit(fn, w, tasks[w::len(workers)]) for w in range(len(workers))]
    for f in futures:
        f.result()
    if progress is not None:
        done_cells[0] += sum((t[1] - t[0]) * (t[3] - t[2]) for t in tasks)
        progress(min(1.0, done_cells[0] / total_cells))


def _log_sum_exp(features, y, tau, dtype, rows, pool, nworkers, loss, shift, progress):
    n = features.shape[0]
    neg_only = loss == "negatives-only"
    symmetric = shift is None
    workers = [_Worker(n, dtype) for _ in range(nworkers)]
    total = n * n / (2.0 if symmetric else 1.0)
    done = [0.0]

    def tile_job(w: int, tasks) -> None:
        wk = workers[w]
        for task in tasks:
            a0, a1, b0, b1 = task[:4]
            P = _tile_logits(wk, task, y, neg_only)
            if shift is not None:
                P -= shift[a0:a1, None].astype(dtype)
            np.exp(P, out=P)
            # Sums of at most TILE terms in the working precision (the error bound counts
            # gamma_{TILE-1}), accumulated in float64.
            wk.acc[a0:a1] += P.sum(axis=1)
            if symmetric and a0 != b0:
                wk.acc[b0:b1] += P.sum(axis=0)

    if symmetric:
        for i0, i1, A, j0, j1, B in _pairs(features, rows, dtype, 1.0 / tau):
            tasks = [(a0, a1, b0, b1, A, B, i0, j0)
                     for a0, a1, b0, b1 in _tiles(i0, i1, j0, j1, i0 == j0, True)]
            _run(pool, workers, tasks, tile_job, progress, total, done)
    else:
        for i0, i1, A, j0, j1, B in _full_pairs(features, rows, dtype, 1.0 / tau):
            tasks = [(a0, a1, b0, b1, A, B, i0, j0)
                     for a0, a1, b0, b1 in _tiles(i0, i1, j0, j1, False, False)]
            _run(pool, workers, tasks, tile_job, progress, total, done)
    sums = np.sum([w.acc for w in workers], axis=0)
    with np.errstate(divide="ignore"):
        out = np.log(sums)
    if shift is not None:
        out += shift
    return out


def _tile_logits(wk, task, y, neg_only: bool) -> np.ndarray:
    """The logits of one tile in the worker's buffer, ``-inf`` on the entries outside the
    anchors' denominators (``i == j``, and same-class pairs for the negatives-only loss),
    so that their exponentials are exactly 0 and they never win a maximum."""
    a0, a1, b0, b1, A, B, i0, j0 = task
    P = wk.buf[: a1 - a0, : b1 - b0]
    np.matmul(A[a0 - i0:a1 - i0], B[b0 - j0:b1 - j0].T, out=P)
    if a0 < b1 and b0 < a1:  # the tile holds diagonal entries i == j
        idx = np.arange(max(a0, b0), min(a1, b1))
        P[idx - a0, idx - b0] = -np.inf
    if neg_only:
        P[y[a0:a1, None] == y[None, b0:b1]] = -np.inf
    return P


def _full_pairs(features, rows: int, dtype, scale: float):
    """Every block pair (I, J), for the non-symmetric (shifted) passes."""
    n = features.shape[0]
    t = dtype(scale)
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        A = normalized_rows(features, i0, i1).astype(dtype) * t
        for j0 in range(0, n, rows):
            j1 = min(n, j0 + rows)
            B = normalized_rows(features, j0, j1).astype(dtype)
            yield i0, i1, A, j0, j1, B


def _row_max(features, y, tau, dtype, rows, pool, nworkers, loss, progress):
    """Largest computed logit of each row over its denominator's entries (shifted mode)."""
    n = features.shape[0]
    neg_only = loss == "negatives-only"
    workers = [_Worker(n, dtype) for _ in range(nworkers)]
    for w in workers:
        w.acc[:] = -np.inf
    done = [0.0]

    def tile_job(w: int, tasks) -> None:
        wk = workers[w]
        for task in tasks:
            a0, a1 = task[:2]
            P = _tile_logits(wk, task, y, neg_only)
            np.maximum(wk.acc[a0:a1], P.max(axis=1), out=wk.acc[a0:a1])

    for i0, i1, A, j0, j1, B in _full_pairs(features, rows, dtype, 1.0 / tau):
        tasks = [(a0, a1, b0, b1, A, B, i0, j0)
                 for a0, a1, b0, b1 in _tiles(i0, i1, j0, j1, False, False)]
        _run(pool, workers, tasks, tile_job, progress, float(n) * n, done)
    top = np.max([w.acc for w in workers], axis=0)
    # Any finite shift is exact arithmetic-wise (it is added back in float64); a row with
    # no entry (impossible after validation) keeps 0.
    top[~np.isfinite(top)] = 0.0
    return top.astype(dtype).astype(np.float64)


def streamed_batch_loss(features, labels, batches, tau: float, *,
                        loss: str = "sc") -> StreamedLoss:
    """The loss summed over batches of rows (the batch-wise loss of MATH.md section 8), in
    float64, with its error bound.

    Parameters
    ----------
    features : array_like, shape (n, d)
        Features, one row per sample (rows are normalised); any array that can be indexed
        by a list of rows, e.g. a memory-mapped ``.npy``. Only one batch is in memory at a
        time.
    labels : array_like, shape (n,)
    batches : sequence of sequences of int
        Row indices of each batch (a row may be in several batches).
    tau : float
    loss : {"sc"}
        Only the SC loss has a batch-wise form.

    Returns
    -------
    StreamedLoss
        With ``active`` the number of (batch, anchor) terms; the error bound is that of
        :func:`anchor_error` in float64 per term, with sums of one batch's size.
    """
    from .sc import sc_loss

    t_start = time.perf_counter()
    n, d = _check_features(features)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise InvalidInputError(f"labels must have shape ({n},) to match the features, "
                                f"got {labels.shape}")
    if loss != "sc":
        raise InvalidInputError("batches are supported with the 'sc' loss only")
    tau = check_tau(tau)
    value = total = 0.0
    terms = 0
    largest = 1
    for b in batches:
        idx = np.sort(np.asarray(b, dtype=np.intp))
        X = normalized_rows(np.asarray(features[idx], dtype=np.float64), 0, len(idx))
        yb = labels[idx]
        _, counts = np.unique(yb, return_inverse=False, return_counts=True)
        active = int(np.sum(counts[counts >= 2]))
        if active == 0:
            continue
        v = sc_loss(X, yb, tau, normalize=False)
        value += v
        total += abs(v)
        terms += active
        largest = max(largest, len(idx))
    per = anchor_error(d, tau, "float64", tile=largest)
    error = terms * per + gamma(len(batches) + 2, 2.0**-53) * total
    return StreamedLoss(value=float(value), error=float(error), loss=loss,
                        precision="float64", n=n, d=d, active=terms, shifted=False,
                        seconds=time.perf_counter() - t_start)
