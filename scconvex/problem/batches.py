"""Batch schemes of the batch-wise loss: validation, seeded random batches, and files.

A batch scheme is a tuple of batches, each a tuple of sample indices (samples listed class
by class, as :attr:`ProblemSpec.labels`); every sample lies in at least one batch. The loss
summed over a scheme is :class:`scconvex.losses.batched.BatchedLoss`.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..errors import InvalidInputError
from ..files import check_json_memory, read_input


def check_batches(batches: object, n: int) -> tuple[tuple[int, ...], ...]:
    """Validated batch scheme: non-empty batches of distinct indices in ``[0, n)``.

    Every sample must lie in at least one batch (a sample in none would be unconstrained);
    a sample may lie in several.
    """
    if isinstance(batches, (str, bytes)) or not hasattr(batches, "__iter__"):
        raise InvalidInputError("batches must be a list of lists of sample indices")
    out = []
    for b in batches:
        if isinstance(b, (str, bytes)) or not hasattr(b, "__iter__"):
            raise InvalidInputError("every batch must be a list of sample indices")
        idx = []
        for i in b:
            if isinstance(i, np.integer):
                i = int(i)
            if isinstance(i, bool) or not isinstance(i, int):
                raise InvalidInputError(f"sample indices must be integers, got {i!r}")
            if not 0 <= i < n:
                raise InvalidInputError(f"sample index {i} out of range [0, {n})")
            idx.append(i)
        if not idx:
            raise InvalidInputError("a batch must not be empty")
        if len(set(idx)) != len(idx):
            raise InvalidInputError("a batch lists a sample twice")
        out.append(tuple(idx))
    if not out:
        raise InvalidInputError("need at least one batch")
    seen = np.zeros(n, dtype=bool)
    for b in out:
        seen[list(b)] = True
    if not np.all(seen):
        missing = np.flatnonzero(~seen)[:5].tolist()
        raise InvalidInputError(f"every sample must be in a batch; missing e.g. {missing}")
    return tuple(out)


def random_batches(n: int, size: int, seed: int) -> tuple[tuple[int, ...], ...]:
    """Random equal-size batches: a seeded permutation of ``0..n-1`` cut into ``n / size``."""
    for name, v in (("batch size", size), ("batch seed", seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise InvalidInputError(f"{name} must be an integer, got {v!r}")
    if size < 1 or size > n or n % size:
        raise InvalidInputError(f"batch size must divide n = {n} (equal-size batches), "
                                f"got {size}")
    if seed < 0:
        raise InvalidInputError(f"batch seed must be >= 0, got {seed}")
    perm = np.random.default_rng(int(seed)).permutation(n)
    return tuple(tuple(sorted(int(i) for i in perm[j:j + size])) for j in range(0, n, size))


def _int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise InvalidInputError(f"{name} must be >= {low}, got {value}")
    return int(value)


def epoch_batches(n: int, size: int, epochs: int = 1, seed: int = 0
                  ) -> tuple[tuple[int, ...], ...]:
    """Batches of ``epochs`` random partitions of ``0..n-1`` into batches of ``size``.

    Each epoch draws a fresh permutation (one generator seeded with ``seed``, so epochs
    differ) and cuts it into ``ceil(n / size)`` batches; the last is smaller when ``size``
    does not divide ``n``. Each batch lists its sample indices in increasing order.

    Examples
    --------
    >>> [len(b) for b in epoch_batches(10, 4, epochs=2, seed=0)]
    [4, 4, 2, 4, 4, 2]
    """
    n = _int(n, "n", 1)
    size = _int(size, "batch size", 1)
    epochs = _int(epochs, "epochs", 1)
    seed = _int(seed, "batch seed", 0)
    if size > n:
        raise InvalidInputError(f"batch size {size} is larger than n = {n}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        out += [tuple(sorted(int(i) for i in perm[j:j + size])) for j in range(0, n, size)]
    return tuple(out)


BATCHES_FILE_MAX = 64 * 2**20
"""Largest batches file read (64 MiB)."""


def load_batches(path: str | os.PathLike) -> list:
    """Read a JSON list of index lists (validated later, against the spec).

    The file must be a regular file of at most :data:`BATCHES_FILE_MAX` bytes whose
    parse fits in memory (:func:`scconvex.files.check_json_memory`).
    """
    raw = read_input(path, "--batches", BATCHES_FILE_MAX)
    check_json_memory(raw, f"--batches {os.fspath(path)!r}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8, 5000-digit integers
        raise InvalidInputError(f"batches file is not valid JSON ({exc})") from None
