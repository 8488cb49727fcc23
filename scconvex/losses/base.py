"""The loss protocol: what every loss object supplies, and what backends may ask of it.

Each loss supplies, for the pipeline stages that differ between variants:

* its **sample form**: value and symmetric gradient of ``L(G)`` on an ``n x n`` Gram;
* its **block form** on a class-collapsed geometry (class and group level,
  :func:`block_terms` style): value, the *excess* over a geometry-independent lower bound
  (its :meth:`Loss.constant`), the log of that excess, the row softmax and the row slope,
  so that certificates and the native solver work in log space;
* the **cvxpy objectives** at block and sample level (divided by ``n``);
* the **native cost** ``cost(Q) -> (F, C)`` with ``F`` the log of the excess loss.

Backends consume a loss only through these methods (and the native cost's own small
protocol, :class:`NativeCost`); they never import a loss's module. Losses never import a
backend: the cvxpy expressions are written here with cvxpy itself.

The block form of the registered losses (:mod:`scconvex.losses`) is one template. An
active anchor row ``p`` (``s_p >= 2``) has
``r_p = LSE_q( log w_pq - h_p + (B_pq - c) / tau )`` and contributes
``m_p s_p (base_p + phi(r_p))``, with

* SC: ``h_p = base_p = log(s_p - 1)``, ``c = 1``, ``phi = softplus``;
* negatives-only: ``h_p = log(n - s_p)``, ``base_p = log(n - s_p) - 2 / tau``,
  ``c = -1``, ``phi(r) = r`` (``r_p >= 0``: a weighted mean of ``exp((B + 1)/tau) >= 1``).

``sum_p m_p s_p base_p`` is the loss's constant, and the excess ``sum m_p s_p phi(r_p)``
is >= 0 on every feasible geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import InvalidInputError
from ..levels import CLASS, GROUP, SAMPLE
from ..levels.blocks import from_block_gram, q_gradient

_UNIT_TOL = 1e-6


# ---------------------------------------------------------------------- validation
def as_labels(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise InvalidInputError(f"labels must have shape ({n},), got {labels.shape}")
    return labels


def as_finite(x, name: str, ndim: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != ndim:
        raise InvalidInputError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InvalidInputError(f"{name} contains non-finite values")
    return x


def unit_rows(H, normalize: bool) -> np.ndarray:
    H = as_finite(H, "H", 2)
    norms = np.linalg.norm(H, axis=1)
    if normalize:
        if np.any(norms == 0):
            raise InvalidInputError("H has a zero row, which cannot be normalised")
        return H / norms[:, None]
    if np.any(np.abs(norms - 1) > _UNIT_TOL):
        worst = float(np.max(np.abs(norms - 1)))
        raise InvalidInputError(
            f"rows of H must have unit norm (largest deviation {worst:.2e}); "
            "pass normalize=True to normalise them")
    return H


# ---------------------------------------------------------------------- block form
@dataclass(frozen=True)
class BlockTerms:
    """Intermediate quantities of the block-form loss at one geometry.

    Attributes
    ----------
    value : float
        Loss ``L`` (including the constant ``sum n_c log(n_c - 1)``).
    excess : float
        ``L - sum n_c log(n_c - 1)``, computed without cancellation (it underflows to 0
        for ``tau`` below about 1e-3).
    log_excess : float
        ``log(excess)``, computed in log space: finite even where ``excess`` underflows.
    rowlse : ndarray, shape (g,)
        ``r_p = log( sum_q w_pq exp((B_pq - 1)/tau) / (s_p - 1) )`` (``-inf`` where
        ``s_p = 1``), so that an anchor of block ``p`` contributes ``log(s_p-1) +
        log1p(exp(r_p))``.
    sig : ndarray, shape (g,)
        ``sigmoid(r_p)``: the probability mass an anchor puts on other classes.
    prob : ndarray, shape (g, g)
        ``softmax_q`` of the row terms: the share of that mass on block ``q``.
    weights : ndarray, shape (g, g)
        ``w_pq``: samples of block ``q`` seen by an anchor of block ``p`` outside its class.
    """

    value: float
    excess: float
    log_excess: float
    rowlse: np.ndarray
    sig: np.ndarray
    prob: np.ndarray
    weights: np.ndarray


def block_weights(sizes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``w_pq = m_q s_q`` for ``q != p`` and ``(m_p - 1) s_p`` on the diagonal."""
    w = np.broadcast_to((sizes * counts)[None, :], (len(sizes), len(sizes))).copy()
    w[np.diag_indices_from(w)] = (sizes - 1) * counts
    return w.astype(float)


