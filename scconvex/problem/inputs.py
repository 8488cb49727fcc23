"""Problem input a user can type: count vectors, count files, label files, value lists.

One parser serves ``scconvex solve``, ``scconvex tightness`` and ``scconvex sweep``:

* ``50x10`` is ten classes of 50 samples; forms mix with commas: ``500x5,50x5,7``;
* a counts file holds one count per line, a CSV (``name,count`` rows or comma-separated
  counts; a header line is skipped) or a JSON list; ``name,count`` rows name the classes;
* a labels file is a ``.npy`` array or text with one label per line; the counts are the
  number of samples of each distinct label, which names its class;
* value lists for sweeps are comma-separated numbers or ranges ``logspace:A:B:N``
  (``N`` values from ``A`` to ``B``, equally spaced in log) and ``linspace:A:B:N``.

Every malformed input raises :class:`~scconvex.errors.InvalidInputError` with a message
that names the option or file.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from array import array
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInputError
from ..files import check_json_memory, open_input, read_input
from ..resources import check_memory
from .spec import ProblemSpec

_ITEM = re.compile(r"^\s*(\d+)\s*(?:[xX*]\s*(\d+))?\s*$")

MAX_CLASSES = 10_000_000
"""Most classes a count vector, a counts file or a labels file may give."""

COUNTS_FILE_MAX = 64 * 2**20
"""Largest counts file read (64 MiB: ten million counts of six digits)."""

LABELS_FILE_MAX = 4 * 2**30
"""Largest labels file read (4 GiB; it is read in pieces, so memory stays of the order of
the number of distinct labels)."""

LABELS_CHUNK = 1 << 20
"""Labels of a ``.npy`` file counted per piece (elements)."""


def parse_counts(text: str, name: str = "--counts") -> tuple[int, ...]:
    """Counts from text such as ``"5,5,5"``, ``"50x10"`` or ``"500x5,50x5"``.

    ``CxM`` means ``M`` classes of ``C`` samples. Validation of the result (at least two
    classes, positive counts) is left to :class:`~scconvex.problem.spec.ProblemSpec`.

    Examples
    --------
    >>> parse_counts("500x2,50x3,7")
    (500, 500, 50, 50, 50, 7)
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"{name}: empty count list")
    out: list[int] = []
    for part in text.split(","):
        match = _ITEM.match(part)
        if match is None:
            raise InvalidInputError(f"{name}: {part.strip()!r} is not a count (use N or "
                                    f"NxM for M classes of N samples)")
        if max(len(match.group(1)), len(match.group(2) or "")) > 20:  # far above 2**53
            raise InvalidInputError(f"{name}: {part.strip()[:30]!r}... is above the limit "
                                    "2**53 (float64 is exact only up to there)")
        count, times = int(match.group(1)), int(match.group(2) or 1)
        if times < 1:
            raise InvalidInputError(f"{name}: {part.strip()!r} repeats a count zero times")
        if len(out) + times > MAX_CLASSES:
            raise InvalidInputError(f"{name}: more than {MAX_CLASSES:,} classes")
        out.extend([count] * times)
    return tuple(out)


def format_counts(counts: Sequence[int]) -> str:
    """Compact text of a count vector, the inverse of :func:`parse_counts`.

    >>> format_counts([500, 500, 50, 50, 50, 7])
    '500x2,50x3,7'
    """
    parts = []
    i = 0
    while i < len(counts):
        j = i
        while j < len(counts) and counts[j] == counts[i]:
            j += 1
        parts.append(str(counts[i]) if j - i == 1 else f"{counts[i]}x{j - i}")
        i = j
    return ",".join(parts)


def _read_text(path: str | os.PathLike, name: str, max_bytes: int) -> str:
    """A text input: a regular file of at most ``max_bytes`` (a FIFO, ``/dev/zero`` or a
    larger file is refused before reading), in UTF-8."""
    raw = read_input(path, name, max_bytes)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{name}: {os.fspath(path)!r} is not a text file") from None


def _is_int(text: str) -> bool:
    return _ITEM.match(text) is not None and "x" not in text.lower() and "*" not in text


