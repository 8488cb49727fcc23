"""Figures from an atlas (matplotlib, headless; the optional extra ``[plot]``).

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no
global state, no display needed); :func:`save_figure` writes it. Data curves carry a
``gid`` (``"cos_min_min|tau=0.5"``), so tests and users can read the plotted values back
from the figure.

Kinds:

* ``cosines``: named cosines (STEP: majority-majority, minority-minority,
  majority-minority; otherwise min, mean, max) against ``R`` on a log axis, one set of
  curves per ``tau``, with the proven interval of each (``measures.bounds``, from the
  cosine bars) as an error bar where it is wide enough to see;
* ``tau``: the same against ``tau``, one set per ``R``;
* ``gram``: heatmap of one class Gram;
* ``sphere``: class means factored into ``d = 2`` or ``3``, on the circle or sphere;
* ``gap``: certified relative gaps (solved level and sample level) against ``R``;
* ``phase``: minority-minority cosine over the ``(R, tau)`` grid;
* ``landscape``: fraction of restarts reaching the relaxed optimum over ``(d, tau)``;
* ``trajectory`` (from the JSON of ``scconvex compare``, not an atlas): over checkpoints,
  the optimality gap relative to the optimum's excess, the largest cosine error against the
  certified optimum and against the ETF, and NC1; for one comparison, the trained and the
  certified class Grams side by side.
* ``uniqueness``: the uniqueness map over the ``(R, tau)`` grid: the widest proven cosine
  bar of each certified answer (how well float64 determines the optimum), with every cell
  whose uniqueness is not proven crossed out.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInputError, ScconvexError, missing_extra
from ..files import check_writable, write_bytes

KINDS = ("cosines", "tau", "gram", "sphere", "gap", "phase", "landscape", "uniqueness")
"""Kinds drawn from an atlas; ``trajectory`` (:func:`trajectory_figure`) is drawn from the
JSON of ``scconvex compare``."""
NAMED = ("cos_maj_maj", "cos_min_min", "cos_maj_min")
SPREAD = ("cos_min", "cos_mean", "cos_max")
LABELS = {"cos_maj_maj": "majority-majority", "cos_min_min": "minority-minority",
          "cos_maj_min": "majority-minority", "cos_min": "min", "cos_mean": "mean",
          "cos_max": "max"}
STYLES = {"cos_maj_maj": "-", "cos_min_min": "--", "cos_maj_min": ":", "cos_min": "-",
          "cos_mean": "--", "cos_max": ":"}
GAP_FLOOR = 1e-18
"""Gaps of exactly 0 are drawn at this value on the log axis."""
VISIBLE_BAR = 2e-3
"""Error bars are drawn where the interval is at least this fraction of the y range."""
BAR_FLOOR = 1e-16
"""Bars of exactly 0 are drawn at this value on the log colour scale."""
SPHERE_MAX_K = 12

GRAM_MAX_K = 400
"""Largest class Gram drawn (``--kind gram`` and ``sphere``)."""


def _damaged(row: dict, column: str, what: str) -> InvalidInputError:
    from .atlas import printable

    key = printable(row.get("key"))[:12]
    value = printable(repr(row.get(column)))[:40]
    return InvalidInputError(f"row {key}: column {column} holds {value}, not {what} (the "
                             f"atlas is damaged; atlas verify shows what else)")


PLOT_RANGE = 1e100
"""Largest magnitude of a plotted number (axis limits and log scales overflow near the
float64 range; no ratio, temperature or gap comes near this)."""


def _is_number(value, low: float = -PLOT_RANGE, high: float = PLOT_RANGE) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and low <= value <= high


def _check(rows: Sequence[dict], *, positive: Sequence[str] = (),
           integers: Sequence[str] = (), numbers: Sequence[str] = (),
           cosines: Sequence[str] = (), texts: Sequence[str] = ()) -> None:
    """Every value a figure reads must have its type and range: a hand-edited atlas can
    hold NULL, text or any number anywhere. ``numbers`` (gaps, >= 0) and ``cosines`` (in
    [-1, 1]) may be NULL (drawn as gaps in the curves); the others may not."""
    for row in rows:
        for col in positive:
            if not _is_number(row.get(col), 1.0 / PLOT_RANGE):
                raise _damaged(row, col, f"a number in [1e-100, {PLOT_RANGE:g}]")
        for col in integers:
            v = row.get(col)
            if not (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10**9):
                raise _damaged(row, col, "a positive integer")
        for col in numbers:
            if row.get(col) is not None and not _is_number(row[col], 0.0):
                raise _damaged(row, col, f"a number in [0, {PLOT_RANGE:g}] or empty")
        for col in cosines:
            if row.get(col) is not None and not _is_number(row[col], -1 - 1e-9, 1 + 1e-9):
                raise _damaged(row, col, "a cosine in [-1, 1] or empty")
        for col in texts:
            if not isinstance(row.get(col), str):
                raise _damaged(row, col, "a text")


def _check_family(rows: Sequence[dict]) -> None:
    """What ``_one_config`` and the titles read, by family."""
    _check(rows, positive=("R", "tau"), integers=("k",), texts=("family", "key"))
    for row in rows:
        if row["k"] < 2:
            raise _damaged(row, "k", "a number of classes >= 2")
        need = {"step": dict(positive=("rho",), integers=("n_min",)),
                "long_tail": dict(integers=("n_max",)),
                "counts": dict(texts=("dataset",))}.get(row["family"])
        if need is None:
            raise _damaged(row, "family", "step, long_tail or counts")
        _check([row], **need)


def _figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise missing_extra("plot", exc) from None
    return Figure(**kwargs)


def _one_config(rows: list[dict], what: str) -> list[dict]:
    if not rows:
        raise InvalidInputError(f"no atlas rows to plot for {what}")
    _check_family(rows)
    configs = {(r["family"], r["k"], r["rho"], r["n_min"], r["n_max"], r["dataset"])
               for r in rows}
    if len(configs) > 1:
        raise InvalidInputError(f"the rows come from {len(configs)} problem families; "
                                f"choose one with --where (e.g. --where k=10 --where "
                                f"n_min=5)")
    return rows


def _cosine_names(rows: list[dict]) -> tuple[str, ...]:
    if all(r["family"] == "step" for r in rows):
        return NAMED
    return SPREAD


def _curves(ax, rows: list[dict], x: str, by: str) -> None:
    names = _cosine_names(rows)
    groups = sorted({r[by] for r in rows})
    colors = _colors(len(groups))
    span = _y_span(rows, names)
    for color, value in zip(colors, groups, strict=True):
        sub = sorted((r for r in rows if r[by] == value), key=lambda r: r[x])
        xs = [r[x] for r in sub]
        for name in names:
            ys = [np.nan if r[name] is None else r[name] for r in sub]
            ax.plot(xs, ys, STYLES[name], color=color, marker=".", lw=1.6,
                    label=f"{LABELS[name]}, {by}={value:g}", gid=f"{name}|{by}={value!r}")
            _error_bars(ax, xs, ys, [_bounds(r, name) for r in sub], span, color,
                        f"bar|{name}|{by}={value!r}")
    ax.set_xscale("log")
    k = rows[0]["k"]
    ax.axhline(-1.0 / (k - 1), color="0.6", lw=0.8, zorder=0)
    ax.set_ylabel("cosine between class means")
    _two_legends(ax, "cosine", [(LABELS[name], STYLES[name]) for name in names], by,
                 groups, colors)


def _two_legends(ax, title: str, styles: list[tuple[str, str]], by: str, values, colors
                 ) -> None:
    """Line style = which quantity (long black samples without markers, so solid, dashed
    and dotted read apart), colour = the value of ``by``; both right of the axes, where
    they hide no curve."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="black", ls=ls, lw=1.6, label=label)
               for label, ls in styles]
    first = ax.legend(handles=handles, fontsize=7, handlelength=3.5, loc="upper left",
                      bbox_to_anchor=(1.01, 1.0), title=title, title_fontsize=7)
    ax.add_artist(first)
    swatches = [Line2D([], [], color=c, lw=4, label=f"{by} = {v:g}")
                for c, v in zip(colors, values, strict=True)]
    ax.legend(handles=swatches, fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0),
              ncol=max(1, (len(values) + 11) // 12))


def _bounds(row: dict, name: str) -> tuple[float, float] | None:
    """The proven interval of a measure of the optimum (None without bars, and None
    where a hand-edited ``measures`` column holds no readable interval)."""
    try:
        pair = json.loads(row["measures"])["bounds"][name]
        low, high = (float(v) for v in pair)
    except (TypeError, ValueError, KeyError, IndexError, RecursionError):
        return None
    if not (_is_number(low, -1 - 1e-9, 1 + 1e-9) and _is_number(high, -1 - 1e-9, 1 + 1e-9)):
        return None
    return low, high


def _y_span(rows: list[dict], names) -> float:
    values = [r[n] for r in rows for n in names if r[n] is not None]
    return (max(values) - min(values)) if len(values) > 1 else 1.0


def _error_bars(ax, xs, ys, bounds, span: float, color, gid: str) -> None:
    """The proven intervals as error bars, where they are wide enough to see."""
    keep = [(x, y, b) for x, y, b in zip(xs, ys, bounds, strict=True)
            if b is not None and not math.isnan(y) and b[1] - b[0] >= VISIBLE_BAR * span]
    if not keep:
        return
    x, y, b = zip(*keep, strict=True)
    low = [yy - bb[0] for yy, bb in zip(y, b, strict=True)]
    high = [bb[1] - yy for yy, bb in zip(y, b, strict=True)]
    ax.errorbar(x, y, yerr=[low, high], fmt="none", ecolor=color, elinewidth=0.8,
                capsize=2, gid=gid)


def _colors(n: int):
    """Distinct colours that all read on white: the qualitative tab10 for up to 10 values,
    else a dark-to-medium stretch of viridis (its light yellow end is left out)."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    cmap = colormaps["viridis"]
    return [cmap(0.8 * i / max(n - 1, 1)) for i in range(n)]


def _title(rows: list[dict]) -> str:
    r = rows[0]
    if r["family"] == "step":
        return f"STEP: k={r['k']}, rho={r['rho']:g}, n_min={r['n_min']}"
    if r["family"] == "long_tail":
        return f"long tail: k={r['k']}, n_max={r['n_max']}"
    return f"{r['dataset']}: k={r['k']}"


def _cosine_figure(rows: list[dict], kind: str, x: str, by: str, xlabel: str):
    rows = _one_config(rows, kind)
    _check(rows, cosines=_cosine_names(rows))
    fig = _figure(figsize=(7.6, 4.4), layout="constrained")
    ax = fig.add_subplot()
    _curves(ax, rows, x, by)
    ax.set_xlabel(xlabel)
    ax.set_title(_title(rows) + " (grey: simplex ETF)", fontsize=9)
    return fig


def cosines_figure(rows: list[dict]):
    """Named cosines against R (log axis), one set of curves per tau."""
    return _cosine_figure(rows, "cosines", "R", "tau", "imbalance ratio R")


def tau_figure(rows: list[dict]):
    """Named cosines against tau (log axis), one set of curves per R."""
    return _cosine_figure(rows, "tau", "tau", "R", "temperature tau")


def gap_figure(rows: list[dict]):
    """Certified sample-level gaps against R: relative to the loss (solid) and to the
    excess loss (dashed), one pair of curves per tau."""
    rows = _one_config(rows, "gap")
    _check(rows, numbers=("sample_rel_gap", "sample_excess_gap"))
    fig = _figure(figsize=(7.6, 4.4), layout="constrained")
    ax = fig.add_subplot()
    taus = sorted({r["tau"] for r in rows})
    colors = _colors(len(taus))
    for color, tau in zip(colors, taus, strict=True):
        sub = sorted((r for r in rows if r["tau"] == tau), key=lambda r: r["R"])
        for name, style in (("sample_rel_gap", "-"), ("sample_excess_gap", "--")):
            ys = [np.nan if r[name] is None else max(r[name], GAP_FLOOR) for r in sub]
            ax.plot([r["R"] for r in sub], ys, style, color=color, marker=".",
                    label=f"{name}, tau={tau:g}", gid=f"{name}|tau={tau!r}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("imbalance ratio R")
    ax.set_ylabel(f"certified gap / loss, / excess loss (0 drawn at {GAP_FLOOR:g})")
    ax.set_title(_title(rows), fontsize=9)
    _two_legends(ax, "certified gap (all n x n Grams)",
                 [("relative to the loss", "-"), ("relative to the excess loss", "--")],
                 "tau", taus, colors)
    return fig


def _grid(values_x, values_y, cells: dict) -> np.ndarray:
    Z = np.full((len(values_y), len(values_x)), np.nan)
    for (x, y), v in cells.items():
        Z[values_y.index(y), values_x.index(x)] = np.nan if v is None else v
    return Z


def cell_edges(values: Sequence[float], log: bool) -> np.ndarray:
    """Edges of heatmap cells centred on sorted ``values``: midpoints, geometric ones on
    a log axis (so every cell has the same width there and keeps its tick), the outer
    cells as wide as their neighbours (a single value gets a factor of 2 or +-0.5)."""
    v = np.asarray(values, dtype=float)
    t = np.log(v) if log else v
    if len(t) == 1:
        half = math.log(2.0) if log else 0.5
        edges = np.array([t[0] - half, t[0] + half])
    else:
        mid = 0.5 * (t[1:] + t[:-1])
        edges = np.concatenate([[2 * t[0] - mid[0]], mid, [2 * t[-1] - mid[-1]]])
    return np.exp(edges) if log else edges


def _heatmap(fig, ax, xs, ys, Z, label: str, logx: bool, logy: bool, **kw):
    mesh = ax.pcolormesh(cell_edges(xs, logx), cell_edges(ys, logy), Z, shading="flat",
                         **kw)
    for values, log, scale, ticks in ((xs, logx, ax.set_xscale, ax.set_xticks),
                                      (ys, logy, ax.set_yscale, ax.set_yticks)):
        if log:
            scale("log")
        if len(values) <= 12:  # a tick on every row and column, labelled by its value
            ticks(list(values), [f"{v:.3g}" for v in values], minor=False)
            ticks([], minor=True)
    if 6 < len(xs) <= 12:  # labels of our own, too wide to stand side by side
        ax.tick_params(axis="x", labelrotation=30)
    fig.colorbar(mesh, ax=ax, label=label)
    return mesh


def phase_figure(rows: list[dict]):
    """Minority-minority cosine over the (R, tau) grid."""
    rows = _one_config(rows, "phase")
    _check(rows, cosines=("cos_min_min",))
    Rs = sorted({r["R"] for r in rows})
    taus = sorted({r["tau"] for r in rows})
    Z = _grid(Rs, taus, {(r["R"], r["tau"]): r["cos_min_min"] for r in rows})
    fig = _figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    _heatmap(fig, ax, Rs, taus, Z, "minority-minority cosine", True, True, cmap="magma",
             vmin=-1 / (rows[0]["k"] - 1), vmax=1.0)
    ax.set_xlabel("imbalance ratio R")
    ax.set_ylabel("temperature tau")
    ax.set_title(_title(rows) + ": minority collapse (1 = collapsed)", fontsize=9)
    return fig


def uniqueness_figure(rows: list[dict]):
    """The uniqueness map over (R, tau): the widest proven cosine bar of each certified
    answer on a log colour scale; cells whose uniqueness is not proven are crossed out,
    and cells without bars (an atlas from before them) are left empty."""
    rows = _one_config(rows, "uniqueness")
    Rs = sorted({r["R"] for r in rows})
    taus = sorted({r["tau"] for r in rows})
    bars = {(r["R"], r["tau"]): (None if r.get("max_bar") is None
                                 else math.log10(max(r["max_bar"], BAR_FLOOR)))
            for r in rows}
    Z = _grid(Rs, taus, bars)
    fig = _figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    mesh = _heatmap(fig, ax, Rs, taus, Z, "log10 widest proven cosine bar", True, True,
                    cmap="viridis", vmin=min(-8.0, float(np.nanmin(Z, initial=-8.0))),
                    vmax=max(0.0, float(np.nanmax(Z, initial=0.0))))
    mesh.set_gid("max_bar")
    open_cells = [(r["R"], r["tau"]) for r in rows
                  if r.get("max_bar") is not None and r.get("unique_proof") != 1]
    if open_cells:
        ax.scatter(*zip(*open_cells, strict=True), marker="x", color="red", s=30,
                   gid="not_proven", label="uniqueness not proven")
        ax.legend(fontsize=7, loc="upper left")
    proven = sum(1 for r in rows if r.get("unique_proof") == 1)
    ax.set_xlabel("imbalance ratio R")
    ax.set_ylabel("temperature tau")
    ax.set_title(f"{_title(rows)}: optimum proven unique in {proven} of {len(rows)} cells\n"
                 "colour: widest proven bar, how far float64 pins the optimal cosines",
                 fontsize=8)
    return fig


def landscape_figure(rows: list[dict], tight_rows: Sequence[dict]):
    """Fraction of restarts reaching the relaxed optimum over (d, tau)."""
    rows = _one_config(rows, "landscape")
    by_key = {r["key"]: r for r in rows}
    per_tau: dict[float, set] = {}
    for r in rows:
        per_tau.setdefault(r["tau"], set()).add(r["key"])
    if any(len(keys) > 1 for keys in per_tau.values()):
        raise InvalidInputError("several problems share a tau; choose one R with --where R=...")
    cells = {}
    for t in tight_rows:
        if t["key"] in by_key:
            _check([t], integers=("d", "restarts"))
            if not (isinstance(t.get("reached"), int) and 0 <= t["reached"] <= t["restarts"]):
                raise _damaged(t, "reached", "a count of restarts")
            cells[(by_key[t["key"]]["tau"], t["d"])] = t["reached"] / t["restarts"]
    if not cells:
        raise InvalidInputError("no tightness rows for these problems (sweep with --dims)")
    taus = sorted({c[0] for c in cells})
    dims = sorted({c[1] for c in cells})
    Z = _grid(taus, dims, cells)
    fig = _figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    _heatmap(fig, ax, taus, dims, Z, "fraction of restarts reaching the optimum", True,
             False, cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_yticks(dims)
    ax.set_xlabel("temperature tau")
    ax.set_ylabel("dimension d")
    r = rows[0]
    ax.set_title(_title(rows) + (f", R={r['R']:g}" if r["R"] is not None else ""),
                 fontsize=9)
    return fig


def _class_gram(row: dict) -> np.ndarray:
    """The class Gram of one row: its ``class_gram`` column, or the lift of its block
    Gram; a square, symmetric, finite matrix with the row's ``k`` and unit diagonal."""
    from ..certificates.measures import BlockGeometry

    _check([row], integers=("k",), texts=("key",))
    k = row["k"]
    if k > GRAM_MAX_K:
        raise InvalidInputError(f"k = {k} is too large to draw a class Gram")
    column = "class_gram" if row.get("class_gram") is not None else "block_gram"
    if row.get(column) is None:
        raise InvalidInputError(f"row {row['key'][:12]} has no geometry (status "
                                f"{row.get('status')!r})")
    try:
        data = json.loads(row[column])
        if column == "class_gram":
            M = np.asarray(data, dtype=float)
        else:
            geo = BlockGeometry.from_dict(data)
            if geo.gram.ndim != 2 or geo.block_of.ndim != 1 or len(geo.block_of) != k \
                    or geo.block_of.min() < 0 or geo.block_of.max() >= len(geo.gram):
                raise ValueError("block form does not match k")
            M = geo.class_gram()
    except (TypeError, ValueError, KeyError, IndexError, OverflowError, AttributeError,
            RecursionError):
        raise _damaged(row, column, "a JSON matrix") from None
    if M.shape != (k, k) or not np.all(np.isfinite(M)) or not np.allclose(M, M.T) \
            or not np.allclose(np.diag(M), 1.0):
        raise _damaged(row, column, f"a symmetric {k} x {k} Gram with unit diagonal")
    return M


def _row_title(row: dict) -> str:
    from .atlas import printable

    _check([row], positive=("tau",), texts=("counts",))
    counts = printable(row["counts"])
    counts = counts if len(counts) <= 40 else counts[:37] + "..."
    return f"counts {counts}, tau={row['tau']:g}"


def _class_names(row: dict, k: int) -> list[str] | None:
    """The class names of the row's problem (from its certificate's spec), if it has any."""
    try:
        names = json.loads(row.get("certificate") or "{}").get("spec", {}).get("names")
    except (TypeError, ValueError, AttributeError):
        return None
    if not isinstance(names, list) or len(names) != k:
        return None
    return [str(x) for x in names]


def gram_figure(row: dict):
    """Heatmap of one class Gram (cosines between class means); class names as tick
    labels when the problem has them (up to 40 classes)."""
    M = _class_gram(row)
    fig = _figure(figsize=(5.2, 4.4), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(M, cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="cosine")
    names = _class_names(row, len(M))
    if names is not None and len(names) <= 40:
        ax.set_xticks(range(len(names)), names, fontsize=6, rotation=90)
        ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_xlabel("class")
    ax.set_ylabel("class")
    ax.set_title(_row_title(row), fontsize=9)
    return fig


def sphere_figure(row: dict, dim: int | None = None):
    """Class means factored into d = 2 or 3 and drawn on the circle or the sphere."""
    from ..features.factor import factor

    M = _class_gram(row)
    k = M.shape[0]
    if k > SPHERE_MAX_K:
        raise InvalidInputError(f"--kind sphere draws at most {SPHERE_MAX_K} classes, "
                                f"this row has {k}")
    f0 = factor(M, warn=False)
    d = dim if dim is not None else (2 if f0.rank <= 2 else 3)
    if d not in (2, 3):
        raise InvalidInputError(f"--dim must be 2 or 3, got {d}")
    f = factor(M, d, warn=False)
    U = f.features
    counts = _counts_of(row, k)
    fig = _figure(figsize=(5.2, 5.0), layout="constrained")
    note = "exact" if f.exact else f"truncated: rank {f.rank} > d"
    if d == 2:
        ax = fig.add_subplot()
        t = np.linspace(0, 2 * math.pi, 200)
        ax.plot(np.cos(t), np.sin(t), color="0.7", lw=0.8)
        for i in range(k):
            ax.plot([0, U[i, 0]], [0, U[i, 1]], color="0.5", lw=0.6)
        ax.scatter(U[:, 0], U[:, 1], s=20 + 80 * counts / counts.max(), c=np.log(counts),
                   cmap="coolwarm", zorder=3, gid="means")
        ax.set_aspect("equal")
        ax.set_xlim(-1.15, 1.15)
        ax.set_ylim(-1.15, 1.15)
    else:
        ax = fig.add_subplot(projection="3d")
        u, v = np.meshgrid(np.linspace(0, 2 * math.pi, 30), np.linspace(0, math.pi, 15))
        ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v),
                          color="0.85", lw=0.4)
        ax.scatter(U[:, 0], U[:, 1], U[:, 2], s=20 + 80 * counts / counts.max(),
                   c=np.log(counts), cmap="coolwarm", depthshade=False, gid="means")
        ax.set_box_aspect((1, 1, 1))
    names = _class_names(row, k)
    for i in range(k):
        label = str(int(counts[i])) if names is None else f"{names[i]} ({int(counts[i])})"
        ax.text(*(1.08 * U[i]), label, fontsize=7)
    what = "samples" if names is None else "class (samples)"
    ax.set_title(f"{_row_title(row)}\nclass means in d={d} ({note}; label: {what})",
                 fontsize=9)
    return fig


