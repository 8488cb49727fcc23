"""Verify a certificate file somebody sent you, trusting none of its numbers.

    python examples/verify_certificate.py [FILE] [--tol 1e-6] [--excess-tol 1e-3]

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
from scconvex.files import write_json


def check(path: Path, tol: float, excess_tol: float) -> bool:
    report = verify(path, tol=tol, excess_tol=excess_tol)
    if report.ok:
        print(f"{path.name}: verified. Loss {report.loss:.10g}; recomputed gaps relative to "
              f"the loss {report.rel_gap:.1e} (class level) and {report.sample_rel_gap:.1e} "
              f"(all sample Grams), within {tol:g}; relative to the excess loss "
              f"{report.excess_gap:.1e} and {report.sample_excess_gap:.1e}, within "
              f"{excess_tol:g}")
    else:
        print(f"{path.name}: REJECTED, {len(report.reasons)} reason(s):")
        # The claims that no longer match come first; the last reasons judge the geometry.
        reasons = list(report.reasons)
        shown = reasons if len(reasons) <= 3 else reasons[:2] + ["..."] + reasons[-1:]
        for reason in shown:
            print(f"  {reason}")
    return report.ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path)
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="largest gap relative to the loss (default 1e-6)")
    parser.add_argument("--excess-tol", type=float, default=1e-3,
                        help="largest gap relative to the excess loss (default 1e-3)")
    args = parser.parse_args(argv)
    if args.file is not None:
        return 0 if check(args.file, args.tol, args.excess_tol) else 1

    with tempfile.TemporaryDirectory() as tmp:
        genuine = Path(tmp) / "cifar10_lt.json"
        res = solve(ProblemSpec.long_tail(k=10, ratio=100, n_max=5000, tau=0.1))
        write_json(genuine, res.to_dict())
        print(f"colleague: solved CIFAR-10-LT at tau 0.1 ({res.status}) and sent "
              f"{genuine.name}")
        ok = check(genuine, args.tol, args.excess_tol)

        # A forgery: move two class means closer and keep the claimed numbers.
        data = json.loads(genuine.read_text())
        data["class_gram"][8][9] += 0.05
        data["class_gram"][9][8] += 0.05
        forged = Path(tmp) / "forged.json"
        forged.write_text(json.dumps(data))
        rejected = not check(forged, args.tol, args.excess_tol)
    return 0 if ok and rejected else 1


if __name__ == "__main__":
    sys.exit(main())
