"""A new loss goes in through one route: a Loss subclass, registered (docs/architecture.md).

The loss below is the SC loss times a constant ``c``. It is written in this file only, with
the SC loss's own functions, and registered at run time: no module of the package is
touched. Its optimum must be the SC optimum (same geometry, ``c`` times the loss), found
by every backend, certified, written to a file and verified.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from scconvex import ProblemSpec, solve, verify
from scconvex.losses import LOSSES, register_loss
from scconvex.losses.base import BlockTerms, Loss
from scconvex.losses.sc import (
    block_terms,
    sc_block_objective,
    sc_gram_objective,
    sc_loss_gram_grad,
)

C = 3.0


@dataclass(frozen=True)
class ScaledSC(Loss):
    """``c`` times the SC loss."""

    c: float = C

    def sample_value_grad(self, G, labels, tau):
        value, grad = sc_loss_gram_grad(G, labels, tau)
        return self.c * value, self.c * grad

    def constant(self, counts, tau):
        return self.c * float(sum(n * math.log(n - 1) for n in counts if n >= 2))

    def block_terms(self, B, sizes, counts, tau):
        t = block_terms(B, sizes, counts, tau)
        # The excess scales by c; the row quantities (softmax, slope) do not, and the
        # slope's logarithm carries log c (log_slope below), so certificates and the native
        # cost see the same direction with the right scale.
        return BlockTerms(value=self.c * t.value, excess=self.c * t.excess,
                          log_excess=t.log_excess + math.log(self.c), rowlse=t.rowlse,
                          sig=self.c * t.sig, prob=t.prob, weights=t.weights)

    def log_slope(self, r):
        return math.log(self.c) - np.logaddexp(0.0, -np.asarray(r, dtype=float))

    def cvxpy_block_objective(self, model, B):
        return self.c * sc_block_objective(model, B)

    def cvxpy_gram_objective(self, G, labels, tau):
        return self.c * sc_gram_objective(G, labels, tau)


@pytest.fixture
def scaled():
    loss = register_loss(ScaledSC("sc-scaled", "three times the SC loss"))
    yield loss
    LOSSES.pop(loss.name)


@pytest.mark.parametrize(("counts", "tau", "level", "solver"), [
    ((20, 20, 2, 2), 0.1, "auto", "native"),
    ((9, 5, 3, 2), 0.3, "class", "native"),
    ((9, 5, 3, 2), 0.3, "class", "clarabel"),
    ((4, 3, 2), 0.5, "sample", "clarabel"),
])
def test_scaled_loss_has_the_sc_optimum(scaled, counts, tau, level, solver, tmp_path):
    sc = solve(ProblemSpec(counts, tau), level=level, solver=solver)
    res = solve(ProblemSpec(counts, tau, loss=scaled.name), level=level, solver=solver)
    assert sc.success and res.success, res.message
    assert res.loss == pytest.approx(C * sc.loss, rel=1e-9)
    # A second method (the SC solve) for the geometry: the same cosines.
    assert np.max(np.abs(res.class_gram - sc.class_gram)) < 1e-5
    # The certificate is the scaled loss's own and re-checks from the file.
    assert res.sample_lower_bound <= C * sc.loss * (1 + 1e-12)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(res.to_dict()))
    report = verify(path)
    assert report.ok, report.reasons
    assert report.loss == pytest.approx(C * sc.loss, rel=1e-9)


def test_a_name_is_registered_once(scaled):
    with pytest.raises(ValueError, match="already registered"):
        register_loss(ScaledSC("sc-scaled", "another"))
    with pytest.raises(ValueError, match="unknown loss"):
        ProblemSpec((3, 3), 0.5, loss="no-such-loss")
