"""The certified SC-optimal geometry of your dataset, from a file of labels.

    python examples/dataset_geometry.py LABELS [--tau 0.1]

LABELS is a text file with one label per line (any strings or integers), or a ``.npy``
array of labels. Without a file the script writes and uses a small demo file. It prints
the class counts, the certified optimal cosines between class means, and the nearest
class of each class.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from scconvex import ProblemSpec, solve

DEMO = {"cat": 40, "dog": 25, "bird": 10, "frog": 4}


def read_labels(path: Path) -> np.ndarray:
    """Labels from a ``.npy`` file or a text file with one label per line."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    lines = [line.strip() for line in path.read_text().splitlines()]
    return np.array([line for line in lines if line])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", nargs="?", type=Path, help="labels file (.txt or .npy)")
    parser.add_argument("--tau", type=float, default=0.1, help="temperature (default 0.1)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = args.labels
        if path is None:
            path = Path(tmp) / "labels.txt"
            path.write_text("".join(f"{name}\n" * count for name, count in DEMO.items()))
            print(f"no labels file given; using a demo file with {sum(DEMO.values())} labels")
        labels = read_labels(path)

    # Classes are ordered by their sorted label values, as ProblemSpec.from_labels does.
    names, counts = np.unique(labels, return_counts=True)
    names = [str(x) for x in names]
    spec = ProblemSpec.from_labels(labels, tau=args.tau)
    res = solve(spec)

    print(f"{spec.k} classes, {spec.n} samples, tau = {spec.tau:g}")
    print(f"status {res.status}: certified relative gap {res.rel_gap:.1e} (class Grams), "
          f"{res.sample_rel_gap:.1e} (all sample Grams)")
    width = max(max(len(x) for x in names), 6) + 2
    print(" " * width + "".join(f"{x:>{width}}" for x in names) + "   count")
    M = res.class_gram
    for i, name in enumerate(names):
        row = "".join(f"{M[i, j]:>{width}.3f}" for j in range(spec.k))
        print(f"{name:<{width}}{row}   {counts[i]:>5}")
    print("nearest class of each class (largest cosine):")
    off = M - 2 * np.eye(spec.k)
    for i, name in enumerate(names):
        j = int(np.argmax(off[i]))
        print(f"  {name:<{width}} -> {names[j]} (cosine {M[i, j]:.3f}, "
              f"{np.degrees(np.arccos(M[i, j])):.1f} degrees)")
    return 0 if res.success else 1


if __name__ == "__main__":
    sys.exit(main())
