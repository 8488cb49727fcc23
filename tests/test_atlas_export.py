"""``scconvex atlas export --parquet`` against the CSV export of the same atlas.

Skipped without pyarrow (the ``parquet`` extra). The Parquet file is read back with
pyarrow itself and compared cell by cell with the CSV, which is parsed here with the
standard library: the two exports of one atlas must say the same thing.
"""

from __future__ import annotations

import csv
import math
import os
import stat
import subprocess
import sys

import pytest

from scconvex.studies.atlas import EXPORT_COLUMNS, Atlas
from scconvex.studies.sweep import build_points, run_sweep

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "scconvex", *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def atlas_path(tmp_path_factory):
    """STEP rows (named majority/minority cosines), rows of more than two distinct counts
    (those cosines empty) and tightness rows (``min_tight_dim``)."""
    path = tmp_path_factory.mktemp("atlas") / "runs.sqlite"
    points = (build_points({"step_k": 4, "rho": 0.5, "n_min": 2, "R": "1,3", "tau": "0.5"})
              + build_points({"counts": ["5,3,2", "4,4,1"], "tau": "0.3,1", "dims": "2",
                              "restarts": "2"}))
    with Atlas(path, create=True) as atlas:
        run_sweep(points, atlas, workers=0)
    return path


def _same_cell(text: str, value) -> bool:
    """A CSV cell (text) and a Parquet cell (typed) hold the same value."""
    if value is None:
        return text == ""
    if isinstance(value, bool):
        return text == str(value)
    if isinstance(value, int):
        return int(text) == value
    if isinstance(value, float):
        return float(text) == value or (math.isnan(value) and math.isnan(float(text)))
    return text == value


def test_parquet_round_trips_to_the_csv_export(atlas_path, tmp_path):
    out_csv, out_pq = tmp_path / "runs.csv", tmp_path / "runs.parquet"
    proc = run_cli("atlas", "export", str(atlas_path), "--csv", str(out_csv),
                   "--parquet", str(out_pq))
    assert proc.returncode == 0, proc.stderr
    with open(out_csv, newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    read = pq.read_table(out_pq)
    assert tuple(read.column_names) == EXPORT_COLUMNS
    pq_rows = read.to_pylist()
    assert len(pq_rows) == len(csv_rows) == 6
    for text_row, typed_row in zip(csv_rows, pq_rows, strict=True):
        for name in EXPORT_COLUMNS:
            assert _same_cell(text_row[name], typed_row[name]), (name, text_row[name],
                                                                typed_row[name])
    # Numbers are stored as numbers, and the empty cells as nulls, not as text.
    schema = read.schema
    for name in ("loss", "lower_bound", "gap", "excess_gap", "tau"):
        assert pa.types.is_floating(schema.field(name).type), name
    for name in ("k", "n", "rank"):
        assert pa.types.is_integer(schema.field(name).type), name
    assert any(r["cos_maj_maj"] is None for r in pq_rows)
    assert any(r["cos_maj_maj"] is not None for r in pq_rows)
    assert any(r["min_tight_dim"] is not None for r in pq_rows)


def test_parquet_export_is_atomic_and_keeps_permissions(atlas_path, tmp_path):
    out = tmp_path / "runs.parquet"
    out.write_bytes(b"old")
    os.chmod(out, 0o640)
    proc = run_cli("atlas", "export", str(atlas_path), "--parquet", str(out),
                   "--where", "family=counts")
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640
    assert pq.read_table(out).num_rows == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.parquet"]  # no temporaries
    # No row matches: an empty table with the same columns, not an error.
    proc = run_cli("atlas", "export", str(atlas_path), "--parquet", str(out),
                   "--where", "family=nothing")
    assert proc.returncode == 0, proc.stderr
    empty = pq.read_table(out)
    assert empty.num_rows == 0 and tuple(empty.column_names) == EXPORT_COLUMNS
