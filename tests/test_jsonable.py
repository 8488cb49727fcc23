"""The fast path of files.jsonable for long lists gives what the element-wise path gives."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scconvex.files import dumps, jsonable


def slow(x):
    """Element-wise reference: the conversion rule spelt out for each value."""
    if isinstance(x, (list, tuple)):
        return [slow(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if np.isfinite(x) else ("nan" if np.isnan(x) else
                                         ("inf" if x > 0 else "-inf"))
    return x


@pytest.mark.parametrize("value", [
    np.random.default_rng(0).standard_normal((80, 70)).tolist(),
    [1.0] * 63 + [float("nan")] * 10,
    [[1.0, float("-inf")]] * 70,
    list(range(100)),
    [np.int64(3)] * 70,
    [True, False] * 40,
    [[1, 2], [3]] * 40,
    ["a", 1.5] * 40,
    [None, 1.0] * 40,
])
def test_fast_path_matches_elementwise(value):
    out = jsonable(value)
    assert json.dumps(out, allow_nan=False) == json.dumps(slow(value), allow_nan=False)


def test_gram_round_trips_exactly():
    M = np.random.default_rng(1).standard_normal((100, 100))
    back = np.array(json.loads(dumps(jsonable({"g": M})))["g"])
    np.testing.assert_array_equal(back, M)
