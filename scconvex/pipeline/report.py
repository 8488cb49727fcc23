"""Stage 6 of the pipeline: reports of a solve, as JSON documents and as readable tables.

The JSON form of a :class:`~scconvex.pipeline.solve.SolveResult` is also the certificate
file that :func:`scconvex.certificates.verify.verify` re-checks. Writing it goes through the
atomic writes of :mod:`scconvex.files`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..certificates.bars import printed_up, round_up, width_note
from ..files import SCHEMA_VERSION, jsonable, version
from ..levels import CLASS, RANK_TOL
from ..problem.spec import DEFAULT_LOSS, DEFAULT_RELAXATION
from ..resources import check_memory, class_gram_bytes

CLASS_GRAM_MAX = 200
"""Largest k for which ``class_gram`` is written by default (k^2 numbers)."""

COLLAPSE_TOL = 1e-9
"""A class mean shorter than ``1 - COLLAPSE_TOL`` marks a sample Gram that is not
class-collapsed: the report then prints the lengths of the means."""


def result_dict(res, *, full_gram: bool = False) -> dict[str, Any]:
    """JSON-safe dictionary of a :class:`~scconvex.pipeline.solve.SolveResult`.

    The dictionary is also the certificate file read by
    :func:`scconvex.certificates.verify.verify`: it
    holds the spec, the claimed values and the geometry at the solved level:

    * ``groups`` (group level): ``counts`` and ``sizes`` of the groups, ``block_of`` (the
      group of each class) and ``gram``, the ``g x g`` cosines (within-group on the
      diagonal); this determines the class Gram exactly;
    * ``class_gram``: the ``k x k`` cosines between class means, written when
      ``k <= CLASS_GRAM_MAX`` or ``full_gram`` (always at class and sample level); at
      sample level the means of the blocks of ``G`` with diagonal 1, which are the
      class-mean cosines only when ``G`` is class-collapsed;
    * ``sample_gram`` and ``class_means`` (sample level): the ``n x n`` Gram matrix, and
      the ``cosines`` between the class means and their lengths ``norms``;
    * ``cosine_bounds`` (a certified answer whose loss has curvature rows): the proven
      bar of every cosine in the block form of ``level`` (the solved level; the class
      level for a sample-level solve), the intervals of the cosines between single-sample
      classes, and ``collapse_delta`` (:mod:`scconvex.certificates.bars`); ``unique`` and
      ``uniqueness`` state the uniqueness proof and its reason;
    * ``measures``: summary measures of the answer, and in ``measures.bounds`` proven
      intervals of the optimum's (None when there are no bars).
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
        "uniqueness": None if res.bars is None else {"unique": res.bars.unique,
                                                     "reason": res.bars.reason},
        "cosine_bounds": _cosine_bounds(res),
    }
    if res.variable is not None and level.dense:
        # class_gram holds the block means of G (diagonal 1); the means of the classes
        # themselves differ unless G is collapsed (batch-wise optima are not).
        cosines, norms = level.class_means(res.model, res.variable)
        out["class_means"] = {"cosines": cosines, "norms": norms}
    if res.variable is not None:
        # The solved level's geometry, where the verifier reads it (at class level it is
        # the class Gram written above).
        stored = level.store(res.model, res.variable)
        out.update({key: value for key, value in stored.items() if out.get(key) is None})
        out.update(res.model.relaxation.report(res))
    out["measures"] = _measures(out, res)
    return jsonable(out)


def _cosine_bounds(res) -> dict | None:
    if res.bars is None:
        return None
    level = CLASS if res.model.level.dense else res.model.level
    return {"level": level.name, **res.bars.to_dict()}


def _measures(out: dict, res) -> dict | None:
    from ..certificates.measures import geometry_of, summary

    geo = geometry_of(out)
    if geo is None:
        return None
    bounds = None if res.bars is None else (res.bars.lower, res.bars.upper)
    return summary(geo, counts=res.spec.counts, rank=res.rank, bounds=bounds)


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
        features = res.model.relaxation.label or f"relaxation {spec.relaxation}"
        lines.insert(2, f"  variant     loss {spec.loss}   {features}{batches}")
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
    lines += _bars_lines(res)
    lines += res.model.relaxation.report_lines(res)
    if res.model.level.compressed and len(res.model.sizes) <= 6:
        lines.append("  cosines between class means, by group:")
        lines += _group_table(res)
    k = spec.k
    if k <= max_classes:
        M, norms = res.model.level.class_means(res.model, res.variable)
        spread = bool(np.any(norms < 1.0 - COLLAPSE_TOL))
        # The bars bound the class Gram; they are bars of these cosines only when the
        # classes have collapsed (then the two coincide).
        bars = None if spread else _class_bars(res)
        lines.append("  cosines between class means" + (
            " (not collapsed: the means are shorter than 1)" if spread else
            " (+- proven bar)" if bars is not None else "") + ":")
        lines += matrix_table(M, class_labels(spec), "length" if spread else None, norms,
                              bars=bars)
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