def block_grad(terms: BlockTerms, sizes, counts, tau: float) -> np.ndarray:
    """Gradient of the block-form loss with respect to the entries of ``B``.

    Returns ``D`` with ``D[p, q] = dL/dB[p, q]`` treating the entries as independent
    (the row of block ``p`` only); the gradient along a symmetric perturbation ``E`` is
    ``sum(D * E)``. Diagonal entries of blocks with ``m_p = 1`` get zero.
    """
    sizes = np.asarray(sizes)
    counts = np.asarray(counts)
    return (sizes * counts * terms.sig)[:, None] * terms.prob / tau


@dataclass(frozen=True)
class CurvatureRows:
    """The anchor rows of a block-form loss, as the cosine bars need them.

    Row ``p`` (``s_p >= 2``) is ``phi(log(remainder + sum_q e^{z_pq}))`` with
    ``z_pq = log w_pq - offset_p + (B_pq - center) / tau`` (the template of the module
    docstring): its Hessian in the row's cosines is ``kappa_p (diag(pi) - pi pi^T)`` with
    ``kappa_p = m_p s_p / tau^2`` and the shares ``pi_q = e^{z_pq} / (remainder + sum)``.
    With ``remainder = 1`` (SC: the anchor's positives) the shares leave
    ``q_p = 1 / (1 + sum) > 0`` and every cosine of the row has its own curvature floor;
    with ``remainder = 0`` (negatives only) they sum to one and the row is flat along a
    uniform shift (:mod:`scconvex.certificates.bars`, docs/theory.md section 10).

    Attributes
    ----------
    offset : ndarray, shape (g,)
        ``h_p``.
    center : float
        ``c``.
    remainder : bool
        Whether the row's log-sum-exp has the constant 1 (a positive remainder share).
    """

    offset: np.ndarray
    center: float
    remainder: bool


