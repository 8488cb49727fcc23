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


def test_streamed_json_is_the_same_text(monkeypatch):
    # dump writes dictionaries key by key and large arrays row by row: the characters of
    # dumps, whatever the values (non-finite entries, integer keys, nested lists).
    import io

    from scconvex import ProblemSpec, files, solve

    monkeypatch.setattr(files, "STREAM_ENTRIES", 4)
    data = solve(ProblemSpec.long_tail(300, 30, 60, 0.1)).to_dict(full_gram=True)
    data["extra"] = {3: np.array([[1.0, np.nan], [np.inf, -2.5]]), "b": [1.5, None, True],
                     "c": np.arange(12.0).reshape(2, 3, 2),
                     # Matrices as lists: mixed int/float (jsonable makes them all floats),
                     # ragged, non-finite, and with text.
                     "d": [[1, 2.5] + [3] * 70] * 70, "e": [[1.0] * 80, [2.0] * 79] * 40,
                     "f": [[1.0, float("inf")] * 40] * 70, "g": [[1, "x"] * 40] * 70,
                     "h": [[True, 1.5] * 40] * 70}
    buf = io.StringIO()
    files.dump(data, buf)
    assert buf.getvalue() == files.dumps(data)
