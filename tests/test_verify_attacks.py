"""Attacks on ``verify`` (issue 8, observations 1 and 2): each one must be rejected.

Certificates are written by ``solve`` and then edited the way an attacker (or a careless
tool) would: the geometry is moved to a worse feasible point, with the claimed numbers left
alone, with the loss recomputed, or with every claim recomputed honestly from the new
geometry; or single claimed fields are changed while the geometry stays untouched.

The forged geometries are convex combinations ``(1 - t) M* + t I`` of the certified optimum
and the all-orthogonal geometry, so they are exactly feasible; their excess loss is
computed independently here with mpmath from MATH.md section 4, which shows how far from
optimal they are.
"""

from __future__ import annotations

import copy
import math

import mpmath as mp
import numpy as np
import pytest
from conftest import honest_claims

from scconvex import ProblemSpec, solve
from scconvex.certificates.certify import certify
from scconvex.certificates.verify import verify_data
from scconvex.files import SCHEMA_VERSION
from scconvex.problem.model import build_model


def _excess_mp(M, counts, tau) -> mp.mpf:
    """``L - sum n_c log(n_c - 1)`` of a class Gram, in 40-digit arithmetic."""
    with mp.workdps(40):
        total = mp.mpf(0)
        for c, nc in enumerate(counts):
            if nc < 2:
                continue
            s = sum(counts[j] * mp.exp((mp.mpf(M[c][j]) - 1) / mp.mpf(tau))
                    for j in range(len(counts)) if j != c)
            total += nc * mp.log1p(s / (nc - 1))
        return total


@pytest.fixture(scope="module")
def certified():
    """Certificates written by ``solve`` at class level, keyed by (counts, tau)."""
    out = {}
    for counts, tau in [((9, 3, 4, 5), 0.05), ((9, 3, 4, 5), 0.02), ((9, 3, 4, 5), 0.1),
                        ((10, 10, 10), 0.05)]:
        res = solve(ProblemSpec(counts, tau), level="class")
        assert res.success, res.message
        out[counts, tau] = res.to_dict()
    return out


def _perturbed(data: dict, shift: float) -> dict:
    """Move the class Gram towards orthogonal class means; cosines move by ``shift``."""
    out = copy.deepcopy(data)
    M = np.array(out["class_gram"])
    k = len(M)
    t = shift / np.max(np.abs(M - np.eye(k)))
    out["class_gram"] = ((1 - t) * M + t * np.eye(k)).tolist()
    return out


@pytest.mark.parametrize("key", [((9, 3, 4, 5), 0.05), ((9, 3, 4, 5), 0.02),
                                 ((9, 3, 4, 5), 0.1), ((10, 10, 10), 0.05)],
                         ids=["9345-0.05", "9345-0.02", "9345-0.1", "101010-0.05"])
@pytest.mark.parametrize("shift", [1e-3, 1e-2, 1e-1])
@pytest.mark.parametrize("claims", ["left alone", "loss recomputed", "all recomputed"])
def test_perturbed_geometry_is_rejected(certified, key, shift, claims):
    counts, tau = key
    data = _perturbed(certified[key], shift)
    M_star = certified[key]["class_gram"]
    worse = _excess_mp(data["class_gram"], counts, tau) / _excess_mp(M_star, counts, tau)
    assert worse > 1 + 1e-3  # the forged geometry is really worse, by this much at least
    if claims == "loss recomputed":
        model = build_model(ProblemSpec(counts, tau), "class")
        data["loss"] = certify(model, np.array(data["class_gram"]))[0].loss
    elif claims == "all recomputed":
        honest_claims(data)
    report = verify_data(data)
    assert not report.ok
    if claims == "all recomputed":
        # Nothing is tampered with: the recomputed certificate itself fails, on the excess.
        assert any("relative to the excess loss" in r for r in report.reasons), report.reasons
        assert not any("tampered" in r for r in report.reasons)


def test_genuine_small_tau_certificates_verify(certified):
    for key, data in certified.items():
        report = verify_data(data)
        assert report.ok, (key, report.reasons)


def test_uncertified_solve_does_not_verify(tmp_path):
    # A starved solve (one native iteration) leaves an excess gap of about 40; its file
    # must not pass. (The default solve used to fail here by itself at group level.)
    res = solve(ProblemSpec((10, 10, 1, 1, 1), 0.01), solver="native",
                options={"max_iter": 1})
    assert res.status == "uncertified"
    data = res.to_dict()
    report = verify_data(data)
    assert not report.ok
    assert any("status" in r for r in report.reasons)
    assert any("relative to the excess loss" in r for r in report.reasons)
    # Claiming "optimal" does not help: the recomputed certificate fails on its own.
    data["status"] = "optimal"
    report = verify_data(data)
    assert not report.ok
    assert any("claimed status 'optimal'" in r for r in report.reasons), report.reasons


