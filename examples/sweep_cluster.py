"""A sweep over the imbalance ratio and the temperature on a Dask cluster.

    python examples/sweep_cluster.py                       # threads in this process
    python examples/sweep_cluster.py --workers 2           # a LocalCluster of 2 processes
    python examples/sweep_cluster.py --scheduler tcp://HOST:8786   # an existing cluster

Every worker needs scconvex installed. Group-level solves take milliseconds, so the grid
is cut into one task per temperature rather than one per point. Results are gathered on
the client, checked (every point must be certified) and written as CSV.

``scconvex sweep`` does the same with an on-disk atlas, resuming and figures (see
docs/sweeps.md); this script shows the pattern with plain Dask, for grids of your own.
"""

from __future__ import annotations

import argparse
import csv
import sys


def solve_row(tau: float, ratios: list[float]) -> list[dict]:
    """Solve STEP(k=10, rho=0.5, n_min=5) at one temperature for every ratio (on a worker)."""
    from scconvex import ProblemSpec, solve

    out = []
    for R in ratios:
        res = solve(ProblemSpec.step(k=10, rho=0.5, ratio=R, n_min=5, tau=tau))
        M = res.class_gram
        out.append({"tau": tau, "R": R, "status": res.status, "loss": res.loss,
                    "sample_rel_gap": res.sample_rel_gap, "maj_maj": M[0, 1],
                    "min_min": M[8, 9], "maj_min": M[0, 9]})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    parser.add_argument("--workers", type=int, default=0,
                        help="start a LocalCluster with this many worker processes "
                             "(default: threads in this process)")
    parser.add_argument("--out", default="sweep.csv", help="CSV file to write")
    args = parser.parse_args(argv)
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print("this example needs dask.distributed: pip install 'dask[distributed]'")
        return 0

    if args.scheduler:
        client = Client(args.scheduler)
    elif args.workers:
        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                     dashboard_address=":0"))
    else:
        client = Client(processes=False, n_workers=1, threads_per_worker=2,
                        dashboard_address=":0")
    ratios = [1, 2, 5, 10, 20, 50, 100]
    taus = [0.1, 0.5, 1.0]
    with client:
        futures = [client.submit(solve_row, tau, ratios, pure=False) for tau in taus]
        rows = [row for batch in client.gather(futures) for row in batch]

    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    certified = sum(row["status"] == "optimal" for row in rows)
    print(f"{len(rows)} solves, {certified} certified; wrote {args.out}")
    for tau in taus:
        line = "  ".join(f"{row['min_min']:+.3f}" for row in rows if row["tau"] == tau)
        print(f"tau {tau:>4}: minority-minority cosine for R = {ratios}: {line}")
    return 0 if certified == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
