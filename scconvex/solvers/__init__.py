"""Stage 3 of the pipeline: solver backends behind one interface, in a registry.

:mod:`scconvex.solvers.base` defines a backend (:class:`Backend`) and what it returns
(:class:`RawResult`). Importing a backend's module registers it in :data:`BACKENDS`; the
registry loads the built-in ones (:mod:`scconvex.solvers.native`,
:mod:`scconvex.solvers.cvxpy_backend`) on first lookup. Heavy imports happen inside a
backend's ``run``.
"""

from __future__ import annotations

from ..errors import InvalidInputError
from .base import BACKENDS, RAW_STATUSES, Backend, RawResult, register

__all__ = ["BACKENDS", "RAW_STATUSES", "Backend", "RawResult", "get_backend", "register"]

def get_backend(name: str) -> Backend:
    """Look up a backend by name."""
    _load()
    try:
        return BACKENDS[name]
    except KeyError:
        raise InvalidInputError(f"unknown solver {name!r}; choose one of "
                                f"{sorted(BACKENDS)}") from None


def _load() -> None:
    # Importing the modules registers their backends; heavy imports happen inside `run`.
    from . import cvxpy_backend  # noqa: F401
    try:
        from . import native  # noqa: F401
    except ImportError:
        pass
