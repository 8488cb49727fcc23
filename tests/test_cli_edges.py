"""The command at its edges: huge, non-finite and malformed input, memory, time, pipes.

Every case runs the real command (``sys.executable -m scconvex``) and must end with one
line on stderr and exit 1 or 2, never a traceback. Cases run a few at a time in parallel:
each is mostly interpreter start-up.
"""

import json
import os
import resource
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from scconvex.cli import main

MANY = ",".join(["7"] * 5)
BIG = "4611686018427388928"


def run(*args, env=None, preexec_fn=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "scconvex", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})},
                          preexec_fn=preexec_fn)


def run_all(cases):
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda args: run(*args), cases))


# (arguments, exit code, a phrase the one-line message must contain)
REFUSED = [
    (["solve", "--counts", "1e99,5", "--tau", "0.5"], 2, "not a count"),
    (["solve", "--counts", ",".join([BIG] * 5), "--tau", "0.5"], 2, "2**53"),
    (["solve", "--counts", "9007199254740993,5", "--tau", "0.5"], 2, "2**53"),
    (["solve", "--counts", "4503599627370496,4503599627370497", "--tau", "0.5"], 2,
     "total number of samples"),
    (["solve", "--counts", "nan,5", "--tau", "0.5"], 2, "not a count"),
    (["solve", "--counts", "inf,5", "--tau", "0.5"], 2, "not a count"),
    (["solve", "--counts", "5.5,5", "--tau", "0.5"], 2, "not a count"),
    (["solve", "--step", "nan,0.5,10,5", "--tau", "0.5"], 2, "finite"),
    (["solve", "--step", "1e18,0.5,10,5", "--tau", "0.5"], 2, "limit"),
    (["solve", "--step", "10,0.04,100,5", "--tau", "0.5"], 2, "zero majority"),
    (["solve", "--step", "10,0.97,100,5", "--tau", "0.5"], 2, "zero minority"),
    (["solve", "--long-tail", "10,10,inf", "--tau", "0.5"], 2, "finite"),
    (["solve", "--long-tail", "1e12,10,1e9", "--tau", "0.5"], 2, "limit"),
    (["solve", "--counts", "5,4,3", "--tau", "1e-308"], 2, "1e-300"),
    (["solve", "--counts", "5,4,3", "--tau", "2e-308"], 2, "1e-300"),
    (["solve", "--counts", "5,4,3", "--tau", "1e-400"], 2, "tau"),
    (["solve", "--counts", "5,4", "--tau", "1", "--time-limit", "nan"], 2, "--time-limit"),
    (["solve", "--counts", "5,4", "--tau", "1", "--time-limit", "-1"], 2, "--time-limit"),
    (["solve", "--counts", "5,4", "--tau", "1", "--certificate", ""], 2, "empty"),
    (["solve", "--counts", "5,4", "--tau", "1", "--certificate", "/no/such/dir/c.json"], 2,
     "does not exist"),
    (["solve", "--counts", "5,4", "--tau", "1", "--certificate", "/"], 2, "directory"),
    (["solve", "--counts", "5,4", "--tau", "1", "--certificate", "/dev/null"], 2,
     "character device"),
    (["tightness", "--counts", "5,5", "--tau", "0.5", "--dims", "nan"], 2, "finite"),
    (["tightness", "--counts", "5,5", "--tau", "0.5", "--dims", "0"], 2, "positive"),
    (["tightness", "--counts", "5,5", "--tau", "0.5", "--dims", "1000000000"], 2,
     "memory"),
    (["tightness", "--counts", "1e18,5", "--tau", "0.5", "--dims", "2"], 2,
     "not a count"),
    (["solve", "--counts", "9" * 5000 + ",5", "--tau", "0.5"], 2, "2**53"),
    (["solve", "--counts", "200,200,20,20", "--tau", "0.5", "--level", "sample"], 2,
     "use --level group"),
    (["solve", "--counts", "100,100,100", "--tau", "0.5", "--level", "sample", "--solver",
      "clarabel", "--time-limit", "5"], 2, "use --level group"),
    (["solve", "--step", "100000,0.5,10,5", "--tau", "0.1", "--level", "class"], 2,
     "use --level group"),
    (["solve", "--step", "100000,0.5,10,5", "--tau", "0.1", "--full-gram"], 2,
     "--full-gram"),
    (["tightness", "--step", "100000,0.5,10,5", "--tau", "0.1", "--dims", "2"], 2, "memory"),
    (["verify", "/dev/zero"], 1, "not a regular file"),
    (["verify", "/"], 1, "not a regular file"),
    (["verify", "/no/such/file.json"], 2, "cannot read"),
]


@pytest.mark.parametrize("args, code, phrase", REFUSED)
def test_refusals_are_one_line_with_the_right_exit_code(capsys, monkeypatch, args, code,
                                                        phrase):
    # In-process (fast); tests/test_fuzz.py runs the real command on such input. The
    # budget is capped so that the memory refusals do not depend on the machine's size.
    monkeypatch.setenv("SCCONVEX_MEMORY_LIMIT", "16G")
    assert main(args) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and phrase in err, err