def read_counts_file(path: str | os.PathLike) -> tuple[int, ...]:
    """Counts from a file: one per line, a CSV or a JSON list.

    CSV rows are either comma-separated counts or ``name,count`` pairs; a first line
    without any number is a header and is skipped. Blank lines and lines starting with
    ``#`` are ignored. Entries may use the ``CxM`` form of :func:`parse_counts`. The file
    must be a regular file of at most :data:`COUNTS_FILE_MAX` bytes; its lines are read
    one at a time.
    """
    return read_counts_table(path)[0]


def read_counts_table(path: str | os.PathLike
                      ) -> tuple[tuple[int, ...], tuple[str, ...] | None]:
    """Counts and class names from a counts file (:func:`read_counts_file`).

    The names are those of ``name,count`` rows (a ``CxM`` count repeats its name as
    ``name_1 .. name_M``); None unless every row has a name.
    """
    name = "--counts-file"
    text = _read_text(path, name, COUNTS_FILE_MAX)
    where = f"{name} {os.fspath(path)!r}"
    if text.lstrip().startswith("["):
        check_json_memory(text.encode(), where)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{where}: not valid JSON ({exc.msg}, line "
                                    f"{exc.lineno})") from None
        except (ValueError, RecursionError) as exc:  # an integer of 5000 digits
            raise InvalidInputError(f"{where}: not a list of counts ({exc})") from None
        if not isinstance(data, list) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in data):
            raise InvalidInputError(f"{where}: the JSON must be a list of integers")
        if len(data) > MAX_CLASSES:
            raise InvalidInputError(f"{where}: more than {MAX_CLASSES:,} classes")
        return tuple(data), None
    out: list[int] = []
    names: list[str] | None = []
    first = True
    for lineno, line in enumerate(io.StringIO(text), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if first and not any(re.search(r"\d", f) for f in fields):
            first = False
            continue  # header
        first = False
        label = None
        if len(fields) == 2 and not _is_int(fields[0]) and fields[1]:
            label, fields = fields[0], fields[1:]  # name,count
        start = len(out)
        for f in fields:
            if not f:
                continue
            try:
                more = parse_counts(f, name)
            except InvalidInputError:
                raise InvalidInputError(f"{where}, line {lineno}: {f!r} is not a "
                                        f"count") from None
            if len(out) + len(more) > MAX_CLASSES:
                raise InvalidInputError(f"{where}: more than {MAX_CLASSES:,} classes")
            out.extend(more)
        if label is None or names is None:
            names = None
        else:
            added = len(out) - start
            names.extend([label] if added == 1 else
                         [f"{label}_{i + 1}" for i in range(added)])
    if not out:
        raise InvalidInputError(f"{where}: no counts found")
    return tuple(out), (tuple(names) if names else None)


def read_labels(path: str | os.PathLike, name: str = "--labels-file") -> np.ndarray:
    """A label array from a ``.npy`` file or a text file with one label per line.

    Text labels that are all integers become integers (so 2 sorts before 10); blank lines
    are skipped. The file must be a regular file of at most :data:`LABELS_FILE_MAX` bytes;
    a text file is read line by line into label codes (memory: the array returned and
    the distinct labels), a ``.npy`` file only if its array fits in memory. Raises
    InvalidInputError naming ``name`` and the file.
    """
    where = f"{name} {os.fspath(path)!r}"
    with open_input(path, name, LABELS_FILE_MAX) as fh:
        if os.fspath(path).endswith(".npy"):
            return _npy_labels(fh, where)
        index: dict[str, int] = {}
        codes = array("q", (index.setdefault(label, len(index))
                            for label in _text_labels(fh, where)))
    if not codes:
        raise InvalidInputError(f"{where}: no labels found")
    distinct = list(index)
    try:  # integer labels sort as numbers (2 before 10), others as text
        values = np.array([int(x) for x in distinct])
    except ValueError:
        values = np.array(distinct)
    return values[np.frombuffer(codes, dtype=np.int64)]


def read_labels_file(path: str | os.PathLike) -> tuple[int, ...]:
    """Class counts of a label array: a ``.npy`` file or text with one label per line.

    Labels may be any values (integers or strings); classes are ordered by sorted label
    (integer labels of a text file as numbers). The file (a regular file of at most
    :data:`LABELS_FILE_MAX` bytes) is read in pieces: memory grows with the number of
    distinct labels, at most :data:`MAX_CLASSES`, not with the number of samples.
    """
    return read_labels_classes(path)[0]


def read_labels_classes(path: str | os.PathLike) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Class counts and class names (the distinct labels, as text) of a labels file
    (:func:`read_labels_file`), read in pieces."""
    name = "--labels-file"
    where = f"{name} {os.fspath(path)!r}"
    with open_input(path, name, LABELS_FILE_MAX) as fh:
        if os.fspath(path).endswith(".npy"):
            found = _npy_label_counts(fh, where)
        else:
            found = _text_label_counts(fh, where)
    if len(found) > MAX_CLASSES:
        raise InvalidInputError(f"{where}: more than {MAX_CLASSES:,} classes")
    try:
        order = sorted(found)
    except TypeError:  # labels of a structured or mixed type
        raise InvalidInputError(f"{where}: labels that cannot be sorted") from None
    return tuple(found[label] for label in order), tuple(str(label) for label in order)


def _text_labels(fh, where: str):
    """The non-blank labels of a text file, one per line, read a line at a time."""
    try:
        for raw in fh:
            label = raw.decode("utf-8").strip()
            if label:
                yield label
    except UnicodeDecodeError:
        raise InvalidInputError(f"{where} is not a text file") from None
    except OSError as exc:
        raise InvalidInputError(f"{where}: cannot read ({exc.strerror or exc})") from None


def _text_label_counts(fh, where: str) -> dict:
    counts: Counter = Counter()
    for label in _text_labels(fh, where):
        counts[label] += 1
        if len(counts) > MAX_CLASSES:
            break
    if not counts:
        raise InvalidInputError(f"{where}: no labels found")
    try:  # integer labels sort as numbers (2 before 10), others as text
        numbers: Counter = Counter()
        for label, count in counts.items():
            numbers[int(label)] += count
        return numbers
    except ValueError:
        return counts


def _npy_header(fh, where: str) -> tuple[int, np.dtype]:
    """Length and dtype of the 1-D array of a ``.npy`` file (the file positioned at its
    data), checked against the file's size."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        header = (fmt.read_array_header_1_0 if version == (1, 0)
                  else fmt.read_array_header_2_0)
        shape, _fortran, dtype = header(fh)
        if dtype.hasobject:
            raise ValueError("an object array needs pickle, which is not read")
        total = int(np.prod(shape, dtype=np.int64))
        if fh.tell() + total * dtype.itemsize != os.fstat(fh.fileno()).st_size:
            raise ValueError("the file size does not match its header")
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidInputError(f"{where}: not a plain .npy array ({exc})") from None
    if len(shape) != 1 or total == 0:
        raise InvalidInputError(f"{where}: labels must be a non-empty 1-D array, got shape "
                                f"{shape}")
    return total, dtype


