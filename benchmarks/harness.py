"""One benchmark run in a child process, shared by ``run.py`` and ``targets.py``.

Each solve runs in a forked process with a hard wall-clock limit, so that a hung or
crashed solver cannot stop the benchmark; the child reports a JSON-safe summary (status,
seconds, CPU seconds, gaps, peak memory above the warmed interpreter).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import platform
import resource
import time

import numpy as np


def machine() -> str:
    """When and where a run happened, printed next to its numbers."""
    import datetime

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{when} on {os.cpu_count()} cores ({cpu})"


def class_counts(k: int, seed: int) -> tuple[int, ...]:
    """``k`` distinct counts drawn from ``[2, max(200, 3k))``."""
    rng = np.random.default_rng(seed + k)
    return tuple(int(c) for c in rng.choice(np.arange(2, max(200, 3 * k)), size=k,
                                            replace=False))


def make_spec(inst: dict):
    from scconvex.problem.spec import ProblemSpec

    if inst["kind"] == "step":
        k, rho, ratio, n_min = inst["step"]
        return ProblemSpec.step(k, rho, ratio, n_min, inst["tau"])
    if inst["kind"] == "long_tail":
        k, ratio, n_max = inst["long_tail"]
        return ProblemSpec.long_tail(k, ratio, n_max, inst["tau"])
    return ProblemSpec(inst["counts"], inst["tau"])


# ---------------------------------------------------------------------- one run
def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _worker(conn, inst: dict, solver: str, options: dict) -> None:
    """Run one solve in a child process and send back a JSON-safe summary."""
    try:
        from scconvex import solve
        from scconvex.resources import solve_bytes

        spec = make_spec(inst)
        level = inst.get("level", "class" if inst["kind"] == "class" else "group")
        # Import and warm every module before the clock starts.
        solve(make_spec({"kind": "class", "counts": (3, 2, 4), "tau": 0.5}), level="class",
              solver=solver)
        base = _rss_mib()
        t0 = time.perf_counter()
        c0 = time.process_time()
        res = solve(spec, level=level, solver=solver, options=options)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        out = {"status": res.status, "seconds": seconds, "cpu_seconds": cpu,
               "solve_seconds": res.timings.get("solve", math.nan),
               "rel_gap": res.rel_gap, "sample_rel_gap": res.sample_rel_gap,
               "excess_gap": (res.certificate.excess_gap if res.certificate is not None
                              else math.nan),
               "peak_mib": max(peak - base, 0.0), "peak_total_mib": peak,
               "estimate_mib": solve_bytes(res.model.dim, solver) / 2**20,
               "blocks": res.model.dim, "message": res.message}
        if inst.get("return_gram") and res.class_gram is not None:
            out["class_gram"] = res.class_gram
        if inst["kind"] == "step" and res.class_gram is not None:
            M = res.class_gram
            out["cosines"] = (float(M[0, 1]), float(M[-1, -2]), float(M[0, -1]))
        conn.send(out)
    except Exception as exc:  # report any crash as a failure of this run
        conn.send({"status": "crashed", "message": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def run_one(inst: dict, solver: str, options: dict, hard_limit: float) -> dict:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker, args=(child, inst, solver, options))
    t0 = time.perf_counter()
    proc.start()
    child.close()
    out = None
    if parent.poll(hard_limit):
        try:
            out = parent.recv()
        except EOFError:
            out = None
    proc.join(timeout=5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if out is None:
        elapsed = time.perf_counter() - t0
        out = {"status": "killed", "seconds": elapsed,
               "message": f"no answer within {hard_limit:.0f} s (killed)"}
    return out