def _counts_of(row: dict, k: int) -> np.ndarray:
    from ..problem.inputs import parse_counts

    try:
        counts = parse_counts(row["counts"], "counts")
    except InvalidInputError:
        raise _damaged(row, "counts", "a count vector") from None
    if len(counts) != k or min(counts) < 1:
        raise _damaged(row, "counts", f"{k} positive counts")
    return np.asarray(counts, dtype=float)


def _single_row(atlas, where, key) -> dict:
    rows = atlas.rows(list(where) + ([("key", key)] if key else []))
    if len(rows) != 1:
        raise InvalidInputError(f"--kind gram and sphere draw one row; {len(rows)} match "
                                f"(choose one with --key or --where)")
    return rows[0]


def make_figure(atlas, kind: str, *, where: Sequence[tuple[str, str]] = (),
                key: str | None = None, dim: int | None = None):
    """The figure of ``kind`` (one of :data:`KINDS`) from the rows of an atlas."""
    if kind not in KINDS:
        raise InvalidInputError(f"unknown kind {kind!r}; choose one of {KINDS}")
    if kind in ("gram", "sphere"):
        row = _single_row(atlas, where, key)
        return gram_figure(row) if kind == "gram" else sphere_figure(row, dim)
    rows = [r for r in atlas.rows(where) if r["status"] == "optimal"]
    if kind == "landscape":
        return landscape_figure(rows, atlas.tightness_rows())
    return {"cosines": cosines_figure, "tau": tau_figure, "gap": gap_figure,
            "phase": phase_figure, "uniqueness": uniqueness_figure}[kind](rows)


