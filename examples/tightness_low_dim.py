"""Is the relaxation tight in low dimension? Relaxed optimum against non-convex solves.

    python examples/tightness_low_dim.py [--counts 20,20,2,2] [--tau 0.1]

Solves the convex relaxation, reads the rank r of the optimal class Gram, and runs the
non-convex solver on products of spheres in dimensions 1 .. r + 1. Below r no feature set
reaches the relaxed optimum; from r on every restart should. At d = r the exact factor of
the optimum gives sample features whose SC loss equals the certified optimum.
"""

from __future__ import annotations

import argparse
import sys

from scconvex import ProblemSpec, factor, sc_loss, solve, tightness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="20,20,2,2")
    parser.add_argument("--tau", type=float, default=0.1)
    parser.add_argument("--restarts", type=int, default=3)
    args = parser.parse_args(argv)

    spec = ProblemSpec.from_counts([int(c) for c in args.counts.split(",")], tau=args.tau)
    relaxed = solve(spec, level="class")
    print(f"counts {args.counts}, tau {spec.tau:g}: relaxed loss {relaxed.loss:.10f}, "
          f"rank {relaxed.rank}, {relaxed.status}")
    dims = list(range(1, relaxed.rank + 2))
    report = tightness(spec, dims, restarts=args.restarts, relaxed=relaxed)
    for row in report.rows:
        verdict = "tight" if row.tight else "not tight"
        print(f"  d = {row.d}: best loss {row.best_loss:.10f}, relative gap "
              f"{max(row.rel_gap, 0.0):.1e}, {row.reached}/{row.restarts} restarts reach "
              f"it: {verdict}")
    H = factor(relaxed, d=relaxed.rank, samples=True).features
    loss = sc_loss(H, spec.labels, spec.tau)
    print(f"exact factor in d = {relaxed.rank}: {H.shape[0]} sample features, SC loss "
          f"{loss:.10f}")
    first_tight = next((row.d for row in report.rows if row.tight), None)
    print(f"smallest tight dimension found: {first_tight}")
    return 0 if relaxed.success and first_tight is not None else 1


if __name__ == "__main__":
    sys.exit(main())
