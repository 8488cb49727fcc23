"""Relaxation objects (scconvex.relaxations): the doubly non-negative (ReLU) relaxation.

The orthogonal-frame claim of Kini et al. (ICLR 2024) is checked with certificates: at
``M = I`` the DNN certificate must close (gap 0 up to the float64 allowance of the
eigenvalue, :func:`scconvex.certificates.certify._eig_rounding`) for every profile and temperature,
the conic solver (independent of that closed form) must land there, and a non-optimal point
must get a gap at least its true excess over ``M = I``.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from scconvex import InvalidInputError, ProblemSpec, build_model, certify, repair, solve
from scconvex.certificates.repair import min_eigenvalue
from scconvex.certificates.verify import verify_data
from scconvex.losses import get_loss
from scconvex.losses.relaxations import RELAXATIONS, get_relaxation, nonnegative_factor
from scconvex.problem.spec import RELAXATIONS as SPEC_RELAXATIONS

PROFILES = [
    ("step", dict(k=10, rho=0.5, ratio=10, n_min=5)),
    ("step", dict(k=6, rho=0.3, ratio=100, n_min=1)),
    ("step", dict(k=4, rho=0.75, ratio=2, n_min=3)),
    ("long_tail", dict(k=8, ratio=20, n_max=100)),
    ("long_tail", dict(k=5, ratio=50, n_max=50)),
]
TAUS = [0.05, 0.1, 0.3, 1.0, 2.0]


def make(profile, tau, loss):
    kind, kw = profile
    return getattr(ProblemSpec, kind)(tau=tau, loss=loss, relaxation="dnn", **kw)


def _closed(cert) -> bool:
    """Gap zero up to rounding: what remains is the eigenvalue's float64 allowance."""
    return cert.excess_gap <= 1e-11 and cert.rel_gap <= 1e-14


def test_registry_matches_spec_names():
    assert set(RELAXATIONS) == set(SPEC_RELAXATIONS)
    with pytest.raises(InvalidInputError, match="unknown relaxation"):
        get_relaxation("sphere")


@pytest.mark.parametrize("loss", ["sc", "negatives-only"])
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("profile", PROFILES)
def test_orthogonal_frame_is_certified_optimal(profile, tau, loss):
    """Kini et al.: with ReLU features the optimum is M = I whatever the imbalance."""
    spec = make(profile, tau, loss)
    for level in ("class", "group"):
        model = build_model(spec, level)
        cls, smp = certify(model, model.identity())
        assert _closed(cls) and _closed(smp), (level, cls, smp)


@pytest.mark.parametrize("loss", ["sc", "negatives-only"])
@pytest.mark.parametrize("profile,tau", [(PROFILES[0], 0.1), (PROFILES[3], 0.05),
                                         (PROFILES[1], 2.0)])
def test_conic_solver_finds_the_orthogonal_frame(profile, tau, loss):
    """Clarabel knows nothing of the closed form; its certified answer must be M = I."""
    spec = make(profile, tau, loss)
    res = solve(spec, level="class", solver="clarabel")
    M = res.class_gram
    assert np.min(M) >= 0 and min_eigenvalue(res.model, res.variable) >= 0
    # Whatever clarabel returned, M = I is at least as good (its gap is 0 above).
    ortho = certify(res.model, res.model.identity())[0]
    assert ortho.loss <= res.loss + 1e-12 * abs(res.loss)
    if res.success:
        # Cosines between two single-sample classes enter no anchor's loss: they are free
        # (see the next test); every other cosine must vanish.
        counts = np.array(spec.counts)
        matters = (counts[:, None] >= 2) | (counts[None, :] >= 2)
        np.testing.assert_allclose(M[matters], np.eye(spec.k)[matters], atol=1e-4)


@pytest.mark.parametrize("loss", ["sc", "negatives-only"])
def test_orthogonal_frame_is_not_unique_with_two_singleton_classes(loss):
    """A measured exception to "the optimum is M = I": singleton classes may align."""
    spec = ProblemSpec((100, 100, 1, 1, 1, 1), 2.0, loss=loss, relaxation="dnn")
    model = build_model(spec, "class")
    M = np.eye(6)
    M[2:, 2:] = 0.75
    np.fill_diagonal(M, 1.0)
    cls, smp = certify(model, M)
    ortho, _ = certify(model, np.eye(6))
    assert cls.loss == ortho.loss and _closed(cls) and _closed(smp)


def test_sample_level_conic_solve_is_collapsed_orthogonal_frame():
    spec = ProblemSpec((3, 2, 2), 0.5, relaxation="dnn")
    res = solve(spec, level="sample", solver="clarabel")
    model = res.model
    best = certify(model, model.identity())[0]   # block-diagonal ones: gap 0 up to rounding
    assert best.gap <= 1e-12 * best.loss
    assert res.sample_lower_bound <= best.loss + 1e-12 and best.loss <= res.loss + 1e-12
    if res.success:
        np.testing.assert_allclose(res.variable, model.identity(), atol=1e-4)


