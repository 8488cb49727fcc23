"""Right names for right numbers (issue 19, item 3).

References are computed here from features: the stored sample Gram is factored, the class
means are formed as means of feature vectors, and their cosines and lengths are taken
directly, independently of the level code that the report uses.
"""

import json

import numpy as np
import pytest

from scconvex import ProblemSpec, solve
from scconvex.certificates.verify import verify_data
from scconvex.pipeline.report import format_result
from scconvex.problem.batches import random_batches


@pytest.fixture(scope="module")
def batchwise():
    """The issue's example: 6,6,2,2 at tau 0.5 in random batches of 4 (seed 0)."""
    spec = ProblemSpec((6, 6, 2, 2), 0.5, batches=random_batches(16, 4, 0))
    return solve(spec, level="sample")


def _means_from_features(G, labels, k):
    lam, V = np.linalg.eigh(G)
    H = V * np.sqrt(np.maximum(lam, 0.0))
    mu = np.array([H[labels == c].mean(axis=0) for c in range(k)])
    norms = np.linalg.norm(mu, axis=1)
    return mu @ mu.T / np.outer(norms, norms), norms


def test_batchwise_report_prints_cosines_of_the_class_means(batchwise):
    res = batchwise
    assert res.success
    cos, norms = _means_from_features(res.variable, res.spec.labels, res.spec.k)
    # The classes have not collapsed, and the true cosines differ from the block means.
    assert norms.max() < 0.8
    assert abs(cos[0, 1] - res.class_gram[0, 1]) > 0.3
    text = format_result(res)
    rows = [line.split() for line in text.splitlines() if line.strip().startswith("c")]
    table = np.array([[float(x) for x in row[1:]] for row in rows[-4:]])
    np.testing.assert_allclose(table, cos, atol=1e-6)
    assert "not collapsed" in text
    length = next(line for line in text.splitlines() if line.strip().startswith("length"))
    np.testing.assert_allclose([float(x) for x in length.split()[1:]], norms, atol=1e-6)


def test_batchwise_json_carries_verified_class_means(batchwise):
    data = json.loads(json.dumps(batchwise.to_dict()))
    cos, norms = _means_from_features(batchwise.variable, batchwise.spec.labels, 4)
    np.testing.assert_allclose(data["class_means"]["cosines"], cos, atol=1e-10)
    np.testing.assert_allclose(data["class_means"]["norms"], norms, atol=1e-10)
    assert verify_data(data).ok
    data["class_means"]["cosines"][2][3] = data["class_means"]["cosines"][3][2] = 0.25
    report = verify_data(data)
    assert not report.ok and "class_means" in report.reasons[0]


def test_compare_batching_measures_the_class_means(batchwise):
    from scconvex.studies.compare_batching import summarize

    geo = summarize("batch-wise", batchwise)
    cos, norms = _means_from_features(batchwise.variable, batchwise.spec.labels, 4)
    etf = np.full((4, 4), -1 / 3) + np.eye(4) * (4 / 3)
    assert geo.to_etf == pytest.approx(np.linalg.norm(cos - etf), abs=1e-9)
    assert geo.to_orthogonal == pytest.approx(np.linalg.norm(cos - np.eye(4)), abs=1e-9)
    np.testing.assert_allclose(geo.norms, norms, atol=1e-10)
    assert "class_mean_cosines" in geo.to_dict() and "class_gram" not in geo.to_dict()


def test_collapsed_answers_print_no_lengths():
    text = format_result(solve(ProblemSpec((3, 3, 2), 0.5), level="sample"))
    assert "not collapsed" not in text and "length" not in text


def test_batchwise_measures_use_the_class_means(batchwise):
    data = batchwise.to_dict()
    cos, _ = _means_from_features(batchwise.variable, batchwise.spec.labels, 4)
    off = cos[~np.eye(4, dtype=bool)]
    measures = data["measures"]
    assert measures["cos_max"] == pytest.approx(off.max(), abs=1e-9)
    assert measures["cos_min"] == pytest.approx(off.min(), abs=1e-9)


# ---------------------------------------------------------------------- class names
def _run(argv, capsys):
    from scconvex.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_names_from_a_csv_counts_file_reach_table_and_json(tmp_path, capsys):
    path = tmp_path / "counts.csv"
    path.write_text("class,count\nairplane,50\nautomobile,30\nbird,12\n")
    code, out, _ = _run(["solve", "--counts-file", str(path), "--tau", "0.5"], capsys)
    assert code == 0
    assert "airplane" in out and "bird" in out and " c0 " not in out
    cert = tmp_path / "c.json"
    code, out, _ = _run(["solve", "--counts-file", str(path), "--tau", "0.5", "--json",
                         "--certificate", str(cert)], capsys)
    data = json.loads(out)
    assert data["spec"]["names"] == ["airplane", "automobile", "bird"]
    assert verify_data(json.loads(cert.read_text())).ok


def test_names_from_a_labels_file(tmp_path, capsys):
    path = tmp_path / "labels.txt"
    path.write_text("dog\ncat\ndog\ndog\ncat\nemu\n")
    code, out, _ = _run(["solve", "--labels-file", str(path), "--tau", "0.5", "--json"],
                        capsys)
    assert code == 0
    assert json.loads(out)["spec"]["names"] == ["cat", "dog", "emu"]


def test_names_do_not_change_the_problem():
    named = ProblemSpec((3, 2), 0.5, names=("a", "b"))
    assert named == ProblemSpec((3, 2), 0.5)
    assert ProblemSpec.from_dict(named.to_dict()).names == ("a", "b")
    from scconvex import InvalidInputError

    for bad in (("a",), ("a", "a"), ("a", ""), "ab", ("a", 3)):
        with pytest.raises(InvalidInputError):
            ProblemSpec((3, 2), 0.5, names=bad)


def test_names_reach_the_sweep_and_the_gram_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from scconvex.studies.atlas import Atlas
    from scconvex.studies.plot import make_figure
    from scconvex.studies.sweep import build_points, run_sweep

    path = tmp_path / "counts.csv"
    path.write_text("airplane,50\nautomobile,30\nbird,12\n")
    points = build_points({"counts_files": [str(path)], "tau": "0.5"})
    assert points[0]["spec"]["names"] == ["airplane", "automobile", "bird"]
    with Atlas(tmp_path / "a.sqlite", create=True) as atlas:
        run_sweep(points, atlas, workers=0)
        fig = make_figure(atlas, "gram")
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["airplane", "automobile", "bird"]


def test_tightness_table_shows_rounding_below_zero_as_zero():
    """Issue 19: the sample-level table printed gaps such as -9.7e-16."""
    from dataclasses import replace

    from scconvex.features.tightness import format_table, tightness

    rep = tightness(ProblemSpec((4, 3, 2), 0.5), dims=[3], restarts=1, level="sample")
    row = rep.rows[0]
    shown = replace(rep, rows=(replace(row, rel_gap=-9.7e-16, excess_gap=-3.3e-15),))
    line = format_table(shown).splitlines()[-2]
    assert "-9.7e-16" not in line and "-3.3e-15" not in line
    assert line.split()[2:4] == ["0", "0"]
    # Far below zero is not rounding: shown as it is.
    shown = replace(rep, rows=(replace(row, rel_gap=-1e-3),))
    assert "-1.0e-03" in format_table(shown)
