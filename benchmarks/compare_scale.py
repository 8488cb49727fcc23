"""Time and memory of ``compare`` on real-sized features streamed from a memory-mapped .npy.

Usage::

    python benchmarks/compare_scale.py                          # n = 1e5, d = 512
    python benchmarks/compare_scale.py --n 20000,100000 --precision float32,float64
    python benchmarks/compare_scale.py --out docs/compare_scale.json

Features are made once per (n, d) and saved as float32 ``.npy`` in ``--dir``: 100 classes
of random sizes (a long tail), each sample its class's random unit mean plus noise, as
trained features look. Each measurement runs in its own subprocess that opens the file with
``np.load(mmap_mode="r")`` and runs :func:`scconvex.losses.streamed.streamed_loss` (the loss
alone) or :func:`scconvex.studies.compare.compare` (statistics, certified solve and loss).
Memory is sampled every 20 ms from ``/proc/self/status``: ``RssAnon`` (the process's own
memory) and ``RssFile`` (pages of the mapped file, which the kernel can drop at any time).

The machine is shared with other jobs (2 cores): every row records the load average before
and after, the CPU, the BLAS kernel (threadpoolctl) and the versions. ``OPENBLAS_CORETYPE``
as set in the environment is recorded; on this machine it forces the Haswell (AVX2) kernel,
about half the speed of the native AVX-512 one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, threading, time
import numpy as np
path, labels_path, what, precision, threads, tau = sys.argv[1:7]
threads, tau = int(threads), float(tau)
peak = {"anon": 0, "file": 0}
stop = threading.Event()
def status():
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("RssAnon:", "RssFile:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out
def sample():
    while not stop.wait(0.02):
        s = status()
        peak["anon"] = max(peak["anon"], s.get("RssAnon", 0))
        peak["file"] = max(peak["file"], s.get("RssFile", 0))
H = np.load(path, mmap_mode="r")
y = np.load(labels_path)
from scconvex.losses.streamed import streamed_loss
from scconvex.studies.compare import compare
from threadpoolctl import threadpool_info
base = status()
t = threading.Thread(target=sample, daemon=True); t.start()
t0 = time.perf_counter(); c0 = time.process_time()
if what == "loss":
    r = streamed_loss(H, y, tau, precision=precision, threads=threads)
    out = {"value": r.value, "error": r.error}
else:
    c = compare(H, y, tau, precision=precision, threads=threads)
    out = {"value": c.loss, "error": c.loss_error, "gap": c.gap, "lower_bound": c.lower_bound,
           "optimum_status": c.optimum_status, "timings": c.timings,
           "to_optimum_max": c.to_optimum.max_abs}
seconds = time.perf_counter() - t0; cpu = time.process_time() - c0
stop.set(); t.join()
blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for i in threadpool_info()]
print(json.dumps({**out, "seconds": seconds, "cpu_seconds": cpu,
                  "base_anon_mib": base.get("RssAnon", 0) / 2**20,
                  "peak_anon_mib": peak["anon"] / 2**20, "peak_file_mib": peak["file"] / 2**20,
                  "blas": blas, "numpy": np.__version__}))
"""


def make_features(folder: Path, n: int, d: int, k: int = 100) -> tuple[Path, Path]:
    import numpy as np

    path, lpath = folder / f"features_{n}_{d}.npy", folder / f"labels_{n}_{d}.npy"
    if path.exists() and lpath.exists():
        return path, lpath
    rng = np.random.default_rng(0)
    weights = 100.0 ** (-np.arange(k) / (k - 1))  # long tail, ratio 100
    y = np.sort(rng.choice(k, size=n, p=weights / weights.sum()))
    means = rng.standard_normal((k, d))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for r0 in range(0, n, 10000):
        r1 = min(n, r0 + 10000)
        block = means[y[r0:r1]] + 0.6 * rng.standard_normal((r1 - r0, d)) / np.sqrt(d)
        out[r0:r1] = block
    out.flush()
    del out
    np.save(lpath, y)
    return path, lpath


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def measure(path, lpath, what, precision, threads, tau) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = loadavg()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(lpath), what, precision,
                           str(threads), str(tau)], capture_output=True, text=True, env=env)
    after = loadavg()
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1], "load_before": before}
    return {**json.loads(proc.stdout), "load_before": before, "load_after": after}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="100000")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--what", default="loss,compare", help="loss and/or compare")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/scconvex-bench"))
    ap.add_argument("--out", type=Path, help="JSON file for the rows (appended)")
    args = ap.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    import numpy as np

    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
               "numpy": np.__version__, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
               "note": "shared 2-core machine: other jobs may run; see the load averages"}
    print(json.dumps(machine))
    rows = []
    print(f"{'n':>7} {'d':>4} {'what':>8} {'precision':>9} {'thr':>3} {'seconds':>8} "
          f"{'cpu s':>7} {'anon MiB':>8} {'file MiB':>8} {'load':>14} {'value':>16} "
          f"{'error bound':>11}")
    for n in (int(x) for x in args.n.split(",")):
        path, lpath = make_features(args.dir, n, args.d)
        for what in args.what.split(","):
            for precision in args.precision.split(","):
                for threads in (int(t) for t in args.threads.split(",")):
                    r = measure(path, lpath, what, precision, threads, args.tau)
                    r.update(n=n, d=args.d, what=what, precision=precision, threads=threads,
                             tau=args.tau, machine=machine)
                    rows.append(r)
                    if "error" in r and "seconds" not in r:
                        print(f"{n:>7} {args.d:>4} {what:>8} {precision:>9} {threads:>3} "
                              f"failed: {r['error']}")
                        continue
                    load = "/".join(f"{x:g}" for x in r["load_before"][:1] + r["load_after"][:1])
                    print(f"{n:>7} {args.d:>4} {what:>8} {precision:>9} {threads:>3} "
                          f"{r['seconds']:>8.1f} {r['cpu_seconds']:>7.1f} "
                          f"{r['peak_anon_mib']:>8.0f} {r['peak_file_mib']:>8.0f} {load:>14} "
                          f"{r['value']:>16.4f} {r['error']:>11.3g}", flush=True)
    if args.out:
        old = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.write_text(json.dumps(old + rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
