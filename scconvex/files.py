"""JSON documents and atomic file writes, shared by every stage that writes results.

JSON output is deterministic (sorted keys), carries ``scconvex_version`` and
``schema_version``, and writes non-finite numbers as the strings ``"nan"``, ``"inf"`` and
``"-inf"`` rather than as bare NaN. Files are written to a temporary file in the same
folder and renamed, so an existing file is never left half-written (:func:`write_json`
says what happens to permissions, symlinks, special files and hard links).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import stat
import tempfile
import time
from typing import Any

import numpy as np

from ._version import __version__
from .errors import InvalidInputError

SCHEMA_VERSION = 2
"""Version of the certificate file format: 2 adds ``cosine_bounds`` and the uniqueness
proof (``unique``, ``uniqueness.reason``) and ``measures.bounds``; version 1 files hold
none of these and are verified without them."""


def version() -> str:
    """The installed scconvex version."""
    return __version__


def jsonable(x: Any) -> Any:
    """Convert numpy values and non-finite floats into JSON-safe values."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        if len(x) >= _FAST_LIST:
            fast = _numeric_list(x)
            if fast is not None:
                return fast
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "iu" or (x.dtype.kind == "f" and np.all(np.isfinite(x))):
            return x.tolist()  # already JSON-safe; skips a Python pass over large Grams
        if x.dtype.kind == "f":
            # Non-finite entries as text, vectorised (cosine bars hold inf: a 2987 x 2987
            # array took 10 s value by value).
            obj = x.astype(object)
            obj[np.isnan(x)] = "nan"
            obj[np.isposinf(x)] = "inf"
            obj[np.isneginf(x)] = "-inf"
            return obj.tolist()
        return jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    return x


_FAST_LIST = 64
"""Lists at least this long are first tried as one numeric array (a Gram turned into
nested lists is converted again by :func:`dumps`: 0.4 s per pass at k = 1000 in Python)."""


def _numeric_list(x: list | tuple) -> list | None:
    """``x`` as plain Python numbers if it is a rectangular, finite numeric array, else None.

    Integers mixed with floats come back as floats (``1`` as ``1.0``): the same numbers.
    """
    try:
        a = np.array(x)
    except (ValueError, TypeError):
        return None
    if a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and not np.all(np.isfinite(a))):
        return None
    return a.tolist()


def dumps(obj: Any) -> str:
    """Deterministic JSON text of ``obj`` (sorted keys, no bare NaN)."""
    return json.dumps(jsonable(obj), sort_keys=True, allow_nan=False)


def dump(obj: Any, fh) -> None:
    """Write :func:`dumps` of ``obj`` to the text stream ``fh``, the same characters, in
    pieces: dictionaries key by key and numeric arrays row by row, so that a large Gram is
    never held as one list of Python floats and one string (a 2,987 x 2,987 group Gram
    and its bars: 3.4 GB and 45 s as one string, against a few MB at a time)."""
    for piece in _pieces(obj):
        fh.write(piece)


STREAM_ENTRIES = 1 << 16
"""Arrays with at least this many entries are written row by row by :func:`dump`."""


def _pieces(x: Any):
    if isinstance(x, dict):
        yield "{"
        for i, key in enumerate(sorted(str(k) for k in x)):
            if i:
                yield ", "
            yield json.dumps(key) + ": "
            yield from _pieces(_value(x, key))
        yield "}"
    elif isinstance(x, np.ndarray) and x.ndim >= 2 and x.size >= STREAM_ENTRIES:
        yield "["
        for i, row in enumerate(x):
            if i:
                yield ", "
            yield from _pieces(row) if row.ndim >= 2 else (
                json.dumps(jsonable(row), allow_nan=False),)
        yield "]"
    elif (isinstance(x, list) and len(x) >= _FAST_LIST and isinstance(x[0], list)
          and len(x) * len(x[0]) >= STREAM_ENTRIES and all(isinstance(r, list) for r in x)):
        # A matrix already turned into lists (what result dictionaries hold), row by row.
        # jsonable reads a rectangular, finite numeric one as one array, whose dtype (the
        # rows' promoted one) the rows take here too; anything else it converts row by row.
        rows = _numeric_rows(x)
        yield "["
        for i, row in enumerate(x if rows is None else rows):
            if i:
                yield ", "
            if rows is None:
                yield from _pieces(row)
            else:
                yield json.dumps(row.tolist(), allow_nan=False)
        yield "]"
    else:
        yield json.dumps(jsonable(x), sort_keys=True, allow_nan=False)


