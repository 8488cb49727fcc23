"""Fuzzing hand-edited atlases: every reading command survives any stored value (issue 20).

An atlas is a file anyone can edit (``sqlite3 runs.sqlite``). Hypothesis draws edits of
one to three cells, in any column of either table or of the meta table: NULL, text,
binary data, extreme numbers, malformed JSON and JSON of the wrong shape. On the edited
copy, ``atlas list``, ``show``, ``export``, ``verify`` and ``plot`` must each exit 0, 1
or 2 with no internal error and no traceback, and a failure must be one line per
problem. The default suite draws a few examples; ``-m slow`` draws many more.
"""

from __future__ import annotations

import contextlib
import io
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scconvex.cli import main
from scconvex.studies.atlas import SOLVE_COLUMNS, TIGHTNESS_COLUMNS, Atlas
from scconvex.studies.sweep import build_points, run_sweep

VALUES = [None, "", "x", "optimal", "step", "counts", "long_tail", "\x1b[31mred\x1b[0m",
          b"\x00\x01\xff", 0, 1, -1, 2, 3, 2**63 - 1, -2**63, 0.5, -0.5, 1e308, -1e308,
          1e-308, 5e-324, "nan", "inf", "1e999", "[1", "[]", "{}", "[[1]]", '"s"', "null",
          "[[null]]", "[[1, 0], [0, 1]]", "[[1e400]]", "9" * 5000, "[" * 5000,
          '{"gram": [[1]], "sizes": [1], "block_of": [0]}', '{"gram": "x"}',
          '{"gram": [[0.5]], "sizes": [4], "block_of": [0, 0, 0, 7]}',
          "5x4", "0x4", "1,2,3,4", "99999999999999999999999x4"]

TABLES = {"solves": [n for n, _ in SOLVE_COLUMNS],
          "tightness": [n for n, _ in TIGHTNESS_COLUMNS], "meta": ["name", "value"]}

PLOTS = [["--kind", kind, "--where", "family=step"] for kind in
         ("cosines", "tau", "gap", "phase", "landscape")] + \
        [["--kind", kind, "--where", "family=step", "--where", "R=2", "--where", "tau=1"]
         for kind in ("gram", "sphere")]

FAST = settings(max_examples=6, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def atlas_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("fuzz") / "a.sqlite")
    settings_ = {"step_k": 4, "rho": 0.5, "n_min": 2, "R": "1,2", "tau": "0.2,1",
                 "dims": "2,3", "restarts": 1}
    with Atlas(path, create=True) as atlas:
        run_sweep(build_points(settings_), atlas, workers=0)
        run_sweep(build_points({"counts": ["5,4,3"], "tau": "0.5"}), atlas, workers=0)
    return path


@st.composite
def edits(draw):
    out = []
    for _ in range(draw(st.integers(1, 3))):
        table = draw(st.sampled_from(sorted(TABLES)))
        column = draw(st.sampled_from(TABLES[table]))
        out.append((table, column, draw(st.integers(0, 5)), draw(st.sampled_from(VALUES))))
    return out


def _edited(path: str, folder, changes) -> str:
    copy = str(folder / "edited.sqlite")
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    src.close()
    conn = sqlite3.connect(copy)
    with conn:
        for table, column, which, value in changes:
            rowids = [r[0] for r in conn.execute(f"SELECT rowid FROM {table} ORDER BY rowid")]
            if not rowids:
                continue
            try:
                conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?",
                             (value, rowids[which % len(rowids)]))
            except sqlite3.IntegrityError:  # a duplicate primary key: not an edit
                pass
    conn.close()
    return copy


def _run(argv) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def _check_commands(path: str, folder, plots, atlas: bool = True) -> None:
    commands = [["atlas", "list", path], ["atlas", "list", path, "--json"],
                ["atlas", "list", path, "--where", "k=4"], ["atlas", "show", path, ""],
                ["atlas", "show", path, "0"], ["atlas", "export", path],
                ["atlas", "export", path, "--csv", str(folder / "out.csv")],
                ["atlas", "verify", path], ["atlas", "verify", path, "--json"]] if atlas else []
    commands += [["plot", path, *args, "--out", str(folder / "f.png")] for args in plots]
    bad = []
    for argv in commands:
        code, err = _run(argv)
        lines = err.strip().splitlines()
        one_line = len(lines) <= 1 or argv[:2] == ["atlas", "verify"] and all(
            line.startswith("scconvex: rejected ") for line in lines)
        if code not in (0, 1, 2) or "internal error" in err or "Traceback" in err \
                or (code != 0 and not one_line) or (code == 0 and argv[0] != "atlas"
                                                    and err.strip()):
            bad.append((argv[:2], code, err[-500:]))
    assert not bad, bad


@FAST
@given(changes=edits(), plot=st.sampled_from(PLOTS))
def test_hand_edited_atlas_gives_no_internal_error(atlas_file, tmp_path, changes, plot):
    pytest.importorskip("matplotlib")
    _check_commands(_edited(atlas_file, tmp_path, changes), tmp_path, [plot])


@pytest.mark.slow
@SLOW
@given(changes=edits())
def test_hand_edited_atlas_gives_no_internal_error_long(atlas_file, tmp_path, changes):
    pytest.importorskip("matplotlib")
    _check_commands(_edited(atlas_file, tmp_path, changes), tmp_path, PLOTS)


DAMAGED = [("R", None), ("k", "abc"), ("tau", b"\x00\x01"), ("counts", None),
           ("class_gram", "abc"), ("block_gram", b"\x00"), ("cos_min_min", "abc"),
           ("cos_maj_maj", None), ("sample_rel_gap", "abc"), ("rho", None),
           ("n_min", "abc"), ("family", None), ("counts", "abc"), ("tau", None),
           ("k", 99), ("class_gram", None)]


@pytest.mark.parametrize("column, value", DAMAGED)
def test_every_plot_survives_a_damaged_column(atlas_file, tmp_path, column, value):
    """Issue 20: about 18 plot crashes on atlases with NULL or text in R, k, tau, counts,
    class_gram or a measure column."""
    pytest.importorskip("matplotlib")
    path = _edited(atlas_file, tmp_path, [("solves", column, i, value) for i in range(6)])
    _check_commands(path, tmp_path, PLOTS, atlas=False)
