"""JSON oddities in certificate files: each must be refused, not read one way or another.

Before these checks a file holding two ``class_gram`` keys (a geometry to show, another to
verify), a geometry written with ``true`` or ``"0.5"`` entries, or a negative
``schema_version`` verified as genuine.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from scconvex import ProblemSpec, solve
from scconvex.certificates.verify import verify, verify_data


@pytest.fixture(scope="module")
def genuine():
    data = solve(ProblemSpec((5, 4, 3), 0.5), level="class").to_dict()
    assert verify_data(data).ok
    return data


def _verify_text(tmp_path, text: str):
    path = tmp_path / "c.json"
    path.write_text(text)
    return verify(path)


def test_genuine_file_verifies(genuine, tmp_path):
    assert _verify_text(tmp_path, json.dumps(genuine)).ok


@pytest.mark.parametrize("key, value", [
    ("class_gram", np.eye(3).tolist()), ("status", "optimal"), ("loss", 1.0)])
def test_duplicate_key_is_refused(genuine, tmp_path, key, value):
    # The second value is the genuine one: a reader that keeps the first sees the forgery.
    data = {key: value, **{k: v for k, v in genuine.items() if k != key}}
    text = json.dumps(data)[:-1] + f", {json.dumps(key)}: {json.dumps(genuine[key])}}}"
    assert json.loads(text)[key] == genuine[key]
    report = _verify_text(tmp_path, text)
    assert not report.ok and "duplicate key" in report.reasons[0]


@pytest.mark.parametrize("entry", [True, "1", "1.0"])
def test_geometry_entries_must_be_numbers(genuine, entry):
    data = copy.deepcopy(genuine)
    for i in range(3):
        data["class_gram"][i][i] = entry
    report = verify_data(data)
    assert not report.ok and "numbers" in report.reasons[0]


def test_numpy_geometry_still_accepted(genuine):
    data = copy.deepcopy(genuine)
    data["class_gram"] = np.array(data["class_gram"])
    assert verify_data(data).ok


@pytest.mark.parametrize("schema", [0, -5])
def test_schema_version_below_one_is_refused(genuine, schema):
    report = verify_data({**genuine, "schema_version": schema})
    assert not report.ok and "schema_version" in report.reasons[0]
