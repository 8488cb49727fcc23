"""Exceptions raised by scconvex.

Every error the package raises on purpose derives from :class:`ScconvexError`, so a
caller can catch them all with one clause; the command-line interface maps
:class:`InvalidInputError` to exit code 2 and every other error to exit code 1.
"""

from __future__ import annotations

from typing import Any


class ScconvexError(Exception):
    """Base class of every error raised by scconvex."""


class InvalidInputError(ScconvexError, ValueError):
    """The input (counts, temperature, arrays, options, files) is not acceptable."""


class BackendUnavailableError(ScconvexError):
    """The requested solver backend is not installed or cannot handle this model."""


class UnsupportedModelError(BackendUnavailableError, InvalidInputError):
    """The chosen solver cannot handle this model (its level or relaxation): a usage error
    (the command line exits 2), caught as either parent."""


class SolveFailedError(ScconvexError):
    """A solve did not produce a certified answer.

    Attributes
    ----------
    result : SolveResult or None
        The (uncertified or failed) result, kept for inspection.
    """

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class VerificationError(ScconvexError):
    """A certificate file could not be verified (malformed, tampered or not optimal)."""


class ResourceLimitError(InvalidInputError):
    """A run was refused before it started: it would need more memory than is available.

    A subclass of :class:`InvalidInputError` (the command line exits with code 2): the
    request is too large for this machine, and the message names a level or solver that
    fits.
    """


def missing_extra(extra: str, exc: ImportError) -> InvalidInputError:
    """The error for an optional dependency that is not installed (names the extra)."""
    return InvalidInputError(f"this needs the optional extra [{extra}] "
                             f"(pip install 'scconvex[{extra}]'): {exc}")


def lookup(registry: dict, name: object, what: str) -> Any:
    """``registry[name]``, or InvalidInputError naming the choices (losses, relaxations)."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise InvalidInputError(f"unknown {what} {name!r}; choose one of "
                                f"{tuple(registry)}") from None
