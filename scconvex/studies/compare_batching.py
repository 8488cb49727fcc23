"""``scconvex compare-batching``: the batch-wise optimum next to the full-batch optimum.

Both problems are solved and certified (:func:`scconvex.pipeline.solve.solve`): the full-batch one
at its natural level (group or class, lifted), the batch-wise one at sample level. For each
the report gives the cosines between the class means and the lengths of the means (1 for a
collapsed class), the within-class spread (largest distance between two features of one
class: 0 means collapse), and the Frobenius distances of the class-mean cosine matrix to
the orthogonal frame ``I`` and to the simplex ETF. The class means of a batch-wise optimum
are shorter than 1, so their cosines are not the block means of the sample Gram
(``class_gram`` of a sample-level certificate), which the report does not show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..pipeline.report import class_labels, matrix_table
from ..problem.spec import ProblemSpec


@dataclass(frozen=True)
class Geometry:
    """Summary of one certified answer (see the module docstring)."""

    name: str
    status: str
    level: str
    loss: float
    rel_gap: float
    cosines: np.ndarray
    norms: np.ndarray
    spread: float
    to_orthogonal: float
    to_etf: float

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "level": self.level,
                "loss": self.loss, "rel_gap": self.rel_gap,
                "class_mean_cosines": self.cosines.tolist(),
                "class_mean_norms": self.norms.tolist(), "within_class_spread": self.spread,
                "distance_to_orthogonal": self.to_orthogonal, "distance_to_etf": self.to_etf}


def within_class_spread(G: np.ndarray, labels: np.ndarray) -> float:
    """Largest ``||h_i - h_j|| = sqrt(2 - 2 G_ij)`` over pairs of samples of one class."""
    same = labels[:, None] == labels[None, :]
    if not np.any(same & ~np.eye(len(labels), dtype=bool)):
        return 0.0
    worst = float(np.min(np.where(same, G, np.inf)))
    return math.sqrt(max(0.0, 2.0 - 2.0 * worst))


def summarize(name: str, res) -> Geometry:
    """A :class:`Geometry` from a solve result."""
    k = res.spec.k
    if res.variable is None:
        nan = math.nan
        return Geometry(name=name, status=res.status, level=res.level, loss=nan, rel_gap=nan,
                        cosines=np.full((k, k), nan), norms=np.full(k, nan), spread=nan,
                        to_orthogonal=nan, to_etf=nan)
    M, norms = res.model.level.class_means(res.model, res.variable)
    etf = np.full((k, k), -1.0 / (k - 1))
    np.fill_diagonal(etf, 1.0)
    spread = (within_class_spread(res.variable, res.spec.labels) if res.model.level.dense
              else 0.0)
    return Geometry(name=name, status=res.status, level=res.level, loss=res.loss,
                    rel_gap=res.rel_gap, cosines=M, norms=norms, spread=spread,
                    to_orthogonal=float(np.linalg.norm(M - np.eye(k))),
                    to_etf=float(np.linalg.norm(M - etf)))


def compare_batching(spec: ProblemSpec, batches) -> tuple[Geometry, Geometry]:
    """Solve ``spec`` full-batch and with ``batches``; return both summaries."""
    from ..pipeline.solve import solve

    full = spec.with_(batches=None, level="auto")
    batched = spec.with_(batches=batches, level="sample")
    return summarize("full batch", solve(full)), summarize("batch-wise", solve(batched))


def format_comparison(spec: ProblemSpec, pair: tuple[Geometry, Geometry], batches) -> str:
    """Human-readable report of :func:`compare_batching` (no trailing newline)."""
    counts = ",".join(str(c) for c in spec.counts)
    sizes = sorted({len(b) for b in batches})
    of = (f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}")
    lines = [f"compare batching: counts {counts}, tau {spec.tau:g}, {len(batches)} batches "
             f"of {of} samples"]
    for geo in pair:
        lines += [
            "",
            f"{geo.name}: status {geo.status.upper()} ({geo.level} level), loss "
            f"{geo.loss:.10g}, relative gap {geo.rel_gap:.2e}",
            f"  within-class spread {geo.spread:.3e}   distance to orthogonal frame "
            f"{geo.to_orthogonal:.4f}   distance to ETF {geo.to_etf:.4f}",
            "  cosines between class means, and their lengths (1: collapsed):",
        ]
        lines += ["  " + line for line in matrix_table(geo.cosines, class_labels(spec),
                                                        "length", geo.norms)]
    return "\n".join(lines)
