"""Cost of the certified cosine bars (issue 17) next to the solve they certify.

For class-level solves with ``k`` distinct counts (``run.class_counts``, tau = 0.1) and
an ImageNet-LT-sized long tail at group level, each run solves once (``solve`` computes
the bars of every certified answer, and polishes small answers whose bars are wide), then
computes the bars of the answer again on their own
(``scconvex.certificates.bars.model_bars``) to time them. Reported: CPU seconds of the
solve without the bars and of the bars (``time.process_time``, which other work on the
shared machine does not inflate), their ratio, the wall time of a polish when one ran,
the widest and the median bar, and ``collapse_delta``; median of ``--repeats`` runs. The
1-minute load average is recorded before and after.

Usage: ``python benchmarks/bars.py [--repeats 3] [--ks 200,500,1000] [--json out.json]``.
The issue's budget: the bars add at most 10 % to a k = 1000 class-level solve.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from load import load_average
from run import class_counts


def measure(spec, level: str) -> dict:
    """One solve and the bars of its answer, CPU seconds of each."""
    from scconvex import solve
    from scconvex.certificates.bars import model_bars
    from scconvex.threads import blas_threads

    with blas_threads(1):
        c0 = time.process_time()
        res = solve(spec, level=level, threads=1)
        solve_cpu = time.process_time() - c0
        c0 = time.process_time()
        bars = model_bars(res.model, res.variable, res.certificate, res.sample_certificate)
        bars_cpu = time.process_time() - c0
    widths = bars.half_width[bars.cosines]
    return {"status": res.status, "g": int(res.model.dim),
            "solve_cpu": solve_cpu - bars_cpu, "bars_cpu": bars_cpu,
            "refine_s": res.timings.get("refine", 0.0), "max_bar": float(np.max(widths)),
            "median_bar": float(np.median(widths)), "collapse_delta": bars.collapse_delta,
            "excess_gap": res.certificate.excess_gap}


def median_row(rows: list[dict]) -> dict:
    out = dict(rows[-1])
    for key in ("solve_cpu", "bars_cpu"):
        out[key] = statistics.median(r[key] for r in rows)
    out["ratio"] = statistics.median(r["bars_cpu"] / r["solve_cpu"] for r in rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ks", default="200,500,1000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from scconvex import ProblemSpec

    cases = [(f"class level k = {k}, distinct counts, tau = 0.1",
              ProblemSpec(class_counts(k, args.seed), 0.1), "class")
             for k in map(int, args.ks.split(","))]
    cases.append(("ImageNet-LT-sized long tail (1000,256,1280), group level",
                  ProblemSpec.long_tail(1000, 256, 1280, 0.1), "auto"))
    out = {"load_start": load_average(), "rows": {}}
    for name, spec, level in cases:
        row = median_row([measure(spec, level) for _ in range(args.repeats)])
        out["rows"][name] = row
        print(f"{name}: solve {row['solve_cpu']:.2f} s, bars {row['bars_cpu']:.3f} s "
              f"({100 * row['ratio']:.1f} %), widest bar {row['max_bar']:.1e}, median "
              f"{row['median_bar']:.1e}, collapse delta {row['collapse_delta']:.1e}",
              flush=True)
    out["load_end"] = load_average()
    print(f"load average (1 min): {out['load_start']} at start, {out['load_end']} at end")
    print("\n| instance | g | solve cpu s (without bars) | bars cpu s | bars / solve | "
          "polish s | widest bar | median bar | collapse delta |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in out["rows"].items():
        print(f"| {name} | {r['g']} | {r['solve_cpu']:.2f} | {r['bars_cpu']:.3f} | "
              f"{100 * r['ratio']:.1f} % | {r['refine_s']:.3f} | {r['max_bar']:.1e} | "
              f"{r['median_bar']:.1e} | {r['collapse_delta']:.1e} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