def test_forged_identity_geometry_is_rejected():
    counts, tau = (5, 4, 3), 0.01
    data = solve(ProblemSpec(counts, tau), level="class").to_dict()
    M_star = data["class_gram"]
    data["class_gram"] = np.eye(3).tolist()
    honest_claims(data)
    # Independent measure of the forgery: the identity's excess over the optimum's.
    ratio = _excess_mp(np.eye(3).tolist(), counts, tau) / _excess_mp(M_star, counts, tau)
    assert ratio > 1e20
    report = verify_data(data)
    assert not report.ok
    assert any("relative to the excess loss" in r for r in report.reasons)


@pytest.fixture(scope="module")
def genuine():
    res = solve(ProblemSpec((9, 3, 4, 5), 0.3), level="class")
    assert res.success
    return res.to_dict()


def _changed(data: dict, **fields) -> dict:
    out = copy.deepcopy(data)
    out.update(fields)
    return out


@pytest.mark.parametrize("field", ["lower_bound", "sample_lower_bound"])
def test_claimed_lower_bound_above_certified_is_rejected(genuine, field):
    report = verify_data(_changed(genuine, **{field: genuine["loss"] + 1}))
    assert not report.ok
    assert any("exceeds the certified" in r for r in report.reasons), report.reasons


@pytest.mark.parametrize("field", ["lower_bound", "sample_lower_bound"])
def test_claimed_lower_bound_just_above_certified_is_rejected(genuine, field):
    # Far below the loss-relative tolerance, but above what the geometry certifies.
    report = verify_data(_changed(genuine, **{field: genuine[field]
                                              + 1e-9 * abs(genuine[field])}))
    assert not report.ok and any("exceeds the certified" in r for r in report.reasons)


