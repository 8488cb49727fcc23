"""Benchmark the loss and relaxation variants: native backend against cvxpy + Clarabel.

Usage::

    python benchmarks/variants.py             # k in (20, 50), both solvers, plus k = 200 native
    python benchmarks/variants.py --quick     # k = 20 only

Every solve runs through :func:`scconvex.pipeline.solve` (backend, repair, certification) on the
same instance for both backends; the table reports wall time, status (from the certificate) and
the certified relative gap. Instances: class level with random distinct counts in
``[2, 600)``, ``tau = 0.1``, for the SC and the negatives-only loss; and the DNN (``--relu``)
relaxation on STEP ``(10, 0.5, 10, 5)`` and long-tail ``(20, 100, 200)`` profiles.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scconvex import ProblemSpec, solve  # noqa: E402


def _run(spec: ProblemSpec, solver: str, level: str = "auto") -> str:
    t0 = time.perf_counter()
    res = solve(spec, solver=solver, level=level)
    seconds = time.perf_counter() - t0
    return f"{solver:>8} {res.status:>11} {seconds:8.2f} s  rel gap {res.rel_gap:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    sizes = (20,) if args.quick else (20, 50, 200)
    for k in sizes:
        counts = tuple(int(c) for c in rng.choice(np.arange(2, 600), size=k, replace=False))
        for loss in ("sc", "negatives-only"):
            spec = ProblemSpec(counts, 0.1, loss=loss)
            solvers = ("native", "clarabel") if k <= 50 else ("native",)
            for solver in solvers:
                print(f"class k={k:<4} {loss:<15}", _run(spec, solver))
    for name, spec in (("STEP 10,0.5,10,5", ProblemSpec.step(10, 0.5, 10, 5, 0.1,
                                                              relaxation="dnn")),
                       ("long tail 20,100,200", ProblemSpec.long_tail(20, 100, 200, 0.1,
                                                                      relaxation="dnn"))):
        for solver in ("native", "clarabel"):
            print(f"dnn {name:<22}", _run(spec, solver))


if __name__ == "__main__":
    main()
