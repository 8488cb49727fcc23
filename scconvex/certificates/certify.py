"""Stage 4b of the pipeline: solver-independent optimality certificates (MATH.md section 5).

For a convex ``f`` on the elliptope ``E = {X PSD, diag X = 1}`` of size ``N`` and a point
``X`` with unit diagonal, let ``C`` be the symmetric gradient of ``f`` at ``X``,
``nu_i = (C X)_ii`` and ``S = C - Diag(nu)``. Convexity gives, for every feasible ``Y``,

    f(Y) >= f(X) - <S, X> + N min(0, lambda_min(S)),

so ``lower_bound = f(X) - <S, X> + N min(0, lambda_min(S))`` is a certified lower bound on
the optimum and ``gap = f(X) - lower_bound`` bounds the sub-optimality of ``X`` whenever
``X`` is feasible. Nothing here depends on the solver that produced ``X``.

At class and group level both the class-level certificate (over k x k class Grams) and the
sample-level certificate of the lifted, class-collapsed Gram (over all n x n Grams, which
also proves that collapse is optimal) are computed from the block structure in O(g^3) time
and O(g^2) memory, whatever n and k are.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ResourceLimitError
from ..levels import CLASS, SAMPLE
from ..levels.blocks import GramSpectrum, block_min_eig
from ..problem.model import Model
from ..resources import check_memory
from .repair import repaired, sign_rounding

DEFAULT_GAP_TOL = 1e-6
"""Largest certified gap relative to the loss for the status ``optimal`` (``solve``'s
``gap_tol`` and ``verify``'s ``tol``)."""

DEFAULT_EXCESS_TOL = 1e-3
"""Largest certified gap relative to the excess loss ``L - sum n_c log(n_c - 1)``. At small
``tau`` the loss is dominated by that constant, and a tiny ``rel_gap`` alone says little
about the geometry (MATH.md section 6)."""


@dataclass(frozen=True)
class Certificate:
    """A duality-gap certificate.

    Attributes
    ----------
    level : {"class", "sample"}
        The elliptope over which optimality is certified (k x k or n x n Grams).
    size : int
        Its side ``N``.
    loss : float
        Loss at the certified point.
    excess_loss : float
        ``loss - sum n_c log(n_c - 1)``, computed without cancellation at class and group
        level.
    lower_bound : float
        Certified lower bound on the minimum over the elliptope.
    gap : float
        ``loss - lower_bound`` (>= 0 up to rounding).
    rel_gap : float
        ``gap / |loss|``.
    excess_gap : float
        ``gap / (loss - sum n_c log(n_c - 1))``: the gap relative to the part of the loss
        that depends on the geometry, meaningful at small ``tau``.
    min_eig_slack : float
        ``lambda_min(S)``; negative values enter the gap.
    complementarity : float
        ``<S, X>``, zero up to rounding by construction.
    """

    level: str
    size: int
    loss: float
    excess_loss: float
    lower_bound: float
    gap: float
    rel_gap: float
    excess_gap: float
    min_eig_slack: float
    complementarity: float

    def to_dict(self) -> dict:
        """The fields as a plain dictionary."""
        return asdict(self)


def dense_rounding(n: int, tau: float) -> float:
    """Bound on the float64 rounding of the dense sample-level loss and certificate terms.

    Each of the ``n`` anchor terms is a log-sum-exp of size up to ``1/tau + log n``, and so
    is each row of ``S`` (``|C_ij|`` sums to at most ``2/tau`` per row), so the loss, the
    excess ``L - sum n_c log(n_c - 1)`` formed from it, ``<S, X>`` and ``n lambda_min(S)`` are
    each known to about ``n eps (1/tau + log n)``; 16 times that is the allowance.
    """
    return 16.0 * np.finfo(float).eps * n * (1.0 / tau + math.log(n))


def _make(level, size, loss, excess, compl, lam, unit: float = 1.0,
          rounding: float = 0.0, scale: float | None = None) -> Certificate:
    """Assemble a certificate from ``<S, X>`` and ``lambda_min(S)`` given in ``unit``s.

    The gap is formed from the slack terms alone, never as ``loss - lower_bound``: at small
    tau the loss is ~1e30 times the gap and that difference would round to zero. At class
    and group level ``S`` is computed divided by the excess loss (``unit = excess``), so
    the gap relative to the excess stays exact even where the excess itself underflows.
    The dense sample-level form adds its ``rounding`` allowance to the gap and takes it off
    the excess, so that the excess-relative gap stays an upper bound where the excess is a
    cancelling difference (small tau). ``scale`` is the denominator of ``rel_gap`` (the
    loss object's :meth:`~scconvex.losses.Loss.gap_scale`; ``|loss|`` by default).
    """
    scaled = max(compl - size * min(0.0, lam), 0.0)
    gap = scaled * unit + rounding
    lower = loss - gap
    scale = abs(loss) if scale is None else scale
    rel = gap / scale if scale != 0 else (0.0 if gap == 0 else math.inf)
    if unit != 1.0:
        ex = scaled
    elif gap == 0:
        ex = 0.0
    else:
        # The excess is positive in exact arithmetic; below the rounding it is not resolved.
        ex = gap / (excess - rounding) if excess > rounding else math.inf
    return Certificate(level=level, size=int(size), loss=float(loss),
                       excess_loss=float(excess), lower_bound=float(lower), gap=float(gap),
                       rel_gap=float(rel), excess_gap=float(ex),
                       min_eig_slack=float(lam * unit), complementarity=float(compl * unit))


def certify(model: Model, X: np.ndarray) -> tuple[Certificate, Certificate]:
    """Certificates of a feasible model variable.

    Parameters
    ----------
    model : Model
    X : ndarray
        Feasible variable of the model (``G`` at sample level, ``B`` otherwise), e.g. the
        output of :func:`scconvex.certificates.repair.repair`.

    Returns
    -------
    level_cert : Certificate
        Over class Grams (k x k) at class and group level; over sample Grams at sample level.
    sample_cert : Certificate
        Over sample Grams (n x n): proves the global optimum of the full relaxation.

    Examples
    --------
    >>> import numpy as np
    >>> from scconvex.problem.spec import ProblemSpec
    >>> from scconvex.problem.model import build_model
    >>> model = build_model(ProblemSpec((5, 5, 5), 0.5), "class")
    >>> etf = np.full((3, 3), -0.5) + 1.5 * np.eye(3)
    >>> cls_cert, smp_cert = certify(model, etf)
    >>> cls_cert.rel_gap < 1e-12 and smp_cert.rel_gap < 1e-12
    True
    """
    spec = model.spec
    loss = model.loss
    relaxation = model.relaxation
    if model.level.dense:
        best = _dense_certificate(model, X)
        return best, best
    if not loss.block_template:
        return _class_form_certificates(model, X)

    s = model.block_counts.astype(float)
    tau = spec.tau
    terms = loss.block_terms(X, model.sizes, model.block_counts, tau)
    active = s >= 2
    if terms.log_excess == -math.inf:
        # The point attains the loss's constant, a lower bound on every geometry: optimal.
        return (_make(CLASS.name, spec.k, terms.value, 0.0, 0.0, 0.0),
                _make(SAMPLE.name, spec.n, terms.value, 0.0, 0.0, 0.0))
    # Everything below is linear in sig; dividing it by the excess in log space keeps the
    # slack finite at temperatures where the excess underflows (MATH.md section 6).
    sig = np.zeros_like(s)
    sig[active] = np.exp(loss.log_slope(terms.rowlse[active]) - terms.log_excess)
    unit = terms.excess if terms.excess > 0 else 0.0
    best_c = best_s = None
    pair = _pair_gradient(model, terms, sig)
    for y in relaxation.block_multipliers(X, pair):
        cls, smp = _block_certificates(model, X, terms, sig, unit, pair - y, y)
        if best_c is None or cls.gap < best_c.gap or (cls.gap == best_c.gap
                                                      and cls.excess_gap < best_c.excess_gap):
            best_c = cls
        if best_s is None or smp.gap < best_s.gap or (smp.gap == best_s.gap
                                                      and smp.excess_gap < best_s.excess_gap):
            best_s = smp
    return best_c, best_s


def _dense_certificate(model: Model, G: np.ndarray) -> Certificate:
    """The certificate over all ``n x n`` Grams of a feasible sample Gram ``G``, from the
    loss's dense gradient (MATH.md section 5); every multiplier of the relaxation's extra
    cone gives a valid bound and the best is kept."""
    spec = model.spec
    loss = model.loss
    if loss.attains_constant(G, spec.labels):
        # The loss's constant is a lower bound on every geometry: optimal, gap 0.
        return _make(SAMPLE.name, spec.n, spec.constant, 0.0, 0.0, 0.0)
    value, C = loss.sample_value_grad(G, spec.labels, spec.tau)
    best = None
    rounding = dense_rounding(loss.anchor_count(spec), spec.tau)
    excess = value - spec.constant
    scale = loss.gap_scale(value, excess)
    for Y in model.relaxation.dense_multipliers(G, C):
        Cy = C - Y
        nu = np.sum(Cy * G, axis=1)
        S = Cy - np.diag(nu)
        lam = float(np.linalg.eigvalsh(S)[0])
        compl = float(np.sum(S * G)) + float(np.sum(Y * G))
        cert = _make(SAMPLE.name, spec.n, value, excess, compl, lam, rounding=rounding,
                     scale=scale)
        if best is None or cert.gap < best.gap:
            best = cert
    return best


DENSE_SAMPLE_BYTES = 48
"""Bytes per entry of the ``n x n`` sample Gram for the dense sample certificate of a class
answer outside the block template (the Gram, the gradient, ``S`` and the eigensolver's
work: about six float64 copies)."""


def _class_form_certificates(model: Model, M: np.ndarray) -> tuple[Certificate, Certificate]:
    """Certificates of a class Gram ``M`` for a loss outside the block template.

    Over class Grams: MATH.md section 5 with the ``k x k`` gradient of
    :meth:`~scconvex.losses.base.Loss.class_form`, in units of the excess loss. Over sample
    Grams: the dense certificate of the lifted Gram ``G = M[y, y]`` (collapsed); it proves
    that no geometry, collapsed or not, does better, or fails to, which says whether
    collapse is optimal for the loss. When ``n x n`` does not fit in memory that
    certificate is not computed (its gap is infinite).
    """
    spec = model.spec
    form = model.loss.class_form(model, M)
    if form.log_excess == -math.inf:
        return (_make(CLASS.name, spec.k, form.value, 0.0, 0.0, 0.0),
                _make(SAMPLE.name, spec.n, form.value, 0.0, 0.0, 0.0))
    unit = form.excess if form.excess > 0 else 0.0
    scale = model.loss.gap_scale(form.value, form.excess)
    eps = np.finfo(float).eps
    best = None
    for Y in model.relaxation.dense_multipliers(M, form.rel_grad):
        Cy = form.rel_grad - Y
        nu = np.sum(Cy * M, axis=1)
        S = Cy - np.diag(nu)
        lam = float(np.linalg.eigvalsh(S)[0])
        lam -= EIG_ROUNDING * eps * spec.k * float(np.max(np.sum(np.abs(S), axis=1)))
        compl = float(np.sum(S * M)) + float(np.sum(Y * M))
        cert = _make(CLASS.name, spec.k, form.value, form.excess, compl, lam, unit,
                     scale=scale)
        if best is None or cert.gap < best.gap:
            best = cert
    try:
        check_memory(DENSE_SAMPLE_BYTES * float(spec.n) ** 2,
                     f"the dense sample certificate ({spec.n} x {spec.n})")
    except ResourceLimitError:
        inf = math.inf
        return best, Certificate(level=SAMPLE.name, size=spec.n, loss=float(form.value),
                                 excess_loss=float(form.excess), lower_bound=-inf, gap=inf,
                                 rel_gap=inf, excess_gap=inf, min_eig_slack=-inf,
                                 complementarity=0.0)
    lab = spec.labels
    return best, _dense_certificate(model, M[np.ix_(lab, lab)])


def _pair_gradient(model: Model, terms, sig: np.ndarray) -> np.ndarray:
    """Symmetric gradient per pair of samples of different classes, blocks ``p, q``."""
    m = model.sizes.astype(float)
    s = model.block_counts.astype(float)
    D = (m * s * sig)[:, None] * terms.prob / model.spec.tau
    w = terms.weights
    # Per sample-pair gradient entries (one anchor row); symmetrised below.
    per_pair = np.divide(D, (m * s)[:, None] * w, out=np.zeros_like(D), where=w > 0)
    return 0.5 * (per_pair + per_pair.T)


def _block_certificates(model: Model, X, terms, sig, unit, gamma, y):
    """Class- and sample-level certificates of a block variable with multiplier ``y``.

    ``gamma`` is the pair gradient (:func:`_pair_gradient`) minus ``y``.

    ``y`` (g x g, >= 0) is the multiplier of ``G >= 0`` per pair of samples of different
    classes (zero for the elliptope); it is subtracted from the gradient and ``<Y, G>``
    is added to the gap (relaxations module docstring).
    """
    spec = model.spec
    m = model.sizes.astype(float)
    s = model.block_counts.astype(float)
    tau = spec.tau
    active = s >= 2
    scale = model.loss.gap_scale(terms.value, terms.excess)
    gamma_in = np.zeros_like(s)
    gamma_in[active] = -sig[active] / (tau * (s[active] - 1))
    # mult[p, q]: classes of block q seen from one class of block p (itself excluded).
    mult = np.broadcast_to(m[None, :], gamma.shape).copy()
    mult[np.diag_indices_from(mult)] = m - 1
    off = mult * X
    # <Y, G> over samples equals <Y, M> over classes: s_p s_q sample pairs per class pair.
    yx = float(np.sum(m[:, None] * off * np.outer(s, s) * y))

    # Class level: C between classes of blocks p, q is s_p s_q gamma_pq.
    K = np.outer(s, s) * gamma
    nu_c = np.sum(off * K, axis=1)
    lam_c = block_min_eig(-nu_c, np.diag(K), K, model.sizes)
    lam_c -= _eig_rounding(np.sum(np.abs(off * K), axis=1), -nu_c, np.diag(K), K, model.sizes)
    compl_c = float(np.sum(m * (-nu_c + np.sum(off * K, axis=1)))) + yx
    cls = _make(CLASS.name, spec.k, terms.value, terms.excess, compl_c, lam_c, unit, scale=scale)

    # Sample level: nested blocks, samples within classes within groups.
    nu_s = (s - 1) * gamma_in + np.sum(off * (s[None, :] * gamma), axis=1)
    t_diag = (s - 1) * gamma_in - nu_s
    root = np.sqrt(s)
    between = np.outer(root, root) * gamma
    lam_s = block_min_eig(t_diag, s * np.diag(gamma), between, model.sizes)
    if np.any(active):
        lam_s = min(lam_s, float(np.min((-nu_s - gamma_in)[active])))
    parts = np.abs((s - 1) * gamma_in) + np.sum(np.abs(off * (s[None, :] * gamma)), axis=1)
    lam_s -= _eig_rounding(parts, t_diag, s * np.diag(gamma), between, model.sizes)
    compl_s = float(np.sum(m * s * (-nu_s + (s - 1) * gamma_in
                                     + np.sum(off * (s[None, :] * gamma), axis=1)))) + yx
    smp = _make(SAMPLE.name, spec.n, terms.value, terms.excess, compl_s, lam_s, unit, scale=scale)
    return cls, smp


EIG_ROUNDING = 16.0
"""Safety factor of :func:`_eig_rounding` over the first-order float64 error bound."""


def _eig_rounding(parts, diag, within, between, sizes) -> float:
    """Bound on the float64 error of a block ``lambda_min(S)`` (:func:`block_min_eig`).

    The diagonal of ``S`` is a difference of sums whose terms have absolute sizes
    ``parts`` (it cancels to about their rounding, ``eps * parts``), and the eigenvalues of
    the ``g x g`` matrix are known to about ``g eps`` times its norm. The gap multiplies
    ``lambda_min`` by the side ``N`` of the elliptope, so this matters when ``N eps`` is
    not small next to the excess loss: at counts 1,3,2,2**52 and tau 1 a point whose excess
    is 2e-3 above the optimum's was certified to 4e-19 over sample Grams without it.
    """
    sizes = np.asarray(sizes, dtype=float)
    root = np.sqrt(sizes)
    rows = (np.abs(diag) + (sizes - 1) * np.abs(within)
            + np.sum(np.abs(between) * np.outer(root, root), axis=1))
    eps = np.finfo(float).eps
    return float(EIG_ROUNDING * eps * (np.max(parts, initial=0.0) + len(sizes) * np.max(rows)))


def badness(cert: Certificate, tols: tuple[float, float]) -> float:
    """Largest ratio of a certified gap to its tolerance (<= 1 means certified).

    ``tols`` is ``(gap_tol, excess_tol)``: the gap relative to the loss and relative to
    the excess loss.
    """
    return max(cert.rel_gap / tols[0], cert.excess_gap / tols[1])


ROUNDING_DROPS = (0.0, 1e-9, 1e-7, 1e-5, 1e-3)
"""Relative eigenvalue cut-offs tried when rounding a solver's answer to a feasible point."""


def round_and_certify(model: Model, X: np.ndarray, tols: tuple[float, float],
                      deadline: float = math.inf):
    """Repair ``X`` to feasible candidates of decreasing rank and keep the best certified.

    Every candidate is exactly feasible and carries its own valid certificate, so choosing
    any of them is sound. The search stops at the first candidate that certifies (each
    costs an eigendecomposition and a certificate), or once ``time.perf_counter()`` has
    passed ``deadline`` (a time limit); otherwise it keeps the one with the smallest gap.

    Returns
    -------
    X : ndarray
        The chosen feasible variable.
    shift : float
        Largest entry change from the input.
    level_cert, sample_cert : Certificate
        Its certificates (see :func:`certify`).
    """
    return _round_and_certify(model, X, tols, deadline)[:4]


def _round_and_certify(model: Model, X: np.ndarray, tols: tuple[float, float],
                       deadline: float = math.inf):
    """:func:`round_and_certify`, and the spectrum of the chosen point (from its repair)."""
    starts = [X]
    if np.all(np.isfinite(X)):
        collapsed = model.level.collapsed(model, np.asarray(X, dtype=float))
        if collapsed is not None:
            starts.append(collapsed)
    best = None
    for Y, spectrum in _candidates(model, starts):
        cert, scert = certify(model, Y)
        worst = max(badness(cert, tols), badness(scert, tols))
        if best is None or worst < best[0]:
            best = (worst, Y, float(np.max(np.abs(Y - X))), cert, scert, spectrum)
        if worst <= 1.0 or time.perf_counter() > deadline:
            break
    return best[1:]


@dataclass(frozen=True, eq=False)
class Rounded:
    """A solver's answer rounded to a feasible point and certified (:class:`Rounder`).

    Attributes
    ----------
    source : ndarray
        The answer as the solver returned it.
    X : ndarray
        The feasible point chosen (:func:`round_and_certify`).
    shift : float
        Largest entry change from ``source``.
    cert, sample_cert : Certificate
        Its certificates (see :func:`certify`).
    worst : float
        Largest :func:`badness` of the two under the rounder's tolerances (<= 1:
        certified).
    spectrum : GramSpectrum or None
        The spectrum of ``X`` its repair computed (:func:`scconvex.certificates.repair.
        repaired`).
    """

    source: np.ndarray
    X: np.ndarray
    shift: float
    cert: Certificate
    sample_cert: Certificate
    worst: float
    spectrum: GramSpectrum | None = None

    def badness(self, tols: tuple[float, float]) -> float:
        """Largest :func:`badness` of the two certificates under ``tols``."""
        return max(badness(self.cert, tols), badness(self.sample_cert, tols))


class Rounder:
    """Rounds and certifies the answers of one solve, once each.

    The pipeline makes one with the solve's tolerances and deadline and hands it to the
    backend. A backend that compares several answers (the cvxpy backend's attempts) scores
    them with it, so by exactly what decides the status, and returns the rounding of its
    choice with it; the pipeline then reuses that instead of rounding the answer again.
    Only a rounding made by this rounder, from the answer returned, is reused.

    Parameters
    ----------
    model : Model
    tols : tuple of float
        ``(gap_tol, excess_tol)`` (see :func:`badness`).
    deadline : float
        ``time.perf_counter()`` value after which rounding stops at the first candidate.
    """

    def __init__(self, model: Model, tols: tuple[float, float],
                 deadline: float = math.inf) -> None:
        self.model = model
        self.tols = (float(tols[0]), float(tols[1]))
        self.deadline = deadline
        self._made: weakref.WeakSet = weakref.WeakSet()

    def __call__(self, X: np.ndarray) -> Rounded:
        """Round and certify ``X`` (:func:`round_and_certify`)."""
        Y, shift, cert, scert, spectrum = _round_and_certify(self.model, X, self.tols,
                                                             self.deadline)
        out = Rounded(source=X, X=Y, shift=shift, cert=cert, sample_cert=scert,
                      worst=max(badness(cert, self.tols), badness(scert, self.tols)),
                      spectrum=spectrum)
        self._made.add(out)
        return out

    def result_for(self, X: np.ndarray, rounded: Rounded | None = None) -> Rounded:
        """The rounding of ``X``: ``rounded`` if this rounder made it from ``X``, else new."""
        if rounded is not None and rounded in self._made and rounded.source is X:
            return rounded
        return self(X)


def _candidates(model: Model, starts: list):
    """Feasible candidates in the order :func:`round_and_certify` tries them."""
    for drop in ROUNDING_DROPS:
        for start in starts:
            yield repaired(model, start, drop=drop)[::2]
    # Last, the geometry on one line next to the answer, if there is one: where the loss
    # attains its constant there, the gap relative to the excess (0) is met only at the
    # exact point (negatives-only loss, one class of two or more samples).
    for start in starts:
        snapped = sign_rounding(start) if np.all(np.isfinite(start)) else None
        if snapped is not None:
            yield repaired(model, snapped)[::2]
            return
