"""How the native pipeline scales with the side g of its matrix variable (issue 21).

Usage::

    python benchmarks/scaling.py --out docs/            # idle and busy, about 15 minutes
    python benchmarks/scaling.py --quick --out /tmp/s   # g <= 1000, one run each

Every solve is the whole pipeline (:func:`scconvex.solve`: native backend, repair, both
certificates, cosine bars) in a fresh process with one BLAS thread, median of ``--repeats``
runs; "busy" runs start two single-threaded busy processes (``load.py``) for the whole
phase. Instances: class level with distinct counts at g = 250, 500, 1000, 2000, 3000 (the
counts of ``run.py``), and the two long tails at group level: the iNaturalist-sized one of
``targets.py`` (8142 classes, R = 500, n_max = 1000: 999 blocks) and the ImageNet-21k-sized
one (21841 classes, R = 3000, n_max = 3000: 2987 blocks, 1891 classes of one sample in one
block). tau = 0.1.

Next to the times it records the physical limit the issue names, one g x g symmetric
eigendecomposition and one g x g x g product (float64, one thread, timed in this process),
and the pipeline's own floor: the three g x g eigendecompositions its certificates need
(the PSD test of the answer and the two lambda_min of MATH.md section 5). The exponent of
``seconds ~ g^p`` is fitted over the class-level series. The machine is shared: the 1-minute
load average is recorded before every run.

Outputs in ``--out``: ``benchmarks_scaling.md``, ``benchmarks_scaling.json`` and
``benchmarks_scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from harness import class_counts, machine, run_one  # noqa: E402
from load import background_load, load_average  # noqa: E402

from scconvex.files import write_text  # noqa: E402

CLASS_GS = (250, 500, 1000, 2000, 3000)
TAILS = {"iNaturalist-sized tail (8142,500,1000)": (8142, 500, 1000),
         "ImageNet-21k-sized tail (21841,3000,3000)": (21841, 3000, 3000)}
TARGETS = {"class k=1000": 3.0, "ImageNet-21k-sized tail (21841,3000,3000)": 30.0}
BUSY_TARGETS = {"ImageNet-21k-sized tail (21841,3000,3000)": 45.0}
MEMORY_TARGET_MIB = 2048.0


def instances(quick: bool, seed: int) -> list[dict]:
    out = []
    for g in CLASS_GS:
        if quick and g > 1000:
            continue
        out.append({"instance": f"class k={g}", "kind": "class", "k": g, "tau": 0.1,
                    "counts": class_counts(g, seed)})
    for name, shape in TAILS.items():
        if quick and shape[0] > 10000:
            continue
        out.append({"instance": name, "kind": "long_tail", "long_tail": shape, "tau": 0.1,
                    "k": shape[0], "level": "group"})
    return out


def kernel_seconds(g: int, repeats: int = 3) -> dict:
    """One float64 eigendecomposition (values only, numpy's eigvalsh) and one ``g x g x
    g`` product, one BLAS thread, best of ``repeats``."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    A = rng.standard_normal((g, g))
    A += A.T
    best = {"eig": math.inf, "product": math.inf}
    with threadpool_limits(1):
        for _ in range(repeats if g <= 1000 else 1):
            t0 = time.perf_counter()
            np.linalg.eigvalsh(A)
            best["eig"] = min(best["eig"], time.perf_counter() - t0)
            t0 = time.perf_counter()
            A @ A
            best["product"] = min(best["product"], time.perf_counter() - t0)
    return best


def versions() -> str:
    import scipy
    from threadpoolctl import threadpool_info

    import scconvex

    blas = "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
                     for i in threadpool_info() if i.get("user_api") == "blas")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    return (f"scconvex {scconvex.__version__} (commit {commit or '?'}), Python "
            f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
            f"BLAS {blas or '?'}")


def fit(gs, secs) -> float:
    """Least-squares slope of log(seconds) against log(g)."""
    x = np.log(np.asarray(gs, dtype=float))
    y = np.asarray(secs, dtype=float)
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(x[ok], np.log(y[ok]), 1)[0])


