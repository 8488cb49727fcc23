"""Every top-level field of a certificate file is recomputed, context, or not verified.

Issue 19: ``docs/verification.md`` said every other number in the file is compared with
its recomputation, while ``measures``, ``unique`` and ``nonnegative_factor`` were not, and a
file with ``etf_distance: 999`` verified silently. The rule now: a field ``verify`` does not
recompute is either context it never uses (``solver``, ``seconds``, ...) or sits under
``not_verified`` and is listed in the report's notes; any other field is a rejection.
"""

import json

import pytest

from scconvex import ProblemSpec, solve
from scconvex.certificates.verify import (
    CHECKED_FIELDS,
    NOT_TRUSTED,
    NOT_VERIFIED_KEY,
    verify_data,
)


@pytest.fixture(scope="module")
def certificate():
    return json.loads(json.dumps(solve(ProblemSpec((5, 4, 3), 0.5)).to_dict()))


def _copy(data):
    return json.loads(json.dumps(data))


def test_a_written_file_has_only_known_fields(certificate):
    report = verify_data(certificate)
    assert report.ok and not report.reasons


def test_an_unknown_field_is_rejected(certificate):
    data = _copy(certificate)
    data["etf_distance"] = 999.0
    report = verify_data(data)
    assert not report.ok
    assert any("unchecked field 'etf_distance'" in r for r in report.reasons)


def test_fields_under_not_verified_are_listed_not_trusted(certificate):
    data = _copy(certificate)
    data[NOT_VERIFIED_KEY] = {**data.get(NOT_VERIFIED_KEY, {}), "my_claim": 999.0}
    report = verify_data(data)
    assert report.ok
    assert any("not verified" in note and "my_claim" in note for note in report.notes)


def test_not_verified_must_be_an_object(certificate):
    data = _copy(certificate)
    data[NOT_VERIFIED_KEY] = [1, 2]
    assert not verify_data(data).ok


def test_measures_are_never_presented_as_verified(certificate):
    """Wherever a file keeps its measures, a tampered one is either rejected or listed in
    the notes as not verified."""
    data = _copy(certificate)
    holder = data[NOT_VERIFIED_KEY] if "measures" in data.get(NOT_VERIFIED_KEY, {}) else data
    holder["measures"]["etf_distance"] = 999.0
    report = verify_data(data)
    assert not report.ok or any("measures" in note for note in report.notes)


def test_context_fields_change_nothing(certificate):
    data = _copy(certificate)
    for key in NOT_TRUSTED:
        data[key] = "anything"
    assert verify_data(data).ok
    assert "solver" in NOT_TRUSTED and "status" in CHECKED_FIELDS


def test_unknown_fields_of_the_factor_are_rejected():
    data = json.loads(json.dumps(solve(ProblemSpec((3, 2, 1, 1), 0.5, relaxation="dnn"))
                                 .to_dict()))
    assert verify_data(data).ok
    data["nonnegative_factor"]["verified_by"] = "me"
    assert not verify_data(data).ok
    data = json.loads(json.dumps(solve(ProblemSpec((3, 2, 1, 1), 0.5)).to_dict()))
    data["nonnegative_factor"] = {"found": True, "dimension": 3}   # not a field here
    assert not verify_data(data).ok