def _numeric_rows(x: list) -> list | None:
    """The rows of ``x`` as arrays of one dtype when :func:`_numeric_list` would read ``x``
    as a numeric array (rectangular, finite), else None."""
    rows = []
    for row in x:
        if len(row) != len(x[0]):
            return None
        try:
            a = np.array(row)
        except (ValueError, TypeError):
            return None
        if a.ndim != 1 or a.dtype.kind not in "biuf" or (
                a.dtype.kind == "f" and not np.all(np.isfinite(a))):
            return None
        rows.append(a)
    common = np.result_type(*rows)
    return [a.astype(common, copy=False) for a in rows]


def _value(d: dict, key: str) -> Any:
    """``d``'s value under the key whose text is ``key`` (:func:`jsonable` turns every key
    into its text)."""
    if key in d:
        return d[key]
    return next(v for k, v in d.items() if str(k) == key)


TEMP_PREFIX = ".scconvex-tmp-"
"""Temporary files of :func:`write_text` are ``.scconvex-tmp-XXXXXXXX.json`` (the target's
extension) next to the target."""

STALE_SECONDS = 3600.0
"""Temporary files older than this (left by a process killed with SIGKILL) are removed by
the next :func:`write_json` into the same folder."""

_TEMP_NAME = re.compile(r"^\.scconvex-(tmp-)?[a-z0-9_]{8}(\.[A-Za-z0-9]{1,8})?$")


