"""Count parsing a user can type: NxM forms, count files, label files, value ranges."""

import json
import subprocess
import sys

import numpy as np
import pytest

from scconvex.errors import InvalidInputError
from scconvex.problem.inputs import (
    format_counts,
    parse_counts,
    parse_ints,
    parse_values,
    read_counts_file,
    read_labels_file,
)


@pytest.mark.parametrize("text, expected", [
    ("50x10", (50,) * 10),
    ("500x5,50x5", (500,) * 5 + (50,) * 5),
    ("5,5,5", (5, 5, 5)),
    (" 7 , 3X2 ", (7, 3, 3)),
    ("4*2,1", (4, 4, 1)),
])
def test_parse_counts_forms(text, expected):
    assert parse_counts(text) == expected
    assert parse_counts(format_counts(expected)) == expected


@pytest.mark.parametrize("text", ["", "5,,5", "5x", "x5", "5.5", "-3", "5y2", "5x0", "abc"])
def test_parse_counts_rejects(text):
    with pytest.raises(InvalidInputError, match="--counts"):
        parse_counts(text)


def test_counts_file_forms(tmp_path):
    lines = tmp_path / "a.txt"
    lines.write_text("# counts\n500\n500\n\n50\n")
    assert read_counts_file(lines) == (500, 500, 50)
    named = tmp_path / "b.csv"
    named.write_text("class,count\ncat,40\ndog,4\nemu,4\n")
    assert read_counts_file(named) == (40, 4, 4)
    row = tmp_path / "c.csv"
    row.write_text("9,9,3x2\n")
    assert read_counts_file(row) == (9, 9, 3, 3)
    js = tmp_path / "d.json"
    js.write_text(json.dumps([10, 10, 2]))
    assert read_counts_file(js) == (10, 10, 2)


@pytest.mark.parametrize("content, match", [
    ("[1, 2.5]", "list of integers"),
    ("[1, 2", "not valid JSON"),
    ("10\nten\n", "line 2"),
    ("", "no counts"),
])
def test_counts_file_errors(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=match):
        read_counts_file(path)
    with pytest.raises(InvalidInputError, match="cannot read"):
        read_counts_file(tmp_path / "missing.txt")


def test_labels_files(tmp_path, rng):
    labels = rng.permutation(np.repeat([3, 7, 11], [6, 2, 4]))
    np.save(tmp_path / "y.npy", labels)
    assert read_labels_file(tmp_path / "y.npy") == (6, 2, 4)
    (tmp_path / "y.txt").write_text("\n".join(["cat"] * 3 + ["ant"] * 5) + "\n")
    assert read_labels_file(tmp_path / "y.txt") == (5, 3)  # sorted label order
    (tmp_path / "n.txt").write_text("\n".join(["10"] * 3 + ["2"] * 5) + "\n")
    assert read_labels_file(tmp_path / "n.txt") == (5, 3)  # 2 before 10
    np.save(tmp_path / "m.npy", np.zeros((2, 2)))
    with pytest.raises(InvalidInputError, match="1-D"):
        read_labels_file(tmp_path / "m.npy")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(InvalidInputError, match="plain .npy"):
        read_labels_file(tmp_path / "o.npy")


def test_value_ranges():
    R = parse_values("logspace:1:1e4:13", "--R")
    assert len(R) == 13 and R[0] == 1 and R[-1] == pytest.approx(1e4)
    assert np.allclose(np.diff(np.log(R)), np.log(1e4) / 12)
    assert parse_values("0.5,linspace:1:2:3", "--tau") == [0.5, 1.0, 1.5, 2.0]
    assert parse_ints("2,3,4", "--dims") == [2, 3, 4]
    for bad in ("logspace:0:1:3", "geomspace:1:2:3", "logspace:1:2", "1,x", "linspace:1:2:0"):
        with pytest.raises(InvalidInputError):
            parse_values(bad, "--R")
    with pytest.raises(InvalidInputError, match="positive integers"):
        parse_ints("2.5", "--dims")


def _run(*args):
    return subprocess.run([sys.executable, "-m", "scconvex", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_solve_accepts_every_input_form(tmp_path):
    (tmp_path / "c.txt").write_text("6\n6\n2\n")
    np.save(tmp_path / "y.npy", np.repeat([0, 1, 2], [6, 6, 2]))
    losses = set()
    for args in (["--counts", "6x2,2"], ["--counts-file", str(tmp_path / "c.txt")],
                 ["--labels-file", str(tmp_path / "y.npy")], ["--counts", "6,6,2"]):
        proc = _run("solve", *args, "--tau", "0.5", "--json")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["counts"] == [6, 6, 2]
        losses.add(round(data["loss"], 9))
    assert len(losses) == 1


@pytest.mark.parametrize("args", [
    ["--counts", "5x"], ["--counts-file", "/nonexistent/file"],
    ["--counts", "5x2", "--counts-file", "x"],
])
def test_cli_bad_counts_exit_2_one_line(args):
    proc = _run("solve", *args, "--tau", "0.5")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
