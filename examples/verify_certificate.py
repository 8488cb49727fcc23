"""Verify a certificate file somebody sent you, trusting none of its numbers.

    python examples/verify_certificate.py [FILE] [--tol 1e-8]

With FILE: re-check it and print the verdict (exit code 0 when it verifies). Without: play
both roles. A "colleague" solves a problem and writes a certificate; you verify it; then a
forged copy, with one cosine changed, is rejected with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from scconvex import ProblemSpec, solve, verify
from scconvex.report import write_json


def check(path: Path, tol: float) -> bool:
    report = verify(path, tol=tol)
    if report.ok:
        print(f"{path.name}: verified. Loss {report.loss:.10g}; recomputed relative gaps "
              f"{report.rel_gap:.1e} (class level) and {report.sample_rel_gap:.1e} (all "
              f"sample Grams), within {tol:g}")
    else:
        print(f"{path.name}: REJECTED: {'; '.join(report.reasons)}")
    return report.ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path)
    parser.add_argument("--tol", type=float, default=1e-8)
    args = parser.parse_args(argv)
    if args.file is not None:
        return 0 if check(args.file, args.tol) else 1

    with tempfile.TemporaryDirectory() as tmp:
        genuine = Path(tmp) / "cifar10_lt.json"
        res = solve(ProblemSpec.long_tail(k=10, ratio=100, n_max=5000, tau=0.1))
        write_json(genuine, res.to_dict())
        print(f"colleague: solved CIFAR-10-LT at tau 0.1 ({res.status}) and sent "
              f"{genuine.name}")
        ok = check(genuine, args.tol)

        # A forgery: move two class means closer and keep the claimed numbers.
        data = json.loads(genuine.read_text())
        data["class_gram"][8][9] += 0.05
        data["class_gram"][9][8] += 0.05
        forged = Path(tmp) / "forged.json"
        forged.write_text(json.dumps(data))
        rejected = not check(forged, args.tol)
    return 0 if ok and rejected else 1


if __name__ == "__main__":
    sys.exit(main())
