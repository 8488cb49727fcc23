"""Single-sample classes share one block at group level (issue 21).

The reference for the merged block is the partition used before it (each single-sample
class a block of its own), itself an exact reduction: both are solved and certified
independently, and their certified losses must bracket each other. The free cosine
between two single-sample classes has a closed form on hand-built geometries.
"""

import importlib
import json
import time

import numpy as np
import pytest
from conftest import split_singletons

from scconvex import ProblemSpec, solve
from scconvex.certificates.certify import round_and_certify
from scconvex.certificates.verify import verify_data
from scconvex.levels import GROUP
from scconvex.problem.model import Model, build_model, class_gram
from scconvex.solvers import get_backend

PIPELINE = importlib.import_module("scconvex.pipeline.solve")
NATIVE = get_backend("native")
TOLS = (1e-6, 1e-3)


def split_model(spec: ProblemSpec) -> Model:
    """The group model with every single-sample class a block of its own."""
    return Model(spec, GROUP, *split_singletons(spec))


def certified(model: Model, solver: str = "native"):
    raw = get_backend(solver).solve(model, {})
    return round_and_certify(model, raw.X, TOLS)


@pytest.mark.parametrize("counts,tau", [
    ((10, 10, 1, 1, 1), 0.1),
    ((20, 11, 7, 1, 1, 1, 1, 1), 0.05),
    ((2, 1, 1, 1), 0.5),
    ((40, 30, 30, 9, 9, 5, 2, 2) + (1,) * 25, 0.1),
])
def test_merged_singleton_block_certifies_the_loss_of_one_block_per_class(counts, tau):
    spec = ProblemSpec(counts, tau)
    merged = build_model(spec, "group")
    split = split_model(spec)
    assert merged.dim == len(set(counts)) < split.dim
    X, _, cert, scert = certified(merged)
    Y, _, cert_s, scert_s = certified(split)
    for c in (cert, scert, cert_s, scert_s):
        assert c.rel_gap <= TOLS[0] and c.excess_gap <= TOLS[1]
    # Both are feasible points of the same problem with valid certificates over all
    # sample Grams: each loss is at least the other's certified lower bound.
    assert cert.loss >= scert_s.lower_bound and cert_s.loss >= scert.lower_bound
    assert abs(cert.loss - cert_s.loss) <= scert.gap + scert_s.gap + 1e-12 * cert.loss
    # The merged answer puts the single-sample classes on one point (a = 1): the block is
    # solved as one unit vector.
    M = class_gram(merged, X)
    ones = np.flatnonzero(np.asarray(counts) == 1)
    np.testing.assert_allclose(M[np.ix_(ones, ones)], 1.0, atol=1e-10)
    # So do the single-sample classes of the other partition, each its own unit vector.
    np.testing.assert_allclose(class_gram(split, Y)[np.ix_(ones, ones)], 1.0, atol=1e-4)
    assert np.linalg.eigvalsh(M)[0] >= -1e-10


@pytest.mark.parametrize("counts", [(10, 10, 1, 1, 1), (20, 11, 7, 7, 1, 1, 1, 1)])
def test_merged_singleton_block_with_the_negatives_only_loss(counts):
    spec = ProblemSpec(counts, 0.1, loss="negatives-only")
    X, _, cert, scert = certified(build_model(spec, "group"))
    _, _, cert_s, scert_s = certified(split_model(spec))
    assert max(cert.excess_gap, scert.excess_gap) <= TOLS[1]
    assert cert.loss >= scert_s.lower_bound and cert_s.loss >= scert.lower_bound


def test_merged_singleton_block_matches_clarabel():
    # A conic solver keeps the free cosine a free variable of the PSD constraint.
    spec = ProblemSpec((12, 7, 7, 3, 1, 1, 1, 1), 0.2)
    model = build_model(spec, "group")
    _, _, cert, scert = certified(model)
    _, _, cert_c, scert_c = certified(model, "clarabel")
    assert cert.loss >= scert_c.lower_bound and cert_c.loss >= scert.lower_bound


def test_long_tail_with_many_single_sample_classes_has_one_block_for_them():
    spec = ProblemSpec.long_tail(2000, 500, 500, 0.1)
    ones = int(np.sum(np.asarray(spec.counts) == 1))
    model = build_model(spec, "group")
    assert ones > 100 and model.dim == len(set(spec.counts))
    res = solve(spec)
    assert res.status == "optimal" and res.level == "group"


@pytest.mark.parametrize("relaxation,low,unique", [("elliptope", 1.0, True),
                                                    ("dnn", 0.0, None)])
def test_cosine_between_single_sample_classes_is_proven(relaxation, low, unique):
    # On the elliptope the KKT conditions put every single-sample class in the span of
    # the others, with the same coefficients for the classes of one block: their cosine
    # is exactly 1. The doubly non-negative set does not pin them: at its optimum M = I
    # any cosine in [0, 1] between them is optimal (a completion in more dimensions).
    res = solve(ProblemSpec((20, 11, 7, 7, 1, 1, 1, 1), 0.1, relaxation=relaxation))
    s = int(np.flatnonzero(res.model.block_counts == 1)[0])
    assert res.success and res.model.sizes[s] == 4
    assert res.bars.lower[s, s] == pytest.approx(low, abs=1e-12)
    assert res.bars.upper[s, s] == 1.0 and res.bars.unique is unique


def test_certificate_of_the_previous_partition_still_verifies():
    # Files written with one block per single-sample class are an exact reduction too:
    # the answer of that partition, through the whole pipeline, verifies.
    spec = ProblemSpec((10, 10, 1, 1, 1), 0.1)
    assert verify_data(solve(spec).to_dict()).ok
    old = PIPELINE._pipeline(spec, split_model(spec), "native", None, TOLS,
                             time.perf_counter())
    data = json.loads(json.dumps(old.to_dict()))
    assert old.status == "optimal" and len(data["groups"]["counts"]) == 4
    assert verify_data(data).ok
    # A partition that does not match the counts is refused.
    for bad in ([10, 1, 2, 1], [10, 1, 1]):
        assert not verify_data(dict(data, groups=dict(data["groups"], counts=bad))).ok
