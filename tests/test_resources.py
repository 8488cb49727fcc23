"""Memory estimates and the budget: refusals happen before allocation and name a way out."""

import pytest

from scconvex import ProblemSpec, solve
from scconvex.errors import ResourceLimitError
from scconvex.resources import (
    BASE_BYTES,
    available_memory,
    check_memory,
    format_bytes,
    parse_bytes,
    solve_bytes,
)


@pytest.mark.parametrize("text, value", [("4G", 4 * 2**30), ("512M", 512 * 2**20),
                                         ("1.5KiB", 1536), ("1000", 1000), ("2tb", 2 * 2**40)])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "x", "-1G", "0", "inf"])
def test_parse_bytes_rejects_nonsense(text):
    with pytest.raises(ResourceLimitError):
        parse_bytes(text)


def test_format_bytes_units():
    assert format_bytes(512) == "512 B"
    assert format_bytes(74.5 * 2**30) == "74.5 GiB"
    assert "PiB" in format_bytes(1e30)


@pytest.mark.parametrize("n, asked", [(300, 16_308_180_000), (440, 75_303_043_200)])
def test_clarabel_estimate_covers_what_clarabel_asked_for(n, asked):
    # Clarabel's failed allocation at sample level (obs. 7), 8 t^2 bytes, t = n (n + 1) / 2.
    assert asked == 8 * (n * (n + 1) // 2) ** 2
    assert solve_bytes(n, "clarabel") >= asked


def test_environment_caps_the_budget(monkeypatch):
    monkeypatch.setenv("SCCONVEX_MEMORY_LIMIT", "3M")
    assert available_memory() <= 3 * 2**20
    with pytest.raises(ResourceLimitError, match=r"needs about .* 3\.0 MiB available; go"):
        check_memory(4 * 2**20, "this", "go")


def test_explicit_solver_that_does_not_fit_is_refused(monkeypatch):
    spec = ProblemSpec((4, 4, 3, 3, 2), 0.5)
    monkeypatch.setenv("SCCONVEX_MEMORY_LIMIT", str(BASE_BYTES // 2))
    with pytest.raises(ResourceLimitError, match="use --level group"):
        solve(spec, level="class", solver="native")


def test_fallback_that_does_not_fit_is_skipped_with_a_note(monkeypatch):
    counts = tuple(range(2, 32))
    spec = ProblemSpec(counts, 0.1)
    k = len(counts)
    native = solve_bytes(k, "native")
    assert solve_bytes(k, "clarabel") > native + 2**20
    monkeypatch.setenv("SCCONVEX_MEMORY_LIMIT", str(int(native) + 2**19))
    res = solve(spec, level="class", options={"max_iter": 1})  # native cannot certify
    assert res.solver == "native" and res.status != "optimal"
    assert "clarabel fallback skipped" in res.message and "memory" in res.message


def test_estimate_depends_on_the_side_and_the_solver_only():
    # The per-entry costs of the module docstring, written out: 25 dense float64 copies,
    # plus Clarabel's dense t x t PSD block (t = m (m + 1) / 2) or SCS's 8 KiB per entry.
    m = 50
    dense = 200 * 2**20 + 200 * m * m
    assert solve_bytes(m, "native") == dense
    assert solve_bytes(m, "clarabel") == dense + 64 * (m * (m + 1) / 2) ** 2
    assert solve_bytes(m, "scs") == dense + 8192 * m * m


@pytest.mark.parametrize("counts", [(5, 5, 3, 1, 1), (9, 4, 2, 1), (3, 3, 3, 3)])
def test_each_level_estimates_its_own_memory(counts):
    """A level's estimate is that of its side (g, k or n); the bound from the spec alone
    (what a sweep sizes its workers by) is never below it."""
    from scconvex.levels import LEVELS
    from scconvex.problem.model import build_model

    spec = ProblemSpec(counts, 0.5)
    sides = {"group": len(set(counts)), "class": len(counts), "sample": sum(counts)}
    for name, level in LEVELS.items():
        model = build_model(spec, level)
        for solver in ("native", "clarabel", "scs"):
            assert level.memory(model, solver) == solve_bytes(sides[name], solver)
            assert level.memory_bound(spec, solver) >= level.memory(model, solver)
