"""Minority collapse against the imbalance ratio R, with a certificate for every point.

    python examples/minority_collapse.py [--tau 0.1] [--plot collapse.png]

STEP imbalance: 10 classes, 5 majority classes of 5 R samples and 5 minority classes of 5.
As R grows, the optimal cosine between two minority class means climbs towards 1 (Fang et
al., PNAS 2021). Each solve is at group level: three unknowns whatever R is.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from scconvex import ProblemSpec, solve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tau", type=float, default=0.1)
    parser.add_argument("--plot", metavar="FILE", help="also draw the curves (needs matplotlib)")
    args = parser.parse_args(argv)

    ratios = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000]
    rows = []
    print(f"STEP, k = 10, rho = 0.5, n_min = 5, tau = {args.tau:g}")
    print(f"{'R':>6}  {'maj-maj':>8}  {'min-min':>8}  {'maj-min':>8}  {'rel. gap':>8}  status")
    for R in ratios:
        res = solve(ProblemSpec.step(k=10, rho=0.5, ratio=R, n_min=5, tau=args.tau))
        M = res.class_gram
        rows.append((R, M[0, 1], M[8, 9], M[0, 9]))
        print(f"{R:>6}  {M[0, 1]:>8.4f}  {M[8, 9]:>8.4f}  {M[0, 9]:>8.4f}  "
              f"{res.sample_rel_gap:>8.1e}  {res.status}")
        if not res.success:
            return 1
    data = np.array(rows)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        for col, label in ((1, "majority-majority"), (2, "minority-minority"),
                           (3, "majority-minority")):
            ax.semilogx(data[:, 0], data[:, col], marker="o", label=label)
        ax.set_xlabel("imbalance ratio R")
        ax.set_ylabel("cosine between class means")
        ax.set_title(f"STEP, k = 10, tau = {args.tau:g} (certified)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
