"""Time limits hold inside every phase, and sweep workers fit in memory (issue 20).

A running restart of the non-convex solver stops at the deadline, Clarabel's set-up (which
ignores its own time limit) is not started when it cannot end in time, a sweep gives each
point a time limit, and a local cluster has no more workers than memory holds. These tests
use deadlines that have already passed or estimates made large on purpose, so that they do
not depend on the speed of the machine.
"""

from __future__ import annotations

import time

import pytest

import scconvex.solvers.cvxpy_backend as cvxpy_backend
from scconvex import ProblemSpec, solve
from scconvex.features.nonconvex import TIME_LIMIT_MESSAGE, minimize_spheres
from scconvex.features.tightness import tightness
from scconvex.studies.atlas import Atlas
from scconvex.studies.sweep import build_points, run_sweep


def test_a_running_restart_stops_at_the_deadline():
    """Issue 20: the deadline was checked only between restarts, so one restart of a
    large problem ran 8 s past a 3 s limit."""
    spec = ProblemSpec.long_tail(60, 100, 1000, 0.1)
    res = minimize_spheres(spec, 2, restarts=3, deadline=time.perf_counter())
    assert res.timed_out and res.restarts == 1
    assert res.iterations == (0,) and res.messages == (TIME_LIMIT_MESSAGE,)
    full = minimize_spheres(spec, 2, restarts=1, max_iter=50)
    assert not full.timed_out and full.iterations[0] > 0


def test_tightness_reports_a_dimension_cut_short_as_not_tested():
    spec = ProblemSpec((6, 6, 3, 3), 0.1)
    relaxed = solve(spec, level="class")
    rep = tightness(spec, [2, 3], restarts=2, relaxed=relaxed, time_limit=1e-9)
    assert rep.rows == ()  # not one restart finished: no row claims anything
    rep = tightness(spec, [2, 3], restarts=2, relaxed=relaxed)
    assert [r.restarts for r in rep.rows] == [2, 2]


def test_clarabel_is_not_started_when_its_set_up_cannot_end_in_time(monkeypatch):
    """Issue 20: ``solve --level sample --time-limit 3`` took 6.7 s: Clarabel's set-up
    and first iteration ignore its time limit."""
    limits = []
    real = cvxpy_backend._settings

    def settings(name, options, attempt, time_limit):
        limits.append(time_limit)
        return real(name, options, attempt, time_limit)

    monkeypatch.setattr(cvxpy_backend, "_settings", settings)
    spec = ProblemSpec((3, 3, 2), 0.5)
    monkeypatch.setattr(cvxpy_backend, "clarabel_setup_seconds", lambda model: 100.0)
    res = solve(spec, level="sample", solver="clarabel", options={"time_limit": 5.0})
    assert res.status == "failed" and "needs about 100.0 s to set up" in res.message
    assert limits == []  # nothing was started
    monkeypatch.setattr(cvxpy_backend, "clarabel_setup_seconds", lambda model: 2.0)
    solve(spec, level="sample", solver="clarabel", options={"time_limit": 5.0})
    assert limits and all(limit <= 5.0 - 1.0 for limit in limits)  # one iteration kept


def test_sweep_time_limit_per_point(tmp_path, monkeypatch):
    """Issue 20: ``sweep`` had no time limit. Each point's solve gets it, its tightness
    rows what is left, and rows cut short are not stored (the next run computes them)."""
    import scconvex.features.tightness as tightness_module
    import scconvex.pipeline.solve as solve_module

    seen = {"solve": [], "tightness": []}
    real_solve, real_tightness = solve_module.solve, tightness_module.tightness

    def solve_spy(*args, **kwargs):
        seen["solve"].append(kwargs.get("options"))
        return real_solve(*args, **kwargs)

    def tightness_spy(*args, **kwargs):
        seen["tightness"].append(kwargs.get("time_limit"))
        return real_tightness(*args, **kwargs)

    monkeypatch.setattr(solve_module, "solve", solve_spy)
    monkeypatch.setattr(tightness_module, "tightness", tightness_spy)
    path = str(tmp_path / "a.sqlite")
    grid = {"step_k": 4, "rho": 0.5, "n_min": 3, "R": "2", "tau": "0.1", "dims": "2",
            "restarts": 1}
    points = build_points({**grid, "time_limit": "30"})
    assert points[0]["time_limit"] == 30.0
    assert points[0]["key"] == build_points(grid)[0]["key"]  # not part of the problem
    with Atlas(path, create=True) as atlas:
        run_sweep(points, atlas, workers=0)
        assert len(atlas.tightness_rows()) == 1
    assert seen["solve"] == [{"time_limit": 30.0}]
    assert len(seen["tightness"]) == 1 and 0 < seen["tightness"][0] <= 30.0
    with Atlas(str(tmp_path / "b.sqlite"), create=True) as atlas:
        run_sweep(build_points({**grid, "time_limit": "1e-9"}), atlas, workers=0)
        assert atlas.tightness_rows() == []  # no time left: no row stored, none claimed
    with pytest.raises(ValueError, match="time-limit"):
        build_points({**grid, "time_limit": "0"})


def test_sweep_workers_are_capped_by_memory(tmp_path, monkeypatch):
    """Issue 20: ``sweep --workers`` had no upper bound (each worker is a process with its
    own interpreter and solves)."""
    import scconvex.studies.sweep as sweep_module
    from scconvex.cli import main

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(sweep_module, "_run_dask", no_cluster)
    monkeypatch.setenv("SCCONVEX_MEMORY_LIMIT", "2G")
    points = build_points({"step_k": 4, "rho": 0.5, "n_min": 3, "R": "2", "tau": "0.1"})
    each = sweep_module.worker_bytes(points)
    assert each >= 200 * 2**20  # an interpreter with numpy and the solver
    with Atlas(str(tmp_path / "a.sqlite"), create=True) as atlas:
        with pytest.raises(ValueError, match=r"at most \d+ workers fit"):
            run_sweep(points, atlas, workers=1000)
    code = main(["sweep", "--step-k", "4", "--rho", "0.5", "--n-min", "3", "--R", "2",
                 "--tau", "0.1", "--workers", "1000", "--atlas", str(tmp_path / "b.sqlite")])
    assert code == 2
