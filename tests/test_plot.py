"""Every figure kind is drawn, and the plotted data equal the atlas values."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from scconvex import InvalidInputError  # noqa: E402
from scconvex.studies.atlas import Atlas  # noqa: E402
from scconvex.studies.plot import GAP_FLOOR, make_figure, save_figure  # noqa: E402
from scconvex.studies.sweep import build_points, run_sweep  # noqa: E402

STEP = [("family", "step")]


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    path = tmp_path_factory.mktemp("plot") / "a.sqlite"
    points = build_points({"step_k": 4, "rho": 0.5, "n_min": 2, "R": "1,2,5", "tau": "0.2,1",
                           "dims": "2,3", "restarts": "2", "counts": ["4x3"]})
    with Atlas(path, create=True) as a:
        run_sweep(points, a, workers=0)
    with Atlas(path) as a:
        yield a


def _lines(fig):
    return {line.get_gid(): line for ax in fig.axes for line in ax.get_lines()
            if line.get_gid()}


@pytest.mark.parametrize("kind, x, by", [("cosines", "R", "tau"), ("tau", "tau", "R")])
def test_cosine_curves_are_the_atlas_values(atlas, kind, x, by):
    rows = atlas.rows(STEP)
    fig = make_figure(atlas, kind, where=STEP)
    lines = _lines(fig)
    groups = sorted({r[by] for r in rows})
    assert len(lines) == 3 * len(groups)  # three named cosines per tau (or per R)
    for value in groups:
        sub = sorted((r for r in rows if r[by] == value), key=lambda r: r[x])
        for name in ("cos_maj_maj", "cos_min_min", "cos_maj_min"):
            line = lines[f"{name}|{by}={value!r}"]
            np.testing.assert_array_equal(line.get_xdata(), [r[x] for r in sub])
            # The class Gram entries themselves: classes 0,1 majority, 2,3 minority.
            grams = [np.array(json.loads(r["class_gram"])) for r in sub]
            i, j = {"cos_maj_maj": (0, 1), "cos_min_min": (2, 3), "cos_maj_min": (0, 3)}[name]
            np.testing.assert_allclose(line.get_ydata(), [M[i, j] for M in grams],
                                       atol=1e-12)


def test_gap_curves(atlas):
    rows = atlas.rows(STEP)
    lines = _lines(make_figure(atlas, "gap", where=STEP))
    for tau in {r["tau"] for r in rows}:
        sub = sorted((r for r in rows if r["tau"] == tau), key=lambda r: r["R"])
        for name in ("sample_rel_gap", "sample_excess_gap"):
            np.testing.assert_array_equal(lines[f"{name}|tau={tau!r}"].get_ydata(),
                                          [max(r[name], GAP_FLOOR) for r in sub])


def test_phase_heatmap(atlas):
    rows = atlas.rows(STEP)
    fig = make_figure(atlas, "phase", where=STEP)
    Z = np.asarray(fig.axes[0].collections[0].get_array())
    Rs, taus = sorted({r["R"] for r in rows}), sorted({r["tau"] for r in rows})
    expected = np.array([[next(r["cos_min_min"] for r in rows
                               if r["R"] == R and r["tau"] == t) for R in Rs] for t in taus])
    np.testing.assert_array_equal(Z.reshape(expected.shape), expected)


def test_landscape_heatmap(atlas):
    where = STEP + [("R", "5.0")]
    rows = atlas.rows(where)
    fig = make_figure(atlas, "landscape", where=where)
    Z = np.asarray(fig.axes[0].collections[0].get_array()).reshape(2, 2)  # (d, tau)
    for j, row in enumerate(sorted(rows, key=lambda r: r["tau"])):
        for i, d in enumerate((2, 3)):
            t = next(t for t in atlas.tightness_rows(row["key"]) if t["d"] == d)
            assert Z[i, j] == t["reached"] / t["restarts"]
    with pytest.raises(Exception, match="share a tau"):
        make_figure(atlas, "landscape", where=STEP)


def test_gram_heatmap(atlas):
    row = atlas.rows(STEP + [("R", "5.0"), ("tau", "0.2")])[0]
    fig = make_figure(atlas, "gram", key=row["key"])
    image = np.asarray(fig.axes[0].images[0].get_array())
    np.testing.assert_array_equal(image, json.loads(row["certificate"])["class_gram"])


def test_sphere_points_reproduce_the_gram(atlas):
    # Three balanced classes: the simplex ETF, rank 2, drawn exactly on the circle.
    row = atlas.rows([("family", "counts"), ("tau", "1.0")])[0]
    fig = make_figure(atlas, "sphere", key=row["key"])
    U = np.asarray(fig.axes[0].collections[0].get_offsets())
    assert U.shape == (3, 2)
    np.testing.assert_allclose(U @ U.T, 1.5 * np.eye(3) - 0.5, atol=1e-6)
    # STEP with k = 4 has rank 3: drawn on the sphere.
    row = atlas.rows(STEP + [("R", "5.0"), ("tau", "0.2")])[0]
    fig = make_figure(atlas, "sphere", key=row["key"], dim=3)
    V = np.column_stack([np.ma.getdata(c) for c in fig.axes[0].collections[-1]._offsets3d])
    np.testing.assert_allclose(V @ V.T, json.loads(row["class_gram"]), atol=1e-6)


def test_every_kind_is_written(atlas, tmp_path):
    key = atlas.rows(STEP + [("R", "5.0"), ("tau", "0.2")])[0]["key"]
    for kind, suffix in (("cosines", ".png"), ("tau", ".svg"), ("gap", ".pdf"),
                         ("phase", ".png"), ("landscape", ".png"), ("gram", ".png"),
                         ("sphere", ".png")):
        where = STEP + ([("R", "5.0")] if kind == "landscape" else [])
        out = tmp_path / f"{kind}{suffix}"
        save_figure(make_figure(atlas, kind, where=where, key=key), out)
        assert out.stat().st_size > 1000


@pytest.mark.parametrize("kind, suffix", [("cosines", ".png"), ("sphere", ".svg")])
def test_cli_plot(atlas, tmp_path, kind, suffix):
    key = atlas.rows(STEP + [("R", "5.0"), ("tau", "0.2")])[0]["key"]
    out = tmp_path / f"{kind}{suffix}"
    extra = ["--key", key[:10]] if kind == "sphere" else ["--where", "family=step"]
    proc = subprocess.run([sys.executable, "-m", "scconvex", "plot", atlas.path, "--kind",
                           kind, "--out", str(out), *extra], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 1000 and proc.stdout.strip() == f"wrote {out}"


def test_plot_errors(atlas, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "scconvex", "plot", atlas.path, "--kind",
                           "cosines", "--out", str(tmp_path / "x.png")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "--where" in proc.stderr  # two families mixed
    with pytest.raises(Exception, match="png"):
        save_figure(make_figure(atlas, "cosines", where=STEP), tmp_path / "x.jpg")


def test_a_replaced_figure_keeps_its_mode_and_leaves_no_temporary(atlas, tmp_path):
    out = tmp_path / "cosines.png"
    out.write_bytes(b"old")
    out.chmod(0o640)
    save_figure(make_figure(atlas, "cosines", where=STEP), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cosines.png"]
    # A folder that cannot take the file: a clear error, nothing left behind.
    with pytest.raises(InvalidInputError):
        save_figure(make_figure(atlas, "cosines", where=STEP), tmp_path / "cosines.png" / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cosines.png"]
