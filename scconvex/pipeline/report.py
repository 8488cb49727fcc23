"""Stage 6 of the pipeline: reports of a solve, as JSON documents and as readable tables.

The JSON form of a :class:`~scconvex.pipeline.solve.SolveResult` is also the certificate
file that :func:`scconvex.certificates.verify.verify` re-checks. Writing it goes through the
atomic writes of :mod:`scconvex.files`.
"""

from __future__ import annotations

import math
from typing import Any

from ..files import SCHEMA_VERSION, jsonable, version
from ..levels import RANK_TOL
from ..problem.spec import DEFAULT_LOSS, DEFAULT_RELAXATION
from ..resources import check_memory, class_gram_bytes

CLASS_GRAM_MAX = 200
"""Largest k for which ``class_gram`` is written by default (k^2 numbers)."""


def result_dict(res, *, full_gram: bool = False) -> dict[str, Any]:
    """JSON-safe dictionary of a :class:`~scconvex.pipeline.solve.SolveResult`.

    The dictionary is also the certificate file read by
    :func:`scconvex.certificates.verify.verify`: it
    holds the spec, the claimed values and the geometry at the solved level:

    * ``groups`` (group level): ``counts`` and ``sizes`` of the groups, ``block_of`` (the
      group of each class) and ``gram``, the ``g x g`` cosines (within-group on the
      diagonal); this determines the class Gram exactly;
    * ``class_gram``: the ``k x k`` cosines between class means, written when
      ``k <= CLASS_GRAM_MAX`` or ``full_gram`` (always at class and sample level);
    * ``sample_gram`` (sample level): the ``n x n`` Gram matrix.
    """
    spec = res.spec
    level = res.model.level
    with_class = full_gram or spec.k <= CLASS_GRAM_MAX or not level.compressed
    if with_class and level.compressed:
        check_memory(class_gram_bytes(spec.k), f"the full {spec.k} x {spec.k} class Gram",
                     "leave out --full-gram: the group Gram determines it exactly")
    out = {
        "kind": "scconvex.solve",
        "schema_version": SCHEMA_VERSION,
        "scconvex_version": version(),
        "spec": spec.to_dict(),
        "counts": list(spec.counts),
        "tau": spec.tau,
        "n": spec.n,
        "k": spec.k,
        "level": res.level,
        "solver": res.solver,
        "status": res.status,
        "message": res.message,
        "raw_status": res.raw_status,
        "loss": res.loss,
        "excess_loss": res.excess_loss,
        "lower_bound": res.lower_bound,
        "gap": res.gap,
        "rel_gap": res.rel_gap,
        "sample_lower_bound": res.sample_lower_bound,
        "sample_gap": res.sample_gap,
        "sample_rel_gap": res.sample_rel_gap,
        "gap_tol": res.gap_tol,
        "excess_tol": res.excess_tol,
        "excess_gap": _cert_field(res.certificate, "excess_gap"),
        "sample_excess_gap": _cert_field(res.sample_certificate, "excess_gap"),
        "rank": res.rank,
        "rank_tol": RANK_TOL,
        "min_eigenvalue": res.min_eigenvalue,
        "iterations": res.iterations,
        "repair_shift": res.repair_shift,
        "seconds": res.seconds,
        "timings": dict(res.timings),
        "class_gram": res.class_gram if with_class else None,
        "unique": res.unique,
        "uniqueness": None if res.uniqueness is None else res.uniqueness.to_dict(),
    }
    if res.variable is not None:
        # The solved level's geometry, where the verifier reads it (at class level it is
        # the class Gram written above).
        stored = level.store(res.model, res.variable)
        out.update({key: value for key, value in stored.items() if out.get(key) is None})
        out.update(res.model.relaxation.report(res))
    out["measures"] = _measures(out, res)
    return jsonable(out)


def _measures(out: dict, res) -> dict | None:
    from ..certificates.measures import geometry_of, summary

    geo = geometry_of(out)
    return None if geo is None else summary(geo, counts=res.spec.counts, rank=res.rank)


def _cert_field(cert, name: str) -> float:
    return math.nan if cert is None else getattr(cert, name)


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.12g}"


