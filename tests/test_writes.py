"""Certificate writes: atomic, permission-keeping, and careful with what they replace."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from scconvex.errors import InvalidInputError
from scconvex.files import STALE_SECONDS, remove_stale_temporaries, write_json


def _temps(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".scconvex-"))


def test_new_file_gets_the_umask_default(tmp_path):
    old = os.umask(0o027)
    try:
        write_json(tmp_path / "c.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "c.json").st_mode) == 0o640
    assert json.loads((tmp_path / "c.json").read_text()) == {"a": 1}


def test_existing_file_keeps_its_mode_and_is_replaced(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("old")
    os.chmod(path, 0o600)
    write_json(path, {"a": 2})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(path.read_text()) == {"a": 2}
    assert _temps(tmp_path) == []


def test_symlink_is_written_through(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_json(link, {"a": 3})
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text()) == {"a": 3}
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


@pytest.mark.parametrize("make", ["fifo", "directory", "device"])
def test_special_files_are_refused_and_left_alone(tmp_path, make):
    if make == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
        check = stat.S_ISFIFO
    elif make == "directory":
        path = tmp_path / "dir"
        path.mkdir()
        check = stat.S_ISDIR
    else:
        path = "/dev/null"
        check = stat.S_ISCHR
    with pytest.raises(InvalidInputError, match="not a regular file"):
        write_json(path, {"a": 1})
    assert check(os.stat(path).st_mode)
    assert _temps(tmp_path) == []


def test_hard_linked_file_is_refused(tmp_path):
    a = tmp_path / "a.json"
    a.write_text("old")
    os.link(a, tmp_path / "b.json")
    with pytest.raises(InvalidInputError, match="hard links"):
        write_json(a, {"a": 1})
    assert a.read_text() == "old" and os.stat(a).st_nlink == 2


@pytest.mark.parametrize("name", ["", "missing/c.json"])
def test_empty_name_and_missing_folder_are_refused(tmp_path, name):
    with pytest.raises(InvalidInputError):
        write_json(str(tmp_path / name) if name else "", {"a": 1})


def test_failed_rename_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    path.write_text("old")

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_json(path, {"a": 1})
    assert path.read_text() == "old"
    assert _temps(tmp_path) == []


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    stale = tmp_path / ".scconvex-tmp-abcd1234.json"
    fresh = tmp_path / ".scconvex-tmp-efgh5678.json"
    mine = tmp_path / ".scconvex-notes.json"  # a user's file with a similar name
    for p in (stale, fresh, mine):
        p.write_text("x")
    old = time.time() - STALE_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(mine, (old, old))
    assert remove_stale_temporaries(str(tmp_path)) == 1
    assert not stale.exists() and fresh.exists() and mine.exists()


_CHILD = textwrap.dedent("""
    import os, sys, time
    from scconvex import files

    real_fsync = os.fsync

    def fsync_then_wait(fd):
        real_fsync(fd)
        print("writing", flush=True)  # the temporary file is complete but not yet renamed
        time.sleep(60)

    os.fsync = fsync_then_wait
    files.write_json(sys.argv[1], {"version": "new", "data": list(range(50000))})
""")


def test_sigkill_during_write_keeps_previous_file_and_later_run_cleans_up(tmp_path):
    path = tmp_path / "c.json"
    write_json(path, {"version": "old"})
    before = path.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        assert len(_temps(tmp_path)) == 1  # the half-finished write exists...
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert path.read_bytes() == before  # ...but the previous file is intact
    left = tmp_path / _temps(tmp_path)[0]
    old = time.time() - STALE_SECONDS - 60
    os.utime(left, (old, old))
    write_json(path, {"version": "third"})
    assert _temps(tmp_path) == []
    assert json.loads(path.read_text()) == {"version": "third"}


def test_sigterm_during_cli_write_removes_temporary(tmp_path):
    """SIGTERM becomes an exception in the command, so the temporary file is removed."""
    path = tmp_path / "c.json"
    path.write_text('{"version": "old"}')
    script = textwrap.dedent("""
        import os, sys, time
        real_fsync = os.fsync

        def fsync_then_wait(fd):
            real_fsync(fd)
            print("writing", flush=True)
            time.sleep(60)

        os.fsync = fsync_then_wait
        from scconvex.cli import main
        sys.exit(main(["solve", "--counts", "3,3", "--tau", "1", "--json",
                       "--certificate", sys.argv[1]]))
    """)
    child = subprocess.Popen([sys.executable, "-c", script, str(path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode != 0 and "Traceback" not in err
    assert path.read_text() == '{"version": "old"}'
    assert _temps(tmp_path) == []
