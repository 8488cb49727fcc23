"""Every float32 argument of ``np.exp`` that the streamed loss can use, against float64.

Usage::

    python benchmarks/exp_accuracy.py            # about a minute on one core

The error bound of :mod:`scconvex.losses.streamed` allows ``EXP_ULPS`` ulp for numpy's
float32 ``exp``. Its arguments are logits ``h_i.h_j / tau`` with ``1/tau <= 80`` (at most
80 in absolute value plus the logit error) or, in the shifted mode, differences below a
row's largest logit (from about ``-2/tau`` up to a small positive rounding). This script
walks every float32 ``x`` in ``[-104, 88.5]`` (about the whole range where float32 ``exp`` is
neither 0 nor infinite), computes ``np.exp(x)`` in float32 and in float64, and reports the
largest error in ulp of the float32 result where that is normal, and the largest absolute
error where it is subnormal or zero (the bound counts at most ``2^-125`` there). The
result holds for the numpy build and CPU it ran on (numpy picks a SIMD kernel at run time);
``tests/test_streamed.py`` re-checks a random sample on every machine.
"""

from __future__ import annotations

import json
import platform
import time

import numpy as np


def main() -> None:
    lo = np.float32(-104.0)
    hi = np.float32(88.5)  # exp(88.72...) overflows float32; logits stay below 80 + error
    # float32 values are ordered like their sign-magnitude bit patterns: walk the negative
    # part from -0 down to lo, and the positive part from +0 up to hi.
    neg_end = int(np.array(lo, dtype=np.float32).view(np.uint32))  # 0x80000000 | bits
    pos_end = int(np.array(hi, dtype=np.float32).view(np.uint32))
    ranges = [(0x80000000, neg_end + 1), (0, pos_end + 1)]
    tiny = float(np.finfo(np.float32).tiny)
    worst_ulp, worst_x, worst_abs, count = 0.0, 0.0, 0.0, 0
    t0 = time.perf_counter()
    step = 1 << 24
    for start, stop in ranges:
        for a in range(start, stop, step):
            bits = np.arange(a, min(stop, a + step), dtype=np.uint32)
            x = bits.view(np.float32)
            got = np.exp(x).astype(np.float64)
            ref = np.exp(x.astype(np.float64))
            normal = (ref >= tiny) & (ref <= float(np.finfo(np.float32).max))
            if np.any(normal):
                ulp = np.spacing(ref[normal].astype(np.float32)).astype(np.float64)
                err = np.abs(got[normal] - ref[normal]) / ulp
                i = int(np.argmax(err))
                if err[i] > worst_ulp:
                    worst_ulp, worst_x = float(err[i]), float(x[normal][i])
            if np.any(~normal):
                worst_abs = max(worst_abs, float(np.max(np.abs(got[~normal] - ref[~normal]))))
            count += bits.size
    print(json.dumps({"arguments": count, "max_ulp": worst_ulp, "at": worst_x,
                      "max_abs_subnormal": worst_abs, "bound_subnormal": 2.0**-125,
                      "seconds": round(time.perf_counter() - t0, 1), "numpy": np.__version__,
                      "machine": platform.machine(), "simd": _simd()}))


def _simd() -> list[str]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        return []
    return sorted(k for k, v in features.items() if v and k.startswith("AVX"))


if __name__ == "__main__":
    main()