def test_without_relu_the_optimum_is_not_orthogonal():
    spec = ProblemSpec.step(10, 0.5, 10, 5, 0.1)
    res = solve(spec)
    assert res.success
    assert np.min(res.class_gram) < -0.05
    ortho = certify(res.model, res.model.identity())[0]
    assert ortho.loss > res.loss + 1e-3 * res.excess_loss


@pytest.mark.parametrize("loss", ["sc", "negatives-only"])
def test_gap_bounds_true_excess_at_nonoptimal_point(loss):
    spec = ProblemSpec((6, 4, 3, 2), 0.3, loss=loss, relaxation="dnn")
    model = build_model(spec, "class")
    M = np.full((4, 4), 0.3)
    np.fill_diagonal(M, 1.0)
    cls, smp = certify(model, M)
    best = certify(model, model.identity())[0]
    true_excess = cls.loss - best.loss
    assert true_excess > 0.1
    assert cls.gap >= true_excess and smp.gap >= true_excess


def test_dnn_bound_is_tighter_than_elliptope_bound_at_identity():
    """Without the multiplier Y the identity is far from optimal over the elliptope."""
    counts, tau = (6, 4, 3, 2), 0.3
    ell = build_model(ProblemSpec(counts, tau), "class")
    dnn = build_model(ProblemSpec(counts, tau, relaxation="dnn"), "class")
    assert certify(ell, ell.identity())[0].gap > 1.0
    assert certify(dnn, dnn.identity())[0].gap == 0.0


