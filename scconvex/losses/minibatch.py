"""The SC loss summed over epochs of random mini-batches, at class level.

SGD does not see one fixed partition of the samples: every epoch reshuffles them into
batches of ``B`` (the last one smaller when ``B`` does not divide ``n``). The objective that
matches ``E`` epochs of it is

    L_E(G) = sum_{e=1..E} sum_{b in partition e} L_SC( G[b, b] ; y[b] ),

a sum of per-batch SC losses, each on its own sub-Gram (an anchor whose class has no other
sample in its batch contributes 0). It is convex in ``G`` (MATH.md section 8).

Under within-class collapse (``G_ij = M_{y_i y_j}``, ``G_ij = 1`` within a class) a batch
contributes only through its **class composition** ``C_bc``, the number of samples of class
``c`` in batch ``b``: it is the class-level SC loss (MATH.md section 4) with counts ``C_b``,

    L_E(M) = sum_b sum_{c: C_bc >= 2} C_bc log( (C_bc - 1)
                                               + sum_{c' != c} C_bc' exp((M_cc' - 1)/tau) ),

so ``L_E`` restricted to collapsed geometries is a convex function of the ``k x k`` class
Gram ``M`` whatever ``n``, ``B`` and ``E`` are, with one row per (batch, class) pair; batches
of equal composition merge (their terms are equal). Its constant (the bound attained only in
the limit) is ``sum_b sum_c C_bc log(C_bc - 1)``. Whether collapse is optimal for ``L_E`` is
*not* given: two samples of one class that meet different batches are not exchangeable. The
sample-level certificate of the lifted class optimum decides it (``docs/compare.md``).

This module holds the math: the compositions (:func:`compositions`), the class-level value
and gradient (:func:`minibatch_terms`) and the native solver's cost
(:class:`MinibatchCost`); the schemes themselves are made by
:func:`scconvex.problem.batches.epoch_batches`. Everything is evaluated like the block
form of
:mod:`scconvex.losses.sc`: relative to the constant, in log space, so that the geometry
stays determined at small ``tau``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import expit, logsumexp

from ..checks import check_tau
from ..errors import InvalidInputError
from .sc import log_softplus

MAX_ROWS = 50_000_000
"""Largest number of distinct (batch, class) rows kept (about 1.2 GB of float64 work per
evaluation); above it the scheme is refused with its size."""


def compositions(batches, labels, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct class compositions of the batches and how often each occurs.

    Returns
    -------
    comp : ndarray of int, shape (r, k)
        ``comp[j, c]``: samples of class ``c`` in a batch of composition ``j``.
    mult : ndarray of int, shape (r,)
        Number of batches with that composition.
    """
    labels = np.asarray(labels)
    rows = np.zeros((len(batches), k), dtype=np.int64)
    for j, b in enumerate(batches):
        rows[j] = np.bincount(labels[np.asarray(b, dtype=np.intp)], minlength=k)
    comp, mult = np.unique(rows, axis=0, return_counts=True)
    return comp, mult


@dataclass(frozen=True)
class MinibatchTerms:
    """The class-level mini-batch loss at one ``M`` (see the module docstring).

    Attributes
    ----------
    value : float
        ``L_E(M)``.
    constant : float
        ``sum_b sum_c C_bc log(C_bc - 1)`` over ``C_bc >= 2``.
    excess : float
        ``value - constant``, without cancellation.
    log_excess : float
        ``log(excess)`` in log space (finite where ``excess`` underflows).
    grad : ndarray, shape (k, k)
        Symmetric gradient ``dL/dM`` with zero diagonal: ``dL = sum(grad * dM)`` for
        symmetric ``dM`` with zero diagonal.
    rel_grad : ndarray, shape (k, k)
        ``grad / excess``, formed in log space.
    """

    value: float
    constant: float
    excess: float
    log_excess: float
    grad: np.ndarray
    rel_grad: np.ndarray


