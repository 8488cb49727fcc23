"""A deliberate background load for the benchmarks: busy processes that the run owns."""

from __future__ import annotations

import multiprocessing as mp
import os
from contextlib import contextmanager


def _spin(stop) -> None:
    """Keep one core busy with single-threaded matrix products until told to stop."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    import numpy as np
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((300, 300))
    with threadpool_limits(1):
        while not stop.is_set():
            a = a @ a
            a /= np.abs(a).max()


@contextmanager
def background_load(processes: int):
    """Run ``processes`` busy processes for the duration of the ``with`` block."""
    if processes <= 0:
        yield
        return
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_spin, args=(stop,), daemon=True) for _ in range(processes)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()


def load_average() -> str:
    """The 1-minute load average, as ``uptime`` shows it."""
    return f"{os.getloadavg()[0]:.2f}"
