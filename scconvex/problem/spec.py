"""Stage 1 of the pipeline: the problem specification.

A :class:`ProblemSpec` is a small immutable value that says *what* is minimised: the
class-count vector, the temperature, which loss, which constraint set (relaxation) and at
which level the convex program is built. Everything downstream reads these fields as data;
new loss variants or relaxations become new values here, not new branches elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from numbers import Integral, Real

import numpy as np

from ..checks import TAU_MIN, check_tau
from ..errors import InvalidInputError
from ..levels import AUTO
from ..levels import LEVELS as LEVEL_OBJECTS
from ..losses import LOSSES as LOSS_OBJECTS
from ..losses import RELAXATIONS as RELAXATION_OBJECTS
from ..losses import loss_constant, loss_of
from .batches import check_batches

__all__ = ["LEVELS", "LOSSES", "MAX_CLASSES", "MAX_SAMPLES", "RELAXATIONS", "TAU_MIN",
           "ProblemSpec", "check_tau"]

LOSSES = LOSS_OBJECTS
"""Loss objects by name (``"sc"``: the L_out supervised contrastive loss;
``"negatives-only"``: its denominator over negatives only; :mod:`scconvex.losses`)."""

RELAXATIONS = RELAXATION_OBJECTS
"""Constraint sets of the convex relaxation by name (``"elliptope"``: PSD with unit
diagonal; ``"dnn"``: also entrywise >= 0; :mod:`scconvex.losses.relaxations`)."""

LEVELS = (AUTO, *LEVEL_OBJECTS)
"""Levels at which the convex program can be built (``"auto"`` picks group or class;
:mod:`scconvex.levels`)."""

DEFAULT_LOSS = "sc"
DEFAULT_RELAXATION = "elliptope"

MAX_SAMPLES = 2**53
"""Largest total number of samples ``n``. Every integer up to ``2**53`` is exact in
float64, the arithmetic of the loss and of the certificate; beyond it counts would be
rounded silently and products of counts overflow int64, so larger problems are refused."""

MAX_CLASSES = 10_000_000
"""Largest number of classes ``k``: the spec holds one count per class (and the group
level one block index per class), so ``k`` itself must fit comfortably in memory."""

def _check_counts(counts: object) -> tuple[int, ...]:
    try:
        arr = np.asarray(counts)
    except Exception as exc:  # ragged or exotic input
        raise InvalidInputError(f"counts must be a 1-D sequence of integers: {exc}") from None
    if arr.ndim != 1:
        raise InvalidInputError(f"counts must be one-dimensional, got shape {arr.shape}")
    out = []
    items = list(counts) if isinstance(counts, (list, tuple)) else arr.tolist()
    for c in items:
        if isinstance(c, np.generic):
            c = c.item()
        if isinstance(c, bool) or not isinstance(c, (Integral, float)):
            raise InvalidInputError(f"class counts must be integers, got {c!r}")
        if isinstance(c, float) and (not math.isfinite(c) or c != int(c)):
            raise InvalidInputError(f"class counts must be integers, got {c!r}")
        c = int(c)
        if c < 1:
            raise InvalidInputError(f"every class count must be >= 1, got {c}")
        if c > MAX_SAMPLES:
            raise InvalidInputError(f"class count {c} is above the limit 2**53 = {MAX_SAMPLES} "
                                    "(float64 is exact only up to there)")
        out.append(c)
        if len(out) > MAX_CLASSES:
            raise InvalidInputError(f"more than {MAX_CLASSES} classes")
    if sum(out) > MAX_SAMPLES:
        raise InvalidInputError(f"the total number of samples {sum(out)} is above the limit "
                                f"2**53 = {MAX_SAMPLES} (float64 is exact only up to there)")
    if len(out) < 2:
        raise InvalidInputError(f"need at least 2 classes, got {len(out)}")
    if all(c == 1 for c in out):
        raise InvalidInputError("at least one class needs 2 or more samples (else the loss is 0)")
    return tuple(out)


@dataclass(frozen=True)
class ProblemSpec:
    """An SC-loss minimisation problem under the unconstrained features model.

    Parameters
    ----------
    counts : tuple of int
        Samples per class, ``n_1, ..., n_k`` (k >= 2, every ``n_c >= 1``, at least one
        ``n_c >= 2``). Sample ``i`` belongs to the class given by :attr:`labels`.
    tau : float
        Temperature, ``tau > 0``.
    loss : str
        Loss function, one of :data:`LOSSES`.
    relaxation : str
        Constraint set of the convex relaxation, one of :data:`RELAXATIONS`.
    level : str
        Level at which the convex program is built, one of :data:`LEVELS`.
    batches : tuple of tuple of int, optional
        Batch scheme of the batch-wise loss (:mod:`scconvex.problem.batches`): sample indices per
        batch, samples listed as in :attr:`labels`. None: the full-batch loss.
    names : tuple of str, optional
        A name for each class (from a counts file with ``name,count`` rows or a labels
        file), shown in reports, JSON and figures. Names do not change the problem: specs
        that differ only in names are equal.

    Examples
    --------
    >>> spec = ProblemSpec.from_counts([20, 20, 2, 2], tau=0.1)
    >>> spec.n, spec.k
    (44, 4)
    """

    counts: tuple[int, ...]
    tau: float
    loss: str = DEFAULT_LOSS
    relaxation: str = DEFAULT_RELAXATION
    level: str = AUTO
    batches: tuple | None = None
    names: tuple[str, ...] | None = field(default=None, compare=False)
    _groups: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", _check_counts(self.counts))
        object.__setattr__(self, "tau", check_tau(self.tau))
        for name, allowed in (("loss", LOSSES), ("relaxation", RELAXATIONS), ("level", LEVELS)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                raise InvalidInputError(f"unknown {name} {value!r}; choose one of "
                                        f"{tuple(allowed)}")
        if self.names is not None:
            object.__setattr__(self, "names", _check_names(self.names, self.k))
        if self.batches is not None:
            object.__setattr__(self, "batches", check_batches(self.batches, self.n))
            loss_of(self)  # refuses losses without a batch-wise form
        sizes: dict[int, int] = {}
        for c in self.counts:
            sizes[c] = sizes.get(c, 0) + 1
        object.__setattr__(self, "_groups", tuple(sorted(sizes.items(), reverse=True)))

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_counts(cls, counts: Sequence[int], tau: float, **kwargs) -> ProblemSpec:
        """Spec from a class-count vector."""
        return cls(counts, tau, **kwargs)

    @classmethod
    def from_labels(cls, labels: Sequence[int], tau: float, **kwargs) -> ProblemSpec:
        """Spec from a label array; classes are ordered by their sorted label values.

        Sample order is not kept: the spec describes the problem up to a permutation of
        samples, and :attr:`labels` lists samples class by class. The label values become
        the class :attr:`names`.
        """
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0:
            raise InvalidInputError("labels must be a non-empty 1-D array")
        values, counts = np.unique(labels, return_counts=True)
        kwargs.setdefault("names", tuple(str(v) for v in values.tolist()))
        return cls(tuple(int(c) for c in counts), tau, **kwargs)

    @classmethod
    def step(cls, k: int, rho: float, ratio: float, n_min: int, tau: float,
             **kwargs) -> ProblemSpec:
        """STEP imbalance (MATH.md section 4).

        ``k_maj = round(rho * k)`` majority classes come first, each with
        ``ratio * n_min`` samples, then ``k - k_maj`` minority classes with ``n_min``.
        """
        k = _positive_int(k, "k")
        n_min = _positive_int(n_min, "n_min")
        rho = _finite(rho, "rho")
        ratio = _finite(ratio, "R")
        if not 0 <= rho <= 1:
            raise InvalidInputError(f"rho must lie in [0, 1], got {rho}")
        if ratio < 1:
            raise InvalidInputError(f"the imbalance ratio R must be >= 1, got {ratio}")
        n_maj = ratio * n_min
        if abs(n_maj - round(n_maj)) > 1e-9 * max(1.0, n_maj):
            raise InvalidInputError(f"R * n_min must be an integer, got {n_maj}")
        k_maj = int(round(rho * k))
        if 0 < rho < 1 and k_maj in (0, k):
            kind = "majority" if k_maj == 0 else "minority"
            raise InvalidInputError(f"rho = {rho:g} of k = {k} classes rounds to zero {kind} "
                                    "classes; use a rho that leaves at least one of each kind "
                                    "(or rho = 0 or 1 for a balanced problem)")
        _check_size(k, k_maj * n_maj + (k - k_maj) * n_min)
        counts = (int(round(n_maj)),) * k_maj + (n_min,) * (k - k_maj)
        return cls(counts, tau, **kwargs)

    @classmethod
    def long_tail(cls, k: int, ratio: float, n_max: int, tau: float, **kwargs) -> ProblemSpec:
        """Long-tail imbalance: ``n_c = floor(n_max * R**(-c/(k-1)))``, ``c = 0..k-1``."""
        k = _positive_int(k, "k")
        n_max = _positive_int(n_max, "n_max")
        ratio = _finite(ratio, "R")
        if ratio < 1:
            raise InvalidInputError(f"the imbalance ratio R must be >= 1, got {ratio}")
        if k < 2:
            raise InvalidInputError(f"need at least 2 classes, got {k}")
        _check_size(k, k * n_max)
        c = np.arange(k)
        # A tiny relative slack keeps exact powers (e.g. n_max / R) from flooring one below.
        counts = np.floor(n_max * ratio ** (-c / (k - 1)) * (1 + 1e-12)).astype(int)
        return cls(tuple(int(x) for x in counts), tau, **kwargs)

    # ----------------------------------------------------------------- derived data
    @property
    def k(self) -> int:
        """Number of classes."""
        return len(self.counts)

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(sum(self.counts))

    @property
    def class_names(self) -> tuple[str, ...]:
        """:attr:`names`, or ``c0, c1, ...`` when the classes have none."""
        return self.names if self.names is not None else tuple(f"c{i}" for i in range(self.k))

    @property
    def labels(self) -> np.ndarray:
        """Class label of each sample, shape ``(n,)``, samples listed class by class."""
        return np.repeat(np.arange(self.k), self.counts)

    @property
    def groups(self) -> tuple[tuple[int, int], ...]:
        """Distinct counts as ``(count, multiplicity)`` pairs, largest count first."""
        return self._groups

    @property
    def repeated(self) -> bool:
        """True when some count is held by two or more classes."""
        return len(self._groups) < self.k

    @property
    def constant(self) -> float:
        """The loss's geometry-independent lower bound: ``sum_c n_c log(n_c - 1)`` for SC
        (MATH.md section 4), ``sum_c n_c (log(n - n_c) - 2/tau)`` for negatives-only."""
        return loss_constant(self)

    def with_(self, **changes) -> ProblemSpec:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-safe description (``batches`` only when the loss is batch-wise, ``names``
        only when the classes have names)."""
        out = {"counts": list(self.counts), "tau": self.tau, "loss": self.loss,
               "relaxation": self.relaxation, "level": self.level}
        if self.batches is not None:
            out["batches"] = [list(b) for b in self.batches]
        if self.names is not None:
            out["names"] = list(self.names)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ProblemSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(data, dict):
            raise InvalidInputError("a spec must be a JSON object")
        allowed = {"counts", "tau", "loss", "relaxation", "level", "batches", "names"}
        unknown = set(data) - allowed
        if unknown:
            raise InvalidInputError(f"unknown spec fields: {sorted(unknown)}")
        if "counts" not in data or "tau" not in data:
            raise InvalidInputError("a spec needs 'counts' and 'tau'")
        return cls.from_counts(data["counts"], data["tau"],
                               **{k: v for k, v in data.items() if k not in ("counts", "tau")})


