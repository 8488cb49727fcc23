"""Time and peak memory of :func:`scconvex.sc_loss` on real-sized feature matrices.

Usage::

    python benchmarks/sc_loss_memory.py                       # n = 1e3 .. 1e5, d = 512
    python benchmarks/sc_loss_memory.py --n 1000,10000 --d 128 --grad
    python benchmarks/sc_loss_memory.py --out docs/           # also CSV and figure

Each measurement runs in its own subprocess, so that its peak resident set size
(``ru_maxrss``) is its own: the table shows the peak minus the size just before the call
(the features themselves, ``8 n d`` bytes, are counted in the baseline), next to what one
dense ``n x n`` matrix of ``H H^T`` would take. Labels are random over 100 classes, rows
random unit vectors, ``tau = 0.1``. Not part of the test suite: on 2 cores ``n = 1e5``,
``d = 512`` takes minutes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
import numpy as np
from scconvex import sc_loss, sc_loss_grad
n, d, grad, chunk = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
chunk = None if chunk == "auto" else int(chunk)
rng = np.random.default_rng(0)
H = rng.standard_normal((n, d))
H /= np.linalg.norm(H, axis=1, keepdims=True)
labels = rng.integers(0, 100, size=n)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if grad:
    value = sc_loss_grad(H, labels, 0.1, chunk=chunk)[0]
else:
    value = sc_loss(H, labels, 0.1, normalize=False, chunk=chunk)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "d": d, "grad": grad, "seconds": seconds, "value": value,
                  "base_mib": base / 1024, "extra_mib": (peak - base) / 1024,
                  "peak_mib": peak / 1024}))
"""


def measure(n: int, d: int, grad: bool, chunk: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(d), "1" if grad else "0",
                          chunk], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        return {"n": n, "d": d, "grad": grad, "error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="1000,3000,10000,30000,100000")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--grad", action="store_true", help="time sc_loss_grad instead")
    ap.add_argument("--chunk", default="auto", help="rows per block (default: automatic)")
    ap.add_argument("--out", type=Path, help="directory for sc_loss_memory.csv/.png")
    ap.add_argument("--append", action="store_true",
                    help="merge with the rows already in OUT/sc_loss_memory.csv (same n, d "
                         "and grad are replaced), then plot them all")
    args = ap.parse_args(argv)
    rows = []
    print(f"{'n':>8} {'d':>5} {'seconds':>9} {'peak MiB':>9} {'extra MiB':>10} "
          f"{'dense n x n MiB':>16}")
    for n in (int(x) for x in args.n.split(",")):
        r = measure(n, args.d, args.grad, args.chunk)
        r["dense_mib"] = 8 * n * n / 2**20
        rows.append(r)
        if "error" in r:
            print(f"{n:>8} {args.d:>5}  failed: {r['error']}")
            continue
        print(f"{n:>8} {args.d:>5} {r['seconds']:>9.2f} {r['peak_mib']:>9.0f} "
              f"{r['extra_mib']:>10.0f} {r['dense_mib']:>16.0f}", flush=True)
    if args.out is None:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    keys = ["n", "d", "grad", "seconds", "peak_mib", "extra_mib", "dense_mib", "value"]
    path = args.out / "sc_loss_memory.csv"
    rows = [r for r in rows if "error" not in r]
    if args.append and path.exists():
        with open(path, newline="") as fh:
            old = [{k: (v == "True" if k == "grad" else int(v) if k in ("n", "d") else
                        float(v)) for k, v in r.items()} for r in csv.DictReader(fh)]
        new = {(r["n"], r["d"], r["grad"]) for r in rows}
        rows = sorted([r for r in old if (r["n"], r["d"], r["grad"]) not in new] + rows,
                      key=lambda r: (r["grad"], r["d"], r["n"]))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    ok = [r for r in rows if r["d"] == args.d and r["grad"] == args.grad]
    ns = [r["n"] for r in ok]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.loglog(ns, [r["extra_mib"] for r in ok], "o-", label="sc_loss, chunked")
    ax1.loglog(ns, [r["dense_mib"] for r in ok], "--", label="one dense n x n matrix")
    ax1.set_xlabel("n")
    ax1.set_ylabel("memory above the features (MiB)")
    ax1.legend()
    ax2.loglog(ns, [r["seconds"] for r in ok], "o-")
    ax2.set_xlabel("n")
    ax2.set_ylabel("seconds")
    fig.suptitle(f"sc_loss{'_grad' if args.grad else ''}, d = {args.d}, 2-core machine")
    fig.tight_layout()
    fig.savefig(args.out / "sc_loss_memory.png", dpi=120)


if __name__ == "__main__":
    main()
