"""The atlas keeps what it is given, and can be read where it cannot be written (issue 20).

Solves replaced by another solver keep their tightness rows consistent, uncertified rows
are retried, a name that stores nothing is refused, and a read-only atlas is readable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from scconvex.cli import main
from scconvex.studies.atlas import Atlas
from scconvex.studies.sweep import build_points, run_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP = {"step_k": 4, "rho": 0.5, "n_min": 3, "R": "2", "tau": "0.1"}


@pytest.mark.parametrize("name", ["", ":memory:"])
def test_atlas_that_stores_nothing_is_refused(name, capsys):
    """Issue 20: ``sweep --atlas ""`` and ``--atlas :memory:`` printed "1 solved" and
    exited 0 while nothing was stored."""
    code = main(["sweep", "--step-k", "4", "--rho", "0.5", "--n-min", "3", "--R", "2",
                 "--tau", "0.1", "--workers", "0", "--atlas", name])
    err = capsys.readouterr().err
    assert code == 2 and "stores nothing" in err and len(err.strip().splitlines()) == 1


def _as_other_user() -> list[str] | None:
    """A command prefix that runs as an unprivileged user (root ignores file modes)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_read_only_atlas_is_readable(tmp_path):
    """Issue 20: in a read-only folder every reading command said "is not an atlas
    database" (opening the WAL database for writing failed)."""
    prefix = _as_other_user()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot make a folder read-only")
    folder = tempfile.mkdtemp(prefix="scconvex-ro-")  # /tmp: reachable by another user
    out = tempfile.mkdtemp(prefix="scconvex-out-")
    try:
        os.chmod(out, 0o777)
        path = os.path.join(folder, "a.sqlite")
        with Atlas(path, create=True) as atlas:
            run_sweep(build_points(STEP), atlas, workers=0)
        os.chmod(path, 0o444)
        os.chmod(folder, 0o555)
        env = {**os.environ, "MPLCONFIGDIR": out, "HOME": out}
        for args in (["atlas", "list", path], ["atlas", "show", path, ""],
                     ["atlas", "export", path], ["atlas", "verify", path],
                     ["plot", path, "--kind", "gram", "--out", os.path.join(out, "g.png")]):
            proc = subprocess.run([*prefix, sys.executable, "-m", "scconvex", *args],
                                  capture_output=True, text=True, timeout=120, cwd=out,
                                  env=env)
            assert proc.returncode == 0, (args, proc.stderr)
        assert sorted(os.listdir(folder)) == ["a.sqlite"]  # nothing written beside it
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
