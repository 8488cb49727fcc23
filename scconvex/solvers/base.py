"""What every solver backend is: its raw result, its interface and its options check.

A backend has a ``name``, an ``available()`` check that imports nothing heavy, the levels
it supports, the options it accepts, and ``solve(model, options) -> RawResult``. What a
backend returns is *not* trusted: :mod:`scconvex.certificates.repair` makes it feasible and
:mod:`scconvex.certificates.certify` proves (or fails to prove) its optimality.

Raw statuses form a fixed vocabulary, :data:`RAW_STATUSES`; each backend maps its native
codes through a small table and anything unknown becomes ``"error"``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, InvalidInputError, UnsupportedModelError

RAW_STATUSES = ("optimal", "inaccurate", "time_limit", "iteration_limit", "error")


@dataclass(frozen=True, eq=False)
class RawResult:
    """What a backend returns, before repair and certification.

    Attributes
    ----------
    status : str
        One of :data:`RAW_STATUSES`.
    X : ndarray or None
        The model variable (``G``, ``M`` or ``B``), possibly slightly infeasible; None if
        the solver produced nothing.
    message : str
        Human-readable detail (the native status string, the failure reason).
    iterations : int
    info : dict
        Backend-specific extras (JSON-safe scalars only).
    rounded : scconvex.certificates.certify.Rounded or None
        ``X`` rounded and certified by the pipeline's
        :class:`~scconvex.certificates.certify.Rounder`,
        when the backend already did it to choose ``X``; the pipeline reuses it (only if
        that rounder made it from this ``X``).
    """

    status: str
    X: np.ndarray | None
    message: str = ""
    iterations: int = 0
    info: dict = field(default_factory=dict)
    rounded: Any = None


@dataclass(frozen=True)
class Backend:
    """A solver backend.

    Attributes
    ----------
    name : str
    levels : tuple of Level
        Model levels it can solve (:mod:`scconvex.levels`).
    options : Mapping[str, Any]
        Accepted options and their defaults; anything else is rejected.
    requires : tuple of str
        Modules that must be importable for the backend to be available.
    run : callable
        ``run(model, options) -> RawResult`` with validated options.
    relaxations : tuple of str
        Relaxations (``spec.relaxation``) it can solve.
    uses_rounder : bool
        ``run`` takes a ``rounder`` keyword (:class:`scconvex.certificates.certify.Rounder`)
        to score its answers with, and returns the rounding of its choice in
        ``RawResult.rounded``.
    lean : bool
        Its memory grows like ``m^2`` (no dense PSD-cone block): the one to suggest when
        another backend does not fit.
    """

    name: str
    levels: tuple
    options: Mapping[str, Any]
    requires: tuple[str, ...]
    run: Callable[..., RawResult]
    relaxations: tuple[str, ...] = ("elliptope",)
    uses_rounder: bool = False
    lean: bool = False

    def supports(self, model) -> bool:
        """True when the backend can solve ``model`` (its level and relaxation)."""
        return model.level in self.levels and model.spec.relaxation in self.relaxations

    def available(self) -> bool:
        """True when every required module can be found (nothing is imported)."""
        return all(importlib.util.find_spec(mod) is not None for mod in self.requires)

    def check_options(self, options: Mapping[str, Any] | None) -> dict:
        """Defaults overlaid with ``options``; unknown keys raise InvalidInputError."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise InvalidInputError(f"unknown option(s) {unknown} for solver {self.name!r}; "
                                    f"accepted: {sorted(self.options)}")
        for key, value in options.items():
            _check_option(self.name, key, value, self.options[key])
        return {**self.options, **options}

    def solve(self, model, options: Mapping[str, Any] | None = None, *,
              rounder=None) -> RawResult:
        """Solve ``model``; validates availability, level and options first.

        ``rounder`` (:class:`scconvex.certificates.certify.Rounder`) is what the pipeline will round
        and certify the answer with; backends that compare answers use it.
        """
        if not self.available():
            raise BackendUnavailableError(f"solver {self.name!r} is not installed "
                                          f"(needs {', '.join(self.requires)})")
        if model.level not in self.levels:
            names = tuple(level.name for level in self.levels)
            raise UnsupportedModelError(f"solver {self.name!r} cannot solve the "
                                        f"{model.level.name} level (supports {names})")
        if not self.supports(model):
            raise UnsupportedModelError(f"solver {self.name!r} cannot solve the "
                                        f"{model.spec.relaxation!r} relaxation (supports "
                                        f"{self.relaxations})")
        options = self.check_options(options)
        if self.uses_rounder:
            return self.run(model, options, rounder=rounder)
        return self.run(model, options)


def _check_option(solver: str, key: str, value: Any, default: Any) -> None:
    """Options whose default is a number must be finite positive numbers (``None`` stays
    allowed where it is the default, meaning "no limit"); boolean options must be bools."""
    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise InvalidInputError(f"option {key!r} of {solver!r} must be true or false, "
                                    f"got {value!r}")
        return
    numeric = default is None or isinstance(default, (int, float))
    if not numeric or (default is None and value is None):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"option {key!r} of {solver!r} must be a number, "
                                f"got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise InvalidInputError(f"option {key!r} of {solver!r} must be finite and > 0, "
                                f"got {value!r}")
    if isinstance(default, int) and value != int(value):
        raise InvalidInputError(f"option {key!r} of {solver!r} must be a whole number, "
                                f"got {value!r}")


BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Add a backend to the registry :data:`BACKENDS`."""
    BACKENDS[backend.name] = backend
    return backend
