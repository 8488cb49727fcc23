"""The class-level mini-batch loss against a brute-force sample-level sum over batches."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import loss_loop, taylor_slope

from scconvex.errors import InvalidInputError
from scconvex.losses.minibatch import compositions, minibatch_terms
from scconvex.problem.batches import epoch_batches


def random_gram(rng, k):
    W = rng.standard_normal((k, k + 2))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    return W @ W.T, W


def brute_force(W, labels, batches, tau):
    """Collapsed features (sample i at its class vector) and MATH.md section 2 term by
    term, batch by batch."""
    H = W[labels]
    return sum(loss_loop(H[list(b)], labels[list(b)], tau) for b in batches)


@pytest.mark.parametrize("n, size, epochs, tau", [(23, 5, 3, 0.5), (30, 7, 2, 0.1),
                                                  (12, 12, 1, 1.0), (17, 4, 4, 0.05)])
def test_class_level_value_is_the_sum_over_batches(rng, n, size, epochs, tau):
    k = 4
    labels = np.sort(rng.integers(0, k, n))
    M, W = random_gram(rng, k)
    batches = epoch_batches(n, size, epochs, seed=3)
    comp, mult = compositions(batches, labels, k)
    t = minibatch_terms(M, comp, mult, tau)
    assert t.value == pytest.approx(brute_force(W, labels, batches, tau), rel=1e-11)
    assert t.excess == pytest.approx(t.value - t.constant, rel=1e-9, abs=1e-12)
    assert mult.sum() == len(batches)


def test_one_batch_of_everything_is_the_full_batch_loss(rng):
    from scconvex.losses.sc import class_loss

    counts = [6, 4, 3]
    labels = np.repeat(np.arange(3), counts)
    M, _ = random_gram(rng, 3)
    comp, mult = compositions(epoch_batches(13, 13, 1), labels, 3)
    assert minibatch_terms(M, comp, mult, 0.2).value == pytest.approx(
        class_loss(M, counts, 0.2), rel=1e-13)


def test_epochs_are_fresh_partitions_with_a_smaller_last_batch():
    batches = epoch_batches(946, 128, epochs=10, seed=0)
    assert len(batches) == 80
    sizes = [len(b) for b in batches]
    assert sizes[:8] == [128] * 7 + [50]
    for e in range(10):
        epoch = batches[8 * e: 8 * e + 8]
        assert sorted(i for b in epoch for i in b) == list(range(946))
    assert batches[:8] != batches[8:16]
    assert epoch_batches(946, 128, 10, seed=0) == batches


def test_gradient_taylor(rng):
    k, tau = 5, 0.3
    labels = np.sort(rng.integers(0, k, 40))
    comp, mult = compositions(epoch_batches(40, 9, 3, seed=1), labels, k)
    M, _ = random_gram(rng, k)
    E = rng.standard_normal((k, k))
    E = E + E.T
    np.fill_diagonal(E, 0.0)
    t = minibatch_terms(M, comp, mult, tau)
    slope = taylor_slope(lambda s: minibatch_terms(M + s * E, comp, mult, tau).value,
                         float(np.sum(t.grad * E)))
    assert slope > 1.9
    np.testing.assert_allclose(t.rel_grad * t.excess, t.grad, rtol=1e-10, atol=1e-14)


def test_small_tau_stays_in_log_space(rng):
    labels = np.repeat(np.arange(3), 10)
    comp, mult = compositions(epoch_batches(30, 8, 2, seed=0), labels, 3)
    M = np.full((3, 3), -0.5) + 1.5 * np.eye(3)
    t = minibatch_terms(M, comp, mult, 1e-3)
    assert t.excess == 0.0 and np.isfinite(t.log_excess)  # underflows; its log does not
    assert np.all(np.isfinite(t.rel_grad)) and np.max(t.rel_grad) > 0


@pytest.mark.parametrize("args, match", [((10, 0, 1, 0), "batch size"),
                                         ((10, 11, 1, 0), "larger than n"),
                                         ((10, 4, 0, 0), "epochs"),
                                         ((10, 4, 1, -1), "batch seed"),
                                         ((10, 4.0, 1, 0), "integer")])
def test_bad_schemes(args, match):
    with pytest.raises(InvalidInputError, match=match):
        epoch_batches(*args)


# ---------------------------------------------------------------------- solve and certify
def test_epochs_of_batches_solve_at_class_level_and_bound_collapse():
    """The issue's size: n = 1,050, batches of 128 (not a divisor), 10 epochs. The class
    answer is certified over class Grams; the dense sample certificate of the lifted answer
    gives a valid bound over all Grams (collapse is not proven optimal for a sampled
    scheme, and the message says so). Checked against the brute-force sample-level value
    of the same lifted Gram."""
    from scconvex import ProblemSpec, solve
    from scconvex.losses.batched import BatchedLoss  # noqa: F401  (the loss object used)

    counts = (200,) * 5 + (10,) * 5
    batches = epoch_batches(sum(counts), 128, 10, seed=0)
    spec = ProblemSpec(counts, 0.1, batches=batches)
    res = solve(spec)
    assert res.level == "class" and res.solver == "native"
    assert res.certificate.excess_gap < 1e-9
    assert res.sample_lower_bound <= res.loss
    assert "collapse is not proven optimal" in res.message
    lab = spec.labels
    G = res.class_gram[np.ix_(lab, lab)]
    from scconvex.losses.sc import sc_loss_gram

    brute = sum(sc_loss_gram(G[np.ix_(b, b)], lab[list(b)], 0.1) for b in batches)
    assert res.loss == pytest.approx(brute, rel=1e-11)
    # Majority classes spread wider than under the full-batch loss (the SGD geometry).
    full = solve(ProblemSpec(counts, 0.1))
    assert res.class_gram[0, 1] < full.class_gram[0, 1] - 0.01


def test_a_non_collapsed_gram_beats_every_collapsed_one():
    """Collapse is not optimal for a sampled scheme, shown constructively: the sample
    certificate's slack ``S`` at the lifted class optimum has a negative eigenvalue, and
    moving along its eigenvector (then rescaling to a unit diagonal, a feasible point)
    lowers the batch-wise loss below the certified lower bound over all collapsed
    geometries. The first-order decrease is ``t lambda_min(S)``, far above rounding."""
    from scconvex import ProblemSpec, solve
    from scconvex.certificates.certify import dense_rounding
    from scconvex.problem.model import build_model

    counts = (200,) * 5 + (10,) * 5
    spec = ProblemSpec(counts, 0.1, batches=epoch_batches(sum(counts), 128, 10, seed=0))
    cls = solve(spec, level="class")
    lab = spec.labels
    G = cls.class_gram[np.ix_(lab, lab)]
    loss = build_model(spec, "sample").loss
    _, C = loss.sample_value_grad(G, lab, 0.1)
    S = C - np.diag(np.sum(C * G, axis=1))
    w, V = np.linalg.eigh(S)
    assert w[0] < 0
    margin = dense_rounding(loss.anchor_count(spec), 0.1)
    best = np.inf
    for t in np.geomspace(1e-1, 1e-5, 9):
        Gt = G + t * np.outer(V[:, 0], V[:, 0])
        d = np.sqrt(np.diag(Gt))
        best = min(best, loss.sample_value(Gt / np.outer(d, d), lab, 0.1))
    assert best < cls.certificate.lower_bound - margin


@pytest.mark.slow
def test_collapse_is_not_optimal_for_a_sampled_scheme():
    """A second method: the certified sample-level optimum (Clarabel, n = 48) is below the
    best collapsed geometry, and by no more than the class answer's sample certificate."""
    from scconvex import ProblemSpec, solve

    counts = (12,) * 3 + (4,) * 3
    spec = ProblemSpec(counts, 0.1, batches=epoch_batches(48, 12, 3, seed=0))
    cls = solve(spec, level="class")
    smp = solve(spec, level="sample")
    assert smp.success and cls.certificate.excess_gap < 1e-6
    drop = cls.loss - smp.loss
    assert 0 < drop <= cls.sample_gap + smp.gap
    auto = solve(spec)  # collapse not proven: the sample level fits, so auto goes there
    assert auto.level == "sample" and auto.success


