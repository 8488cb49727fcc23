import math
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A seeded generator, so every random test is reproducible."""
    return np.random.default_rng(20260229)


def random_block_q(rng, sphere):
    """A random feasible block Gram ``Q = W W^T`` of full rank: unit rows where ``sphere``
    (one-class blocks, ``Q_pp = 1``), shorter free rows elsewhere."""
    g = len(sphere)
    W = rng.standard_normal((g, g))
    W[sphere] /= np.linalg.norm(W[sphere], axis=1)[:, None]
    W[~sphere] *= 0.5
    return W @ W.T


def taylor_slope(f, grad_dot, ts=None):
    """Slope of log|f(t) - f(0) - t <g, v>| against log t; about 2 for a correct gradient.

    ``f(t)`` evaluates the function along a curve, ``grad_dot`` is the directional
    derivative at t = 0 predicted by the gradient under test.
    """
    ts = np.logspace(-5, -2, 7) if ts is None else ts
    f0 = f(0.0)
    err = np.array([abs(f(t) - f0 - t * grad_dot) for t in ts])
    return np.polyfit(np.log(ts), np.log(err), 1)[0]


def honest_claims(data: dict) -> dict:
    """Recompute every claim of a certificate dict from its stored geometry, in place.

    What a careful forger does after editing the geometry: the claims then describe the
    forged geometry exactly, so only the certificate itself can expose it.
    """
    from scconvex.certificates.certify import certify
    from scconvex.certificates.repair import gram_spectrum
    from scconvex.pipeline.solve import RANK_TOL
    from scconvex.problem.model import build_model
    from scconvex.problem.spec import ProblemSpec

    model = build_model(ProblemSpec.from_dict(data["spec"]), data["level"])
    key = {"group": None, "class": "class_gram", "sample": "sample_gram"}[data["level"]]
    X = np.array(data["groups"]["gram"] if key is None else data[key])
    cls, smp = certify(model, X)
    spectrum = gram_spectrum(model, X)
    data.update(loss=cls.loss, excess_loss=cls.excess_loss, lower_bound=cls.lower_bound,
                gap=cls.gap, rel_gap=cls.rel_gap, excess_gap=cls.excess_gap,
                sample_lower_bound=smp.lower_bound, sample_gap=smp.gap,
                sample_rel_gap=smp.rel_gap, sample_excess_gap=smp.excess_gap,
                min_eigenvalue=spectrum.min, rank=spectrum.rank(RANK_TOL))
    if data.get("class_means") is not None:
        cosines, norms = model.level.class_means(model, X)
        data["class_means"] = {"cosines": cosines.tolist(), "norms": norms.tolist()}
    # The claims about the optimum's geometry, as the forged geometry proves them.
    from scconvex.certificates.bars import model_bars
    from scconvex.certificates.measures import geometry_of, summary
    from scconvex.files import jsonable
    from scconvex.levels import CLASS

    bars = model_bars(model, X, cls, smp, min_eigenvalue=spectrum.min)
    level = CLASS if model.level.dense else model.level
    data.update(jsonable({
        "unique": None if bars is None else bars.unique,
        "uniqueness": None if bars is None else {"unique": bars.unique,
                                                 "reason": bars.reason},
        "cosine_bounds": None if bars is None else {"level": level.name, **bars.to_dict()},
        "measures": summary(geometry_of(data), counts=model.spec.counts, rank=data["rank"],
                            bounds=None if bars is None else (bars.lower, bars.upper)),
    }))
    return data


def loss_loop(H, labels, tau, *, negatives_only=False):
    """MATH.md sections 2 and 8, term by term: anchors with a positive, each positive's
    log-ratio, the denominator over every other sample (SC) or over the negatives only."""
    n = len(labels)
    total = 0.0
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        others = [a for a in range(n) if a != i and not (negatives_only
                                                         and labels[a] == labels[i])]
        den = sum(math.exp(float(H[i] @ H[a]) / tau) for a in others)
        total -= sum(float(H[i] @ H[p]) / tau - math.log(den) for p in positives) / len(positives)
    return total


def split_singletons(spec):
    """``(sizes, counts, block_of)`` of the group level with every single-sample class a
    block of its own (the partition before issue 21; an exact reduction too)."""
    from scconvex.problem.model import build_model

    merged = build_model(spec, "group")
    ones = np.flatnonzero(np.asarray(spec.counts) == 1)
    keep = merged.block_counts >= 2
    block_of = merged.block_of.copy()
    block_of[ones] = int(np.sum(keep)) + np.arange(ones.size)
    return (np.concatenate([merged.sizes[keep], np.ones(ones.size, int)]),
            np.concatenate([merged.block_counts[keep], np.ones(ones.size, int)]), block_of)


def forge(data: dict, path: tuple, value) -> dict:
    """A deep copy of a certificate dict with the entry at ``path`` (keys and indices)
    set to ``value``: one edited claim."""
    import copy

    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def swept_atlas(folder, **settings) -> str:
    """A new atlas in ``folder`` holding one local sweep over ``settings`` (the keys of a
    sweep spec, e.g. ``step_k``, ``R``, ``tau``, ``dims``); its path."""
    from scconvex.studies.atlas import Atlas
    from scconvex.studies.sweep import build_points, run_sweep

    path = str(Path(folder) / "a.sqlite")
    with Atlas(path, create=True) as atlas:
        run_sweep(build_points(settings), atlas, workers=0)
    return path