def _bar_text(bar: float) -> str:
    """A proven bar rounded up to one digit: a printed bar never understates it."""
    return "+- inf" if not math.isfinite(bar) else f"+- {float(round_up(bar, 1)):.0e}"


def _cell(value: float, bar: float | None, with_bars: bool) -> str:
    """A cosine, and its proven bar when there is one (``-0.178300 +- 2e-09``)."""
    if bar is None:
        return f"{value:>10.6f}" + (" " * 9 if with_bars else "")
    return f"{value:>10.6f} {_bar_text(bar):>8}"


def _class_bars(res):
    """The ``k x k`` proven half-widths (None without bars)."""
    if res.bars is None:
        return None
    model = res.model
    if model.level.dense:
        return res.bars.half_width
    return res.bars.half_width[np.ix_(model.block_of, model.block_of)]


def _bars_lines(res) -> list[str]:
    """The proven bars and the uniqueness proof, one line each."""
    bars = res.bars
    if bars is None:
        return []
    proof = {True: "unique (proven)", False: "not unique (proven)",
             None: "uniqueness not proven"}[bars.unique]
    delta = bars.collapse_delta
    collapse = ("" if not math.isfinite(delta) else
                f"; within-class cosines >= 1 - {printed_up(delta)} within the sample gap")
    return [f"  cosines     {proof}; every cosine within {printed_up(bars.max_half_width)} "
            f"of the optimum{width_note(bars.max_half_width)}{collapse}"]


NAME_WIDTH = 12
"""Class names are cut to this many characters in tables."""


def class_labels(spec) -> list[str]:
    """Row and column labels of a class table: the class names (cut to
    :data:`NAME_WIDTH` characters), or ``c0, c1, ...``."""
    return [name if len(name) <= NAME_WIDTH else name[:NAME_WIDTH - 1] + "~"
            for name in spec.class_names]


def matrix_table(M, labels: list[str], extra: str | None = None, values=(),
                 bars=None) -> list[str]:
    """Lines of a k x k table with class labels, optionally each off-diagonal entry with
    its proven bar (``bars``, k x k half-widths), and optionally one more row labelled
    ``extra`` holding ``values``."""
    width = max(map(len, labels + [extra or ""])) + 2
    cell = max(10 if bars is None else 19, max(map(len, labels)) + 2)
    out = [" " * (width + 2) + "".join(f"{name:>{cell}}" for name in labels)]
    for i, (name, row) in enumerate(zip(labels, M, strict=True)):
        cells = (f"{x:>10.6f}" if bars is None else
                 _cell(x, None if i == j else bars[i, j], True) for j, x in enumerate(row))
        out.append(f"  {name:<{width}}" + "".join(f"{c:>{cell}}" for c in cells))
    if extra is not None:
        out.append(f"  {extra:<{width}}" + "".join(f"{x:>{cell}.6f}" for x in values))
    return out


def _cosine_range(res) -> tuple[float, float]:
    """Smallest and largest cosine between two different class means, without lifting."""
    off = res.model.level.cosines(res.model, res.variable)
    return float(off.min()), float(off.max())


def _group_table(res) -> list[str]:
    model = res.model
    B = res.variable
    bars = None if res.bars is None else res.bars.half_width
    out = []
    g = len(model.sizes)

    def bar(p, q):
        return "" if bars is None else f" {_bar_text(bars[p, q])}"

    for p in range(g):
        label = f"n={model.block_counts[p]} (x{model.sizes[p]})"
        if model.sizes[p] >= 2:
            out.append(f"    within  {label:<18} {B[p, p]:>12.8f}{bar(p, p)}")
    for p in range(g):
        for q in range(p + 1, g):
            a = f"n={model.block_counts[p]}"
            b = f"n={model.block_counts[q]}"
            out.append(f"    between {a + ' / ' + b:<18} {B[p, q]:>12.8f}{bar(p, q)}")
    return out


def _counts_text(counts) -> str:
    text = ",".join(str(c) for c in counts[:30])
    return text if len(text) <= 60 and len(counts) <= 30 else text[:57] + "..."