@pytest.mark.parametrize("change", [
    dict(rel_gap=-5), dict(sample_rel_gap=-5), dict(rel_gap=1e-8),
    dict(gap=-1.0), dict(sample_gap=1.0), dict(excess_gap=-1.0),
    dict(sample_excess_gap=0.5), dict(excess_loss=1.0), dict(loss=1.0),
    dict(tau=0.31), dict(counts=[9, 3, 4, 6]), dict(n=22), dict(k=5),
    dict(min_eigenvalue=0.5), dict(rank=1), dict(level="group"),
    dict(status="uncertified"), dict(status="failed"), dict(status="OPTIMAL"),
    dict(gap_tol=1e-20), dict(excess_tol=1e-20), dict(gap_tol="x"), dict(k=True),
    dict(counts=[9, 3, 4, True]), dict(kind="scconvex.tightness"),
    dict(schema_version=SCHEMA_VERSION + 1),
], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_tampered_claim_is_rejected(genuine, change):
    report = verify_data(_changed(genuine, **change))
    assert not report.ok, change


@pytest.mark.parametrize("field", ["loss", "gap", "sample_gap", "lower_bound",
                                   "sample_lower_bound", "rel_gap", "sample_rel_gap",
                                   "excess_loss", "excess_gap", "sample_excess_gap", "rank",
                                   "status", "min_eigenvalue", "tau", "counts", "n", "k",
                                   "level"])
def test_missing_claim_is_rejected(genuine, field):
    data = copy.deepcopy(genuine)
    del data[field]
    report = verify_data(data)
    assert not report.ok and "malformed" in report.reasons[0], field


def test_sample_level_class_gram_must_match_sample_gram():
    res = solve(ProblemSpec((6, 6, 3, 3, 2), 0.3), level="sample", solver="clarabel")
    assert res.success, res.message
    data = res.to_dict()
    assert verify_data(data).ok
    data["class_gram"] = np.eye(5).tolist()
    report = verify_data(data)
    assert not report.ok and any("class_gram does not match" in r for r in report.reasons)


def test_group_level_attack_is_rejected():
    counts, tau = (10, 10, 3, 3, 3), 0.05
    res = solve(ProblemSpec(counts, tau), level="group")
    assert res.success
    data = res.to_dict()
    assert verify_data(data).ok
    B = np.array(data["groups"]["gram"])
    t = 1e-2 / np.max(np.abs(B - np.eye(2)))
    data["groups"]["gram"] = ((1 - t) * B + t * np.array([[0.0, 0.0], [0.0, 0.0]])).tolist()
    data["class_gram"] = None
    honest_claims(data)
    report = verify_data(data)
    assert not report.ok
    assert any("relative to the excess loss" in r for r in report.reasons), report.reasons


def test_tolerances_are_validated(genuine):
    from scconvex.errors import InvalidInputError

    for kw in (dict(tol=0.0), dict(tol=math.nan), dict(excess_tol=-1.0),
               dict(excess_tol="x")):
        with pytest.raises(InvalidInputError):
            verify_data(genuine, **kw)


def test_numbers_compare_by_value():
    data = solve(ProblemSpec((5, 4, 3), 1.0)).to_dict()
    assert data["tau"] == 1.0 and verify_data(data).ok
    data.update(tau=1, counts=[5.0, 4, 3], n=12.0)  # the same values, written differently
    assert verify_data(data).ok, verify_data(data).reasons


def test_sample_level_excess_below_rounding_is_not_accepted():
    """A dense sample-level file at tau = 0.02: its excess (about 1e-27) is far below the
    float64 rounding of ``L - sum n_c log(n_c - 1)`` (about 1e-14), so no gap relative to it
    can be certified. Before the rounding allowance a lift of a geometry 100 times worse
    than optimal (by excess) was accepted here."""
    counts, tau = (6, 6, 2, 2), 0.02
    spec = ProblemSpec(counts, tau)
    M = solve(spec, level="class").class_gram
    template = solve(ProblemSpec(counts, 0.5), level="sample", solver="clarabel").to_dict()
    lab = spec.labels
    for t in (0.0, 0.1):
        Mt = (1 - t) * M + t * np.eye(4)
        data = copy.deepcopy(template)
        data["spec"]["tau"] = data["tau"] = tau
        data["sample_gram"] = Mt[np.ix_(lab, lab)].tolist()
        data["class_gram"] = Mt.tolist()
        honest_claims(data)
        report = verify_data(data)
        assert not report.ok and report.sample_excess_gap == math.inf
        assert any("not resolved" in r for r in report.reasons)


def _negatives_only_excess_mp(M, counts, tau) -> mp.mpf:
    """Excess of a collapsed negatives-only geometry over its constant (MATH.md section 8):
    ``sum_c n_c log(mean over the n - n_c negatives of exp((M_cc' + 1) / tau))``, with
    enough digits to resolve ``exp(1 / tau) - 1`` up to tau = 1e100."""
    with mp.workdps(250):
        n = sum(counts)
        total = mp.mpf(0)
        for c, nc in enumerate(counts):
            if nc < 2:
                continue
            s = sum(counts[j] * mp.exp((mp.mpf(M[c][j]) + 1) / mp.mpf(tau))
                    for j in range(len(counts)) if j != c)
            total += nc * mp.log(s / (n - nc))
        return total


@pytest.mark.parametrize("level", ["class", "sample"])
def test_negatives_only_zero_excess_certificate_verifies_and_resists_forgery(level):
    """Counts 5,1,1 with the negatives-only loss: the optimum attains the loss's constant
    (excess exactly 0), so solve certifies it with gap 0 and verify accepts that file; a
    geometry moved off it is worse (excess > 0, computed here with mpmath) and must be
    rejected even with every claim recomputed for it and status 'optimal'."""
    counts, tau = (5, 1, 1), 0.1
    spec = ProblemSpec(counts, tau, loss="negatives-only")
    res = solve(spec, level=level)
    assert res.success, res.message
    data = res.to_dict(full_gram=True)
    assert verify_data(data).ok, verify_data(data).reasons
    M_star = np.array(data["class_gram"])
    assert _negatives_only_excess_mp(M_star.tolist(), counts, tau) == 0
    lab = spec.labels
    for t in (1e-12, 1e-8, 1e-3):
        Mt = (1 - t) * M_star + t * np.eye(3)
        assert _negatives_only_excess_mp(Mt.tolist(), counts, tau) > 0
        forged = copy.deepcopy(data)
        forged["class_gram"] = Mt.tolist()
        if level == "sample":
            forged["sample_gram"] = Mt[np.ix_(lab, lab)].tolist()
        honest_claims(forged)
        report = verify_data(forged)
        assert not report.ok, t
        assert not any("tampered" in r for r in report.reasons), report.reasons
        # Left with the genuine claims, the forgery is caught on them as well.
        left = copy.deepcopy(data)
        left["class_gram"] = forged["class_gram"]
        if level == "sample":
            left["sample_gram"] = forged["sample_gram"]
        assert not verify_data(left).ok


@pytest.mark.parametrize("counts", [(5, 3, 2), (5, 1, 1)])
@pytest.mark.parametrize("tau", [1e3, 1e20, 1e99])
def test_negatives_only_excess_is_resolved_at_large_tau(counts, tau):
    """At large tau every cosine moves the negatives-only loss by about 1 / tau. The excess
    used to be a log-sum-exp of numbers near log(1 / (n - n_c)), which rounds to 0 (or to
    1e-16) once 1 / tau is below the rounding: the orthogonal geometry, far from optimal,
    was then certified with gap 0 (5,1,1) or an excess gap of 1e-4 (5,3,2) from tau 1e20."""
    spec = ProblemSpec(counts, tau, loss="negatives-only")
    eye = np.eye(3)
    exact = _negatives_only_excess_mp(eye.tolist(), counts, tau)
    # A better feasible point (the first class antipodal to the others) proves that the
    # orthogonal one is at least this much above the optimum, relative to its excess.
    line = np.outer([1.0, -1.0, -1.0], [1.0, -1.0, -1.0])
    worse = float(1 - _negatives_only_excess_mp(line.tolist(), counts, tau) / exact)
    assert worse > 0.1
    cls, smp = certify(build_model(spec, "class"), eye)
    assert cls.excess_loss == pytest.approx(float(exact), rel=1e-12)
    assert cls.excess_gap >= worse * (1 - 1e-9) and smp.excess_gap >= worse * (1 - 1e-9)
    data = solve(ProblemSpec(counts, 0.5, loss="negatives-only"), level="class").to_dict()
    data["spec"]["tau"] = data["tau"] = tau
    data["class_gram"] = eye.tolist()
    honest_claims(data)
    report = verify_data(data)
    assert not report.ok and any("relative to the excess loss" in r for r in report.reasons)


# ---------------------------------------------------------------- issue 20, item 3
@pytest.fixture(scope="module")
def huge_counts():
    """Counts 1e7, 1e7, 3e6 at tau = 0.02: the excess is ~1e-25, the loss ~4e8."""
    res = solve(ProblemSpec((10**7, 10**7, 3 * 10**6), 0.02), level="class")
    assert res.success
    return res.to_dict()


@pytest.mark.parametrize("field", ["lower_bound", "sample_lower_bound"])
@pytest.mark.parametrize("above", [5e-13, 1e-15])
def test_claimed_lower_bound_above_the_loss_is_rejected(huge_counts, field, above):
    """Issue 20: a bound 5e-13 |L| above the geometry's own loss (2.7e21 times the excess)
    fit inside the loss-relative slack and was accepted. No optimum exceeds that loss."""
    data = huge_counts
    assert data["excess_loss"] < 1e-20 * data["loss"]  # the slack dwarfs the excess
    forged = _changed(data, **{field: data["loss"] * (1 + above)})
    assert forged[field] > data["loss"]
    report = verify_data(forged)
    assert not report.ok
    assert any("exceeds the certified" in r and "loss" in r for r in report.reasons)


@pytest.mark.parametrize("field", ["gap", "sample_gap", "rel_gap", "sample_rel_gap",
                                   "excess_gap", "sample_excess_gap"])
def test_claimed_zero_gap_is_compared_like_any_claim(genuine, field):
    """Issue 20: gaps claimed as exactly 0 were accepted where the recomputation gives
    about 1e-13 (within a thousandth of the tolerance, the rounding floor of a claim)."""
    assert genuine[field] != 0  # the recomputed gap is not 0
    report = verify_data(_changed(genuine, **{field: 0.0}))
    assert not report.ok and any(f"claimed {field} 0 " in r for r in report.reasons)
    assert verify_data(genuine).ok


def test_verify_names_the_loss_relaxation_and_batches(tmp_path):
    """Issue 20: a --relu or negatives-only certificate read like a plain one."""
    from scconvex.cli import main
    from scconvex.files import write_json

    plain = solve(ProblemSpec((4, 3, 3), 0.5))
    relu = solve(ProblemSpec((4, 3, 3), 0.5, loss="negatives-only", relaxation="dnn"))
    spec = ProblemSpec((2, 2), 0.5, level="sample")
    batched = solve(spec.with_(batches=((0, 1, 2), (1, 2, 3))), level="sample")
    for res, words in ((plain, "sc loss, elliptope relaxation, full batch"),
                       (relu, "negatives-only loss, dnn relaxation, full batch"),
                       (batched, "2 batches")):
        assert res.success, res.message
        path = tmp_path / "c.json"
        write_json(path, res.to_dict())
        report = verify_data(res.to_dict())
        assert words in report.variant and report.to_dict()["loss_name"] == res.spec.loss
        proc_out = _cli_output(main, ["verify", str(path)])
        assert words in proc_out, proc_out


def _cli_output(main, argv) -> str:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(argv)
    return out.getvalue() + err.getvalue()
