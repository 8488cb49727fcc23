"""The cvxpy backend's attempts: one rounding per answer, and the time limit.

The backend tries several Clarabel settings and scores each answer by its certificate.
It used to round and certify every answer with its own tolerances and then the pipeline
rounded and certified the chosen one again; and its scoring ignored the time limit. The
reference value for the time-limit test is the closed form of the balanced optimum (the
simplex ETF, MATH.md section 4), computed with mpmath.
"""

from __future__ import annotations

import importlib

import mpmath as mp
import numpy as np
import pytest

from scconvex import ProblemSpec, solve
from scconvex.certificates.certify import Rounder
from scconvex.problem.model import build_model
from scconvex.solvers import get_backend

certify_module = importlib.import_module("scconvex.certificates.certify")


def etf_optimum(k: int, m: int, tau: float) -> float:
    """``n log((m - 1) + (n - m) exp(-k / ((k - 1) tau)))`` in 30-digit arithmetic."""
    with mp.workdps(30):
        n = k * m
        return float(n * mp.log((m - 1) + (n - m) * mp.exp(-mp.mpf(k) / ((k - 1) * tau))))


def _counting(monkeypatch) -> list:
    calls = []
    # The Rounder's own entry (round_and_certify without the spectrum wraps it).
    original = certify_module._round_and_certify

    def counted(*args, **kwargs):
        calls.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(certify_module, "_round_and_certify", counted)
    return calls


@pytest.mark.parametrize("counts, tau, level", [((20, 20, 2, 2), 0.1, "class"),
                                                ((5, 5, 3, 3, 2), 0.3, "sample")])
def test_each_answer_is_rounded_and_certified_once(monkeypatch, counts, tau, level):
    calls = _counting(monkeypatch)
    res = solve(ProblemSpec(counts, tau), level=level, solver="clarabel")
    attempts = int(res.message.split("best certificate of ")[1].split(" ")[0])
    # One rounding per solver answer: the pipeline reuses the backend's for its choice
    # (and one more for the polished answer when the bars asked for it).
    assert len(calls) == attempts + ("refine" in res.timings)
    assert len({id(X) for X in calls}) == attempts + ("refine" in res.timings)
    # What is certified is unchanged: the certificate of the point reported.
    again = certify_module.certify(res.model, res.variable)
    assert again[0].gap == res.gap and again[1].gap == res.sample_gap


def test_rounding_is_reused_only_from_its_own_rounder_and_answer():
    model = build_model(ProblemSpec((5, 4, 3), 0.5), "class")
    X = np.full((3, 3), -0.4) + 1.4 * np.eye(3)
    ours = Rounder(model, (1e-6, 1e-3))
    rounded = ours(X)
    assert ours.result_for(X, rounded) is rounded
    assert ours.result_for(X.copy(), rounded) is not rounded  # another answer
    assert Rounder(model, (1e-6, 1e-3)).result_for(X, rounded) is not rounded


SLOW_FOR_A_MILLISECOND = ((8, 8, 8, 8, 8), 0.1)
"""A sample-level program (n = 40) that Clarabel cannot finish in a millisecond."""


def test_tiny_time_limit_gives_a_time_limit_status_and_valid_bounds():
    (counts, tau) = SLOW_FOR_A_MILLISECOND
    res = solve(ProblemSpec(counts, tau), level="sample", solver="clarabel",
                options={"time_limit": 1e-4})
    assert res.raw_status == "time_limit"
    assert "(best certificate of 1 attempt(s))" in res.message  # no further settings
    optimum = etf_optimum(len(counts), counts[0], tau)
    if res.status != "optimal":
        assert res.message.startswith("time limit 0.0001 s reached")
    # Whatever the solver got to: a feasible point and a valid lower bound, not a guess.
    if res.status != "failed":
        assert res.min_eigenvalue >= 0
        assert res.sample_lower_bound <= optimum * (1 + 1e-12) <= res.loss * (1 + 2e-12)


def test_backend_alone_stops_at_the_time_limit():
    (counts, tau) = SLOW_FOR_A_MILLISECOND
    model = build_model(ProblemSpec(counts, tau), "sample")
    raw = get_backend("clarabel").solve(model, {"time_limit": 1e-3})
    assert raw.status == "time_limit" and raw.info["attempts"] == 1
