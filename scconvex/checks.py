"""Checks of scalar inputs shared by every layer (a bad value is an InvalidInputError)."""

from __future__ import annotations

import math
from numbers import Real

from .errors import InvalidInputError

TAU_MIN = 1e-300
"""Smallest temperature. The loss works with ``(cos - 1) / tau`` and gradients of size
``1 / tau``; below ``1e-300`` these come within a factor ``1e8`` of the float64 range
(about ``1.8e308``) and sums of them overflow."""


def check_tau(tau: object) -> float:
    """``tau`` as a float, or InvalidInputError unless it is a finite real number > 0."""
    if isinstance(tau, bool) or not isinstance(tau, Real):
        raise InvalidInputError(f"tau must be a real number, got {tau!r}")
    tau = float(tau)
    if not math.isfinite(tau) or tau <= 0:
        raise InvalidInputError(f"tau must be finite and > 0, got {tau!r}")
    if tau < TAU_MIN:
        raise InvalidInputError(f"tau must be at least {TAU_MIN:g} (float64 range), got {tau!r}")
    return tau


def check_tolerance(value: object, name: str) -> float:
    """A tolerance as a float, or InvalidInputError unless it is finite and > 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"{name} must be finite and > 0, got {value!r}")
    return value