def test_compare_with_a_minibatch_optimum(rng):
    from scconvex import ProblemSpec, solve
    from scconvex.losses.sc import sc_loss
    from scconvex.studies.compare import compare

    y = rng.permutation(np.repeat(np.arange(4), [30, 30, 6, 6]))
    H = rng.standard_normal((72, 5)) + 3 * np.eye(5)[y]
    spec = ProblemSpec((30, 30, 6, 6), 0.2, batches=epoch_batches(72, 16, 3, seed=1))
    res = solve(spec, level="class")  # the class answer (auto would try n x n too)
    c = compare(H, y, 0.2, batch_size=16, epochs=3, batch_seed=1, result=res)
    order = np.argsort(y, kind="stable")
    ref = sum(sc_loss(H[order[list(b)]], y[order[list(b)]], 0.2)
              for b in epoch_batches(72, 16, 3, seed=1))
    assert abs(c.loss - ref) <= c.loss_error + 1e-9 * abs(ref)
    assert c.spec.batches == epoch_batches(72, 16, 3, seed=1)
    assert c.gap >= -c.loss_error
    assert c.lower_bound == res.sample_lower_bound
    assert any("collapse is not proven optimal" in note for note in c.notes)


def test_a_minibatch_certificate_is_rechecked_by_verify(tmp_path):
    """The class answer's file re-checks from scratch (the loss rebuilt from the stored
    batches), and an edited cosine is rejected. One batch per epoch of all samples keeps
    collapse optimal, so the file certifies; epochs of smaller batches give the class
    certificate only, which verify reports as not certified over sample Grams."""
    import json

    from scconvex import ProblemSpec, solve, verify

    counts = (9, 9, 3, 3)
    spec = ProblemSpec(counts, 0.2, batches=epoch_batches(24, 24, 2, seed=0))
    res = solve(spec, level="class")
    assert res.success and res.level == "class"
    path = tmp_path / "c.json"
    path.write_text(json.dumps(res.to_dict()))
    assert verify(path).ok
    data = json.loads(path.read_text())
    data["class_gram"][0][2] = data["class_gram"][2][0] = data["class_gram"][0][2] + 1e-3
    path.write_text(json.dumps(data))
    assert not verify(path).ok
    sampled = solve(spec.with_(batches=epoch_batches(24, 8, 3, seed=0)), level="class")
    path.write_text(json.dumps(sampled.to_dict()))
    report = verify(path)
    assert not report.ok and report.rel_gap < 1e-9 < report.sample_excess_gap
