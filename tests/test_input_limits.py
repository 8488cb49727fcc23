"""Every input is bounded before it is parsed, and never blocks (issue 20).

A FIFO or a device given as an input file is refused at once (an ``open`` of a FIFO
waits for a writer; ``/dev/zero`` never ends); a file larger than its limit is refused
without reading it; a JSON file whose structure would cost far more memory than its size
is refused without parsing it; labels are counted in pieces.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import scconvex.certificates.verify as verify_module
import scconvex.problem.batches as batches
import scconvex.problem.inputs as inputs
import scconvex.studies.sweep as sweep
from scconvex.certificates.verify import verify
from scconvex.errors import InvalidInputError
from scconvex.problem.batches import load_batches
from scconvex.problem.inputs import read_counts_file, read_labels_file
from scconvex.studies.sweep import load_spec_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, timeout=60, env=None):
    return subprocess.run([sys.executable, "-m", "scconvex", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **(env or {})})


READERS = (read_counts_file, read_labels_file, load_batches, load_spec_file)
"""The readers behind --counts-file, --labels-file, --batches and sweep --spec."""


def test_fifos_and_folders_are_refused_without_blocking(tmp_path):
    """Issue 20: a FIFO given to --counts-file, --labels-file, --batches or sweep --spec
    blocked forever (opening a FIFO waits for a writer)."""
    fifo = tmp_path / "input"
    os.mkfifo(fifo)
    outcome: dict = {}

    def attempt(read, path) -> None:
        try:
            read(path)
        except InvalidInputError as exc:
            outcome[read, path] = str(exc)

    for path in (fifo, tmp_path):
        for read in READERS:
            worker = threading.Thread(target=attempt, args=(read, path), daemon=True)
            worker.start()
            worker.join(timeout=10)
            assert not worker.is_alive(), f"{read.__name__} blocked on {path}"
            assert "not a regular file" in outcome[read, path]


def test_endless_devices_are_refused_without_reading(tmp_path):
    """Issue 20: the same inputs read /dev/zero until memory ran out (here in a process
    limited to 1 GiB of address space, so that the old behaviour fails quickly)."""
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))\n"
        "from scconvex.errors import InvalidInputError\n"
        "from scconvex.problem.batches import load_batches\n"
        "from scconvex.problem.inputs import read_counts_file, read_labels_file\n"
        "from scconvex.studies.sweep import load_spec_file\n"
        "for read in (read_counts_file, read_labels_file, load_batches, load_spec_file):\n"
        "    try:\n"
        "        read('/dev/zero')\n"
        "    except InvalidInputError as exc:\n"
        "        assert 'not a regular file' in str(exc), exc\n"
        "    else:\n"
        "        raise AssertionError(read.__name__)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _run(["solve", "--counts-file", "/dev/zero", "--tau", "1"]).returncode == 2


@pytest.mark.parametrize("module, limit, read", [
    (inputs, "COUNTS_FILE_MAX", read_counts_file), (inputs, "LABELS_FILE_MAX", read_labels_file),
    (batches, "BATCHES_FILE_MAX", load_batches), (sweep, "SPEC_FILE_MAX", load_spec_file),
    (verify_module, "MAX_FILE_BYTES", lambda p: verify(p).reasons[0]),
])
def test_inputs_larger_than_their_limit_are_not_read(tmp_path, monkeypatch, module, limit,
                                                    read):
    monkeypatch.setattr(module, limit, 2**20)  # 1 MiB here, so that main fails quickly
    path = tmp_path / "big.txt"
    with open(path, "wb") as fh:  # sparse: 2 MiB of size, no disk space used
        fh.truncate(2 * 2**20)
    try:
        reason = read(path)
    except InvalidInputError as exc:
        reason = str(exc)
    assert "larger than 1 MiB" in reason, reason


def _peaks(code: str) -> list[float]:
    """Peak resident memory (MiB) of a fresh interpreter at each ``peak()`` in ``code``
    (VmHWM: unlike ru_maxrss it does not keep the high-water mark of the forked test
    process)."""
    script = ("def peak():\n"
              "    hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM')]\n"
              "    print(int(hwm[0].split()[1]) / 1024)\n"
              f"{code}")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [float(x) for x in proc.stdout.split()]


def test_labels_are_counted_in_pieces(tmp_path, rng):
    """Issue 20: a 20 MB labels file took 315 MB; now memory does not grow with it."""
    labels = rng.integers(0, 50, size=5_000_000)
    names = np.array([f"c{v:02d}\n".encode() for v in range(50)], dtype="S4")
    text = tmp_path / "y.txt"
    text.write_bytes(names[labels].tobytes())  # 20 MB, one label per line
    npy = tmp_path / "y.npy"
    np.save(npy, labels)  # 40 MB
    expect = tuple(int(c) for c in np.bincount(labels))
    peaks = _peaks(f"from scconvex.problem.inputs import read_labels_file\n"
                   f"peak()\n"
                   f"assert read_labels_file({str(text)!r}) == {expect!r}\n"
                   f"peak()\n"
                   f"assert read_labels_file({str(npy)!r}) == {expect!r}\n"
                   f"peak()\n")
    assert peaks[1] - peaks[0] < 30 and peaks[2] - peaks[0] < 30, peaks


def test_json_of_empty_objects_is_refused_before_parsing(tmp_path):
    """Issue 20: verify on a 99 MB file of ``{}`` objects peaked at 2.6 GB. Such a file
    costs about 25 bytes of memory per byte; a certificate (numbers) 3 to 10."""
    path = tmp_path / "c.json"
    with open(path, "wb") as fh:  # 33 MB
        fh.write(b"[{}")
        for _ in range(10):
            fh.write(b",{}" * 1_100_000)
        fh.write(b"]")
    (peak,) = _peaks(f"from scconvex.certificates.verify import verify\n"
                     f"report = verify({str(path)!r})\n"
                     f"assert 'parsing it would take' in report.reasons[0], report.reasons\n"
                     f"peak()\n")
    assert peak < 250, peak
    small = tmp_path / "small.json"
    small.write_bytes(b"[{}" + b",{}" * 1_000_000 + b"]")  # 3 MB: within 64 MiB
    proc = _run(["verify", str(small)], env={"SCCONVEX_MEMORY_LIMIT": "40M"})
    assert proc.returncode == 1 and "memory" in proc.stderr, proc.stderr
    with pytest.raises(InvalidInputError, match="parsing it would take"):
        load_batches(path)
    assert not verify(small).ok  # without a budget it is read, and is not a certificate


def test_compare_inputs_are_bounded_too(tmp_path, monkeypatch):
    """The inputs of ``compare`` and ``plot --kind trajectory``: a FIFO is refused without
    blocking, and an ``.npz`` that unpacks beyond the memory budget (a few KB compressed
    can hold GBs of zeros) is refused before it is unpacked."""
    from scconvex.cli import main
    from scconvex.studies.compare import load_features

    outcome: dict = {}

    def attempt(name, call) -> None:
        try:
            outcome[name] = call()
        except InvalidInputError as exc:
            outcome[name] = str(exc)

    features, trajectory = tmp_path / "f.npy", tmp_path / "t.json"
    os.mkfifo(features)
    os.mkfifo(trajectory)
    calls = {"features": lambda: load_features(features),
             "plot": lambda: main(["plot", str(trajectory), "--kind", "trajectory", "--out",
                                   str(tmp_path / "t.png")])}
    for name, call in calls.items():
        worker = threading.Thread(target=attempt, args=(name, call), daemon=True)
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), f"{name} blocked on a FIFO"
    assert "not a regular file" in outcome["features"] and outcome["plot"] == 2
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, features=np.zeros((20_000, 1_000)))  # 160 MB unpacked
    assert bomb.stat().st_size < 2**20
    monkeypatch.setenv("SCCONVEX_MEMORY_LIMIT", "100M")
    with pytest.raises(InvalidInputError, match="memory"):
        load_features(bomb)