def run_phase(condition: str, insts: list[dict], repeats: int) -> list[dict]:
    rows = []
    with background_load(2 if condition == "busy" else 0):
        if condition == "busy":
            time.sleep(2.0)
        for inst in insts:
            runs, loads = [], []
            for _ in range(repeats):
                loads.append(float(load_average()))
                runs.append(run_one(inst, "native", {}, 900))
            ok = [r for r in runs if r.get("status") == "optimal"]
            row = {"instance": inst["instance"], "condition": condition,
                   "g": runs[-1].get("blocks", inst["k"]), "runs": len(runs),
                   "certified": len(ok), "load": loads,
                   "seconds": statistics.median(r.get("seconds", math.nan) for r in runs),
                   "cpu_seconds": statistics.median(r.get("cpu_seconds", math.nan)
                                                    for r in runs),
                   "solve_seconds": statistics.median(r.get("solve_seconds", math.nan)
                                                      for r in runs),
                   "peak_total_mib": max(r.get("peak_total_mib", math.nan) for r in runs),
                   "estimate_mib": runs[-1].get("estimate_mib", math.nan),
                   "rel_gap": max(r.get("rel_gap", math.nan) for r in runs),
                   "sample_rel_gap": max(r.get("sample_rel_gap", math.nan) for r in runs),
                   "excess_gap": max(r.get("excess_gap", math.nan) for r in runs),
                   "status": "optimal" if len(ok) == len(runs) else runs[-1].get("status"),
                   "message": runs[-1].get("message", "")[:160]}
            rows.append(row)
            print(f"  [{condition}] {row['instance']}: {row['seconds']:.2f} s "
                  f"(cpu {row['cpu_seconds']:.2f}), {row['peak_total_mib']:.0f} MiB, "
                  f"{row['status']}, load {min(loads):.2f}-{max(loads):.2f}", flush=True)
    return rows