def compare_gram_figure(data: dict):
    """Trained and certified class Grams side by side, and their difference (the JSON of
    one ``scconvex compare``)."""
    trained = np.asarray(data["class_gram"], dtype=float)
    optimum = np.asarray(data["optimum_gram"], dtype=float)
    names = data.get("class_names") or [str(i) for i in range(len(trained))]
    fig = _figure(figsize=(11.5, 3.9), layout="constrained")
    axes = fig.subplots(1, 3)
    diff = trained - optimum
    top = max(float(np.max(np.abs(diff))), 1e-12)
    for ax, M, title, kw in (
            (axes[0], trained, "trained features", {"vmin": -1, "vmax": 1, "cmap": "RdBu_r"}),
            (axes[1], optimum, "certified optimum", {"vmin": -1, "vmax": 1, "cmap": "RdBu_r"}),
            (axes[2], diff, "trained - optimum", {"vmin": -top, "vmax": top, "cmap": "PuOr_r"})):
        image = ax.imshow(M, interpolation="nearest", gid=title, **kw)
        ax.set_title(title, fontsize=9)
        if len(names) <= 20:
            ax.set_xticks(range(len(names)), names, fontsize=6, rotation=90)
            ax.set_yticks(range(len(names)), names, fontsize=6)
        fig.colorbar(image, ax=ax, shrink=0.85, label="cosine" if M is not diff else "")
    fig.suptitle(f"class-mean cosines, tau={data['tau']:g}, counts "
                 f"{_short(data['counts'])}: max error {data['to_optimum']['max_abs']:.3f} "
                 f"(ETF: {data['to_etf']['max_abs']:.3f})", fontsize=9)
    return fig


