"""The batch-wise SC loss (scconvex.batches) and compare-batching.

Reference values: the full-batch loss (one batch of all samples), the closed forms of
docs/variants.md section 4 (pair design, Fano-plane design) and certified bounds.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import taylor_slope

from scconvex import InvalidInputError, ProblemSpec, build_model, certify, solve
from scconvex.certificates.verify import verify_data
from scconvex.losses.sc import sc_loss_gram
from scconvex.problem.batches import check_batches, random_batches

# The Fano plane with {4, 5, 6} as a line: every pair of 0..6 lies in exactly one triple.
FANO = [(4, 5, 6), (0, 1, 4), (2, 3, 4), (0, 2, 5), (1, 3, 5), (0, 3, 6), (1, 2, 6)]


def random_gram(rng, n, d=3):
    H = rng.standard_normal((n, d))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    return H @ H.T


@pytest.mark.parametrize("bad,match", [([], "at least one batch"), ([[0, 1], []], "empty"),
                                       ([[0, 0, 1, 2, 3]], "twice"), ([[0, 9]], "range"),
                                       ([[0, 1]], "every sample"), ([[0, 1.5]], "integers"),
                                       ("01", "list")])
def test_bad_batches_are_refused(bad, match):
    with pytest.raises(InvalidInputError, match=match):
        check_batches(bad, 4)


def test_random_batches_cover_every_sample_once():
    b = random_batches(12, 4, seed=3)
    assert sorted(i for x in b for i in x) == list(range(12)) and len(b) == 3
    assert b == random_batches(12, 4, seed=3) and b != random_batches(12, 4, seed=4)
    with pytest.raises(InvalidInputError, match="divide"):
        random_batches(12, 5, 0)


def test_group_level_is_refused_and_auto_is_class():
    # Classes of equal count are not exchangeable in a batch scheme: no group level. The
    # class level (collapsed geometries) is exact for every scheme (losses/minibatch.py).
    spec = ProblemSpec((3, 3, 2), 0.5, batches=random_batches(8, 4, 0))
    with pytest.raises(InvalidInputError, match="class, sample level only"):
        build_model(spec, "group")
    assert build_model(spec).level.name == "class"
    assert build_model(spec, "sample").level.name == "sample"
    with pytest.raises(InvalidInputError, match="'sc' loss only"):
        ProblemSpec((3, 3, 2), 0.5, loss="negatives-only", batches=[list(range(8))])
    out = subprocess.run([sys.executable, "-m", "scconvex", "solve", "--counts", "3,3,2",
                          "--tau", "0.5", "--batch-size", "4", "--level", "group"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "does not reduce this problem exactly" in out.stderr


def test_value_and_gradient(rng):
    spec = ProblemSpec((3, 3, 2), 0.4, batches=[[0, 1, 3, 6], [2, 4, 5, 7], [0, 2, 4, 6]])
    model = build_model(spec)
    G = random_gram(rng, spec.n)
    value, C = model.loss.sample_value_grad(G, spec.labels, spec.tau)
    lab = spec.labels
    expected = sum(sc_loss_gram(G[np.ix_(b, b)], lab[list(b)], spec.tau) for b in spec.batches)
    assert value == pytest.approx(expected, rel=1e-14)
    E = rng.standard_normal(G.shape)
    E = E + E.T
    slope = taylor_slope(lambda t: model.loss.sample_value_grad(G + t * E, lab, spec.tau)[0],
                         float(np.sum(C * E)))
    assert slope > 1.9


def test_single_batch_reproduces_full_batch(rng):
    spec = ProblemSpec((4, 3, 2, 1), 0.3)
    one = spec.with_(batches=[list(range(spec.n))])
    G = random_gram(rng, spec.n)
    assert build_model(one).loss.sample_value(G, spec.labels, spec.tau) == \
        sc_loss_gram(G, spec.labels, spec.tau)
    assert one.constant == spec.constant
    full = solve(spec)
    lab = spec.labels
    lifted = full.class_gram[np.ix_(lab, lab)]
    cert, _ = certify(build_model(one, "sample"), lifted)
    assert cert.loss == pytest.approx(full.loss, rel=1e-13)
    assert cert.rel_gap < 1e-9   # the full-batch optimum is optimal for the single batch
    res = solve(one)
    # One batch of everything: the class answer is the full-batch optimum, and the dense
    # sample certificate proves collapse optimal, as for the full-batch loss.
    assert res.level == "class" and res.success
    for a in (res, full):
        for b in (res, full):
            assert a.sample_lower_bound <= b.loss + 1e-9 * abs(b.loss)


def test_pair_design_gives_zero_loss(rng):
    """Batches of two, every pair once: every batch loss is 0 (docs/variants.md 4.2)."""
    spec = ProblemSpec((3, 2, 2), 0.5)
    pairs = [(i, j) for i in range(spec.n) for j in range(i + 1, spec.n)]
    batched = spec.with_(batches=pairs)
    G = random_gram(rng, spec.n)
    assert build_model(batched).loss.sample_value(G, spec.labels, 0.5) == 0.0
    res = solve(batched)
    # Optimal up to the dense rounding allowance; the excess (0) cannot certify more.
    assert res.loss == 0.0 and 0.0 <= res.gap <= 1e-12


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_fano_design_closed_form(tau):
    """Every pair in exactly one triple, classes {0..3} and {4, 5, 6}: docs/variants.md 4.2."""
    spec = ProblemSpec((4, 3), tau, batches=FANO)
    expected = 3 * math.log(2) + 12 * math.log1p(math.exp(-2 / tau))
    # The antipodal collapsed geometry attains it and the certificate proves it optimal.
    lab = spec.labels
    G = np.where(lab[:, None] == lab[None, :], 1.0, -1.0)
    cert, _ = certify(build_model(spec, "sample"), G)
    assert cert.loss == pytest.approx(expected, rel=1e-13)
    assert cert.gap <= 1e-12 * expected
    res = solve(spec)
    assert res.sample_lower_bound <= expected * (1 + 1e-12) <= res.loss * (1 + 1e-9)


def test_batch_binding_does_not_restore_the_full_batch_geometry():
    """Kini et al.'s batch binding, measured (docs/variants.md 4.3): one sample of every
    class added to every batch. The full-batch geometry gets much closer to optimal but is
    not an optimum: a certified feasible point has a lower batch-wise loss."""
    spec = ProblemSpec((6, 6, 2, 2), 0.5)
    full = solve(spec)
    lab = spec.labels
    lifted = full.class_gram[np.ix_(lab, lab)]
    plain = random_batches(spec.n, 4, 0)
    binding = [0, 6, 12, 14]
    bound = [tuple(sorted(set(b) | set(binding))) for b in plain]
    worse = []
    for scheme in (plain, bound):
        batched = spec.with_(batches=scheme)
        res = solve(batched)
        at_full = certify(build_model(batched, "sample"), lifted)[0].loss
        # res.loss is the loss of a feasible point, so at_full - res.loss is a lower bound
        # on how far the full-batch geometry is from optimal, whatever the solver did.
        worse.append((at_full - res.loss) / res.loss)
    assert worse[0] > 0.1           # without binding: far from optimal
    assert 0.005 < worse[1] < 0.1 * worse[0]   # with binding: much closer, still not optimal


def test_compare_batching_cli_done_criterion():
    out = subprocess.run([sys.executable, "-m", "scconvex", "compare-batching", "--counts",
                          "6,6,2,2", "--tau", "0.5", "--batch-size", "4", "--batch-seed", "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "full batch: status OPTIMAL" in out.stdout
    assert "batch-wise: status OPTIMAL" in out.stdout
    assert out.stdout.count("cosines between class means") == 2


def test_batched_certificate_verifies_and_records_batches(tmp_path):
    path = tmp_path / "b.json"
    batches = tmp_path / "batches.json"
    batches.write_text(json.dumps([[0, 1, 4, 6], [2, 3, 5, 7]]))
    out = subprocess.run([sys.executable, "-m", "scconvex", "solve", "--counts", "3,3,2",
                          "--tau", "0.5", "--batches", str(batches), "--certificate",
                          str(path), "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(path.read_text())
    assert data["spec"]["batches"] == [[0, 1, 4, 6], [2, 3, 5, 7]]
    assert verify_data(data).ok
    # The same geometry checked against another batch scheme is not this problem.
    data["spec"]["batches"] = [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert not verify_data(data).ok
