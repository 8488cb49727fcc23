"""Measure the outcome of each extreme regime of issue 8 (the table in docs/regimes.md).

Usage::

    python benchmarks/regimes.py            # prints a markdown table

Each row runs ``scconvex.solve`` with default options (``level="auto"``,
``solver="auto"``) and reports the status, the certified gaps (relative to the loss and to
the excess loss, the larger of the class-level and sample-level one), the uniqueness proof
and the widest proven cosine bar, and the wall time. A refusal (InvalidInputError) is
reported with its message. Times are from a loaded 2-core machine and only indicate the
order of magnitude.
"""

from __future__ import annotations

import time

import numpy as np

from scconvex import InvalidInputError, ProblemSpec, solve

REGIMES = [
    ("tau = 1e-308", lambda: ProblemSpec((5, 3, 2), 1e-308)),
    ("tau = 1e-6 (below the range)", lambda: ProblemSpec((5, 3, 2), 1e-6)),
    ("tau = 1e-5 (lowest accepted)", lambda: ProblemSpec((9, 5, 3), 1e-5)),
    ("tau = 1e-4", lambda: ProblemSpec((5, 3, 2), 1e-4)),
    ("tau = 1e-4, STEP 10,0.5,10,5", lambda: ProblemSpec.step(10, 0.5, 10, 5, 1e-4)),
    ("tau = 0.005", lambda: ProblemSpec((5, 3, 2), 0.005)),
    ("tau = 0.01", lambda: ProblemSpec((5, 3, 2), 0.01)),
    ("tau = 0.01, counts 10,10,1,1,1", lambda: ProblemSpec((10, 10, 1, 1, 1), 0.01)),
    ("tau = 100", lambda: ProblemSpec((5, 3, 2), 100.0)),
    ("tau = 1e4", lambda: ProblemSpec((5, 3, 2), 1e4)),
    ("tau = 1e4, balanced 6 x 4", lambda: ProblemSpec((4,) * 6, 1e4)),
    ("tau = 1e101", lambda: ProblemSpec((5, 3, 2), 1e101)),
    ("STEP R = 1e2", lambda: ProblemSpec.step(10, 0.5, 1e2, 5, 0.1)),
    ("STEP R = 1e4", lambda: ProblemSpec.step(10, 0.5, 1e4, 5, 0.1)),
    ("STEP R = 1e6", lambda: ProblemSpec.step(10, 0.5, 1e6, 5, 0.1)),
    ("long tail 8, R = 1e6, n_max 1e7", lambda: ProblemSpec.long_tail(8, 1e6, 10**7, 0.1)),
    ("counts 1e9,1e9,5 (tau 0.5)", lambda: ProblemSpec((10**9, 10**9, 5), 0.5)),
    ("counts 1e9,3,2 (tau 0.5)", lambda: ProblemSpec((10**9, 3, 2), 0.5)),
    ("counts 5e7,5e7,5,5 (tau 0.1)", lambda: ProblemSpec((5 * 10**7, 5 * 10**7, 5, 5), 0.1)),
    ("k = 2: 5,3 (tau 0.1)", lambda: ProblemSpec((5, 3), 0.1)),
    ("k = 2: 1e9,1 (tau 0.1)", lambda: ProblemSpec((10**9, 1), 0.1)),
    ("k = 1e5: STEP 100000,0.5,10,5", lambda: ProblemSpec.step(100_000, 0.5, 10, 5, 0.1)),
    ("k = 1e5: 10 counts x 10^4 classes",
     lambda: ProblemSpec(tuple(np.repeat(np.arange(2, 12), 10_000).tolist()), 0.1)),
    ("k = 1e5: balanced, 3 each", lambda: ProblemSpec((3,) * 100_000, 0.2)),
    ("singletons 10,1,1 (tau 0.1)", lambda: ProblemSpec((10, 1, 1), 0.1)),
    ("singletons 2,1,1,1 (tau 0.1)", lambda: ProblemSpec((2, 1, 1, 1), 0.1)),
    ("singletons 5,5,3,1,1 (tau 0.3)", lambda: ProblemSpec((5, 5, 3, 1, 1), 0.3)),
    ("sample level 4,3,2 (tau 0.5)", lambda: (ProblemSpec((4, 3, 2), 0.5), "sample")),
]


def main() -> None:
    print("| regime | level | solver | status | rel. gap | excess gap | unique | widest bar "
          "| time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, make in REGIMES:
        t0 = time.perf_counter()
        try:
            made = make()
            spec, level = made if isinstance(made, tuple) else (made, None)
            res = solve(spec, level=level)
        except InvalidInputError as exc:
            print(f"| {name} | | | refused: {exc} | | | | | {time.perf_counter() - t0:.2f} s |")
            continue
        rel = max(res.rel_gap, res.sample_rel_gap)
        ex = max(res.certificate.excess_gap, res.sample_certificate.excess_gap)
        proof = {True: "proven", False: "proven not", None: "not proven"}[res.unique]
        bar = "-" if res.bars is None else f"{res.bars.max_half_width:.1e}"
        print(f"| {name} | {res.level} | {res.solver} | {res.status} | {rel:.1e} | {ex:.1e} "
              f"| {proof} | {bar} | {res.seconds:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
