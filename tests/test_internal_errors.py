"""Bad input and a hostile machine give one clear line, never an "internal error" (issue 20).

Each case here was an ``internal error`` exit (a Python exception reaching the last net of
the command line) or a wrong exit code on the main branch before issue 20.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sqlite3
import subprocess
import sys

import pytest

from scconvex.cli import main
from scconvex.studies.atlas import Atlas
from scconvex.studies.sweep import build_points, run_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _one_line(code: int, err: str, expected: int) -> None:
    assert code == expected, err
    assert "internal error" not in err and len(err.strip().splitlines()) == 1, err


@pytest.fixture(scope="module")
def atlas_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("errors") / "a.sqlite")
    with Atlas(path, create=True) as atlas:
        run_sweep(build_points({"step_k": 4, "rho": 0.5, "n_min": 2, "R": "2",
                                "tau": "0.5"}), atlas, workers=0)
    return path


def _copy(path: str, tmp_path, sql: str = "", params=()) -> str:
    copy = str(tmp_path / "copy.sqlite")
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    if sql:
        with dst:
            dst.execute(sql, params)
    src.close()
    dst.close()
    return copy


@pytest.mark.parametrize("text, words", [
    ("atlas = 5\n", "atlas must be text"), ("scheduler = 5\n", "scheduler must be text"),
    ("workers = 'x'\n", "workers must be an integer"),
    ("counts_files = [5]\n", "counts_files must be file names"),
    (b"\x7fELF\x02\x01\x01\x00\xff\xfe", "not a text file"),
])
def test_sweep_spec_of_the_wrong_type(tmp_path, text, words):
    spec = tmp_path / "s.toml"
    head = "tau = 0.5\ncounts = '5,5'\n"
    spec.write_bytes(text if isinstance(text, bytes) else (head + text).encode())
    code, _, err = _run(["sweep", "--spec", str(spec), "--workers", "0", "--atlas",
                         str(tmp_path / "a.sqlite")])
    _one_line(code, err, 2)
    assert words in err


def test_scheduler_that_is_not_an_address(tmp_path):
    pytest.importorskip("dask.distributed")
    code, _, err = _run(["sweep", "--counts", "5,5", "--tau", "1", "--scheduler", "notaurl",
                         "--atlas", str(tmp_path / "a.sqlite")])
    _one_line(code, err, 2)
    assert "not a scheduler address" in err


@pytest.mark.parametrize("where", ["k=99999999999999999999999", "k=" + "9" * 400,
                                   "R=inf", "tau=nan", "k=-99999999999999999999999"])
def test_where_beyond_the_integer_range(atlas_file, where):
    code, out, err = _run(["atlas", "list", atlas_file, "--where", where])
    assert code == 0 and out.strip().endswith("0 rows"), err


@pytest.mark.parametrize("argv", [["atlas", "export", "{atlas}"],
                                  ["atlas", "list", "{atlas}", "--json"],
                                  ["solve", "--counts", "5,5", "--tau", "1", "--json"],
                                  ["solve", "--counts", "5,5", "--tau", "1"]])
def test_output_to_a_full_disk(atlas_file, argv):
    argv = [a.replace("{atlas}", atlas_file) for a in argv]
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "scconvex", *argv], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
    _one_line(proc.returncode, proc.stderr, 1)
    assert "No space left on device" in proc.stderr


def test_show_with_binary_data(atlas_file, tmp_path):
    path = _copy(atlas_file, tmp_path, "UPDATE solves SET counts = ?, measures = ?",
                 (b"\x00\x01", b"\xff"))
    code, out, err = _run(["atlas", "show", path, ""])
    assert code == 0 and "<BLOB of 2 bytes>" in out, err
    code, out, err = _run(["atlas", "list", path, "--json"])
    assert code == 0, err


def test_plot_to_a_full_disk_is_a_failure_not_bad_input(atlas_file, tmp_path, monkeypatch):
    """Issue 20: plot exited 2 ("invalid input") when the disk was full."""
    pytest.importorskip("matplotlib")
    import scconvex.studies.plot as plot

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(plot, "write_bytes", full)
    code, _, err = _run(["plot", atlas_file, "--kind", "gram", "--out",
                         str(tmp_path / "g.png")])
    _one_line(code, err, 1)
    assert "No space left on device" in err


def test_plot_checks_the_output_before_the_work(atlas_file, tmp_path, monkeypatch):
    """Issue 20: plot said "--out must end in .png" only after 4 s of work."""
    pytest.importorskip("matplotlib")
    import scconvex.studies.plot as plot

    def no_work(*args, **kwargs):
        raise AssertionError("the figure was made before the output was checked")

    monkeypatch.setattr(plot, "make_figure", no_work)
    for out in (str(tmp_path / "g.txt"), str(tmp_path / "no" / "g.png"), str(tmp_path)):
        code, _, err = _run(["plot", atlas_file, "--kind", "gram", "--out", out])
        _one_line(code, err, 2)


def test_verify_out_of_memory_does_not_suggest_a_level(tmp_path, monkeypatch):
    """Issue 20: verify out of memory suggested ``--level group``, which it has not."""
    import scconvex.certificates.verify as verify_module

    def oom(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(verify_module, "verify", oom)
    path = tmp_path / "c.json"
    path.write_text("{}")
    code, _, err = _run(["verify", str(path)])
    _one_line(code, err, 1)
    assert "out of memory" in err and "--level" not in err


def test_list_escapes_terminal_control_characters(atlas_file, tmp_path):
    path = _copy(atlas_file, tmp_path, "UPDATE solves SET family = ?, counts = ?",
                 ("\x1b[31mred\x1b[0m", "a\x07b"))
    code, out, err = _run(["atlas", "list", path])
    assert code == 0 and "\x1b" not in out and "\x07" not in out, err
    assert "\\x1b[31mred" in out and "a\\x07b" in out
    code, _, err = _run(["atlas", "verify", path])
    assert code == 1 and "\x1b" not in err and "\\x1b" in err


def test_show_takes_the_key_prefix_literally(atlas_file, tmp_path):
    """Issue 20: ``atlas show`` treated _ and % in the prefix as wildcards."""
    with Atlas(atlas_file) as atlas:
        (key,) = [r["key"] for r in atlas.rows()]
    for prefix in ("_", "%", key[:3] + "_", key[:3] + "%"):
        code, _, err = _run(["atlas", "show", atlas_file, prefix])
        _one_line(code, err, 2)
        assert "no row with key" in err
    code, out, _ = _run(["atlas", "show", atlas_file, key[:4]])
    assert code == 0 and key in out
