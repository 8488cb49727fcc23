import json

import numpy as np
import pytest

from scconvex import ProblemSpec, solve
from scconvex.certificates.verify import verify
from scconvex.files import write_json


def _certificate_file(tmp_path_factory, level):
    res = solve(ProblemSpec((6, 6, 3, 3, 2), 0.3), level=level, solver="clarabel",
                gap_tol=1e-7)
    assert res.success
    path = tmp_path_factory.mktemp("cert") / f"{level}.json"
    write_json(path, res.to_dict())
    return path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return _certificate_file(tmp_path_factory, "class")


def _edit(src, dst, change):
    data = json.loads(src.read_text())
    change(data)
    dst.write_text(json.dumps(data))
    return dst


def test_genuine_certificate_verifies(certificate):
    report = verify(certificate, tol=1e-6)
    assert report.ok, report.reasons


def test_changed_cosine_is_rejected(certificate, tmp_path):
    def change(d):
        d["class_gram"][0][2] += 1e-3
        d["class_gram"][2][0] += 1e-3

    report = verify(_edit(certificate, tmp_path / "t.json", change), tol=1e-6)
    assert not report.ok
    assert any("tampered" in r for r in report.reasons)


def test_single_entry_change_is_rejected(certificate, tmp_path):
    def change(d):
        d["class_gram"][1][3] -= 1e-3

    report = verify(_edit(certificate, tmp_path / "t.json", change), tol=1e-6)
    assert not report.ok and "infeasible" in report.reasons[0]


def test_non_psd_geometry_is_rejected(certificate, tmp_path):
    def change(d):
        k = len(d["class_gram"])
        M = np.full((k, k), -0.9)
        np.fill_diagonal(M, 1.0)
        d["class_gram"] = M.tolist()

    report = verify(_edit(certificate, tmp_path / "t.json", change), tol=1e-6)
    assert not report.ok and "semidefinite" in report.reasons[0]


def test_wrong_spec_is_rejected(certificate, tmp_path):
    def change(d):
        d["spec"]["tau"] = 0.31

    report = verify(_edit(certificate, tmp_path / "t.json", change), tol=1e-6)
    assert not report.ok


@pytest.mark.parametrize("text", ["not json", "[]", '{"spec": {"counts": [3, 3]}}'])
def test_malformed_file(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    report = verify(path)
    assert not report.ok and "malformed" in report.reasons[0]


def test_gap_too_large(certificate):
    report = verify(certificate, tol=1e-15)
    assert not report.ok and "gap too large" in report.reasons[-1]


@pytest.fixture(scope="module")
def group_certificate(tmp_path_factory):
    return _certificate_file(tmp_path_factory, "group")


def test_group_certificate_verifies(group_certificate):
    assert verify(group_certificate, tol=1e-6).ok


def test_group_geometry_change_is_rejected(group_certificate, tmp_path):
    def change(d):
        d["groups"]["gram"][0][1] += 1e-3
        d["groups"]["gram"][1][0] += 1e-3
        d["class_gram"] = None

    report = verify(_edit(group_certificate, tmp_path / "t.json", change), tol=1e-6)
    assert not report.ok and "tampered" in report.reasons[0]


def test_class_gram_must_match_group_geometry(group_certificate, tmp_path):
    def change(d):
        d["class_gram"][0][3] += 1e-3
        d["class_gram"][3][0] += 1e-3

    report = verify(_edit(group_certificate, tmp_path / "t.json", change), tol=1e-6)
    assert not report.ok and "class_gram does not match" in report.reasons[0]


def test_group_structure_must_match_spec(group_certificate, tmp_path):
    def change(d):
        d["spec"]["counts"] = [6, 6, 3, 2, 2]

    report = verify(_edit(group_certificate, tmp_path / "t.json", change), tol=1e-6)
    assert not report.ok and "malformed" in report.reasons[0]