@pytest.mark.parametrize("loss", ["sc", "negatives-only"])
def test_dense_sample_certificate_agrees_with_block_one(rng, loss):
    spec = ProblemSpec((4, 3, 2, 1), 0.4, loss=loss, relaxation="dnn")
    model = build_model(spec, "class")
    U = np.abs(rng.standard_normal((4, 3)))
    U[0] = [1.0, 0.0, 0.0]
    U[1] = [0.0, 1.0, 0.0]   # classes 0 and 1 orthogonal: a zero entry for the multiplier
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    M = U @ U.T
    _, smp = certify(model, M)
    lab = spec.labels
    dense, _ = certify(build_model(spec, "sample"), M[np.ix_(lab, lab)])
    assert dense.loss == pytest.approx(smp.loss, rel=1e-12)
    assert dense.lower_bound == pytest.approx(smp.lower_bound, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("level", ["sample", "class", "group"])
def test_repair_gives_a_dnn_point(rng, level):
    spec = ProblemSpec((3, 3, 2, 1), 0.5, relaxation="dnn")
    model = build_model(spec, level)
    X = model.identity() + 0.05 * rng.standard_normal((model.dim, model.dim))
    Y, _ = repair(model, X)
    assert np.min(Y) >= 0 and min_eigenvalue(model, Y) >= 0
    assert model.relaxation.violation(model, Y) == 0.0


def test_group_level_equals_class_level():
    spec = ProblemSpec.step(6, 0.5, 4, 3, 0.2, relaxation="dnn")
    g = solve(spec, level="group", solver="clarabel")
    c = solve(spec, level="class", solver="clarabel")
    for a in (g, c):
        for b in (g, c):
            assert a.sample_lower_bound <= b.loss + 1e-9 * abs(b.loss)


def test_nonnegative_factor():
    H, res = nonnegative_factor(np.eye(4))
    assert H is not None and np.min(H) >= 0 and res == 0.0
    blocks = np.kron(np.eye(2), np.ones((2, 2)))
    H, _ = nonnegative_factor(blocks)
    assert H is not None and np.allclose(H @ H.T, blocks)
    # A negative cosine has no non-negative factor.
    H, res = nonnegative_factor(np.array([[1.0, -0.5], [-0.5, 1.0]]))
    assert H is None and res > 0.1


def test_relu_solve_cli_done_criterion(tmp_path):
    cert = tmp_path / "c.json"
    out = subprocess.run([sys.executable, "-m", "scconvex", "solve", "--step", "10,0.5,10,5",
                          "--tau", "0.1", "--relu", "--json", "--certificate", str(cert)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "optimal"
    assert data["spec"]["relaxation"] == "dnn"
    assert data["nonnegative_factor"]["found"] is True
    np.testing.assert_allclose(np.array(data["class_gram"]), np.eye(10), atol=1e-12)
    assert verify_data(json.loads(cert.read_text())).ok


def test_verify_rejects_negative_entry_under_dnn(tmp_path):
    spec = ProblemSpec((4, 3, 2), 0.5, relaxation="dnn")
    res = solve(spec, level="class")
    data = res.to_dict()
    M = np.array(data["class_gram"])
    M[0, 1] = M[1, 0] = -1e-3   # still PSD, but not non-negative
    data["class_gram"] = M.tolist()
    report = verify_data(data)
    assert not report.ok and "dnn" in report.reasons[0]
    # The same geometry is fine for the elliptope problem (it would fail on the gap or
    # on the claimed values, not on feasibility).
    data["spec"]["relaxation"] = "elliptope"
    assert not any("outside" in r for r in verify_data(data).reasons)


def test_loss_objects_increase_with_between_class_cosines(rng):
    """The closed form relies on this sign pattern of the gradient (docs/variants.md)."""
    labels = np.array([0, 0, 0, 1, 1, 2])
    H = rng.standard_normal((6, 3))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    same = labels[:, None] == labels[None, :]
    for name in ("sc", "negatives-only"):
        _, C = get_loss(name).sample_value_grad(H @ H.T, labels, 0.5)
        assert np.all(C[~same] > 0)
        off = same & ~np.eye(6, dtype=bool)
        off[5, 5] = False
        G_opt = same.astype(float)
        _, C_opt = get_loss(name).sample_value_grad(G_opt, labels, 0.5)
        assert np.all(C_opt[off] < 0)


@pytest.mark.parametrize("loss", ["sc", "negatives-only"])
@pytest.mark.parametrize("level", ["class", "group"])
def test_lower_bounds_are_valid_at_random_points(rng, loss, level):
    """Soundness of every multiplier candidate: at any feasible point, including points
    with tiny positive cosines (where Y is placed although X != 0), the certified lower
    bound must stay below the optimum (M = I, certified with gap 0 above)."""
    spec = ProblemSpec((5, 5, 3, 2, 2, 1), 0.2, loss=loss, relaxation="dnn")
    model = build_model(spec, level)
    optimum = certify(model, model.identity())[0].loss
    for _ in range(20):
        X = model.identity() + np.abs(rng.standard_normal((model.dim, model.dim))) * \
            rng.choice([1e-10, 1e-7, 1e-4, 1e-2, 0.3])
        X, _ = repair(model, 0.5 * (X + X.T))
        cls, smp = certify(model, X)
        slack = 1e-12 * abs(optimum)
        assert cls.lower_bound <= optimum + slack and smp.lower_bound <= optimum + slack
        assert cls.gap >= cls.loss - optimum - slack


# ---------------------------------------------------------------------- non-negative factor
FIVE_CYCLE = np.array([[1, 1, 0, 0, 1], [1, 2, 1, 0, 0], [0, 1, 2, 1, 0], [0, 0, 1, 2, 1],
                       [1, 0, 0, 1, 6]], dtype=float)
"""Issue 19: scaled to unit diagonal, a doubly non-negative matrix that is not completely
positive (its zero pattern is a 5-cycle whose comparison matrix has a negative
eigenvalue)."""


def _five_cycle_certificate():
    """A --relu certificate of counts 2,1,1,1,1,1 holding blockdiag(1, B), B the 5-cycle
    matrix: DNN, same loss as M = I (the singleton cosines enter no term), not CP. The
    claims an attacker can recompute (rank, smallest eigenvalue) are set to their values."""
    d = 1.0 / np.sqrt(np.diag(FIVE_CYCLE))
    M = np.eye(6)
    M[1:, 1:] = FIVE_CYCLE * np.outer(d, d)
    spec = ProblemSpec((2, 1, 1, 1, 1, 1), 0.5, relaxation="dnn")
    data = solve(spec, level="class").to_dict()
    data["class_gram"] = M.tolist()
    data["rank"] = 6
    data["min_eigenvalue"] = float(np.linalg.eigvalsh(M)[0])
    from scconvex.certificates.measures import BlockGeometry, summary
    from scconvex.files import jsonable

    # The claims about the geometry, recomputed for it (bars: none claimed).
    data["measures"] = jsonable(summary(BlockGeometry(M, np.ones(6, int), np.arange(6)),
                                        counts=spec.counts, rank=6))
    for key in ("cosine_bounds", "unique", "uniqueness"):
        data[key] = None
    return data, M


def test_five_cycle_is_dnn_with_the_optimal_loss_and_no_factor():
    data, M = _five_cycle_certificate()
    assert np.min(M) >= 0 and np.linalg.eigvalsh(M)[0] > 0.05   # doubly non-negative
    model = build_model(ProblemSpec((2, 1, 1, 1, 1, 1), 0.5, relaxation="dnn"), "class")
    assert certify(model, M)[0].loss == certify(model, np.eye(6))[0].loss
    # Not completely positive: the heuristic cannot find a factor, and solve would store none.
    assert nonnegative_factor(M)[0] is None
    assert get_relaxation("dnn").factor(model, M) is None


def test_verify_rejects_a_claimed_factor_that_is_not_stored():
    """Before issue 19 this file verified, its {found: true, dimension: 6} unchecked."""
    data, _ = _five_cycle_certificate()
    data["nonnegative_factor"] = {"found": True, "dimension": 6, "residual": 0.0}
    report = verify_data(data)
    assert not report.ok
    assert any("stores no factor" in r for r in report.reasons)


def test_verify_says_plainly_that_only_the_dnn_bound_is_proven():
    data, _ = _five_cycle_certificate()
    data["nonnegative_factor"] = {"found": False, "dimension": None}
    report = verify_data(data)
    assert report.ok   # the DNN bound itself is proven
    assert report.nonnegative_dimension is None
    assert any("only the DNN lower bound is proven" in note for note in report.notes)


@pytest.mark.parametrize("level", ["class", "group"])
def test_singletons_share_one_coordinate(level):
    """100,100,1,1,1,1: blockdiag(I_2, J_4) has the loss of I and a factor in d = a + 1 = 3
    (docs/variants.md 3.3), not 6."""
    spec = ProblemSpec((100, 100, 1, 1, 1, 1), 0.5, relaxation="dnn")
    res = solve(spec, level=level)
    assert res.success
    M = res.class_gram
    want = np.eye(6)
    want[2:, 2:] = 1.0
    np.testing.assert_allclose(M, want, atol=1e-12)
    model = build_model(spec, "class")
    assert certify(model, want)[0].loss == certify(model, np.eye(6))[0].loss
    data = res.to_dict()
    entry = data["nonnegative_factor"]
    assert entry["found"] and entry["dimension"] == 3
    report = verify_data(json.loads(json.dumps(data)))
    assert report.ok and report.nonnegative_dimension == 3
    assert not any("DNN" in note for note in report.notes)


def test_factor_rebuilds_the_features():
    """The stored block form is the features: rebuild H (k x d) and compare H H^T."""
    spec = ProblemSpec((5, 5, 3, 1, 1), 0.3, relaxation="dnn")
    res = solve(spec, level="group")
    entry = res.to_dict()["nonnegative_factor"]
    model = res.model
    own = np.array(entry["own"])
    shared = np.array(entry["shared"]).reshape(len(own), -1)
    rows = [np.concatenate([own[p] * np.eye(spec.k)[c], shared[p]])
            for c, p in enumerate(model.block_of)]
    H = np.array(rows)
    H = H[:, np.any(H > 0, axis=0)]
    assert np.min(H) >= 0 and H.shape[1] == entry["dimension"]
    np.testing.assert_allclose(H @ H.T, res.class_gram, atol=1e-12)


def test_verify_rejects_tampered_factors():
    spec = ProblemSpec((4, 4, 2, 1, 1), 0.4, relaxation="dnn")
    data = json.loads(json.dumps(solve(spec, level="group").to_dict()))
    assert verify_data(data).ok
    entry = data["nonnegative_factor"]

    def attempt(**changes):
        forged = json.loads(json.dumps(data))
        forged["nonnegative_factor"].update(changes)
        return verify_data(forged)

    negative = [[-x for x in row] for row in entry["shared"]]
    assert not attempt(shared=negative).ok                       # H >= 0
    assert not attempt(dimension=entry["dimension"] + 1).ok      # its own dimension
    assert not attempt(own=[0.5 * x for x in entry["own"]]).ok   # H H^T = the geometry
    assert not attempt(own=entry["own"][:-1]).ok                 # shape
    assert not attempt(residual=0.5).ok


def test_verify_checks_the_loss_of_the_factor(monkeypatch):
    """With the reconstruction test switched off, a factor of another geometry (all
    features equal: completely positive, far from optimal) is still rejected by the loss of
    its Gram against the certified bound."""
    import scconvex.certificates.verify as verify_module

    spec = ProblemSpec((4, 4, 2, 1, 1), 0.4, relaxation="dnn")
    data = json.loads(json.dumps(solve(spec, level="class").to_dict()))
    data["nonnegative_factor"].update(own=[0.0] * 5, shared=[[1.0]] * 5, dimension=1)
    monkeypatch.setattr(verify_module, "FACTOR_TOL", 10.0)
    data["nonnegative_factor"]["residual"] = get_relaxation("dnn").load_factor(
        build_model(spec, "class"), data).residual(np.eye(5))
    report = verify_data(data)
    assert not report.ok and any("is not certified" in r for r in report.reasons)


def test_report_names_relu_features():
    from scconvex.pipeline.report import format_result

    text = format_result(solve(ProblemSpec((3, 2, 1, 1), 0.5, relaxation="dnn")))
    assert "non-negative features (ReLU)" in text and "relaxation dnn" not in text
    assert "features H >= 0 in d = 3" in text
