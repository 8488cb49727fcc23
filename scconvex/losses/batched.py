"""The batch-wise loss: the sum of per-batch losses, each on its own sub-Gram.

A batch scheme (:mod:`scconvex.problem.batches`) is a tuple of batches, each a tuple of
sample indices (samples listed class by class, as :attr:`ProblemSpec.labels`). The loss

    L_batch(G) = sum_b L( G[b, b] ; labels[b] )

is a sum of convex functions of ``G``, so it is convex and MATH.md section 5 certifies it
with the summed gradient. It is defined on samples only: the class reduction holds only
for schemes that treat the samples of a class alike, which a batch scheme in general does
not, so class and group levels are refused (:attr:`BatchedLoss.levels`).
Derivations and measurements: ``docs/variants.md`` section 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..levels import SAMPLE
from .base import Loss


@dataclass(frozen=True, eq=False)
class BatchedLoss(Loss):
    """Sum of a base loss over batches (sample level only)."""

    base: Loss | None = None
    batches: tuple = ()

    levels = (SAMPLE,)

    def sample_value_grad(self, G, labels, tau):
        G = np.asarray(G, dtype=float)
        labels = np.asarray(labels)
        value = 0.0
        C = np.zeros_like(G)
        for b in self.batches:
            idx = np.asarray(b)
            v, Cb = self.base.sample_value_grad(G[np.ix_(idx, idx)], labels[idx], tau)
            value += v
            C[np.ix_(idx, idx)] += Cb
        return value, C

    def constant(self, counts, tau):
        k = len(counts)
        labels = np.repeat(np.arange(k), counts)
        return float(sum(self.base.constant(np.bincount(labels[list(b)], minlength=k),
                                            tau) for b in self.batches))

    def anchor_count(self, spec):
        return int(sum(len(b) for b in self.batches))

    def gap_scale(self, value, excess):
        return self.base.gap_scale(value, excess)

    def block_terms(self, B, sizes, counts, tau):
        raise InvalidInputError(_REFUSE)

    def native_cost(self, model):
        raise InvalidInputError(_REFUSE)

    def cvxpy_sample_objective(self, model, G):
        tau = model.spec.tau
        labels = model.spec.labels
        out = 0
        for b in self.batches:
            idx = np.asarray(b)
            if len(idx) < 2:
                continue
            sub = G[idx, :][:, idx]
            out = out + self.base.cvxpy_gram_objective(sub, labels[idx], tau)
        return model.scale * out


_REFUSE = ("the batch-wise loss is defined on samples only: the class and group reductions "
           "need a batch scheme that treats the samples of a class alike; use level 'sample'")