def minibatch_terms(M, comp, mult, tau: float) -> MinibatchTerms:
    """Value and gradient of the class-level mini-batch loss (module docstring).

    Parameters
    ----------
    M : array_like, shape (k, k)
        Cosines between class means (symmetric; the diagonal is not used).
    comp, mult : ndarray
        Compositions and multiplicities (:func:`compositions`).
    tau : float
    """
    tau = check_tau(tau)
    M = np.asarray(M, dtype=float)
    comp = np.asarray(comp, dtype=float)
    mult = np.asarray(mult, dtype=float)
    r, k = comp.shape
    if M.shape != (k, k):
        raise InvalidInputError(f"M must have shape ({k}, {k}), got {M.shape}")
    if r > MAX_ROWS // max(k, 1):
        raise InvalidInputError(f"{r} distinct batch compositions of {k} classes are too "
                                "many for the class-level mini-batch loss")
    # Rows (j, c) with C_jc >= 2: anchors with a positive in their batch.
    jj, cc = np.nonzero(comp >= 2)
    base = comp[jj, cc] - 1.0
    weight = mult[jj] * comp[jj, cc]  # anchors per row, times repeated batches
    with np.errstate(divide="ignore"):
        logc = np.log(comp[jj])  # (rows, k): log C_jc'
    z = logc + (M[cc] - 1.0) / tau - np.log(base)[:, None]
    z[np.arange(len(cc)), cc] = -np.inf  # c' != c
    if len(cc) == 0:
        z = np.zeros((0, k))
    rowlse = logsumexp(z, axis=1) if len(cc) else np.zeros(0)
    finite = np.isfinite(rowlse)
    prob = np.zeros_like(z)
    prob[finite] = np.exp(z[finite] - rowlse[finite, None])
    constant = float(np.sum(weight * np.log(base)))
    excess = float(np.sum(weight * np.logaddexp(0.0, rowlse)))
    with np.errstate(divide="ignore"):
        log_excess = float(logsumexp(np.log(weight) + log_softplus(rowlse))) if len(cc) \
            else -math.inf
    # Row (j, c) contributes weight * softplus(r); dr/dM_cc' = prob_c' / tau.
    sig = expit(rowlse)
    D = np.zeros((k, k))
    np.add.at(D, cc, (weight * sig)[:, None] * prob / tau)
    grad = 0.5 * (D + D.T)
    np.fill_diagonal(grad, 0.0)
    if math.isfinite(log_excess):
        # sig / excess in log space: -softplus(-r) - log_excess.
        rel = np.exp(-np.logaddexp(0.0, -rowlse) - log_excess)
        Dr = np.zeros((k, k))
        np.add.at(Dr, cc, (weight * rel)[:, None] * prob / tau)
        rel_grad = 0.5 * (Dr + Dr.T)
        np.fill_diagonal(rel_grad, 0.0)
    else:
        rel_grad = np.zeros((k, k))
    return MinibatchTerms(value=constant + excess, constant=constant, excess=excess,
                          log_excess=log_excess, grad=grad, rel_grad=rel_grad)


def minibatch_class_loss(M, comp, mult, tau: float) -> float:
    """``L_E(M)`` (:func:`minibatch_terms`)."""
    return minibatch_terms(M, comp, mult, tau).value


@lru_cache(maxsize=16)
def scheme_compositions(batches: tuple, counts: tuple) -> tuple[np.ndarray, np.ndarray]:
    """:func:`compositions` of a batch scheme over samples listed class by class."""
    labels = np.repeat(np.arange(len(counts)), counts)
    return compositions(batches, labels, len(counts))


class MinibatchCost:
    """Native-solver cost of the class-level mini-batch loss: ``F(M) = log(excess)`` and its
    symmetric gradient ``dF/dM`` (the :class:`~scconvex.losses.base.NativeCost` protocol,
    class level only)."""

    def __init__(self, model, comp: np.ndarray, mult: np.ndarray) -> None:
        k = len(model.sizes)
        self.g = k
        self.tau = model.spec.tau
        self.sphere = np.ones(k, dtype=bool)
        self.class_level = True
        self.invroot = np.ones((k, k))
        self.comp, self.mult = comp, mult

    def cosines(self, Q: np.ndarray) -> np.ndarray:
        """``M`` itself, with a unit diagonal."""
        M = np.array(Q, dtype=float)
        np.fill_diagonal(M, 1.0)
        return M

    def __call__(self, Q: np.ndarray) -> tuple[float, np.ndarray]:
        t = minibatch_terms(self.cosines(Q), self.comp, self.mult, self.tau)
        return t.log_excess, t.rel_grad