MAX_NAME_LENGTH = 200
"""Longest class name accepted (a name is a label, not a document)."""


def _check_names(names: object, k: int) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise InvalidInputError("class names must be a list of strings")
    if len(names) != k:
        raise InvalidInputError(f"{len(names)} class names for {k} classes")
    out = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"a class name must be a non-empty string, got {name!r}")
        if len(name) > MAX_NAME_LENGTH or any(ch in name for ch in "\n\r\t"):
            raise InvalidInputError(f"class name {name[:30]!r}... is longer than "
                                    f"{MAX_NAME_LENGTH} characters or not on one line")
        out.append(name.strip())
    if len(set(out)) != len(out):
        dup = next(x for x in out if out.count(x) > 1)
        raise InvalidInputError(f"class name {dup!r} is given to two classes")
    return tuple(out)


def _positive_int(x: object, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (Integral, float)) \
            or (isinstance(x, float) and not math.isfinite(x)) or x != int(x) or x < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {x!r}")
    if x > MAX_SAMPLES:
        raise InvalidInputError(f"{name} = {x!r} is above the limit 2**53 = {MAX_SAMPLES}")
    return int(x)


def _check_size(k: int, n: float) -> None:
    """Refuse a generated problem before its count vector is built."""
    if k > MAX_CLASSES:
        raise InvalidInputError(f"k = {k} classes is above the limit {MAX_CLASSES}")
    if n > MAX_SAMPLES:
        raise InvalidInputError(f"the problem has about {n:.3g} samples, above the limit "
                                f"2**53 = {MAX_SAMPLES} (float64 is exact only up to there)")


def _finite(x: object, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, Real) or not math.isfinite(float(x)):
        raise InvalidInputError(f"{name} must be a finite number, got {x!r}")
    return float(x)