def _npy_pieces(fh, where: str, total: int, dtype: np.dtype):
    """The labels of a ``.npy`` file in pieces of :data:`LABELS_CHUNK`, all finite."""
    for start in range(0, total, LABELS_CHUNK):
        size = min(LABELS_CHUNK, total - start)
        data = fh.read(size * dtype.itemsize)
        if len(data) != size * dtype.itemsize:
            raise InvalidInputError(f"{where}: the file ended early")
        piece = np.frombuffer(data, dtype=dtype)
        if piece.dtype.kind in "fc" and not np.all(np.isfinite(piece)):
            raise InvalidInputError(f"{where}: labels contain NaN or infinity")
        yield piece


def _npy_labels(fh, where: str) -> np.ndarray:
    total, dtype = _npy_header(fh, where)
    check_memory(2.0 * total * dtype.itemsize, f"reading {where}")
    return np.concatenate(list(_npy_pieces(fh, where, total, dtype)))


def _npy_label_counts(fh, where: str) -> dict:
    """Counts of the labels of a ``.npy`` file, read and counted in pieces of
    :data:`LABELS_CHUNK` elements (memory does not grow with the file)."""
    total, dtype = _npy_header(fh, where)
    counts: Counter = Counter()
    for piece in _npy_pieces(fh, where, total, dtype):
        values, numbers = np.unique(piece, return_counts=True)
        counts.update(dict(zip(values.tolist(), numbers.tolist(), strict=True)))
        if len(counts) > MAX_CLASSES:
            break
    return counts


