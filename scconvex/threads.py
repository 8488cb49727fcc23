"""BLAS thread control for the native solver and the certificate.

numpy and scipy each ship their own OpenBLAS (numpy a 64-bit-integer build, scipy a 32-bit
one), and each starts its own pool of threads. The native solver alternates between numpy
products and scipy's ``eigh``, so on a machine with few cores the two pools, and any other
work on the machine, fight over the same cores: measured on 2 cores, k = 200 took 15 s
with the default threads against 0.35 s with one thread. :func:`blas_threads` limits every
loaded BLAS library at once (through threadpoolctl, which finds both) and restores the
previous settings on exit.

The default count comes from measurements on the 2-core development machine
(``docs/benchmarks.md``): one thread was faster at every size measured, idle or busy,
because the O(k^2) element-wise work between the products does not parallelise and
every hand-over between the two pools costs more than the product saves.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .errors import InvalidInputError

DEFAULT_THREADS = 1
"""BLAS threads used when the caller does not choose (see the module docstring)."""


def check_threads(threads: object) -> int | None:
    """Validate a thread count: a positive integer, or None for :data:`DEFAULT_THREADS`.

    Raises
    ------
    InvalidInputError
        For anything else (booleans, zero, negative or non-integer values).
    """
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise InvalidInputError(f"threads must be an integer >= 1 or None, got {threads!r}")
    return int(threads)


def choose_threads(threads: int | None) -> int:
    """The BLAS thread count to use: ``threads`` (validated) when given, else
    :data:`DEFAULT_THREADS`.

    One rule for every size: on 2 cores one thread was faster at every size measured
    (class level, k = 50 to 1000, idle and busy; ``docs/benchmarks.md``). Under load the
    gap is large: k = 200 took 0.84 s with one thread and 58.6 s with two.
    """
    threads = check_threads(threads)
    return DEFAULT_THREADS if threads is None else threads


@contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Limit the thread pools of every loaded BLAS library inside a ``with`` block.

    Parameters
    ----------
    threads : int or None
        Threads per BLAS library; None leaves them as they are.

    Notes
    -----
    threadpoolctl only sees libraries that are already loaded, so scipy's linear algebra
    is imported first: it carries its own OpenBLAS next to numpy's. The previous limits
    are restored when the block exits, also on an exception.

    Examples
    --------
    >>> import numpy as np
    >>> with blas_threads(1):
    ...     x = np.ones((3, 3)) @ np.ones((3, 3))
    """
    threads = check_threads(threads)
    if threads is None:
        yield
        return
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS so that the limit reaches it)

    with _controller().limit(limits=threads, user_api="blas"):
        yield


def _controller():
    """A threadpoolctl controller, rebuilt only when new modules (and so perhaps new BLAS
    libraries) were imported: building one scans the process's shared libraries, about
    1 ms, a tenth of a small native solve."""
    return _controller_after(len(sys.modules))


@functools.lru_cache(maxsize=1)
def _controller_after(n_modules: int):
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