def table(rows: list[dict], kernels: dict) -> list[str]:
    lines = ["| instance | g | idle: wall s (cpu s) | busy: wall s (cpu s) | native s (idle) "
             "| one eig + one product s | 3 eig s | peak MiB (estimate) | status | "
             "load (1 min) idle; busy |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    by = {(r["instance"], r["condition"]): r for r in rows}
    for name in dict.fromkeys(r["instance"] for r in rows):
        a, b = by.get((name, "idle")), by.get((name, "busy"))
        first = a or b
        g = int(first["g"])
        k = kernels.get(g, {})
        lim = k.get("eig", math.nan) + k.get("product", math.nan)

        def cell(r):
            return f"{r['seconds']:.2f} ({r['cpu_seconds']:.2f})" if r else "-"

        def loads(r):
            return f"{min(r['load']):.1f}-{max(r['load']):.1f}" if r else "-"

        status = ", ".join(r["status"] for r in (a, b) if r)
        lines.append(f"| {name} | {g} | {cell(a)} | {cell(b)} | "
                     f"{(a or b)['solve_seconds']:.2f} | {lim:.2f} | "
                     f"{3 * k.get('eig', math.nan):.2f} | "
                     f"{max(r['peak_total_mib'] for r in (a, b) if r):.0f} "
                     f"({first['estimate_mib']:.0f}) | {status} | {loads(a)}; {loads(b)} |")
    return lines


def verdicts(rows: list[dict]) -> list[str]:
    by = {(r["instance"], r["condition"]): r for r in rows}
    out = []
    for name, target in TARGETS.items():
        r = by.get((name, "idle"))
        if r:
            ok = r["seconds"] <= target and r["status"] == "optimal"
            out.append(f"* {name}, idle: {r['seconds']:.2f} s against <= {target:g} s: "
                       f"{'met' if ok else '**not met**'}")
    for name, target in BUSY_TARGETS.items():
        r = by.get((name, "busy"))
        if r:
            ok = r["seconds"] <= target and r["status"] == "optimal"
            out.append(f"* {name}, two busy processes: {r['seconds']:.2f} s against <= "
                       f"{target:g} s: {'met' if ok else '**not met**'}")
    worst = max((r["peak_total_mib"] for r in rows), default=math.nan)
    out.append(f"* peak memory of any run (whole process): {worst:.0f} MiB against <= "
               f"{MEMORY_TARGET_MIB:.0f} MiB: "
               f"{'met' if worst <= MEMORY_TARGET_MIB else '**not met**'}")
    under = ", ".join(r["instance"] for r in rows
                      if not r["estimate_mib"] >= r["peak_total_mib"])
    out.append("* memory estimate (scconvex.resources.solve_bytes) an upper bound of the "
               f"peak at every size: {'**no**: ' + under if under else 'yes'}")
    return out


def plot(rows: list[dict], kernels: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for cond, mark in (("idle", "o-"), ("busy", "s--")):
        pts = sorted((r["g"], r["seconds"]) for r in rows
                     if r["condition"] == cond and r["instance"].startswith("class"))
        if pts:
            ax.plot(*zip(*pts, strict=True), mark, label=f"class level, {cond} (wall)")
        tails = [(r["g"], r["seconds"]) for r in rows
                 if r["condition"] == cond and not r["instance"].startswith("class")]
        if tails:
            ax.plot(*zip(*tails, strict=True), "*" if cond == "idle" else "x", ms=11,
                    label=f"long tails, {cond}")
    gs = sorted(kernels)
    ax.plot(gs, [kernels[g]["eig"] + kernels[g]["product"] for g in gs], ":", color="gray",
            label="one g x g eig + one product")
    ax.plot(gs, [3 * kernels[g]["eig"] for g in gs], "-.", color="black", lw=0.8,
            label="3 eig (the certificates' floor)")
    ax.axhline(30, color="red", lw=0.6, label="30 s (the 21841-class target)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("g, side of the matrix variable (blocks)")
    ax.set_ylabel("seconds, whole pipeline, 1 BLAS thread")
    ax.set_title("native pipeline: scaling with g")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(HERE.parent / "docs"))
    parser.add_argument("--quick", action="store_true", help="g <= 1000, one run each")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conditions", default="idle,busy")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    insts = instances(args.quick, args.seed)
    header = [f"Run {machine()}; {versions()}.", ""]
    print(header[0], flush=True)
    rows = []
    for cond in args.conditions.split(","):
        print(f"{cond} (load average {load_average()})", flush=True)
        rows += run_phase(cond, insts, repeats)
    gs = sorted({int(r["g"]) for r in rows})
    kernels = {g: kernel_seconds(g) for g in gs}
    lines = header + [f"Median of {repeats} runs per instance, each in a fresh process "
                      "(the whole pipeline: native solve, repair, both certificates, "
                      "cosine bars), tau = 0.1; peak = largest resident set of the "
                      "process; estimate = scconvex.resources.solve_bytes.", ""]
    lines += table(rows, kernels) + [""]
    for cond in ("idle", "busy"):
        series = sorted((r["g"], r["seconds"], r["cpu_seconds"]) for r in rows
                        if r["condition"] == cond and r["instance"].startswith("class"))
        if len(series) >= 2:
            g_, s_, c_ = zip(*series, strict=True)
            lines.append(f"* {cond}: wall ~ g^{fit(g_, s_):.2f}, cpu ~ g^{fit(g_, c_):.2f} "
                         f"(class level, g = {', '.join(map(str, g_))})")
    lim = [(g, kernels[g]["eig"] + kernels[g]["product"]) for g in gs]
    lines.append(f"* one eig + one product: ~ g^{fit(*zip(*lim, strict=True)):.2f}")
    lines += [""] + verdicts(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "benchmarks_scaling.md", "\n".join(lines) + "\n")
    write_text(out / "benchmarks_scaling.json",
               json.dumps({"header": header[0], "rows": rows,
                           "kernels": {str(g): v for g, v in kernels.items()}},
                          indent=1, sort_keys=True, default=float))
    plot(rows, kernels, out / "benchmarks_scaling.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
