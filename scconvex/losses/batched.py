"""The batch-wise loss: the sum of per-batch losses, each on its own sub-Gram.

A batch scheme (:mod:`scconvex.problem.batches`) is a tuple of batches, each a tuple of
sample indices (samples listed class by class, as :attr:`ProblemSpec.labels`). The loss

    L_batch(G) = sum_b L( G[b, b] ; labels[b] )

is a sum of convex functions of ``G``, so it is convex and MATH.md section 5 certifies it
with the summed gradient. Restricted to class-collapsed Grams it is a convex function of
the class Gram ``M`` (each batch contributes through its class composition,
:mod:`scconvex.losses.minibatch`), so it is solved at class level too; whether collapse is
optimal for the scheme is what the sample-level certificate of the lifted answer decides
(dense, O(n^3)). The group level is refused: classes of equal count are not exchangeable
in a given scheme. Derivations and measurements: ``docs/variants.md`` section 4 and
``docs/compare.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..levels import CLASS, SAMPLE
from .base import Loss
from .minibatch import MinibatchCost, minibatch_terms, scheme_compositions


@dataclass(frozen=True, eq=False)
class BatchedLoss(Loss):
    """Sum of a base loss over batches: class level (collapsed geometries) and sample level."""

    base: Loss | None = None
    batches: tuple = ()

    levels = (CLASS, SAMPLE)
    block_template = False

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

    def class_form(self, model, M):
        comp, mult = scheme_compositions(self.batches, tuple(model.spec.counts))
        return minibatch_terms(M, comp, mult, model.spec.tau)

    def native_cost(self, model):
        if model.level.dense or np.any(np.asarray(model.sizes) != 1):
            raise InvalidInputError(_REFUSE)
        comp, mult = scheme_compositions(self.batches, tuple(model.spec.counts))
        return MinibatchCost(model, comp, mult)

    def cvxpy_block_objective(self, model, B):
        import cvxpy as cp

        if np.any(np.asarray(model.sizes) != 1):
            raise InvalidInputError(_REFUSE)
        comp, mult = scheme_compositions(self.batches, tuple(model.spec.counts))
        tau = model.spec.tau
        k = comp.shape[1]
        out = 0
        # One log-sum-exp per (composition, class) row with a positive in its batch: its
        # constant log(C - 1) and the terms log C_c' + (M_cc' - 1) / tau (MATH.md section 4
        # with the batch's counts), scaled by tau / n like the SC objective.
        for j, c in zip(*np.nonzero(comp >= 2), strict=True):
            others = [q for q in range(k) if q != c and comp[j, q] > 0]
            parts = [np.log(comp[j, c] - 1.0) + 0 * B[c, c]]
            parts += [np.log(comp[j, q]) + (B[c, q] - 1.0) / tau for q in others]
            out = out + float(mult[j] * comp[j, c]) * cp.log_sum_exp(cp.hstack(parts))
        return model.scale * tau * out

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


_REFUSE = ("the batch-wise loss reduces at class level (collapsed geometries) and sample level "
           "only: classes of equal count are not exchangeable in a batch scheme, so there is "
           "no group level; use --level class")