def format_result(res, *, max_classes: int = 12) -> str:
    """Short human-readable report: class-mean cosines, loss, bound and gaps."""
    spec = res.spec
    lines = [
        f"scconvex solve: k={spec.k} classes, n={spec.n} samples, tau={spec.tau:g}",
        f"  counts      {_counts_text(spec.counts)}",
        f"  level       {res.level}   solver {res.solver}   status {res.status.upper()}",
    ]
    if ((spec.loss, spec.relaxation) != (DEFAULT_LOSS, DEFAULT_RELAXATION)
            or spec.batches is not None):
        batches = "" if spec.batches is None else f"   batches {len(spec.batches)}"
        lines.insert(2, f"  variant     loss {spec.loss}   relaxation {spec.relaxation}{batches}")
    if res.status == "failed":
        lines.append(f"  {res.message}")
        return "\n".join(lines)
    excess = _cert_field(res.certificate, "excess_gap")
    sample_excess = _cert_field(res.sample_certificate, "excess_gap")
    lines[-1] += (f"   excess gap {max(excess, sample_excess):.2e}"
                  f" (tol {res.excess_tol:.0e})")
    lines += [
        f"  loss        {_fmt(res.loss)}",
        f"  lower bound {_fmt(res.lower_bound)}   (certified over {res.certificate.level} Grams)",
        f"  gap         {res.gap:.3e}   relative {res.rel_gap:.3e}   to excess {excess:.3e}",
        f"  sample gap  {res.sample_gap:.3e}   relative {res.sample_rel_gap:.3e}"
        f"   to excess {sample_excess:.3e}   (all n x n Grams)",
        f"  rank        {res.rank}   time {res.seconds:.3f} s",
    ]
    if res.unique is False:
        # Say it before the cosines, which are then one optimum among many (or imprecise).
        lines.append(f"  cosines {res.uniqueness.note}")
    if res.model.level.compressed and len(res.model.sizes) <= 6:
        lines.append("  cosines between class means, by group:")
        lines += _group_table(res)
    k = spec.k
    if k <= max_classes:
        M = res.class_gram
        lines.append("  cosines between class means:")
        width = max(len(str(c)) for c in spec.counts) + 3
        head = " " * (width + 2) + "".join(f"{'c' + str(j):>10}" for j in range(k))
        lines.append(head)
        for i in range(k):
            row = "".join(f"{M[i, j]:>10.6f}" for j in range(k))
            lines.append(f"  {'c' + str(i):<{width}}{row}")
    else:
        # Summarise from the solved variable: lifting a group answer to k x k could need
        # far more memory than the solve (k = 1e5: 75 GiB).
        low, high = _cosine_range(res)
        lines.append(f"  cosines between class means range from {low:.6f} to {high:.6f}")
        flag = " --full-gram" if res.model.level.compressed and k > CLASS_GRAM_MAX else ""
        lines.append(f"  (class Gram of {k} classes not shown; use --json{flag} for all of it)")
    if res.status != "optimal":
        lines.append(f"  {res.message}")
    return "\n".join(lines)


def _cosine_range(res) -> tuple[float, float]:
    """Smallest and largest cosine between two different class means, without lifting."""
    off = res.model.level.cosines(res.model, res.variable)
    return float(off.min()), float(off.max())


def _group_table(res) -> list[str]:
    model = res.model
    B = res.variable
    out = []
    g = len(model.sizes)
    for p in range(g):
        label = f"n={model.block_counts[p]} (x{model.sizes[p]})"
        if model.sizes[p] >= 2:
            out.append(f"    within  {label:<18} {B[p, p]:>12.8f}")
    for p in range(g):
        for q in range(p + 1, g):
            a = f"n={model.block_counts[p]}"
            b = f"n={model.block_counts[q]}"
            out.append(f"    between {a + ' / ' + b:<18} {B[p, q]:>12.8f}")
    return out


def _counts_text(counts) -> str:
    text = ",".join(str(c) for c in counts[:30])
    return text if len(text) <= 60 and len(counts) <= 30 else text[:57] + "..."
