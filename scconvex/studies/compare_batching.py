"""``scconvex compare-batching``: the batch-wise optimum next to the full-batch optimum.

Both problems are solved and certified (:func:`scconvex.pipeline.solve.solve`): the full-batch one
at its natural level (group or class, lifted), the batch-wise one at sample level. For each
the report gives the cosine matrix of the class means, the within-class spread (largest
distance between two features of one class: 0 means collapse), and the Frobenius
distances of the class-mean Gram to the orthogonal frame ``I`` and to the simplex ETF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..problem.spec import ProblemSpec


@dataclass(frozen=True)
class Geometry:
    """Summary of one certified answer (see the module docstring)."""

    name: str
    status: str
    level: str
    loss: float
    rel_gap: float
    class_gram: np.ndarray
    spread: float
    to_orthogonal: float
    to_etf: float

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "level": self.level,
                "loss": self.loss, "rel_gap": self.rel_gap,
                "class_gram": self.class_gram.tolist(), "within_class_spread": self.spread,
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
    M = res.class_gram
    if M is None:
        nan = math.nan
        return Geometry(name, res.status, res.level, nan, nan, np.full((k, k), nan), nan, nan,
                        nan)
    etf = np.full((k, k), -1.0 / (k - 1))
    np.fill_diagonal(etf, 1.0)
    spread = (within_class_spread(res.variable, res.spec.labels) if res.model.level.dense
              else 0.0)
    return Geometry(name, res.status, res.level, res.loss, res.rel_gap, M, spread,
                    float(np.linalg.norm(M - np.eye(k))), float(np.linalg.norm(M - etf)))


def compare_batching(spec: ProblemSpec, batches) -> tuple[Geometry, Geometry]:
    """Solve ``spec`` full-batch and with ``batches``; return both summaries."""
    from ..pipeline.solve import solve

    full = spec.with_(batches=None, level="auto")
    batched = spec.with_(batches=batches, level="sample")
    return summarize("full batch", solve(full)), summarize("batch-wise", solve(batched))


def format_comparison(spec: ProblemSpec, pair: tuple[Geometry, Geometry], batches) -> str:
    """Human-readable report of :func:`compare_batching` (no trailing newline)."""
    counts = ",".join(str(c) for c in spec.counts)
    lines = [f"compare batching: counts {counts}, tau {spec.tau:g}, {len(batches)} batches "
             f"of sizes {sorted({len(b) for b in batches})}"]
    for geo in pair:
        lines += [
            "",
            f"{geo.name}: status {geo.status.upper()} ({geo.level} level), loss "
            f"{geo.loss:.10g}, relative gap {geo.rel_gap:.2e}",
            f"  within-class spread {geo.spread:.3e}   distance to orthogonal frame "
            f"{geo.to_orthogonal:.4f}   distance to ETF {geo.to_etf:.4f}",
            "  cosines between class means:",
        ]
        for row in geo.class_gram:
            lines.append("    " + "".join(f"{x:>10.5f}" for x in row))
    return "\n".join(lines)