# ---------------------------------------------------------------------- the protocol
@dataclass(frozen=True)
class Loss:
    """A loss (see the module docstring). Subclasses fill in the hooks.

    Attributes
    ----------
    name : str
        Its name in a spec (``ProblemSpec.loss``), the command line and JSON.
    description : str
        One line on what it is.
    """

    name: str
    description: str

    levels = (GROUP, CLASS, SAMPLE)
    """Levels (:mod:`scconvex.levels`) at which the loss reduces exactly, coarsest first."""
    batchable = False
    """Whether a batch-wise version is supported (:mod:`scconvex.losses.batched`)."""
    linearised = False
    """Whether :meth:`cvxpy_linearised_objective` offers a log-linearised objective."""
    block_template = True
    """Whether :meth:`block_terms` follows the row template of this module, on which the
    block certificates are built. A loss that reduces at class level without it supplies
    :meth:`class_form` instead: it is certified over class Grams from that gradient and
    over sample Grams densely, on the lifted class answer."""

    # -- sample form
    def sample_value_grad(self, G, labels, tau: float) -> tuple[float, np.ndarray]:
        """Loss of a Gram matrix ``G`` (n x n) and its symmetric gradient (zero diagonal)."""
        raise NotImplementedError

    def sample_value(self, G, labels, tau: float) -> float:
        """Loss of a Gram matrix ``G`` (n x n): the value of :meth:`sample_value_grad`."""
        return self.sample_value_grad(G, labels, tau)[0]

    def features_value_grad(self, H, labels, tau: float) -> tuple[float, np.ndarray]:
        """Loss of unit-norm features ``H`` (n x d) and its Euclidean gradient ``2 C H``."""
        H = unit_rows(H, normalize=False)
        value, C = self.sample_value_grad(H @ H.T, labels, tau)
        return value, 2.0 * C @ H

    def sphere_value_grad(self, H, labels, tau: float) -> tuple[float, np.ndarray]:
        """Loss of unit-norm features ``H`` and a Euclidean gradient whose part tangent to
        the spheres is exact (its radial part may differ from :meth:`features_value_grad`):
        what a Riemannian method on products of spheres needs. No checks on ``H``."""
        return self.features_value_grad(H, labels, tau)

    def features_value(self, H, labels, tau: float) -> float:
        """Loss of unit-norm features ``H`` (n x d): the value of :meth:`features_value_grad`."""
        H = unit_rows(H, normalize=False)
        return self.sample_value(H @ H.T, labels, tau)

    # -- block form
    def constant(self, counts, tau: float) -> float:
        """Geometry-independent lower bound ``sum_c n_c base_c`` of the loss."""
        raise NotImplementedError

    def attains_constant(self, G, labels) -> bool:
        """True when the feasible sample Gram ``G`` attains :meth:`constant` exactly.

        The constant is then the optimum and ``G`` proves it, with a gap of exactly 0. The
        dense loss cannot show this itself: its difference from the constant is only
        known up to rounding. False unless a loss can attain its constant.
        """
        return False

    def anchor_count(self, spec) -> int:
        """Number of anchor terms of the sample form (sizes the rounding allowance)."""
        return spec.n

    def gap_scale(self, value: float, excess: float) -> float:
        """Denominator of the loss-relative gap ``rel_gap`` (``|L|`` unless overridden)."""
        return abs(value)

    def block_terms(self, B, sizes, counts, tau: float) -> BlockTerms:
        """Block-form terms (:class:`BlockTerms`); ``sig`` is ``phi'(r)``."""
        raise NotImplementedError

    def log_slope(self, r: np.ndarray) -> np.ndarray:
        """``log phi'(r)`` for active rows (used to scale certificates by the excess)."""
        raise NotImplementedError

    def curvature_rows(self, sizes, counts, tau: float) -> CurvatureRows | None:
        """Its anchor rows for the certified cosine bars (:class:`CurvatureRows`), or None
        when the loss has no block form of the template (no bars are proven then)."""
        return None

    def block_grad(self, terms: BlockTerms, sizes, counts, tau: float) -> np.ndarray:
        """Row-wise ``dL/dB`` (see :func:`block_grad`); the same for every loss of the
        template."""
        return block_grad(terms, sizes, counts, tau)

    def class_form(self, model, M):
        """The class-level form of a loss outside the block template: an object with
        ``value``, ``constant``, ``excess``, ``log_excess`` and ``rel_grad`` (the symmetric
        ``dL/dM`` divided by the excess, zero diagonal), as
        :class:`scconvex.losses.minibatch.MinibatchTerms`."""
        raise NotImplementedError

    # -- what backends ask
    def cvxpy_block_objective(self, model, B):
        """cvxpy expression of the loss in the block variable ``B``, up to a positive factor
        and a constant (the solver's scaling, MATH.md section 6)."""
        raise NotImplementedError

    def cvxpy_linearised_objective(self, model, B):
        """A log-linearised cvxpy objective in ``B`` whose minimiser is near-optimal where
        the excess is tiny (small ``tau``), or None when the loss has none."""
        return None

    def cvxpy_gram_objective(self, G, labels: np.ndarray, tau: float):
        """cvxpy expression of the loss, up to a constant, of a symmetric Gram expression
        ``G`` of samples with ``labels`` (unscaled)."""
        raise NotImplementedError

    def cvxpy_sample_objective(self, model, G):
        """cvxpy expression of the loss in the sample Gram ``G`` (same conventions as
        :meth:`cvxpy_block_objective`)."""
        return model.scale * self.cvxpy_gram_objective(G, model.spec.labels, model.spec.tau)

    def native_cost(self, model) -> NativeCost:
        """Cost object for the native backend (:class:`NativeCost`)."""
        return BlockLogExcessCost(model, self)


