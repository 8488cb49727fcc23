"""BLAS thread control (scconvex.threads): applied inside, restored after. Not timed."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import scipy.linalg  # noqa: F401  (both OpenBLAS libraries loaded, as in a real solve)
from threadpoolctl import threadpool_info, threadpool_limits

from scconvex import ProblemSpec, solve
from scconvex.errors import InvalidInputError
from scconvex.solvers import BACKENDS, get_backend
from scconvex.threads import blas_threads, check_threads, choose_threads


def blas_counts() -> dict[str, int]:
    """Threads of numpy's and scipy's BLAS (others, such as the single-threaded OpenBLAS
    that SCS ships, cannot be raised and are left out)."""
    return {d["filepath"]: d["num_threads"] for d in threadpool_info()
            if d["user_api"] == "blas" and ("numpy" in d["filepath"]
                                            or "scipy" in d["filepath"])}


def test_limit_applied_inside_and_restored_after():
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_counts()
        with blas_threads(1):
            inside = blas_counts()
        after = blas_counts()
    assert set(inside) == set(before)
    assert all(n == 1 for n in inside.values())
    assert after == before


def test_restored_after_an_exception():
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_counts()
        with pytest.raises(RuntimeError), blas_threads(1):
            raise RuntimeError("boom")
        assert blas_counts() == before


def test_none_leaves_threads_alone():
    before = blas_counts()
    with blas_threads(None):
        assert blas_counts() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_invalid_thread_counts(bad):
    with pytest.raises(InvalidInputError):
        check_threads(bad)
    with pytest.raises(InvalidInputError):
        solve(ProblemSpec((3, 2, 4), 0.5), threads=bad)


def test_choice_defaults_to_one_and_obeys_the_user():
    assert choose_threads(None) == 1
    assert choose_threads(3) == 3


@pytest.mark.parametrize("threads, expected", [(None, 1), (2, 2)])
def test_solve_runs_the_backend_and_certificate_inside_the_limit(monkeypatch, threads,
                                                                 expected):
    seen = []
    native = get_backend("native")

    def spy(model, options):
        seen.append(set(blas_counts().values()))
        return native.run(model, options)

    monkeypatch.setitem(BACKENDS, "native", dataclasses.replace(native, run=spy))
    with threadpool_limits(limits=2 if expected == 1 else 1, user_api="blas"):
        before = blas_counts()
        res = solve(ProblemSpec((3, 2, 4), 0.5), solver="native", threads=threads)
        assert blas_counts() == before
    assert res.success
    assert seen == [{expected}]


@pytest.mark.parametrize("value, code", [("1", 0), ("0", 2), ("x", 2)])
def test_cli_threads_flag(value, code):
    proc = subprocess.run([sys.executable, "-m", "scconvex", "solve", "--counts", "3,2,4",
                           "--tau", "0.5", "--threads", value], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == code
    if code == 2:
        assert len(proc.stderr.strip().splitlines()) == 1


def test_minimize_spheres_runs_inside_the_limit(monkeypatch):
    import scconvex.features.nonconvex as nc

    seen = []
    real = nc.riemannian_lbfgs

    def spy(*args, **kwargs):
        seen.append(set(blas_counts().values()))
        return real(*args, **kwargs)

    monkeypatch.setattr(nc, "riemannian_lbfgs", spy)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_counts()
        nc.minimize_spheres(ProblemSpec((3, 3, 3), 0.5), 2, restarts=1)
        assert blas_counts() == before
    assert seen == [{1}]