def test_memory_budget_from_environment_refuses_and_names_the_estimate():
    proc = run("solve", "--counts", "5,4,3", "--tau", "1", env={"SCCONVEX_MEMORY_LIMIT": "1M"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "needs about" in proc.stderr and "1.0 MiB available" in proc.stderr


def test_large_answer_is_summarised_in_text():
    proc = run("solve", "--step", "100000,0.5,10,5", "--tau", "0.1")
    assert proc.returncode == 0, proc.stderr
    assert "not shown; use --json --full-gram" in proc.stdout
    assert "range from" in proc.stdout and len(proc.stdout) < 5000


def test_text_report_shows_the_excess_gap_next_to_the_status():
    proc = run("solve", "--counts", "5,4,3", "--tau", "0.5")
    status = next(line for line in proc.stdout.splitlines() if "status" in line)
    assert "OPTIMAL" in status and "excess gap" in status
    assert "to excess" in proc.stdout


def test_closed_pipe_ends_quietly():
    # k = 200 at group level: the JSON holds a 200 x 200 class Gram, far beyond a pipe buffer.
    proc = subprocess.Popen([sys.executable, "-m", "scconvex", "solve", "--step",
                             "200,0.5,10,5", "--tau", "0.5", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = proc.stdout.read(300)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    proc.stderr.close()
    assert head.startswith(b"{")
    assert err == "", err


def _small_file_limit():
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))


def test_failed_certificate_write_still_prints_the_result(tmp_path):
    path = tmp_path / "c.json"
    proc = run("solve", "--counts", "5,4,3", "--tau", "0.5", "--json", "--certificate",
               str(path), preexec_fn=_small_file_limit)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["status"] == "optimal"
    assert "certificate not written" in proc.stderr
    assert not path.exists()
    assert [p for p in tmp_path.iterdir()] == []


def test_certificate_to_device_is_refused_and_device_kept():
    before = os.stat("/dev/null")
    proc = run("solve", "--counts", "5,4", "--tau", "1", "--certificate", "/dev/null")
    assert proc.returncode == 2
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_time_limit_is_accepted_by_every_solver():
    procs = run_all([["solve", "--counts", "6,5,4,3", "--tau", "0.5", "--solver", s,
                      "--time-limit", "60", "--json"] for s in ("auto", "native")])
    for proc in procs:
        assert proc.returncode in (0, 1), proc.stderr
        assert json.loads(proc.stdout)["status"] in ("optimal", "uncertified")


def test_no_time_left_skips_the_fallback_with_a_note():
    counts = ",".join(str(c) for c in range(2, 152))
    proc = run("solve", "--counts", counts, "--tau", "0.1", "--time-limit", "0.001", "--json")
    assert "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    if data["status"] != "optimal":  # whatever the machine: certified, or said why not
        assert proc.returncode == 1
        assert "no time left for the clarabel fallback" in data["message"] \
            or "time limit" in data["message"]


def test_tightness_time_limit_reports_what_was_not_tested():
    proc = run("tightness", "--counts", "6,5,4,3", "--tau", "0.5", "--dims", "1,2,3,4",
               "--restarts", "50", "--time-limit", "0.3", "--json")
    assert "Traceback" not in proc.stderr
    if not proc.stdout:  # even the relaxed solve did not fit in the limit, and it says so
        assert proc.returncode == 1 and "time limit" in proc.stderr
        return
    data = json.loads(proc.stdout)
    tested = [r["d"] for r in data["rows"]]
    assert tested == [1, 2, 3, 4][:len(tested)]
    if sum(r["restarts"] for r in data["rows"]) < 200:  # cut short, and it says so
        assert proc.returncode == 1 and "time limit" in proc.stderr


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,
    '{"a": ' + "1" * 5000 + "}",
    '{"spec": {"counts": [' + "9" * 5000 + ", 3], \"tau\": 1}}",
])
def test_verify_malformed_json_fails_cleanly(tmp_path, text):
    path = tmp_path / "c.json"
    path.write_text(text)
    proc = run("verify", str(path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("c, k, tau", [(10**15, 5, 0.5), (2**51, 4, 0.1), (10**9, 3, 1.0)])
def test_huge_counts_below_the_limit_are_exact(c, k, tau):
    """Balanced counts up to n = 2**53: the certified loss is the simplex-ETF closed form,
    evaluated here in 50-digit mpmath (each anchor sees c - 1 positives at cosine 1 and
    n - c negatives at -1/(k-1))."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    proc = run("solve", "--counts", ",".join([str(c)] * k), "--tau", str(tau), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    n = c * k
    ref = n * mp.log((c - 1) + (n - c) * mp.exp((mp.mpf(-1) / (k - 1) - 1) / tau))
    assert data["n"] == n and data["counts"] == [c] * k
    assert abs(data["loss"] - ref) <= 1e-13 * ref


def test_verify_refuses_a_fifo_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "c.json"
    os.mkfifo(fifo)
    assert main(["verify", str(fifo)]) == 1  # open() on a FIFO would wait for a writer
    assert "not a regular file" in capsys.readouterr().err


def test_verify_refuses_a_huge_file_without_reading_it(tmp_path, capsys):
    path = tmp_path / "c.json"
    with open(path, "wb") as fh:  # sparse: 1 TiB of size, no disk space used
        fh.truncate(2**40)
    assert main(["verify", str(path)]) == 1
    assert "larger than" in capsys.readouterr().err