def parse_values(text: str | float | Sequence, name: str) -> list[float]:
    """Numbers from ``"1,2,5"``, ``"logspace:1:1e4:13"``, ``"linspace:0.1:1:10"`` or a list.

    Examples
    --------
    >>> parse_values("logspace:1:100:3", "--R")
    [1.0, 10.0, 100.0]
    >>> parse_values("0.1,linspace:1:2:3", "--tau")
    [0.1, 1.0, 1.5, 2.0]
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        items: list = [text]
    elif isinstance(text, str):
        items = [p.strip() for p in text.split(",")]
    elif isinstance(text, (list, tuple)):
        items = list(text)
    else:
        raise InvalidInputError(f"{name}: expected numbers, got {text!r}")
    out: list[float] = []
    for item in items:
        if isinstance(item, str) and ":" in item:
            out.extend(_range(item, name))
            continue
        if isinstance(item, bool):
            raise InvalidInputError(f"{name}: {item!r} is not a number")
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{name}: {item!r} is not a number") from None
        if not math.isfinite(value):
            raise InvalidInputError(f"{name}: {item!r} is not finite")
        out.append(value)
    if not out:
        raise InvalidInputError(f"{name}: no values")
    return out


def _range(text: str, name: str) -> list[float]:
    parts = text.split(":")
    if len(parts) != 4 or parts[0] not in ("logspace", "linspace"):
        raise InvalidInputError(f"{name}: {text!r} is not a range; use logspace:A:B:N or "
                                f"linspace:A:B:N")
    try:
        a, b = float(parts[1]), float(parts[2])
        num = int(parts[3])
    except ValueError:
        raise InvalidInputError(f"{name}: {text!r} needs numbers A, B and an integer "
                                f"N") from None
    if not (math.isfinite(a) and math.isfinite(b)) or not 1 <= num <= 100_000:
        raise InvalidInputError(f"{name}: {text!r} needs finite A, B and 1 <= N <= 100000")
    if parts[0] == "logspace":
        if a <= 0 or b <= 0:
            raise InvalidInputError(f"{name}: logspace needs A, B > 0, got {text!r}")
        return [float(v) for v in np.geomspace(a, b, num)]
    return [float(v) for v in np.linspace(a, b, num)]


def parse_ints(text, name: str) -> list[int]:
    """Positive integers from a value list (``"2,3,4"`` or a list)."""
    values = parse_values(text, name)
    if any(v != int(v) or v < 1 for v in values):
        raise InvalidInputError(f"{name} must be positive integers, got {text!r}")
    return [int(v) for v in values]


def _numbers(text: str, name: str, size: int) -> list[float]:
    values = parse_values(text, name)
    if len(values) != size or ":" in text:
        raise InvalidInputError(f"{name} needs {size} comma-separated values, got {text!r}")
    return values


def spec_from_args(args) -> ProblemSpec:
    """The problem of ``scconvex solve`` / ``tightness`` from parsed arguments.

    Exactly one of ``--counts``, ``--counts-file``, ``--labels-file``, ``--step`` and
    ``--long-tail`` must be given (attributes that a parser lacks count as absent).
    """
    sources = ("counts", "counts_file", "labels_file", "step", "long_tail")
    given = [s for s in sources if getattr(args, s, None) is not None]
    if len(given) != 1:
        raise InvalidInputError("give exactly one of --counts, --counts-file, --labels-file, "
                                "--step, --long-tail")
    if args.counts is not None:
        return ProblemSpec(parse_counts(args.counts), args.tau)
    if getattr(args, "counts_file", None) is not None:
        counts, names = read_counts_table(args.counts_file)
        return ProblemSpec(counts, args.tau, names=names)
    if getattr(args, "labels_file", None) is not None:
        counts, names = read_labels_classes(args.labels_file)
        return ProblemSpec(counts, args.tau, names=names)
    if args.step is not None:
        k, rho, ratio, n_min = _numbers(args.step, "--step", 4)
        return ProblemSpec.step(k, rho, ratio, n_min, args.tau)
    k, ratio, n_max = _numbers(args.long_tail, "--long-tail", 3)
    return ProblemSpec.long_tail(k, ratio, n_max, args.tau)