def _suffix(path: str) -> str:
    ext = os.path.splitext(path)[1]
    return ext if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", ext) else ""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_writable(path: str | os.PathLike) -> str:
    """Check that :func:`write_json` may write ``path``; return the file it would replace.

    Symlinks are followed (the target is written, the link is kept). The target must be a
    regular file with one link, or not exist yet in an existing folder; special files
    (devices such as ``/dev/full``, FIFOs, sockets, directories) and hard-linked files are
    refused, since replacing them would destroy the special file or split the links.

    Raises
    ------
    InvalidInputError
        When the target is refused (the message says why).
    """
    path = os.fspath(path)
    if not path:
        raise InvalidInputError("the output file name is empty")
    target = os.path.realpath(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        folder = os.path.dirname(target)
        if not os.path.isdir(folder):
            raise InvalidInputError(f"cannot write {path}: folder {folder} does not exist") \
                from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InvalidInputError(f"cannot write {path}: folder {folder} is not writable") \
                from None
        return target
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInputError(f"refusing to write {path}: it is {_kind(st.st_mode)}, not a "
                                "regular file")
    if st.st_nlink > 1:
        raise InvalidInputError(f"refusing to write {path}: it has {st.st_nlink} hard links, "
                                "and replacing it atomically would split them")
    if not os.access(os.path.dirname(target), os.W_OK | os.X_OK):
        raise InvalidInputError(f"cannot write {path}: folder {os.path.dirname(target)} is "
                                "not writable (the file is replaced by renaming)")
    return target


def remove_stale_temporaries(folder: str, max_age: float = STALE_SECONDS) -> int:
    """Remove temporary files of :func:`write_text` older than ``max_age`` seconds.

    Only names of the exact form :func:`write_text` creates are touched. Returns how many
    files were removed.
    """
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not _TEMP_NAME.match(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and \
                    now - entry.stat(follow_symlinks=False).st_mtime > max_age:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (see :func:`write_bytes`), streamed (:func:`dump`)."""

    def write(fh) -> None:
        text = io.TextIOWrapper(fh, encoding="utf-8", write_through=False)
        dump(obj, text)
        text.write("\n")
        text.flush()
        text.detach()

    _write_atomic(path, write)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) atomically (see :func:`write_bytes`)."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` atomically: a temporary file in the same folder, then rename.

    * an existing regular file is replaced in one step and keeps its permission bits (and,
      when run as root, its owner); a new file gets ``0666`` minus the umask;
    * a symlink is followed: its target is replaced and the link kept;
    * special files and hard-linked files are refused (:func:`check_writable`);
    * the temporary file is removed on any error and on SIGINT/SIGTERM (the command line
      turns SIGTERM into an exception); one left by SIGKILL is removed by a later write
      into the same folder once it is :data:`STALE_SECONDS` old.

    Raises
    ------
    InvalidInputError
        When the target is refused.
    OSError
        When writing fails (disk full, permissions); the previous file is left intact.
    """
    _write_atomic(path, lambda fh: fh.write(data))


def _write_atomic(path: str | os.PathLike, write) -> None:
    """:func:`write_bytes` with the contents written by ``write(binary_file)``."""
    target = check_writable(path)
    folder = os.path.dirname(target)
    remove_stale_temporaries(folder)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=_suffix(target), dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            if st is not None:
                if os.geteuid() == 0:
                    os.fchown(fh.fileno(), st.st_uid, st.st_gid)
                os.fchmod(fh.fileno(), stat.S_IMODE(st.st_mode))
            else:  # mkstemp makes 0600; results are meant to be shared
                os.fchmod(fh.fileno(), 0o666 & ~_umask())
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# ---------------------------------------------------------------------- reading inputs
JSON_MEMORY_FACTOR = 16
"""Largest estimated parse memory of a JSON input per byte of it (beyond
:data:`JSON_MEMORY_ALLOWANCE`). A file of numbers costs about 3 to 10 bytes per byte in
Python objects; one of empty objects, lists or short strings 10 to 25 (a 99 MB file of
``{}`` took 2.6 GB), and such a file is never one that scconvex wrote."""

JSON_MEMORY_ALLOWANCE = 64 * 2**20
"""Parse memory any JSON input may take whatever its structure (small files)."""


def open_input(path: str | os.PathLike, name: str, max_bytes: int):
    """Open an input file for reading in binary, refusing anything but a regular file of
    at most ``max_bytes``.

    The file is opened without blocking and checked on the open descriptor, so a FIFO
    (which would block the open until a writer comes), a device such as ``/dev/zero``
    (endless) or a directory is refused with one line, and nothing can be swapped in
    between the check and the read.

    Parameters
    ----------
    path : path-like
    name : str
        What the file is, for messages (``"--counts-file"``).
    max_bytes : int
        Largest size accepted.

    Raises
    ------
    InvalidInputError
        When the file cannot be opened, is not a regular file, or is larger.
    """
    shown = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, TypeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InvalidInputError(f"{name}: cannot read {shown!r}: {reason}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInputError(f"{name}: cannot read {shown!r}: it is "
                                    f"{_kind(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise InvalidInputError(f"{name}: {shown!r} is larger than "
                                    f"{_size_text(max_bytes)}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_input(path: str | os.PathLike, name: str, max_bytes: int) -> bytes:
    """The bytes of an input file (see :func:`open_input`); a file that grows past
    ``max_bytes`` while it is read is refused too."""
    with open_input(path, name, max_bytes) as fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise InvalidInputError(f"{name}: cannot read {os.fspath(path)!r}: "
                                    f"{exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise InvalidInputError(f"{name}: {os.fspath(path)!r} is larger than "
                                f"{_size_text(max_bytes)}")
    return data


def _size_text(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def json_memory(raw: bytes) -> float:
    """An upper bound on the memory Python needs to parse the JSON text ``raw``.

    Counted from its structure without parsing it: about 48 bytes per element (comma),
    100 per object or list, 100 per key (colon), 30 per string quote, and twice the text.
    Measured against ``json.loads`` (tracemalloc): 1.3 to 2.3 times the real peak for
    lists of numbers, strings, empty objects and lists, and objects of numbers.
    """
    count = raw.count
    return (48.0 * count(b",") + 100.0 * (count(b"{") + count(b"[")) + 100.0 * count(b":")
            + 30.0 * count(b'"') + 2.0 * len(raw))


def check_json_memory(raw: bytes, what: str) -> None:
    """Refuse to parse a JSON input whose structure costs far more memory than its size
    (:data:`JSON_MEMORY_FACTOR`), or more than is available.

    Raises
    ------
    InvalidInputError
        For a file mostly made of empty objects, lists or strings.
    ResourceLimitError
        When the estimate does not fit in the memory budget.
    """
    from .resources import check_memory, format_bytes

    need = json_memory(raw)
    if need > JSON_MEMORY_FACTOR * len(raw) + JSON_MEMORY_ALLOWANCE:
        raise InvalidInputError(f"{what}: parsing it would take about {format_bytes(need)} "
                                f"of memory for {format_bytes(len(raw))} of JSON (mostly "
                                "objects, lists or strings, not numbers)")
    check_memory(need + len(raw), f"reading {what}")