def _short(counts) -> str:
    text = ",".join(str(c) for c in counts)
    return text if len(text) <= 40 else text[:37] + "..."


def trajectory_figure(data: dict):
    """Gap, cosine errors and NC1 over the checkpoints of ``scconvex compare`` (its JSON);
    one comparison gives :func:`compare_gram_figure`."""
    if data.get("kind") == "scconvex.compare":
        return compare_gram_figure(data)
    rows = data.get("rows") or []
    if not rows:
        raise InvalidInputError("the trajectory has no checkpoints")
    steps = np.array([r["step"] for r in rows], dtype=float)
    fig = _figure(figsize=(11.5, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    gap = np.array([_finite(r["excess_gap"]) for r in rows])
    resolved = np.array([bool(r["gap_resolved"]) for r in rows])
    ax = axes[0]
    ax.plot(steps, np.where(gap > 0, gap, np.nan), "-", color="C0", gid="excess_gap")
    ax.plot(steps[resolved], gap[resolved], "o", color="C0", ms=4)
    ax.plot(steps[~resolved], gap[~resolved], "o", mfc="none", color="C0", ms=4,
            label="not resolved (within the loss's error bound)")
    ax.set_yscale("log")
    ax.set_ylabel("gap / optimum's excess loss")
    ax.set_title("optimality gap (certified bound)", fontsize=9)
    if np.any(~resolved):
        ax.legend(fontsize=7)
    ax = axes[1]
    for key, label, style in (("to_optimum_max", "to the certified optimum", "-"),
                              ("to_etf_max", "to the simplex ETF", "--")):
        ax.plot(steps, [r[key] for r in rows], style, marker=".", label=label, gid=key)
    ax.set_ylabel("largest cosine error between class means")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.set_title("class-mean geometry", fontsize=9)
    ax = axes[2]
    ax.plot(steps, [_finite(r["nc1_trace_ratio"]) for r in rows], "-", marker=".",
            gid="nc1_trace_ratio", label="tr(Sw)/tr(Sb)")
    ax.set_yscale("log")
    ax.set_title("within-class collapse (NC1)", fontsize=9)
    ax.legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("checkpoint")
    spec = data.get("spec", {})
    fig.suptitle(f"tau={spec.get('tau', float('nan')):g}, counts "
                 f"{_short(spec.get('counts', []))}", fontsize=9)
    return fig


def _finite(x) -> float:
    return float(x) if isinstance(x, (int, float)) else math.nan


def figure_bytes(fig, suffix: str) -> bytes:
    """The figure as a ``.png``, ``.pdf`` or ``.svg`` file's bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=150, format=suffix[1:])
    return buf.getvalue()


def figure_format(path: str | os.PathLike) -> str:
    """The suffix of a figure file (``.png``, ``.pdf`` or ``.svg``), checked with the
    target (:func:`scconvex.files.check_writable`) before any work is done."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".png", ".pdf", ".svg"):
        raise InvalidInputError(f"--out must end in .png, .pdf or .svg, got {path!r}")
    check_writable(path)
    return suffix


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write a figure as PNG, PDF or SVG (by suffix), atomically.

    Raises
    ------
    InvalidInputError
        For a wrong suffix or a target that cannot be written (a device, a folder).
    ScconvexError
        When writing fails (a full disk); the previous file is left intact.
    """
    path = os.fspath(path)
    data = figure_bytes(fig, figure_format(path))
    try:
        # The same atomic write as every other output (unique temporary file, removed on
        # error; the permissions of a replaced file kept).
        write_bytes(path, data)
    except OSError as exc:  # the machine (a full disk), not the input: exit 1
        raise ScconvexError(f"cannot write {path!r}: {exc.strerror or exc}") from None
