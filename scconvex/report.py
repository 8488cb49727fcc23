"""Stage 6 of the pipeline: reports, as JSON documents and as human-readable tables.

JSON output is deterministic (sorted keys), carries ``scconvex_version`` and
``schema_version``, and writes non-finite numbers as the strings ``"nan"``, ``"inf"`` and
``"-inf"`` rather than as bare NaN. Files are written to a temporary file in the same
folder and renamed, so an existing file is never left half-written (:func:`write_json`
says what happens to permissions, symlinks, special files and hard links).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import tempfile
import time
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .resources import check_memory, class_gram_bytes

SCHEMA_VERSION = 1


def _version() -> str:
    from . import __version__

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
    """Write ``obj`` as JSON atomically (see :func:`write_text`)."""
    write_text(path, dumps(obj) + "\n")


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
            fh.write(data)
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


CLASS_GRAM_MAX = 200
"""Largest k for which ``class_gram`` is written by default (k^2 numbers)."""


def result_dict(res, *, full_gram: bool = False) -> dict[str, Any]:
    """JSON-safe dictionary of a :class:`~scconvex.solve.SolveResult`.

    The dictionary is also the certificate file read by :func:`scconvex.verify.verify`: it
    holds the spec, the claimed values and the geometry at the solved level:

    * ``groups`` (group level): ``counts`` and ``sizes`` of the groups, ``block_of`` (the
      group of each class) and ``gram``, the ``g x g`` cosines (within-group on the
      diagonal); this determines the class Gram exactly;
    * ``class_gram``: the ``k x k`` cosines between class means, written when
      ``k <= CLASS_GRAM_MAX`` or ``full_gram`` (always at class and sample level);
    * ``sample_gram`` (sample level): the ``n x n`` Gram matrix.
    """
    spec = res.spec
    with_class = full_gram or spec.k <= CLASS_GRAM_MAX or res.level != "group"
    if with_class and res.level == "group":
        check_memory(class_gram_bytes(spec.k), f"the full {spec.k} x {spec.k} class Gram",
                     "leave out --full-gram: the group Gram determines it exactly")
    out = {
        "kind": "scconvex.solve",
        "schema_version": SCHEMA_VERSION,
        "scconvex_version": _version(),
        "spec": spec.to_dict(),
        "counts": list(spec.counts),
        "tau": spec.tau,
        "n": spec.n,
        "k": spec.k,
        "level": res.level,
        "solver": res.solver,
        "status": res.status,
        "message": res.message,
        "raw_status": res.raw_status,
        "loss": res.loss,
        "excess_loss": res.excess_loss,
        "lower_bound": res.lower_bound,
        "gap": res.gap,
        "rel_gap": res.rel_gap,
        "sample_lower_bound": res.sample_lower_bound,
        "sample_gap": res.sample_gap,
        "sample_rel_gap": res.sample_rel_gap,
        "gap_tol": res.gap_tol,
        "excess_tol": res.excess_tol,
        "excess_gap": _cert_field(res.certificate, "excess_gap"),
        "sample_excess_gap": _cert_field(res.sample_certificate, "excess_gap"),
        "rank": res.rank,
        "rank_tol": _rank_tol(),
        "min_eigenvalue": res.min_eigenvalue,
        "iterations": res.iterations,
        "repair_shift": res.repair_shift,
        "seconds": res.seconds,
        "timings": dict(res.timings),
        "class_gram": res.class_gram if with_class else None,
        "unique": res.unique,
        "uniqueness": None if res.uniqueness is None else res.uniqueness.to_dict(),
    }
    if res.level == "group" and res.variable is not None:
        model = res.model
        out["groups"] = {"counts": model.block_counts, "sizes": model.sizes,
                         "block_of": model.block_of, "gram": res.variable}
    if res.level == "sample" and res.variable is not None:
        out["sample_gram"] = res.variable
    if res.model is not None and res.variable is not None:
        out.update(res.model.relaxation.report(res))
    out["measures"] = _measures(out, res)
    return jsonable(out)


def _measures(out: dict, res) -> dict | None:
    from .measures import geometry_of, summary

    geo = geometry_of(out)
    return None if geo is None else summary(geo, counts=res.spec.counts, rank=res.rank)


def _cert_field(cert, name: str) -> float:
    return math.nan if cert is None else getattr(cert, name)


def _rank_tol() -> float:
    from .solve import RANK_TOL

    return RANK_TOL


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.12g}"


def format_result(res, *, max_classes: int = 12) -> str:
    """Short human-readable report: class-mean cosines, loss, bound and gaps."""
    spec = res.spec
    lines = [
        f"scconvex solve: k={spec.k} classes, n={spec.n} samples, tau={spec.tau:g}",
        f"  counts      {_counts_text(spec.counts)}",
        f"  level       {res.level}   solver {res.solver}   status {res.status.upper()}",
    ]
    if (spec.loss, spec.relaxation) != ("sc", "elliptope") or spec.batches is not None:
        batches = "" if spec.batches is None else f"   batches {len(spec.batches)}"
        lines.insert(2, f"  variant     loss {spec.loss}   relaxation {spec.relaxation}{batches}")
    if res.status == "failed":
        lines.append(f"  {res.message}")
        return "\n".join(lines)
    excess = _cert_field(res.certificate, "excess_gap")
    sample_excess = _cert_field(res.sample_certificate, "excess_gap")
    lines[-1] += (f"   excess gap {max(excess, sample_excess):.2e}"
                  f" (tol {res.excess_tol:.0e})")
    lines += [
        f"  loss        {_fmt(res.loss)}",
        f"  lower bound {_fmt(res.lower_bound)}   (certified over {res.certificate.level} Grams)",
        f"  gap         {res.gap:.3e}   relative {res.rel_gap:.3e}   to excess {excess:.3e}",
        f"  sample gap  {res.sample_gap:.3e}   relative {res.sample_rel_gap:.3e}"
        f"   to excess {sample_excess:.3e}   (all n x n Grams)",
        f"  rank        {res.rank}   time {res.seconds:.3f} s",
    ]
    if res.unique is False:
        # Say it before the cosines, which are then one optimum among many (or imprecise).
        lines.append(f"  cosines {res.uniqueness.note}")
    if res.level == "group" and len(res.model.sizes) <= 6:
        lines.append("  cosines between class means, by group:")
        lines += _group_table(res)
    k = spec.k
    if k <= max_classes:
        M = res.class_gram
        lines.append("  cosines between class means:")
        width = max(len(str(c)) for c in spec.counts) + 3
        head = " " * (width + 2) + "".join(f"{'c' + str(j):>10}" for j in range(k))
        lines.append(head)
        for i in range(k):
            row = "".join(f"{M[i, j]:>10.6f}" for j in range(k))
            lines.append(f"  {'c' + str(i):<{width}}{row}")
    else:
        # Summarise from the solved variable: lifting a group answer to k x k could need
        # far more memory than the solve (k = 1e5: 75 GiB).
        low, high = _cosine_range(res)
        lines.append(f"  cosines between class means range from {low:.6f} to {high:.6f}")
        flag = " --full-gram" if res.level == "group" and k > CLASS_GRAM_MAX else ""
        lines.append(f"  (class Gram of {k} classes not shown; use --json{flag} for all of it)")
    if res.status != "optimal":
        lines.append(f"  {res.message}")
    return "\n".join(lines)


def _cosine_range(res) -> tuple[float, float]:
    """Smallest and largest cosine between two different class means, without lifting."""
    X = res.variable
    if res.level == "sample":
        M = res.class_gram
        off = M[~np.eye(len(M), dtype=bool)]
    else:
        sizes = res.model.sizes
        off = np.concatenate([X[~np.eye(len(X), dtype=bool)], np.diag(X)[sizes >= 2]])
    return float(off.min()), float(off.max())


def _group_table(res) -> list[str]:
    model = res.model
    B = res.variable
    out = []
    g = len(model.sizes)
    for p in range(g):
        label = f"n={model.block_counts[p]} (x{model.sizes[p]})"
        if model.sizes[p] >= 2:
            out.append(f"    within  {label:<18} {B[p, p]:>12.8f}")
    for p in range(g):
        for q in range(p + 1, g):
            a = f"n={model.block_counts[p]}"
            b = f"n={model.block_counts[q]}"
            out.append(f"    between {a + ' / ' + b:<18} {B[p, q]:>12.8f}")
    return out


def _counts_text(counts) -> str:
    text = ",".join(str(c) for c in counts[:30])
    return text if len(text) <= 60 and len(counts) <= 30 else text[:57] + "..."
