"""Polish a certified answer where its loss is too flat to pin the cosines down.

A certified gap bounds the loss, and the cosine bars of :mod:`scconvex.bars` grow like the
square root of that gap over the curvature. Where some cosine barely moves the loss (a
class of one sample among a million, issue 17) the solver stops as soon as the certificate
stops improving, with that cosine far from the optimum, and no float64 loss comparison
can tell. The optimality conditions still can: the KKT equations ``S U = 0`` (``S = C -
Diag(nu)``, ``C`` the gradient, ``Q = U U^T``) with each row scaled by its own size weigh
the rows of small classes like the others. :func:`polish` runs Gauss-Newton on them at the
rank of the answer.

The result is only a candidate: the pipeline repairs and certifies it like any answer,
and keeps it when its certificate is at least as good. Nothing here is trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..levels.blocks import block_gram, from_block_gram
from ..losses.base import CurvatureRows, block_weights

MAX_UNKNOWNS = 2500
"""Dense Gauss-Newton on at most this many unknowns (``g`` times the rank)."""

STEP = 1e-20
"""Imaginary step of the complex-step derivatives (exact to rounding at any size)."""


@dataclass(frozen=True)
class Polished:
    """Outcome of :func:`polish`.

    Attributes
    ----------
    B : ndarray or None
        The polished block variable (None when not attempted or not converged).
    residual : float
        Largest scaled KKT residual at the start and at the end.
    steps : int
    note : str
    """

    B: np.ndarray | None
    residual_start: float
    residual: float
    steps: int
    note: str


class _Kkt:
    """Scaled KKT residual of a rank-``r`` factor of the block Gram (complex-safe)."""

    def __init__(self, sizes, counts, tau, curvature: CurvatureRows, sphere: np.ndarray,
                 radius2: np.ndarray) -> None:
        self.m = np.asarray(sizes, dtype=float)
        self.s = np.asarray(counts, dtype=float)
        self.g = self.m.size
        self.tau = float(tau)
        w = block_weights(np.asarray(sizes), np.asarray(counts))
        self.active = self.s >= 2
        self.enters = (w > 0) & self.active[:, None]
        with np.errstate(divide="ignore"):
            logw = np.log(np.where(w > 0, w, 1.0))
        base = np.asarray(curvature.offset, dtype=float)
        self.shift = float(curvature.center)
        self.remainder = curvature.remainder
        self.offset = np.where(self.enters, logw - base[:, None], 0.0)
        self.root = np.sqrt(np.outer(self.m, self.m))
        self.free = self.m >= 2
        self.sphere = sphere
        self.radius2 = radius2

    def gradient(self, U):
        """``C = dE/dQ`` up to a positive factor per call (complex-safe)."""
        Q = U @ U.T
        B = Q / self.root
        d = np.ones(self.g, dtype=Q.dtype)
        d[self.free] = (np.diag(Q)[self.free] - 1.0) / (self.m[self.free] - 1.0)
        B[np.diag_indices(self.g)] = d
        z = np.where(self.enters, self.offset + (B - self.shift) / self.tau, -np.inf)
        top = np.max(np.where(self.enters, z.real, -np.inf), axis=1)
        top = np.where(np.isfinite(top), top, 0.0)
        e = np.where(self.enters, np.exp(z - top[:, None]), 0.0)
        tot = np.sum(e, axis=1)
        tot = np.where(self.active, tot, 1.0)
        pi = e / tot[:, None]
        if self.remainder:
            # The row is log(1 + sum e^z): the shares carry the factor sum / (1 + sum).
            r = np.log(tot) + top
            sig = 1.0 / (1.0 + np.exp(-r))
        else:
            sig = np.ones(self.g)
        D = (self.m * self.s * np.where(self.active, sig, 0.0))[:, None] * pi / self.tau
        C = 0.5 * (D + D.T) / self.root
        diag = np.zeros(self.g, dtype=C.dtype)
        diag[self.free] = np.diag(D)[self.free] / (self.m[self.free] - 1.0)
        C[np.diag_indices(self.g)] = diag
        return C

    def residual(self, U, scale=None):
        C = self.gradient(U)
        CU = C @ U
        nu = np.sum(CU * U, axis=1) / self.radius2
        R = CU - np.where(self.sphere, nu, 0.0)[:, None] * U
        norms = np.sum(U * U, axis=1) - self.radius2
        if scale is None:
            scale = (np.abs(C.real) @ np.abs(U.real)).max(axis=1)
            # A row of (near) zeros, e.g. a block whose classes sum to zero, is measured
            # against the largest row rather than against itself.
            scale = np.maximum(scale, 1e-12 * float(np.max(scale, initial=0.0)) + 1e-300)
        R = R / scale[:, None]
        return np.concatenate([R.ravel(), norms[self.sphere]]), scale


def polish(model, B: np.ndarray, *, rank: int | None = None, class_rank: int | None = None,
           max_steps: int = 40) -> Polished:
    """Gauss-Newton on the scaled KKT equations from the block variable ``B``.

    Parameters
    ----------
    model : Model
        A class- or group-level model whose loss has curvature rows
        (:meth:`scconvex.losses.base.Loss.curvature_rows`).
    B : ndarray, shape (g, g)
        A feasible answer (block form).
    rank : int, optional
        Rank of the factor (default: the numerical rank of ``Q``, eigenvalues above
        ``1e-9`` of the largest).
    class_rank : int, optional
        The rank of the class Gram if known: a problem too large at that rank is not
        attempted, without an eigendecomposition.
    max_steps : int
        Gauss-Newton steps at most (measured: 31 from one certified answer of issue 17's
        counts at tau = 0.5, whose flat direction the solver left 7e-3 off).

    Returns
    -------
    Polished
        ``B`` None when the loss has no curvature rows or the problem is too large.
    """
    sizes = np.asarray(model.sizes)
    counts = np.asarray(model.block_counts)
    tau = model.spec.tau
    curvature = model.loss.curvature_rows(sizes, counts, tau)
    if curvature is None:
        return Polished(None, math.nan, math.nan, 0, "not attempted: no curvature rows")
    B = np.asarray(B, dtype=float)
    g = sizes.size
    # Decided before the eigendecomposition where a rank is known (it alone costs 0.2 s at
    # g = 1000): the class Gram's rank bounds that of Q from above.
    guess = rank if rank is not None else class_rank
    if guess is not None and g * min(guess, g) > MAX_UNKNOWNS:
        return Polished(None, math.nan, math.nan, 0, f"not attempted: {g} blocks of rank "
                                                     f"up to {guess}")
    Q = block_gram(B, sizes)
    lam, V = np.linalg.eigh(0.5 * (Q + Q.T))
    if rank is None:
        rank = int(np.sum(lam > 1e-9 * lam[-1]))
    if g * rank > MAX_UNKNOWNS:
        return Polished(None, math.nan, math.nan, 0, f"not attempted: {g * rank} unknowns")
    U = V[:, -rank:] * np.sqrt(np.maximum(lam[-rank:], 0.0))
    # Blocks of one class, and blocks whose classes all coincide (a_p = 1), are spheres.
    m = sizes.astype(float)
    sphere = (sizes == 1) | (np.diag(B) >= 1.0 - 1e-9)
    radius2 = np.where(sphere, np.where(sizes == 1, 1.0, m), 1.0)
    U[sphere] *= np.sqrt(radius2[sphere] / np.sum(U[sphere] ** 2, axis=1))[:, None]
    kkt = _Kkt(sizes, counts, tau, curvature, sphere, radius2)
    with np.errstate(all="ignore"):
        F, scale = kkt.residual(U)
    if not np.all(np.isfinite(F)):
        return Polished(None, math.nan, math.nan, 0, "not attempted: residual not finite")
    start = best = float(np.max(np.abs(F)))
    best_U = U.copy()
    n = U.size
    steps = 0
    for steps in range(1, max_steps + 1):  # noqa: B007 (reported)
        J = np.empty((F.size, n))
        with np.errstate(all="ignore"):
            for v in range(n):
                Uc = U.astype(complex)
                Uc.flat[v] += 1j * STEP
                J[:, v] = kkt.residual(Uc, scale)[0].imag / STEP
        if not (np.all(np.isfinite(J)) and np.all(np.isfinite(F))):
            break
        # Columns scaled to unit norm too: a flat direction is a column of tiny entries,
        # which an unscaled least-squares solve would cut off as noise.
        norms = np.sqrt(np.sum((J / np.max(np.abs(J), initial=1.0)) ** 2, axis=0))
        norms = np.where(norms > 0, norms * np.max(np.abs(J), initial=1.0), 1.0)
        delta = (np.linalg.lstsq(J / norms, -F, rcond=1e-13)[0] / norms).reshape(U.shape)
        # Backtracking: far from the solution a full step can overshoot.
        for step in (1.0, 0.5, 0.25, 0.125, 1 / 16, 1 / 64):
            trial = U + step * delta
            with np.errstate(all="ignore"):
                F_trial, _ = kkt.residual(trial, scale)
            res = float(np.max(np.abs(F_trial)))
            if res < best:  # False for nan
                break
        if not res < best:
            break
        U, F = trial, F_trial
        best, best_U = res, U.copy()
        if res <= 1e-15:
            break
    Qn = best_U @ best_U.T
    return Polished(from_block_gram(0.5 * (Qn + Qn.T), sizes), start, best, steps,
                    f"scaled KKT residual {start:.1e} -> {best:.1e} in {steps} steps")
