"""The batch-wise SC loss: the sum of per-batch SC losses, each on its own sub-Gram.

A batch scheme is a tuple of batches, each a tuple of sample indices (samples listed class
by class, as :attr:`ProblemSpec.labels`). The loss

    L_batch(G) = sum_b L_SC( G[b, b] ; labels[b] )

is a sum of convex functions of ``G``, so it is convex and MATH.md section 5 certifies it
with the summed gradient. It is defined on samples only: the class reduction holds only
for schemes that treat the samples of a class alike, which a batch scheme in general does
not, so class and group levels are refused (:attr:`BatchedLoss.levels`).
Derivations and measurements: ``docs/variants.md`` section 4.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..losses import Loss


def check_batches(batches: object, n: int) -> tuple[tuple[int, ...], ...]:
    """Validated batch scheme: non-empty batches of distinct indices in ``[0, n)``.

    Every sample must lie in at least one batch (a sample in none would be unconstrained);
    a sample may lie in several.
    """
    if isinstance(batches, (str, bytes)) or not hasattr(batches, "__iter__"):
        raise InvalidInputError("batches must be a list of lists of sample indices")
    out = []
    for b in batches:
        if isinstance(b, (str, bytes)) or not hasattr(b, "__iter__"):
            raise InvalidInputError("every batch must be a list of sample indices")
        idx = []
        for i in b:
            if isinstance(i, np.integer):
                i = int(i)
            if isinstance(i, bool) or not isinstance(i, int):
                raise InvalidInputError(f"sample indices must be integers, got {i!r}")
            if not 0 <= i < n:
                raise InvalidInputError(f"sample index {i} out of range [0, {n})")
            idx.append(i)
        if not idx:
            raise InvalidInputError("a batch must not be empty")
        if len(set(idx)) != len(idx):
            raise InvalidInputError("a batch lists a sample twice")
        out.append(tuple(idx))
    if not out:
        raise InvalidInputError("need at least one batch")
    seen = np.zeros(n, dtype=bool)
    for b in out:
        seen[list(b)] = True
    if not np.all(seen):
        missing = np.flatnonzero(~seen)[:5].tolist()
        raise InvalidInputError(f"every sample must be in a batch; missing e.g. {missing}")
    return tuple(out)


def random_batches(n: int, size: int, seed: int) -> tuple[tuple[int, ...], ...]:
    """Random equal-size batches: a seeded permutation of ``0..n-1`` cut into ``n / size``."""
    for name, v in (("batch size", size), ("batch seed", seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise InvalidInputError(f"{name} must be an integer, got {v!r}")
    if size < 1 or size > n or n % size:
        raise InvalidInputError(f"batch size must divide n = {n} (equal-size batches), "
                                f"got {size}")
    if seed < 0:
        raise InvalidInputError(f"batch seed must be >= 0, got {seed}")
    perm = np.random.default_rng(int(seed)).permutation(n)
    return tuple(tuple(sorted(int(i) for i in perm[j:j + size])) for j in range(0, n, size))


def load_batches(path: str | os.PathLike) -> list:
    """Read a JSON list of index lists (validated later, against the spec)."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {os.fspath(path)!r}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"batches file is not valid JSON ({exc})") from None


@dataclass(frozen=True, eq=False)
class BatchedLoss(Loss):
    """Sum of a base loss over batches (sample level only)."""

    base: Loss | None = None
    batches: tuple = ()
    labels: np.ndarray | None = None

    levels = ("sample",)

    def sample_value_grad(self, G, labels, tau):
        G = np.asarray(G, dtype=float)
        value = 0.0
        C = np.zeros_like(G)
        for b in self.batches:
            idx = np.asarray(b)
            v, Cb = self.base.sample_value_grad(G[np.ix_(idx, idx)], self.labels[idx], tau)
            value += v
            C[np.ix_(idx, idx)] += Cb
        return value, C

    def constant(self, counts, tau):
        k = len(counts)
        return float(sum(self.base.constant(np.bincount(self.labels[list(b)], minlength=k),
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
        from ..solvers.cvxpy_backend import sc_gram_objective

        tau = model.spec.tau
        out = 0
        for b in self.batches:
            idx = np.asarray(b)
            if len(idx) < 2:
                continue
            sub = G[idx, :][:, idx]
            out = out + sc_gram_objective(sub, self.labels[idx], tau)
        return model.scale * out


_REFUSE = ("the batch-wise loss is defined on samples only: the class and group reductions "
           "need a batch scheme that treats the samples of a class alike; use level 'sample'")


def batched_loss(base: Loss, batches, labels) -> BatchedLoss:
    """The batch-wise version of ``base`` (only the SC loss is supported)."""
    if not base.batchable:
        raise InvalidInputError("batches are supported with the 'sc' loss only (a batch "
                                "without negatives leaves the negatives-only loss undefined)")
    return BatchedLoss(f"{base.name}-batched", f"{base.description}, summed over batches",
                       base, tuple(batches), np.asarray(labels))
