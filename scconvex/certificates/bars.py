"""Certified cosine bars: a proven interval for every optimal cosine (MATH.md section 9).

The certificate of :mod:`scconvex.certify` bounds the *loss* of an answer ``B_hat``: its gap
``eps`` is at least ``L(B_hat) - L*``. This module turns that gap into a bound on the
*cosines*: for every cosine ``e`` that enters the loss, a half-width ``bar_e`` with
``|B_hat_e - B*_e| <= bar_e`` for every optimum ``B*``. The argument (docs/theory.md,
section 10) in short:

* **Curvature floor.** An active anchor row ``p`` (``s_p >= 2``) contributes
  ``kappa_p (diag(pi) - pi pi^T)`` to the Hessian of the loss in its cosines
  (``kappa_p = m_p s_p / tau^2``, ``pi`` the row's shares, ``1 - sum(pi) = q > 0`` for the
  SC loss). Its inverse is ``diag(1/pi) + 1 1^T / q`` (Sherman-Morrison), so for any
  direction ``v``, ``v^T H_p v >= kappa_p v_e^2 / (1/pi_e + 1/q)``: a floor per cosine,
  ``D_e`` summed over the (one or two) rows it enters. Over a box ``|B - B_hat| <= R``
  (entrywise, cosines kept in ``[lowest, 1]``) ``pi_e`` and ``q`` are smallest with the
  numerator at ``B - R`` and the denominator at ``B + R``.
* **Box.** If ``D_e(R) R_e^2 > 2 eps`` for every cosine, every optimum lies in the box
  (the loss would rise by more than ``eps`` before the segment to it leaves the box), and
  then ``D_e(R) (B_hat_e - B*_e)^2 <= 2 eps``. The radii are shrunk to the bars while the
  condition holds; the box of the whole feasible set needs no condition at all.
* **Negatives-only loss** (``q = 0``): the floor vanishes along a uniform shift of the
  cosines, along which the loss is linear. The rows still bound differences of cosines
  (an effective resistance ``(1/pi_e + 1/pi_f) / kappa_p`` within a row), and the
  certificate pins the gradient-weighted mean of ``B_hat - B*`` to ``[0, eps / W]``.
* **Uniqueness** holds on every instance, proven without numerics: the loss is strictly
  convex in the cosines that enter it (linear along the one flat direction of the
  negatives-only loss), so they agree at all optima; every optimal sample Gram is
  class-collapsed; and on the elliptope, the KKT conditions put every single-sample class
  mean in the span of the others (``S_ii > 0`` because ``S`` is PSD with positive
  off-diagonal entries in row ``i``), which fixes the cosines between single-sample
  classes too. Their intervals come from that formula and from 3 x 3 minors.
* **Collapse at sample level.** Every sample Gram within the sample-level gap ``eps_s``
  has, within every class, cosines at least ``1 - delta``:
  ``delta_p = tau eps_s (1 - 1/s_p) / sigma_p`` with ``sigma_p`` a lower bound on the mass an
  anchor of block ``p`` puts on other classes (1 for the negatives-only loss).

Everything is computed relative to the excess loss, in log space, so it holds where the
excess underflows; logarithms are pushed outwards by a margin that covers their float64
rounding. Cost: a few ``g x g`` passes, O(g^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..levels import CLASS
from ..losses import get_loss, get_relaxation
from ..losses.base import CurvatureRows, Loss, block_weights
from ..losses.relaxations import Relaxation

EPS = float(np.finfo(float).eps)

SHRINK = 1.01
"""Box radii are shrunk to this multiple of the bars they give (any factor above 1 keeps
the box argument valid)."""

MAX_SHRINKS = 8
"""At most this many shrinking passes (each O(g^2)); they stop once the bars settle. The
bars a solve computes take one secant step instead (:func:`_secant_step`; each pass costs
a floor, about 1.5 % of a k = 1000 class-level solve). ``verify`` computes both and keeps
the tighter proof entry by entry, so a file written with either schedule verifies."""


MAX_REPAIRS = 12
"""At most this many passes to make the first box valid (then the whole feasible set)."""

SETTLED = 0.03
"""Shrinking stops when neither the largest nor the mean bar drops by this fraction."""


@dataclass(frozen=True)
class CosineBars:
    """Proven intervals for the optimal cosines of a class- or group-level answer.

    All arrays are ``g x g`` in the block form of the model (``B[p, p]`` is the cosine
    between two classes of block ``p``; its entry is 0 and not a cosine for a block of one
    class).

    Attributes
    ----------
    half_width : ndarray
        ``|B_hat - B*| <= half_width`` entrywise for every optimum ``B*`` (inf where no
        finite bound is proven; 0 on the unit diagonal of one-class blocks).
    lower, upper : ndarray
        The proven interval of every optimum's cosines, within ``[lowest, 1]``.
    radius : ndarray
        Box radii of the argument (nan where the cosine enters no term).
    determined : ndarray of bool
        Cosines that enter the loss (the others lie between two single-sample classes).
    cosines : ndarray of bool
        Entries that are cosines (all but the diagonal of one-class blocks).
    unique : bool or None
        Whether the optimal geometry is unique: True and False are proofs, None means
        not proven.
    reason : str
        Why.
    collapse_delta : float
        Every sample Gram within the sample-level gap has within-class cosines at least
        ``1 - collapse_delta`` (nan when not computed, 0 without a class of two samples).
    excess_gap, sample_excess_gap : float
        The certified gaps (relative to the excess loss) the bars were derived from.
    """

    half_width: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    radius: np.ndarray
    determined: np.ndarray
    cosines: np.ndarray
    unique: bool | None
    reason: str
    collapse_delta: float
    excess_gap: float
    sample_excess_gap: float

    @property
    def max_half_width(self) -> float:
        """The widest bar over the cosines (0 when there is none)."""
        widths = self.half_width[self.cosines]
        return float(np.max(widths)) if widths.size else 0.0

    def to_dict(self) -> dict:
        """The claims a certificate file stores (``cosine_bounds``), rounded outwards.

        ``half_width`` is rounded up to 3 significant digits (a wider bar is still proven;
        the file stays small); ``intervals`` lists ``[p, q, lower, upper]`` for the cosines
        that enter no term (``p < q`` over the block form), whose interval is not centred
        on the answer, widened by ``1e-12`` (a verifier on another machine may differ in
        the last bits). Non-finite numbers are left to :func:`scconvex.files.jsonable`.
        """
        off = self.cosines & ~self.determined
        p, q = np.nonzero(np.triu(off))
        return {"half_width": np.where(self.cosines, round_up(self.half_width), 0.0),
                "intervals": [[int(a), int(b), float(self.lower[a, b]) - 1e-12,
                               float(self.upper[a, b]) + 1e-12]
                              for a, b in zip(p, q, strict=True)],
                "max_half_width": float(round_up(self.max_half_width)),
                "collapse_delta": float(round_up(self.collapse_delta)),
                "excess_gap": self.excess_gap}


VACUOUS = 2.0
"""A bar at least this wide says nothing: every cosine lies in ``[-1, 1]``."""


def width_note(widest: float) -> str:
    """What a printed widest bar means when it is as wide as the range of a cosine
    (empty otherwise): the number is still the proven bound, it just pins nothing."""
    if widest >= VACUOUS:
        return (" (as wide as the whole range [-1, 1] for some cosines: the certified gap "
                "does not pin them)")
    return ""


def printed_up(x: float) -> str:
    """``x >= 0`` rounded up to two digits and printed: a printed bound never
    understates."""
    return f"{float(round_up(x, 2)):.1e}"


def round_up(x, digits: int = 3):
    """``x >= 0`` rounded up to ``digits`` significant digits (0, inf and nan kept)."""
    x = np.asarray(x, dtype=float)
    pos = np.isfinite(x) & (x > 0)
    safe = np.where(pos, x, 1.0)
    scale = 10.0 ** (np.floor(np.log10(safe)) - (digits - 1))
    out = np.ceil(safe * (1 + 1e-9) / scale) * scale
    out = np.where(out >= safe, out, out + scale)  # the division may have rounded down
    return np.where(pos, out, x)


def _row_logsumexp(z: np.ndarray) -> np.ndarray:
    """``log sum_q exp(z_pq)`` per row (-inf for a row of -inf), in two passes."""
    top = np.max(z, axis=1)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(z - safe[:, None]), axis=1)) + safe


def _cosine_entries(g: int, sizes: np.ndarray) -> np.ndarray:
    """Entries of the block form that are cosines: off the diagonal, and the diagonal of
    blocks of two or more classes."""
    mask = ~np.eye(g, dtype=bool)
    mask[np.diag_indices(g)] = np.asarray(sizes) >= 2
    return mask


class _Rows:
    """The anchor rows of the block-form loss and their shares over a box of cosines.

    ``per_class`` describes the class-level variables of a group-level answer (one
    cosine per pair of classes, not per pair of blocks): a row then stands for one class
    of its block, with weight ``s_p / tau^2`` and per-class shares.
    """

    def __init__(self, sizes, counts, tau: float, B: np.ndarray, curvature: CurvatureRows,
                 lowest: float, per_class: bool = False) -> None:
        self.m = np.asarray(sizes, dtype=float)
        self.s = np.asarray(counts, dtype=float)
        self.g = g = self.m.size
        self.tau = float(tau)
        self.B = np.asarray(B, dtype=float)
        self.curvature = curvature
        self.remainder = curvature.remainder
        w = block_weights(np.asarray(sizes), np.asarray(counts))
        self.active = self.s >= 2
        # enters[p, q]: the cosine B_pq is an argument of row p's log-sum-exp.
        self.enters = (w > 0) & self.active[:, None]
        base = np.asarray(curvature.offset, dtype=float)
        self.shift = float(curvature.center)
        # Lowest value of each cosine on the feasible set; a_p >= -1/(m_p - 1) (Q_pp >= 0).
        self.lowest = float(lowest)
        big = self.m >= 2
        # The bound holds for the block average, not for one pair of classes of a block:
        # per-class variables (a class Gram that need not be symmetric) go down to lowest.
        self.lowest_diag = np.where(
            big & (not per_class), np.maximum(lowest, -1.0 / np.maximum(self.m - 1.0, 1.0)),
            lowest)
        self.per_class = per_class
        self.logdiv = None
        if per_class:
            self.logkappa = np.log(self.s)
            div = np.broadcast_to(self.m[None, :], (g, g)).copy()
            div[np.diag_indices(g)] = np.maximum(self.m - 1.0, 1.0)
            self.logdiv = np.log(div)
        else:
            self.logkappa = np.log(self.m * self.s)
        self.logkappa = self.logkappa - 2.0 * math.log(self.tau)
        with np.errstate(divide="ignore"):
            z0 = np.log(w)
        step = np.subtract(self.B, self.shift)
        step /= self.tau
        z0 += step
        del step
        z0 -= base[:, None]
        z0[~self.enters] = -np.inf
        self.z0 = z0
        # The size of the logarithms formed (the corners add at most 2 / tau): margin().
        self.maxz = float(np.max(np.abs(z0), where=self.enters, initial=0.0))
        self._linear = None
        self._lowest = None

    def linear(self):
        """Row-scaled linear terms for the SC floor: ``c_p`` (the row's largest log-term),
        ``a = exp(z0 - c)`` (per-class shares divided by their multiplicity where
        ``per_class``, and undivided for the row sums) and the room of each cosine to its
        bounds in units of ``tau``, exponentiated (``e^up``, ``e^down``; inf where they
        overflow)."""
        if self._linear is None:
            top = np.max(self.z0, axis=1)
            c = np.where(self.active & np.isfinite(top), top, 0.0)
            a = np.subtract(self.z0, c[:, None])
            np.exp(a, out=a)
            a_div = a if self.logdiv is None else a * np.exp(-self.logdiv)
            with np.errstate(over="ignore"):
                exp_up = self.room_up()
                np.exp(exp_up, out=exp_up)
                exp_down = self.room_down()
                np.exp(exp_down, out=exp_down)
            self._linear = (c, a, a_div, exp_up, exp_down)
        return self._linear

    def room_up(self) -> np.ndarray:
        """``(1 - B) / tau``, at least 0: how far each cosine can rise, in units of tau."""
        out = np.subtract(1.0, self.B)
        out /= self.tau
        return np.maximum(out, 0.0, out=out)

    def room_down(self) -> np.ndarray:
        """``(B - lowest) / tau``, at least 0: how far each cosine can fall."""
        out = np.subtract(self.B, self.lowest_matrix())
        out /= self.tau
        return np.maximum(out, 0.0, out=out)

    def lowest_matrix(self) -> np.ndarray:
        """The lowest value of each entry on the feasible set (read only: cached)."""
        if self._lowest is None:
            lo = np.full((self.g, self.g), self.lowest)
            lo[np.diag_indices(self.g)] = self.lowest_diag
            lo.flags.writeable = False
            self._lowest = lo
        return self._lowest

    def corners(self, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row log-terms at the low and the high corner of the box ``|X - B| <= R``
        (-inf where a cosine is not in the row)."""
        diag = np.diag_indices(self.g)
        low = self.B - R
        np.maximum(low, self.lowest, out=low)
        low[diag] = np.maximum(low[diag], self.lowest_diag)
        low -= self.B
        low *= 1.0 / self.tau
        low += self.z0
        high = self.B + R
        np.minimum(high, 1.0, out=high)
        high -= self.B
        high *= 1.0 / self.tau
        high += self.z0
        return low, high

    def denominator(self, z: np.ndarray) -> np.ndarray:
        """``log(1 + sum_q e^z)`` (with a remainder) or ``log sum_q e^z`` per active row;
        inf elsewhere."""
        top = _row_logsumexp(z)
        den = np.logaddexp(0.0, top) if self.remainder else top
        return np.where(self.active, den, np.inf)

    def log_shares(self, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower bounds over the box of ``log pi_pq`` and the log denominators.

        ``pi = A / (1 + sum A)`` (with a remainder) or ``A / sum A`` is smallest with the
        numerator at the low corner and the denominator at the high one; the remainder's
        share ``q = 1 / (1 + sum A)`` is ``exp(-den)`` at the high corner.
        """
        zl, zh = self.corners(R)
        den = self.denominator(zh)
        zl -= den[:, None]
        if self.logdiv is not None:
            zl -= self.logdiv
        return zl, den

    def log_shares_high(self, R: np.ndarray) -> np.ndarray:
        """Upper bounds over the box of ``log pi_pq`` (numerator high, denominator low)."""
        zl, zh = self.corners(R)
        zh -= self.denominator(zl)[:, None]
        if self.logdiv is not None:
            zh -= self.logdiv
        return zh

    def margin(self) -> float:
        """Bound on the float64 error of the logarithms formed here (pushed outwards)."""
        # Each logarithm is a sum of a few terms of size up to maxz + 2 / tau; a row sum of
        # g terms adds at most g rounding errors.
        return 64.0 * EPS * (self.maxz + 2.0 / self.tau + self.g + 64.0)


# ---------------------------------------------------------------- rows with a remainder (SC)
def _floor(rows: _Rows, R: np.ndarray, log_E: float, low_sums: bool = False):
    """``D_e(R) / E`` per block entry (0 where the entry enters no row), rounded down.

    Row ``p`` contributes ``kappa_p / (1/pi_e + 1/q)`` to each entry ``e`` it holds, with
    ``pi_e`` at the low corner of ``e`` over the denominator at the high corner of the
    row and ``q = 1 / denominator``. Each row is scaled by its largest term, so nothing
    overflows and only entries below ``1e-300`` of their row's largest term underflow (to
    a floor of 0: a bar of inf).

    With ``low_sums`` also returns ``log sum_q exp(z_pq)`` per row at the low corner of
    the box (the mass a row puts on other classes there, :func:`_collapse_delta`).
    """
    Rt = R / rows.tau
    if Rt.size and not float(np.max(Rt)) < 700.0:
        return _floor_logs(rows, Rt, log_E, low_sums)
    c, a, a_div, exp_up, exp_down = rows.linear()
    # Each pass over a g x g array costs about as much as the arithmetic at g = 1000, and
    # at g = 3000 each array is 71 MB (this is the peak of the pipeline's memory): in
    # place, and in as few passes as the formula allows. With E = e^(R / tau) (finite
    # here), the high corner's terms are a min(E, e^up), and 1 / (e^c A^- / div) is
    # min(E, e^down) / a_div.
    E = np.exp(Rt, out=Rt)
    T = np.minimum(E, exp_up)
    with np.errstate(divide="ignore"):
        lse = np.log(np.einsum("pq,pq->p", T, a))
    pref = _row_factor(rows, c, lse, log_E)
    np.minimum(E, exp_down, out=T)
    low = None
    if low_sums:
        low = np.einsum("pq,pq->p", a, np.divide(1.0, T, out=E))
    # kappa / (1/pi + 1/q) = pref / (e^c + div / A^-): 0 where a term is 0 (a_div = 0)
    # or subnormal (the quotient overflows to inf: a floor of 0, a bar of inf).
    with np.errstate(divide="ignore", over="ignore"):
        np.divide(T, a_div, out=T)
    T += np.exp(c)[:, None]
    F = np.divide(pref[:, None], T, out=T)
    D = _symmetric(rows, F, E)
    return D if low is None else (D, _log_sums(c, low))


def _floor_at_centre(rows: _Rows, log_E: float) -> np.ndarray:
    """:func:`_floor` at ``R = 0`` (the box is the point: every corner is ``B``), without
    the exponentials."""
    c, a, a_div, _, _ = rows.linear()
    # 1 / a_div overflows to inf for a subnormal term, as in _floor: a floor of 0.
    with np.errstate(divide="ignore", over="ignore"):
        lse = np.log(np.sum(a, axis=1))
        T = np.divide(1.0, a_div)
    pref = _row_factor(rows, c, lse, log_E)
    T += np.exp(c)[:, None]
    F = np.divide(pref[:, None], T, out=T)
    return _symmetric(rows, F, np.empty_like(F))


def _row_factor(rows: _Rows, c: np.ndarray, lse: np.ndarray, log_E: float) -> np.ndarray:
    """``kappa_p / (E * denominator_p)`` in units of the row scale, rounded down: the
    factor ``1 - 16 eps`` covers the few roundings of the floor after it."""
    logden = np.logaddexp(0.0, c + lse)
    return np.exp(np.where(rows.active, rows.logkappa - log_E + c - logden - rows.margin(),
                           -np.inf)) * (1.0 - 16 * EPS)


def _symmetric(rows: _Rows, F: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``D = F + F^T`` (a cosine enters the rows of both its classes), into ``out``."""
    D = np.add(F, F.T, out=out)
    D[np.diag_indices(rows.g)] = np.diag(F) * (2.0 if rows.per_class else 1.0)
    return D


def _log_sums(c: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Row sums taken in units of the row scale ``e^c``, as logarithms (-inf for 0)."""
    with np.errstate(divide="ignore"):
        return c + np.log(sums)


def _floor_logs(rows: _Rows, Rt: np.ndarray, log_E: float, low_sums: bool):
    """:func:`_floor` in log space, where ``e^(R / tau)`` would overflow (small tau, wide
    box): there a term of a row that underflowed to 0 would meet ``inf``."""
    c, a, a_div, _, _ = rows.linear()
    with np.errstate(divide="ignore"):
        grow = np.log(a) + np.minimum(Rt, rows.room_up())
    pref = _row_factor(rows, c, _row_logsumexp(grow), log_E)
    shrink = np.minimum(Rt, rows.room_down(), out=Rt)
    np.negative(shrink, out=shrink)
    np.exp(shrink, out=shrink)
    low = np.einsum("pq,pq->p", shrink, a) if low_sums else None
    shrink *= a_div
    F = np.multiply(np.exp(c)[:, None], shrink, out=grow)
    F += 1.0
    np.divide(shrink, F, out=F)
    F *= pref[:, None]
    D = _symmetric(rows, F, shrink)
    return D if low is None else (D, _log_sums(c, low))


def _box_bars(bars_at, det: np.ndarray, full: np.ndarray, start: np.ndarray | None = None,
              shrinks: int = MAX_SHRINKS, first_scale: float = 1.0, on_valid=None,
              secant: bool = False):
    """Bars from the box argument, for either loss.

    ``bars_at(R)`` gives the bars that follow from the floors over the box of radii ``R``;
    they are proven when the box is *valid*: every entry ``e`` has ``bars_e(R) < R_e``, or
    ``R_e >= full_e`` (the box then holds all feasible values of ``e``, and no segment can
    leave it through ``e``). A first box (``start``, or twice the bars at the point) is
    made valid by widening the entries that fail (to twice their bar, then to ``full``);
    then at most ``shrinks`` times ``R <- min(R, SHRINK bars(R))`` keeps it valid (the
    floors only grow as the box shrinks) while the bars settle.

    ``first_scale`` asks the first box to be valid for the bars times that factor (the
    bars of a larger gap, ``first_scale^2`` times this one, which scale as its square
    root); ``on_valid(R)`` is called once with that box, right after ``bars_at(R)``.
    Such a box is valid for this gap too.

    ``secant`` (with no ``start``) first tries one step to where the chord of each bar
    between the point and the first box meets ``R / SHRINK`` (:func:`_secant_step`).

    Returns ``(bars, radius)``.
    """
    centre = None
    if start is None:
        centre = bars_at(np.zeros_like(full))
        start = 2.0 * first_scale * centre
    R = np.where(det & (start < full), start, full)
    del start  # at g = 3000 each g x g array is 71 MB: none is kept longer than needed
    widened = np.zeros(full.shape, dtype=bool)
    for _ in range(MAX_REPAIRS):
        bars = bars_at(R)
        bad = _failing(bars * first_scale if first_scale != 1.0 else bars, R, full, det)
        if bad is None:
            break
        # Widen a failing entry to twice its bar once, then to the whole range: a jump to
        # the whole range at once would inflate the denominators of its rows for nothing.
        R = np.where(bad, np.where(widened, full,
                                   np.minimum(full, 2.0 * first_scale * bars)), R)
        widened |= bad
    else:
        R = full
        bars = bars_at(R)
    if on_valid is not None:
        on_valid(R)
    checked = True  # the pair (bars, R) has passed the box condition as computed
    if secant and centre is not None:
        target = _secant_target(centre, bars, R)
        del centre
        bars, R = _secant_step(bars_at, target, bars, R, full, det)
    size = _spread(bars, det) if shrinks else None
    for _ in range(shrinks):
        R = np.minimum(R, SHRINK * bars)  # entries off the loss keep R (bars inf)
        bars = bars_at(R)
        checked = False
        new = _spread(bars, det)
        if new[0] >= (1 - SETTLED) * size[0] and new[1] >= (1 - SETTLED) * size[1]:
            break
        size = new
    # The shrinking keeps the box valid in exact arithmetic; the returned pair is checked
    # as computed, so that it proves itself.
    if not checked and _failing(bars, R, full, det) is not None:
        R = full
        bars = bars_at(R)
    return bars, R


def _secant_target(b0: np.ndarray, b1: np.ndarray, R1: np.ndarray) -> np.ndarray:
    """Per entry, where the chord of its bar from the point (bars ``b0``) to the valid box
    ``R1`` (bars ``b1``) meets ``R / SHRINK``: a candidate box for :func:`_secant_step`.

    Each bar grows with the box about like ``e^(R / 2 tau)``: convex, so its chord lies
    above it, and where the chord meets ``R / SHRINK`` the box is valid in that picture.
    Entries whose chord is as steep as ``1 / SHRINK`` (no crossing), or that are off the
    loss (bars inf), get a target of at most 0 or nan.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.subtract(b1, b0)
        target /= R1
        np.subtract(1.0 / SHRINK, target, out=target)
        return np.divide(b0, target, out=target)


def _secant_step(bars_at, target: np.ndarray, b1: np.ndarray, R1: np.ndarray,
                 full: np.ndarray, det: np.ndarray):
    """One step from a valid box ``R1`` (bars ``b1``) to ``min(R1, target)``
    (:func:`_secant_target`) where the target is positive, or ``(b1, R1)`` when that box
    does not pass the check as computed.

    The rows couple the entries through their denominators, which the chord picture
    leaves out: the new box is checked like every box. At k = 1000 it lands within 1 % of
    the settled bars, where plain shrinking needs three more floors.
    """
    use = target > 0
    use &= target < R1
    if not np.any(use):
        return b1, R1
    np.logical_not(use, out=use)
    np.copyto(target, R1, where=use)  # in place: target becomes the box R2
    R2 = target
    b2 = bars_at(R2)
    if _failing(b2, R2, full, det) is None:
        return b2, R2
    return b1, R1


def _failing(bars: np.ndarray, R: np.ndarray, full: np.ndarray, det: np.ndarray):
    """The entries that break the box condition (``bars < R`` or ``R >= full`` on every
    determined entry), or None when there is none."""
    miss = ~(bars < R)  # nan fails too
    if not np.any(miss):
        return None
    miss &= R < full
    miss &= det
    return miss if np.any(miss) else None


def _spread(bars: np.ndarray, det: np.ndarray) -> tuple[float, float]:
    """Largest and mean bar over the entries (what the shrinking watches)."""
    top = float(np.max(bars, where=det, initial=0.0))
    mean = float(np.mean(bars, where=det)) if np.any(det) else 0.0
    return top, mean


def _remainder_bars(rows: _Rows, det: np.ndarray, eps: float, log_E: float,
                    full: np.ndarray, start: np.ndarray | None = None,
                    shrinks: int = MAX_SHRINKS, first_scale: float = 1.0,
                    low_sums: bool = False, secant: bool = False):
    """SC bars ``sqrt(2 eps / D_e(R))`` (module docstring, :func:`_box_bars`); ``eps`` is
    the gap relative to the excess, ``log_E`` the log of the excess.

    Returns ``(bars, radius)``, and with ``low_sums`` a third item: the row log-sums at
    the low corner (:func:`_floor`) of the first valid box, which holds every class Gram
    within ``first_scale^2 eps`` of the optimum.
    """
    # (1 + 4 eps) on the bar, folded into 2 eps: it covers the rounding of the division
    # and the square root.
    two_eps = 2.0 * eps * math.exp(rows.margin()) * (1 + 16 * EPS) * (1 + 8 * EPS)
    off = np.flatnonzero(~det)
    last = {}

    def bars_at(R):
        if not np.any(R):
            D = _floor_at_centre(rows, log_E)
        elif low_sums and "first" not in last:
            D, last["low"] = _floor(rows, R, log_E, low_sums=True)
        else:
            D = _floor(rows, R, log_E)
        # A floor of 0 or a subnormal one gives a bar of inf.
        with np.errstate(divide="ignore", over="ignore"):
            np.divide(two_eps, D, out=D)
        np.sqrt(D, out=D)
        D.flat[off] = np.inf
        return D

    def on_valid(R):
        last["first"] = last.get("low")

    bars, radius = _box_bars(bars_at, det, full, start, shrinks, first_scale, on_valid,
                             secant)
    return (bars, radius, last["first"]) if low_sums else (bars, radius)


# ------------------------------------------------------------ rows without (negatives-only)
def _laplacian_bars(rows: _Rows, det: np.ndarray, eps: float, log_E: float,
                    full: np.ndarray, grad_share: np.ndarray, level_gap: float):
    """Negatives-only bars: row differences (effective resistances) plus the pinned mean.

    ``grad_share`` holds the gradient at ``B_hat`` per block entry ``p <= q`` (symmetric
    variable, normalised to sum 1); ``level_gap`` is ``eps / W`` with ``W`` the sum of the
    gradient: the gradient-weighted mean of ``B_hat - B*`` lies in ``[0, level_gap]``. Each
    entry differs from that mean by at most ``sqrt(2 eps sum_f w_f R(e, f))``, with
    ``R(e, f)`` the effective resistance between two entries of the floor's Laplacian,
    bounded along the path ``e -> (p, r) -> f`` through the rows ``p`` and ``r``.
    """
    act = rows.active
    owner = _owner(rows)
    up = np.triu(grad_share)
    wt = np.where(owner, up + up.T - np.diag(np.diag(up)), 0.0)
    two_eps = 2.0 * eps * math.exp(rows.margin()) * (1 + 16 * EPS)

    def bars_at(R):
        logpi, _ = rows.log_shares(R)
        # In row p the floor is kappa_p (sigma_p diag(pi) - pi pi^T) with sigma_p the sum of
        # the lower shares; its resistance between two entries is
        # (1/pi_e + 1/pi_f) / (kappa_p sigma_p). rho holds one entry's part, relative to
        # the excess.
        with np.errstate(divide="ignore"):
            logsig = np.where(act, np.log(np.sum(np.exp(logpi), axis=1)), 0.0)
        with np.errstate(over="ignore"):
            rho = np.where(rows.enters,
                           np.exp(np.minimum(log_E - rows.logkappa[:, None] - logsig[:, None]
                                             - logpi + rows.margin(), 690.0)), 0.0)
        V = np.sum(np.where(wt > 0, wt * rho, 0.0), axis=1)
        W = np.where(act, np.sum(wt, axis=1), 0.0)
        hop = rho + rho.T  # row p to row r through the entry (p, r)
        cross = np.where(act[:, None] & act[None, :], hop, 0.0)
        avg = np.sum(V) + cross @ W - W * np.diag(cross)
        avg = np.where(act, avg, np.inf)
        # Through either active endpoint, whichever is smaller.
        via = np.where(rows.enters, rho + avg[:, None], np.inf)
        res = np.minimum(via, via.T)
        with np.errstate(invalid="ignore", over="ignore"):
            out = np.sqrt(two_eps * res) * (1 + 8 * EPS) + level_gap
        return np.where(det, out, np.inf)

    return _box_bars(bars_at, det, full)


def _owner(rows: _Rows) -> np.ndarray:
    """``owner[p, q]``: the entry ``{p, q}`` is counted in row ``p``, its first active row
    (row ``min(p, q)`` when both are active)."""
    e = rows.enters
    upper = np.triu(np.ones_like(e, dtype=bool))
    first = e & upper  # (p, q), p <= q, counted in row p when p is active
    second = (e & ~upper) & ~e.T  # (q, p), q > p, counted in row q when p is not active
    return first | second


# ---------------------------------------------------------------------- singletons
TRIANGLE_WORK = 5e7
"""The 3 x 3 minor bounds of the single-sample pairs are formed when (pairs) x (third
classes) is at most this; the KKT formula always is."""


def _singleton_intervals(rows: _Rows, R: np.ndarray, det: np.ndarray, pinned: bool,
                         lo: np.ndarray, hi: np.ndarray) -> None:
    """Intervals of the cosines between two single-sample classes, in place in lo, hi.

    From 3 x 3 minors (angles: ``cos(t1 + t2) <= B_ij <= cos(|t1 - t2|)`` for the angles
    ``t1, t2`` to a third class), and, on the elliptope (``pinned``), from the KKT formula
    ``B_ij = sum_q w_qi B_qj / sum_q w_qi B_qi`` with ``w_qi = m_q s_q pi_qi > 0`` over the
    active blocks ``q`` (docs/theory.md section 10).
    """
    single = np.flatnonzero(~rows.active)
    act = np.flatnonzero(rows.active)
    t = single.size
    # A block of several single-sample classes (the group level has one) holds the cosine
    # between two of them on its diagonal.
    multi = rows.m[single] >= 2
    if t < 2 and not np.any(multi):
        return
    low = np.full((t, t), -1.0)
    high = np.ones((t, t))
    if t * t * act.size <= TRIANGLE_WORK:
        # Angles to each active class, as intervals (every such cosine is determined).
        a_lo = np.arccos(np.clip(hi[np.ix_(single, act)], -1.0, 1.0))
        a_hi = np.arccos(np.clip(lo[np.ix_(single, act)], -1.0, 1.0))
        for i in range(t):
            s1 = np.minimum(np.pi, a_hi[i][None, :] + a_hi)
            low[i] = np.max(np.cos(s1), axis=1)
            gap = np.maximum(np.maximum(a_lo[i][None, :] - a_hi, a_lo - a_hi[i][None, :]),
                             0.0)
            high[i] = np.min(np.cos(gap), axis=1)
        # cos and arccos are accurate to a few ulps.
        low -= 8 * EPS
        high += 8 * EPS
    if pinned:
        logw_lo = rows.logkappa[act, None] + rows.log_shares(R)[0][np.ix_(act, single)]
        logw_hi = rows.logkappa[act, None] + rows.log_shares_high(R)[np.ix_(act, single)]
        ref = np.max(logw_hi, axis=0)
        w_lo = np.exp(logw_lo - ref - rows.margin())
        w_hi = np.exp(logw_hi - ref + rows.margin())
        x_lo, x_hi = lo[np.ix_(act, single)], hi[np.ix_(act, single)]
        # sum_q w_qi x_qj for w in [w_lo, w_hi] >= 0 and x in [x_lo, x_hi], per pair (i, j).
        n_lo = w_lo.T @ np.maximum(x_lo, 0) + w_hi.T @ np.minimum(x_lo, 0)
        n_hi = w_hi.T @ np.maximum(x_hi, 0) + w_lo.T @ np.minimum(x_hi, 0)
        slack = 4 * EPS * act.size * (w_hi.T @ np.maximum(np.abs(x_lo), np.abs(x_hi)))
        n_lo -= slack
        n_hi += slack
        d_lo, d_hi = np.diag(n_lo), np.diag(n_hi)
        # The denominator is nu_i = -S_ii < 0 at the optimum; usable where proven < 0.
        ok = d_hi < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            cands = np.stack([n_lo / d_lo[:, None], n_lo / d_hi[:, None],
                              n_hi / d_lo[:, None], n_hi / d_hi[:, None]])
        k_lo = np.min(cands, axis=0)
        k_hi = np.max(cands, axis=0)
        k_lo -= 8 * EPS * (1 + np.abs(k_lo))
        k_hi += 8 * EPS * (1 + np.abs(k_hi))
        low = np.where(ok[:, None], np.maximum(low, k_lo), low)
        high = np.where(ok[:, None], np.minimum(high, k_hi), high)
        # The formula holds with i and j swapped too.
        low = np.maximum(low, low.T)
        high = np.minimum(high, high.T)
        # Two classes i, j of one block of single-sample classes: every w_qi x_qj term
        # equals w_qi x_qi, so the numerator is the denominator and the cosine is 1
        # (docs/theory.md, section 4): they coincide.
        same = np.flatnonzero(ok & multi)
        low[same, same] = 1.0 - 8 * EPS
        high[same, same] = 1.0
    cur_lo, cur_hi = lo[np.ix_(single, single)], hi[np.ix_(single, single)]
    new_lo = np.maximum(cur_lo, low)
    new_hi = np.maximum(np.minimum(cur_hi, high), new_lo)
    write = ~np.eye(t, dtype=bool)
    write[np.diag_indices(t)] = multi
    lo[np.ix_(single, single)] = np.where(write, new_lo, cur_lo)
    hi[np.ix_(single, single)] = np.where(write, new_hi, cur_hi)


# ---------------------------------------------------------------------- collapse
def _collapse_delta(rows: _Rows, R: np.ndarray, det: np.ndarray, log_E: float, exg: float,
                    exg_s: float, full: np.ndarray, low: np.ndarray | None = None) -> float:
    """``delta`` with within-class cosines ``>= 1 - delta`` for every sample Gram within
    the sample-level gap (module docstring; docs/theory.md section 10).

    ``rows``, ``R``, ``full``: the rows, the valid box of the main bars and the box of the
    whole feasible set, reused when they are already per-class (class level). ``low``:
    the row log-sums at the low corner of a valid box for ``exg + exg_s`` when the main
    bars found one (:func:`_collapse_scale`).
    """
    act = rows.active
    s = rows.s
    if not np.any(act):
        return 0.0
    if not (math.isfinite(exg_s) and exg_s >= 0):
        return math.nan
    if exg_s == 0:
        return 0.0
    log_eps_s = math.log(exg_s) + log_E
    if rows.remainder:
        # sigma_p: mass on other classes, increasing in every cosine of the row. Its lower
        # bound is taken over a class-level box that holds every class Gram within
        # eps_c + eps_s of the optimum (the same argument with eps_c + eps_s for eps).
        cls, top = rows, low
        if top is None and np.all(rows.m == 1):
            start = R * math.sqrt((exg + exg_s) / exg) * 1.5 if exg > 0 else None
            _, _, top = _remainder_bars(rows, det, exg + exg_s, log_E, full, start,
                                        shrinks=0, low_sums=True)
        elif top is None:
            # The block rows' cached terms are not needed any more: free them before the
            # class rows make theirs (4 g x g arrays, 280 MB at g = 3000).
            rows._linear = None
            cls = _Rows(rows.m.astype(int), rows.s.astype(int), rows.tau, rows.B,
                        rows.curvature, rows.lowest, per_class=True)
            _, _, top = _remainder_bars(cls, det, exg + exg_s, log_E, _full_radius(cls),
                                        shrinks=0, low_sums=True)
        log_sigma = np.where(act, top - np.logaddexp(0.0, top), 0.0) - cls.margin()
    else:
        # Negatives-only: F(delta, M) - F(0, M) = sum_c n_c delta_c / tau exactly.
        log_sigma = np.zeros(s.size) - 64 * EPS
    with np.errstate(divide="ignore"):
        logd = (math.log(rows.tau) + log_eps_s + np.log1p(-1.0 / np.where(act, s, 2.0))
                - log_sigma)
    # Beyond 2 nothing is claimed (every cosine is at least -1): no overflow either.
    delta = float(np.exp(min(float(np.max(logd[act])) + 1e-12, 1.0)))
    return min(delta, 2.0) * (1 + 8 * EPS)


def _collapse_scale(rows: _Rows, exg: float, exg_s: float) -> float | None:
    """``sqrt((eps_c + eps_s) / eps_c)`` where the collapse delta can reuse the first box
    of the main bars (class level: the rows are per class already), else None.

    A box valid for the larger gap ``eps_c + eps_s`` is valid for ``eps_c`` too (the bars
    scale as the square root of the gap over the same floors), so one floor serves both:
    the main bars start from it, and the collapse delta reads its low corner.
    """
    if not (np.all(rows.m == 1) and exg > 0 and math.isfinite(exg_s) and exg_s > 0):
        return None
    return math.sqrt((exg + exg_s) / exg)


def _determined(rows: _Rows) -> np.ndarray:
    det = rows.enters | rows.enters.T
    det[np.diag_indices(rows.g)] &= rows.m >= 2
    return det


def _full_radius(rows: _Rows) -> np.ndarray:
    """Radius of the box that holds the whole feasible set around ``B``, per entry."""
    return np.maximum(1.0 - rows.B, rows.B - rows.lowest_matrix())


# ---------------------------------------------------------------------- entry point
def cosine_bars(sizes, counts, tau: float, B, excess_gap: float, *,
                loss: Loss | str = "sc", relaxation: Relaxation | str = "elliptope",
                log_excess: float | None = None, grad: np.ndarray | None = None,
                sample_excess_gap: float = math.nan, thorough: bool = False) -> CosineBars:
    """Proven intervals for the optimal cosines, from a certified block-form answer.

    Parameters
    ----------
    sizes, counts : array_like of int, shape (g,)
        ``m_p`` classes of ``s_p`` samples per block (one class per block at class level).
    tau : float
        Temperature.
    B : array_like, shape (g, g)
        The feasible answer (block form, :mod:`scconvex.model`).
    excess_gap : float
        Its certified gap over **class** Grams relative to the excess loss at ``B`` (the
        class-level certificate of :func:`scconvex.certify.certify`).
    loss : Loss or str
        The loss (or its registered name); it must supply
        :meth:`~scconvex.losses.base.Loss.curvature_rows`.
    relaxation : Relaxation or str
        The feasible set the gap was certified over (or its registered name).
    log_excess : float, optional
        ``log`` of the excess loss at ``B`` as the certificate computed it (recomputed
        when omitted).
    grad : ndarray, optional
        Negatives-only only: ``dL/dB`` per entry (symmetric variable) relative to the
        excess; recomputed when omitted.
    sample_excess_gap : float, optional
        The certified gap over sample Grams relative to the excess; gives
        ``collapse_delta`` (nan when omitted).
    thorough : bool, optional
        Shrink the box until the bars settle (:data:`MAX_SHRINKS`) instead of one secant
        step (:func:`_secant_step`), and derive ``collapse_delta`` from a box of its own.
        Either way the bars are proofs; :func:`tighter` combines the two.

    Returns
    -------
    CosineBars

    Notes
    -----
    The bars are as valid as the gap: they hold for every optimum of the feasible set the
    gap was certified over, because the gap is the certificate over class Grams and the
    strong-convexity argument runs over the same set.

    Examples
    --------
    >>> import numpy as np
    >>> etf = np.full((3, 3), -0.5) + 1.5 * np.eye(3)
    >>> bars = cosine_bars([1, 1, 1], [5, 5, 5], 0.5, etf, 1e-12)
    >>> bool(bars.max_half_width < 1e-5), bars.unique
    (True, True)
    """
    loss = get_loss(loss) if isinstance(loss, str) else loss
    relaxation = (get_relaxation(relaxation) if isinstance(relaxation, str)
                  else relaxation)
    curvature = loss.curvature_rows(sizes, counts, tau)
    if curvature is None:
        raise InvalidInputError(f"no cosine bars for the {loss.name!r} loss: it has no "
                                "curvature rows")
    sizes = np.asarray(sizes, dtype=int)
    counts = np.asarray(counts, dtype=int)
    B = np.asarray(B, dtype=float)
    g = sizes.size
    lowest = float(relaxation.lowest_cosine)
    pinned = bool(relaxation.pins_single_classes)
    if log_excess is None:
        log_excess = loss.block_terms(B, sizes, counts, tau).log_excess
    log_E = float(log_excess)
    rows = _Rows(sizes, counts, tau, B, curvature, lowest)
    det = _determined(rows)
    cos = _cosine_entries(g, sizes)
    full = _full_radius(rows)
    exg = float(excess_gap)
    exg_s = float(sample_excess_gap)
    if not exg >= 0 or exg_s < 0:
        raise InvalidInputError(f"excess_gap must be >= 0 (inf when nothing is certified), "
                                f"got {exg!r}; sample_excess_gap must be >= 0 or nan, got "
                                f"{exg_s!r}")
    # The entries that are not cosines: the unit diagonal of one-class blocks.
    unit = np.flatnonzero(sizes < 2) * (g + 1)
    lo = rows.lowest_matrix().copy()
    lo.flat[unit] = 1.0
    if not np.any(rows.active):
        return _no_anchor(g, cos, lo, np.ones((g, g)), exg, exg_s)
    low = None
    if exg == 0.0 or log_E == -math.inf:
        bars = np.where(det, 0.0, np.inf)
        radius = np.zeros((g, g))
    elif exg == math.inf:
        bars = np.full((g, g), np.inf)
        radius = full
    elif curvature.remainder and thorough:
        bars, radius = _remainder_bars(rows, det, exg, log_E, full)
    elif curvature.remainder:
        scale = _collapse_scale(rows, exg, exg_s)
        if scale is None:
            bars, radius = _remainder_bars(rows, det, exg, log_E, full, shrinks=0,
                                           secant=True)
        else:
            bars, radius, low = _remainder_bars(rows, det, exg, log_E, full, shrinks=0,
                                                first_scale=scale, low_sums=True,
                                                secant=True)
    else:
        share, level = _laplacian_level(rows, B, grad, exg, log_E)
        bars, radius = _laplacian_bars(rows, det, exg, log_E, full, share, level)
    # Passes over g x g arrays are most of what is left of the cost at g = 1000: each
    # mask is applied only where it excludes something.
    bars.flat[unit] = 0.0  # every branch above made bars afresh
    # Rounded outwards: B -+ bar in float64 may land inside the exact interval (a bar of
    # 0 is exact). fmin and fmax pass a nan bar over (its entry keeps [lo, 1]); the
    # cosines that enter no term keep theirs (few entries: one pass over their indices).
    pad = bars * (1 + 4 * EPS)
    pad += 2 * EPS
    np.copyto(pad, 0.0, where=bars == 0)
    free = np.flatnonzero(~det)
    with np.errstate(invalid="ignore"):
        hi = np.fmin(B + pad, 1.0)
        below = np.fmax(np.subtract(B, pad, out=pad), lo)
    below.flat[free] = lo.flat[free]
    hi.flat[free] = 1.0
    lo = below
    _singleton_intervals(rows, radius, det, pinned, lo, hi)
    half = bars
    free = free[cos.flat[free]]  # cosines that enter no term: the width of their interval
    if free.size:
        half = bars.copy()
        half.flat[free] = np.maximum(hi.flat[free] - B.flat[free],
                                     B.flat[free] - lo.flat[free])
    unique, reason = _uniqueness(rows, pinned)
    delta = _collapse_delta(rows, radius, det, log_E, exg, exg_s, full, low)
    return CosineBars(half_width=half, lower=lo, upper=hi,
                      radius=radius if np.all(det) else np.where(det, radius, np.nan),
                      determined=det, cosines=cos,
                      unique=unique, reason=reason, collapse_delta=delta, excess_gap=exg,
                      sample_excess_gap=exg_s)


def _laplacian_level(rows: _Rows, B, grad, exg: float, log_E: float):
    """Gradient shares per entry and ``eps / W`` for the negatives-only bars."""
    if grad is None:
        logpi, _ = rows.log_shares(np.zeros_like(B))
        # dL/dB_pq from row p: m_p s_p pi_pq / tau (relative scale is all that matters).
        part = np.where(rows.enters, np.exp(np.log(rows.m * rows.s)[:, None] + logpi), 0.0)
        G = part + part.T
        G[np.diag_indices(rows.g)] = np.diag(part)
    else:
        G = np.asarray(grad, dtype=float)
    G = np.where(_determined(rows), np.maximum(G, 0.0), 0.0)
    upper = np.triu(np.ones_like(G, dtype=bool))
    G = np.where(upper, G, 0.0)
    share = G / np.sum(G)
    # W = sum of the gradient = sum_p m_p s_p / tau exactly (row shares sum to 1), so
    # eps / W = exg * E * tau / sum m_p s_p.
    mass = float(np.sum((rows.m * rows.s)[rows.active]))
    # The absolute term covers the rounding of the computed shares (weights of the mean).
    level = exg * math.exp(log_E) * rows.tau / mass * (1 + 64 * EPS) + 64 * EPS
    return share, level


def _no_anchor(g, cos, lo, hi, exg, exg_s) -> CosineBars:
    """No class has two samples: the loss is constant, every feasible geometry optimal."""
    half = np.where(cos, np.inf, 0.0)
    k_cos = bool(np.any(cos))
    return CosineBars(half_width=half, lower=lo, upper=hi, radius=np.full((g, g), np.nan),
                      determined=np.zeros((g, g), dtype=bool), cosines=cos,
                      unique=not k_cos,
                      reason=("proven: no cosine" if not k_cos else
                              "proven not unique: no class has two samples, so the loss "
                              "is the same for every geometry"),
                      collapse_delta=0.0, excess_gap=exg, sample_excess_gap=float(exg_s))


def _uniqueness(rows: _Rows, pinned: bool) -> tuple[bool | None, str]:
    singles = int(np.sum(rows.m[~rows.active]))  # classes, not blocks
    convex = ("the loss is strictly convex in every cosine with a class of two or more "
              "samples" if rows.remainder else
              "the loss is strictly convex in the cosines with a class of two or more "
              "samples up to a uniform shift, along which it is linear")
    collapse = "every optimal sample Gram is class-collapsed"
    if singles <= 1:
        return True, f"proven: {convex}; {collapse}"
    if pinned:
        return True, (f"proven: {convex}; {collapse}; the KKT conditions put each "
                      f"single-sample class mean in the span of the others, which fixes "
                      f"the cosines between the {singles} single-sample classes")
    return None, (f"not proven: the cosines between the {singles} single-sample classes "
                  "enter no term, and on this relaxation nothing pins them")


# ---------------------------------------------------------------------- for the pipeline
def model_bars(model, X: np.ndarray, cert, scert, *, min_eigenvalue: float | None = None,
               centre: np.ndarray | None = None, thorough: bool = False,
               claim: bool = False, tightest: bool = False) -> CosineBars | None:
    """The bars of a certified answer ``X`` of ``model`` (None when its loss supplies no
    curvature rows).

    ``cert`` and ``scert`` are its certificates (:func:`scconvex.certificates.certify.certify`).
    With ``claim`` the bars are derived from the gaps padded by :func:`claim_gap`: what a
    file claims must hold for a verifier whose recomputed gap is a few ulps larger. With
    ``tightest`` both schedules of the box argument run (``thorough`` and not) on the same
    certificates, and :func:`tighter` keeps the better proof per entry (``verify``).
    At a dense level (samples) the bars are those of the answer's class Gram, from that
    Gram's own certificate over class Grams; ``collapse_delta`` uses the sample-level gap.

    The box argument needs a feasible centre. ``min_eigenvalue`` is the computed smallest
    eigenvalue of the Gram ``X`` stands for (``verify`` accepts down to ``-1e-10`` as
    rounding); when it is below the rounding of a zero eigenvalue (``16 eps k``) the bars
    are derived at the feasible
    ``(M + eta I) / (1 + eta)`` with its own certificates, and their half-widths measured
    from ``centre`` (the stored geometry, default ``X``), so that they hold around the
    numbers a file shows. A stored geometry that is not symmetric is handled the same way
    through ``centre``.
    """
    from ..problem.model import build_model
    from .certify import certify

    spec = model.spec
    if model.loss.curvature_rows(model.sizes, model.block_counts, spec.tau) is None:
        return None
    sample_gap = scert.excess_gap
    if model.level.dense:
        cls = build_model(spec, CLASS)
        M = model.level.class_gram(model, X)
        cert = certify(cls, M)[0]
        # The collapse delta reads the sample gap relative to the class Gram's excess,
        # which is at most the sample Gram's (collapsing lowers the loss): convert.
        if math.isfinite(cert.excess_loss) and cert.excess_loss > 0:
            sample_gap = max(sample_gap, scert.gap / cert.excess_loss)
        if centre is not None:
            centre = model.level.class_gram(model, np.asarray(centre, dtype=float))
        if min_eigenvalue is not None:
            # The class Gram's own: the sample Gram's does not bound it.
            min_eigenvalue = float(np.linalg.eigvalsh(0.5 * (M + M.T))[0])
        model, X = cls, M
    stored = X if centre is None else np.asarray(centre, dtype=float)
    if min_eigenvalue is not None and min_eigenvalue < -_eigen_rounding(spec.k):
        X = _feasible_centre(model, X, -float(min_eigenvalue))
        cert, scert = certify(model, X)
        sample_gap = scert.excess_gap
    # A gap that is not a number certifies nothing: no finite bar.
    gap = math.inf if math.isnan(cert.excess_gap) else cert.excess_gap
    if claim:
        gap, sample_gap = claim_gap(gap, model.dim), claim_gap(sample_gap, model.dim)
    args = (model.sizes, model.block_counts, spec.tau, X, gap)
    kwargs = {"loss": model.loss, "relaxation": model.relaxation,
              "log_excess": _log_excess(cert), "sample_excess_gap": sample_gap}
    bars = cosine_bars(*args, thorough=thorough, **kwargs)
    if tightest:
        bars = tighter(bars, cosine_bars(*args, thorough=not thorough, **kwargs))
    if stored is X or np.array_equal(stored, X):
        return bars
    return _recentred(bars, stored, X)


CLAIM_RTOL = 1e-5
"""Relative allowance for another machine's recomputation of a gap (:func:`claim_gap`)."""

CLAIM_ATOL = 4 * EPS
"""Absolute allowance per variable of the model, in units of the excess loss."""


def claim_gap(excess_gap: float, size: int) -> float:
    """The gap bars that a file claims are derived from: ``excess_gap`` padded by what a
    recomputation elsewhere may add to it.

    The gap is a difference of rounded sums: with another BLAS, or another number of its
    threads, it comes out different in the last bits of those sums (measured over 1 and 2
    threads, up to g = 1000: at most 1.9e-15 of the excess, 2.5e-7 of the gap). A
    verifier proves the bars of the gap it computes, so bars from the unpadded gap can be
    a few ulps narrower than it proves. ``CLAIM_RTOL`` of the gap is 40 times the largest
    relative difference, and ``CLAIM_ATOL`` per variable 140 times the largest absolute
    one (at g = 300); the bars widen by half of ``CLAIM_RTOL``, and a few ulps.
    """
    if not (math.isfinite(excess_gap) and excess_gap >= 0):
        return excess_gap
    return excess_gap * (1 + CLAIM_RTOL) + CLAIM_ATOL * max(int(size), 1)


def _log_excess(cert) -> float | None:
    """``log`` of the excess the certificate's ``excess_gap`` is relative to, rounded up
    (None where the float does not carry it: 0, subnormal or not finite; the bars then
    recompute it in log space). The gap is ``excess_gap`` times this very float, so its
    logarithm is the right scale; recomputing the loss's terms for it cost a tenth of the
    bars at g = 1000."""
    excess = float(cert.excess_loss)
    if not (math.isfinite(excess) and excess > 1e-300):
        return None
    log_e = math.log(excess)
    return log_e + 4 * EPS * (1.0 + abs(log_e))


def tighter(a: CosineBars | None, b: CosineBars | None) -> CosineBars | None:
    """Two proofs about the same optima combined entry by entry: every optimum lies in
    both intervals, so in their intersection, and within the smaller half-width of the
    same centre (:func:`cosine_bars` with and without ``thorough``)."""
    if a is None or b is None:
        return a if b is None else b
    return CosineBars(half_width=np.minimum(a.half_width, b.half_width),
                      lower=np.maximum(a.lower, b.lower), upper=np.minimum(a.upper, b.upper),
                      radius=a.radius, determined=a.determined, cosines=a.cosines,
                      unique=a.unique, reason=a.reason,
                      collapse_delta=float(np.fmin(a.collapse_delta, b.collapse_delta)),
                      excess_gap=a.excess_gap, sample_excess_gap=a.sample_excess_gap)


def _eigen_rounding(k: int) -> float:
    """What float64 rounding makes of a zero eigenvalue of a Gram of norm at most ``k``:
    a smaller violation is rounding (the certificates treat it so, and a genuine answer
    verified on another machine may show it), a larger one is moved away."""
    return 16 * EPS * k


def _feasible_centre(model, B: np.ndarray, violation: float) -> np.ndarray:
    """``(M + eta I) / (1 + eta)`` in the block form of ``model``, with ``eta`` above the
    computed ``violation`` of ``M >= 0`` by the rounding of an eigenvalue of a Gram of
    norm at most ``k``: every cosine is divided by ``1 + eta``, the unit diagonal of
    one-class blocks stays."""
    eta = violation * (1 + 1e-6) + _eigen_rounding(model.spec.k)
    out = np.asarray(B, dtype=float) / (1.0 + eta)
    fixed = np.flatnonzero(model.level.fixed_diagonal(model))
    out[fixed, fixed] = 1.0
    return out


def _recentred(bars: CosineBars, centre: np.ndarray, B: np.ndarray) -> CosineBars:
    """The bars derived at ``B`` with half-widths measured from ``centre`` (the intervals
    of the optimum are those proven; only the centre they are read from changes), rounded
    outwards where the centre moved."""
    with np.errstate(invalid="ignore"):
        half = np.maximum(bars.upper - centre, centre - bars.lower)
        half = np.where(np.isfinite(bars.half_width), half * (1 + 4 * EPS) + 2 * EPS, np.inf)
        half = np.where(centre == B, bars.half_width, half)
    half = np.where(bars.cosines, half, 0.0)
    return CosineBars(half_width=half, lower=bars.lower, upper=bars.upper,
                      radius=bars.radius, determined=bars.determined, cosines=bars.cosines,
                      unique=bars.unique, reason=bars.reason,
                      collapse_delta=bars.collapse_delta, excess_gap=bars.excess_gap,
                      sample_excess_gap=bars.sample_excess_gap)


CLAIM_KEYS = frozenset({"level", "half_width", "intervals", "max_half_width",
                        "collapse_delta", "excess_gap"})
"""The keys of a file's ``cosine_bounds`` (:meth:`CosineBars.to_dict` and the level)."""


def _claim_numbers(x):
    """A claimed number, or nested lists of them, as floats: JSON numbers and the strings
    ``"inf"``, ``"-inf"``, ``"nan"`` that :func:`scconvex.files.jsonable` writes; booleans
    and other strings raise ``TypeError`` (numpy would read ``true`` as 1 and ``"0.5"``
    as 0.5)."""
    if isinstance(x, (list, tuple)):
        return [_claim_numbers(v) for v in x]
    if isinstance(x, str) and x in ("inf", "-inf", "nan"):
        return float(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{x!r} is not a number")
    return float(x)


def check_claims(claimed, bars: CosineBars | None, unique) -> list[str]:
    """Reasons to reject a file's ``cosine_bounds`` and ``unique`` against the bars
    recomputed from its geometry (empty when every claim is proven).

    A claimed bar narrower than the recomputed one, an interval of a cosine between
    single-sample classes that does not contain the recomputed one, a smaller
    ``collapse_delta``, or a ``unique`` other than the recomputed proof (``null`` claims
    nothing) is a rejection.
    """
    reasons = []
    proven = None if bars is None else bars.unique
    if unique is not None and unique != proven:
        reasons.append(f"claimed unique {unique!r} is not what the geometry proves "
                       f"({proven!r})")
    if claimed is None:
        return reasons
    if bars is None:
        return reasons + ["claimed cosine_bounds, but no bars can be proven for this file "
                          "(no certified answer, or a loss without curvature rows)"]
    if not isinstance(claimed, dict):
        return reasons + ["malformed certificate: cosine_bounds is not an object"]
    g = bars.half_width.shape[0]
    unknown = sorted(set(claimed) - CLAIM_KEYS)
    if unknown:
        reasons.append(f"malformed certificate: unknown cosine_bounds.{unknown[0]}")
    try:
        half = np.array(_claim_numbers(claimed.get("half_width")), dtype=float)
        intervals = [tuple(_claim_numbers(row)) for row in claimed.get("intervals", [])]
        delta = _claim_numbers(claimed.get("collapse_delta", "nan"))
        top = _claim_numbers(claimed.get("max_half_width", "nan"))
    except (TypeError, ValueError):
        return reasons + ["malformed certificate: cosine_bounds is not numeric"]
    if not np.all(half[np.isfinite(half)] >= 0) or np.any(np.isnan(half)):
        reasons.append("malformed certificate: cosine_bounds.half_width has a negative or "
                       "nan entry")
    if half.shape != (g, g):
        return reasons + [f"malformed certificate: cosine_bounds.half_width has shape "
                          f"{half.shape}, the geometry needs {(g, g)}"]
    cos = bars.cosines
    narrow = cos & ~(half >= bars.half_width)
    if np.any(narrow):
        p, q = np.argwhere(narrow)[0]
        reasons.append(f"tampered values: claimed bar {float(half[p, q])!r} of cosine "
                       f"({p}, {q}) is narrower than the proven "
                       f"{float(bars.half_width[p, q])!r}")
    if not top >= bars.max_half_width:
        reasons.append(f"tampered values: claimed max_half_width {top!r} is below the "
                       f"proven {bars.max_half_width!r}")
    if not (delta >= bars.collapse_delta or math.isnan(bars.collapse_delta)):
        reasons.append(f"tampered values: claimed collapse_delta {delta!r} is below the "
                       f"proven {bars.collapse_delta!r}")
    want = {(int(a), int(b)) for a, b in zip(*np.nonzero(np.triu(cos & ~bars.determined)),
                                             strict=True)}
    seen = set()
    for row in intervals:
        try:
            a, b, lo, hi = int(row[0]), int(row[1]), float(row[2]), float(row[3])
        except (TypeError, ValueError, IndexError):
            return reasons + ["malformed certificate: cosine_bounds.intervals"]
        seen.add((a, b))
        if (a, b) not in want:
            reasons.append(f"malformed certificate: interval for ({a}, {b}), which is not "
                           "a cosine between single-sample classes")
        elif not (lo <= bars.lower[a, b] and hi >= bars.upper[a, b]):
            reasons.append(f"tampered values: claimed interval [{lo!r}, {hi!r}] of cosine "
                           f"({a}, {b}) is narrower than the proven "
                           f"[{float(bars.lower[a, b])!r}, {float(bars.upper[a, b])!r}]")
    if want - seen:
        reasons.append(f"malformed certificate: no interval for the cosines "
                       f"{sorted(want - seen)[:3]} between single-sample classes")
    return reasons
