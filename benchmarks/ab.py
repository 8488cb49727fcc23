"""Side by side: the same solves timed with two source trees of scconvex, interleaved.

Usage::

    git worktree add /tmp/before <commit>
    python benchmarks/ab.py /tmp/before . --repeats 5

Each solve runs in a fresh child process (one BLAS thread, the package warmed up first);
the two trees alternate, in swapped order on every other repeat, so that both see the same
load. The table gives the median and the fastest time of each tree and their ratios; the
machine's load average is printed with every row (the machine may be busy: say so).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r'''
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from scconvex import ProblemSpec, solve
inst = json.loads(sys.argv[1])
if inst["kind"] == "step":
    spec = ProblemSpec.step(*inst["args"], tau=inst["tau"])
elif inst["kind"] == "long_tail":
    spec = ProblemSpec.long_tail(*inst["args"], tau=inst["tau"])
else:
    rng = np.random.default_rng(inst["k"])
    k = inst["k"]
    counts = rng.choice(np.arange(2, max(200, 3 * k)), size=k, replace=False)
    spec = ProblemSpec(tuple(int(c) for c in counts), inst["tau"])
with threadpool_limits(1):
    solve(ProblemSpec((3, 2, 4), 0.5), level="class")
    t = time.perf_counter()
    res = solve(spec, level=inst.get("level"), solver=inst.get("solver", "auto"))
    print(json.dumps({"seconds": time.perf_counter() - t, "status": res.status}))
'''

INSTANCES = (
    {"name": "class k=200", "kind": "class", "k": 200, "tau": 0.1},
    {"name": "class k=1000", "kind": "class", "k": 1000, "tau": 0.1},
    {"name": "STEP k=100 tau=0.02", "kind": "step", "args": [100, 0.5, 10, 5], "tau": 0.02},
    {"name": "ImageNet-LT long tail", "kind": "long_tail", "args": [1000, 256, 1280],
     "tau": 0.1},
    {"name": "class k=25 clarabel", "kind": "class", "k": 25, "tau": 0.1,
     "solver": "clarabel", "level": "class"},
)


def run(tree: str, inst: dict, cwd: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(inst)], env=env,
                         capture_output=True, text=True, cwd=cwd, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="source tree of the reference version")
    parser.add_argument("after", help="source tree of the version to compare")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    trees = [("before", args.before), ("after", args.after)]
    print(f"{'instance':<24} {'before':>16} {'after':>16} {'after/before':>13}  load")
    with tempfile.TemporaryDirectory() as cwd:  # no stray scconvex on sys.path[0]
        for inst in INSTANCES:
            times: dict[str, list[float]] = {name: [] for name, _ in trees}
            for r in range(args.repeats):
                for name, tree in (trees if r % 2 == 0 else trees[::-1]):
                    res = run(tree, inst, cwd)
                    if res["status"] != "optimal":
                        print(f"  {name}: {inst['name']} not certified", file=sys.stderr)
                    times[name].append(res["seconds"])
            med = {k: statistics.median(v) for k, v in times.items()}
            low = {k: min(v) for k, v in times.items()}
            print(f"{inst['name']:<24} {med['before']:7.3f} ({low['before']:6.3f}) "
                  f"{med['after']:7.3f} ({low['after']:6.3f}) "
                  f"{med['after'] / med['before']:6.3f} ({low['after'] / low['before']:.3f})"
                  f"  {os.getloadavg()[0]:.2f}", flush=True)
    print("seconds: median (fastest) of", args.repeats, "runs each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