class NativeCost(Protocol):
    """What the native backend asks of a loss's cost (:meth:`Loss.native_cost`).

    ``cost(Q) -> (F, C)``: ``F`` the log of the excess loss at the block Gram ``Q`` and
    ``C = dF/dQ`` its symmetric gradient (Frobenius pairing). ``g`` is the side of
    ``Q``, ``tau`` the temperature, ``geometry`` the block sizes of the variable
    (:func:`native_geometry`: 1 for a block of one class and for a block of single-sample
    classes), ``sphere`` marks the blocks of size 1 there (their ``Q_pp`` is fixed at 1),
    ``class_level`` says every block is one, ``invroot`` is ``1 / sqrt(m_p m_q)`` of the
    geometry and ``cosines(Q)`` returns ``B``. A cost may also offer ``evaluate(Q) -> (F,
    C, state)``, ``hessian_operator(state)`` (the second derivative along a symmetric
    ``E``), ``hess_diagonal(C)`` and ``astype(dtype)``: the backend then finishes with
    Newton steps.
    """

    g: int
    tau: float
    geometry: np.ndarray
    sphere: np.ndarray
    class_level: bool
    invroot: np.ndarray

    def __call__(self, Q: np.ndarray) -> tuple[float, np.ndarray]: ...

    def cosines(self, Q: np.ndarray) -> np.ndarray: ...


# ---------------------------------------------------------------------- native cost
def native_geometry(sizes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Block sizes of the variable a native cost optimises over.

    A block of several single-sample classes (the group level has one) is solved at
    ``a_p = 1``, which loses nothing: their mutual cosine enters no term of the loss, and
    raising ``Q_pp`` keeps ``Q`` PSD (docs/theory.md, section 4). Its classes then
    coincide, so its row is one unit vector, like a block of one class, that weighs
    ``m_p`` samples in the other anchors' terms: its size in the variable is 1.
    """
    sizes = np.asarray(sizes, dtype=float)
    return np.where((np.asarray(counts) == 1) & (sizes >= 2), 1.0, sizes)


class BlockLogExcessCost:
    """``F(Q) = log(excess loss)`` of a block Gram ``Q`` for any :class:`Loss`.

    Same interface as the native backend's SC cost: ``cost(Q) -> (F, C)`` with ``C`` the
    symmetric gradient ``dF/dQ`` (Frobenius pairing), plus ``g``, ``tau``, ``sphere`` and
    ``cosines``. With ``B`` the cosines of ``Q`` (:func:`scconvex.levels.blocks.from_block_gram`),
    ``dF/dB_pq = m_p s_p phi'(r_p) prob_pq / (tau E)``, formed in log space.
    """

    def __init__(self, model, loss: Loss) -> None:
        sizes = np.asarray(model.sizes, dtype=float)
        self.loss = loss
        self.int_sizes = np.asarray(model.sizes)
        self.counts = np.asarray(model.block_counts)
        self.g = sizes.size
        self.tau = model.spec.tau
        self.geometry = native_geometry(sizes, self.counts)
        self.sphere = self.geometry == 1
        self.class_level = bool(np.all(self.sphere))
        self.invroot = 1.0 / np.sqrt(np.outer(self.geometry, self.geometry))
        self.free = np.flatnonzero(~self.sphere)
        self.free_den = self.geometry[self.free] - 1.0
        self.logmass = np.log(sizes * self.counts)

    def cosines(self, Q: np.ndarray) -> np.ndarray:
        """``B`` from ``Q`` (:func:`scconvex.levels.blocks.from_block_gram` of the
        geometry, :func:`native_geometry`)."""
        return from_block_gram(Q, self.geometry.astype(int))

    def __call__(self, Q: np.ndarray) -> tuple[float, np.ndarray]:
        B = self.cosines(Q)
        t = self.loss.block_terms(B, self.int_sizes, self.counts, self.tau)
        F = t.log_excess
        if F == -math.inf:
            # The loss equals its constant here: a minimum, where log(excess) has no slope.
            return F, np.zeros((self.g, self.g))
        act = self.counts >= 2
        coef = np.zeros(self.g)
        coef[act] = np.exp(self.logmass[act] + self.loss.log_slope(t.rowlse[act]) - F)
        D = coef[:, None] * t.prob / self.tau
        invroot = None if self.class_level else self.invroot
        return F, q_gradient(D, invroot, self.free, self.free_den)

