"""Memory estimates, made before a large allocation, and the budget they are checked against.

A run that cannot fit is refused up front with a message that names the estimate and a
level or solver that fits, instead of dying in the middle (numpy's MemoryError, or Clarabel
aborting the whole process when its allocation fails, or the kernel's OOM killer).

The estimates are per-entry costs of the ``m x m`` matrix variable (``m = n``, ``k`` or
``g`` at sample, class and group level), measured as peak resident memory on small
problems (docs/benchmarks.md-style numbers, 2-core machine, cvxpy 1.9.3, Clarabel 0.11.1):

* native backend, repair, certificates and cosine bars: the whole process peaked at
  1,725 MiB for the 21841-class long tail (group level, ``m = 2987``: 203 bytes per entry
  with the interpreter) and at 1,482 MiB at class level with ``m = 3000``
  (``benchmarks/scaling.py``, docs/benchmarks_scaling.md); with :data:`BASE_BYTES`,
  :data:`DENSE_BYTES` = 200 is above every size measured (``m = 250`` to ``3000``);
* Clarabel through cvxpy: the PSD cone of ``t = m (m + 1) / 2`` entries gets a dense
  ``t x t`` block (exactly ``8 t^2`` bytes: Clarabel asked for 16.3 GB at ``n = 300``
  and 75.3 GB at ``n = 440``), and the peak is about ``60 t^2`` bytes (1.44 GB at
  ``n = 100``, 0.62 GB at ``n = 80``);
* SCS through cvxpy: about 8 KB per entry of the variable (0.19 GB at ``n = 160``).

The budget (:func:`available_memory`) is the smallest of the memory the kernel reports as
available, the cgroup limit, the address-space limit (``ulimit -v``) and the environment
variable ``SCCONVEX_MEMORY_LIMIT`` (bytes, or a number with a ``K``, ``M``, ``G`` or ``T``
suffix).
"""

from __future__ import annotations

import math
import os
import resource
import time

from .errors import ResourceLimitError

MEMORY_ENV = "SCCONVEX_MEMORY_LIMIT"
"""Environment variable that caps the memory budget (e.g. ``4G``)."""

BASE_BYTES = 200 * 2**20
"""Headroom for the interpreter, numpy and cvxpy themselves."""

DENSE_BYTES = 200
"""Bytes per entry of the ``m x m`` variable for dense work: 25 float64 copies (the
estimate was 160, below the 606 MiB a native solve peaked at under a 560 MiB limit)."""

CLARABEL_BYTES = 64
"""Bytes per entry of the dense ``t x t`` PSD block of Clarabel, ``t = m (m + 1) / 2``."""

SCS_BYTES = 8192
"""Bytes per entry of the ``m x m`` variable for a cvxpy model solved by SCS."""

GRAM_JSON_BYTES = 64
"""Bytes per entry to lift a ``k x k`` class Gram and write it as JSON (array, list, text)."""

_SUFFIX = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def format_bytes(n: float) -> str:
    """``n`` bytes as a short text such as ``"74.5 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def parse_bytes(text: str) -> int:
    """``"4G"``, ``"512M"`` or ``"1000000"`` as a number of bytes."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _SUFFIX else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        raise ResourceLimitError(f"{MEMORY_ENV}={text!r} is not a size such as 4G") from None
    if not value > 0 or value == float("inf"):
        raise ResourceLimitError(f"{MEMORY_ENV}={text!r} must be a positive size")
    return int(value * _SUFFIX[unit])


def _meminfo_available() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return float("inf")


def _cgroup_available() -> float:
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit == "max":
            return float("inf")
        with open("/sys/fs/cgroup/memory.current") as fh:
            used = int(fh.read().strip())
        return int(limit) - used
    except (OSError, ValueError):
        return float("inf")


def _address_space_available() -> float:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return float("inf")
    used = 0
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    used = int(line.split()[1]) * 1024
    except OSError:
        pass
    return soft - used


def available_memory() -> float:
    """Bytes this process may still allocate (see the module docstring)."""
    budget = min(_meminfo_available(), _cgroup_available(), _address_space_available())
    env = os.environ.get(MEMORY_ENV)
    if env:
        budget = min(budget, parse_bytes(env))
    return max(float(budget), 0.0)


def fastest_run(work, repeats: int = 3) -> float:
    """The fastest of ``repeats`` wall-clock runs of ``work()``, in seconds: what a
    machine can do, measured where other work may slow a single run down (time-limit
    estimates scale it to the size they need)."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - t0)
    return best


def solve_bytes(dim: int, solver: str) -> float:
    """Estimated peak memory of solving, repairing and certifying a ``dim x dim`` model.

    The level does not enter: at every level the dense work and the conic solvers' PSD
    cone are sized by the side of the matrix variable (the module docstring).

    Parameters
    ----------
    dim : int
        Side of the matrix variable (``g``, ``k`` or ``n``).
    solver : {"native", "clarabel", "scs"}
    """
    m = float(dim)
    out = BASE_BYTES + DENSE_BYTES * m * m
    if solver == "clarabel":
        t = m * (m + 1) / 2
        out += CLARABEL_BYTES * t * t
    elif solver == "scs":
        out += SCS_BYTES * m * m
    return out


def nonconvex_bytes(rows: int, d: int, restarts: int) -> float:
    """Estimated peak memory of the non-convex solves of ``tightness`` in dimension ``d``.

    L-BFGS keeps about 20 ``rows x d`` arrays, the loss needs a few ``rows x rows`` Grams,
    and every restart's answer is kept.
    """
    rows, d = float(rows), float(d)
    return BASE_BYTES + 8 * rows * d * (24 + restarts) + 8 * 12 * rows * rows


def class_gram_bytes(k: int) -> float:
    """Estimated memory to lift the ``k x k`` class Gram and write it as JSON."""
    return BASE_BYTES + GRAM_JSON_BYTES * float(k) ** 2


def check_memory(needed: float, what: str, hint: str = "") -> None:
    """Raise :class:`~scconvex.errors.ResourceLimitError` if ``needed`` bytes do not fit.

    The message names the estimate, the budget and ``hint`` (what to do instead).
    """
    budget = available_memory()
    if needed > budget:
        message = (f"{what} needs about {format_bytes(needed)} of memory, more than the "
                   f"{format_bytes(budget)} available")
        raise ResourceLimitError(message + (f"; {hint}" if hint else ""))
