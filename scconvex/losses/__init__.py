"""Losses and relaxations: the objective of the convex program, one object per variant.

A spec names its loss (``spec.loss``) and its constraint set (``spec.relaxation``); this
package maps the names to objects that own all of their math (:mod:`scconvex.losses.base`
says what each supplies and what backends may ask):

``"sc"`` (:mod:`scconvex.losses.sc`)
    The L_out supervised contrastive loss (MATH.md section 2).
``"negatives-only"`` (:mod:`scconvex.losses.negatives`)
    The "decoupled" form: the denominator of anchor ``i`` runs over its negatives only.
a spec with ``batches`` (:mod:`scconvex.losses.batched`)
    Its loss summed over the batches, each on its own sub-Gram.

Relaxations (:mod:`scconvex.losses.relaxations`): ``"elliptope"`` and ``"dnn"``.

A new loss is a :class:`~scconvex.losses.base.Loss` subclass in a module of its own,
registered with :func:`register_loss` (``docs/architecture.md``).
"""

from __future__ import annotations

from functools import lru_cache

from ..errors import InvalidInputError, lookup
from .base import Loss
from .batched import BatchedLoss
from .negatives import NegativesOnly
from .relaxations import RELAXATIONS, Relaxation, get_relaxation
from .sc import SupCon

LOSSES: dict[str, Loss] = {}
"""Loss objects by name (the values of ``ProblemSpec.loss``)."""


def register_loss(loss: Loss) -> Loss:
    """Add ``loss`` to :data:`LOSSES` under its name (a new name only)."""
    if not isinstance(loss, Loss):
        raise InvalidInputError(f"a loss must be a Loss object, got {type(loss).__name__}")
    if loss.name in LOSSES and LOSSES[loss.name] is not loss:
        raise InvalidInputError(f"a loss called {loss.name!r} is already registered")
    LOSSES[loss.name] = loss
    return loss


register_loss(SupCon("sc", "L_out supervised contrastive loss (positives in the denominator)"))
register_loss(NegativesOnly("negatives-only", "denominator over negatives only (decoupled form)"))


def get_loss(name: str) -> Loss:
    """The loss object registered as ``name``."""
    return lookup(LOSSES, name, "loss")


def loss_of(spec) -> Loss:
    """The loss object of a spec: its named loss, summed over batches if it has any."""
    base = get_loss(spec.loss)
    if getattr(spec, "batches", None) is None:
        return base
    return _batched(base, spec.batches)


@lru_cache(maxsize=32)
def _batched(base: Loss, batches: tuple) -> BatchedLoss:
    if not base.batchable:
        names = ", ".join(repr(loss.name) for loss in LOSSES.values() if loss.batchable)
        raise InvalidInputError(f"batches are supported with the {names} loss only (a batch "
                                f"without negatives leaves the {base.name!r} loss undefined)")
    return BatchedLoss(f"{base.name}-batched", f"{base.description}, summed over batches",
                       base, tuple(batches))


def relaxation_of(spec) -> Relaxation:
    """The relaxation object of a spec."""
    return get_relaxation(spec.relaxation)


def loss_constant(spec) -> float:
    """The spec's loss at its geometry-independent lower bound (:meth:`Loss.constant`):
    ``sum_c n_c log(n_c - 1)`` for SC, ``sum_c n_c (log(n - n_c) - 2/tau)`` for
    negatives-only."""
    return loss_of(spec).constant(spec.counts, spec.tau)


__all__ = ["LOSSES", "RELAXATIONS", "Loss", "Relaxation", "get_loss", "get_relaxation",
           "loss_constant", "loss_of", "register_loss", "relaxation_of"]
