"""A bug inside a backend is a failed solve with a fallback, not a crash of ``solve``.

Found by the attacker's pass: the native solver raised ``UnboundLocalError`` (its line
search, on a step where the log excess is -inf) for the negatives-only loss at counts
1,3,1, and ``solve`` crashed with it instead of falling back to Clarabel; its cost also
printed ``RuntimeWarning: invalid value`` lines on stderr.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from scconvex import ProblemSpec, solve
from scconvex.losses.base import BlockLogExcessCost
from scconvex.problem.model import block_gram, build_model
from scconvex.solvers import BACKENDS, get_backend


def test_backend_bug_falls_back_and_is_named(monkeypatch):
    def broken(model, options):
        raise RuntimeError("a bug")

    monkeypatch.setitem(BACKENDS, "native", replace(get_backend("native"), run=broken))
    res = solve(ProblemSpec((5, 4, 3), 0.5))
    assert res.success and res.solver == "clarabel"
    assert "internal error in the native backend (RuntimeError: a bug)" in res.message
    res = solve(ProblemSpec((5, 4, 3), 0.5), solver="native")  # no fallback: failed
    assert res.status == "failed" and "RuntimeError: a bug" in res.message


def test_log_excess_cost_at_zero_excess_has_no_nan():
    # One class with positives: its negatives all at -1 attain the loss's constant.
    model = build_model(ProblemSpec((1, 3, 1), 1.0, loss="negatives-only"), "class")
    u = np.array([-1.0, 1.0, -1.0])
    F, C = BlockLogExcessCost(model, model.loss)(block_gram(np.outer(u, u), model.sizes))
    assert F == -math.inf and np.all(np.isfinite(C))
