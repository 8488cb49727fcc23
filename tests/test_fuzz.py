"""Fuzzing the real command: malformed arguments and malformed certificate files.

Hypothesis draws batches of command lines (and of corrupted certificates); each batch runs
in parallel through ``sys.executable -m scconvex``. Whatever the input, the command must
exit 0, 1 or 2, print no traceback and, when it fails, say why in one line on stderr.
"""

import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scconvex import ProblemSpec, solve
from scconvex.files import write_json

NUMBERS = ["2", "3", "5", "1", "0", "-1", "2.5", "7.0", "1e3", "1e99", "1e-308", "2e-308",
           "nan", "-inf", "inf", "x", "", " ", "0x10", "9007199254740993",
           "4611686018427388928", "1" * 400, "9" * 5000, "1_000", "٣", "0.04", "1e18"]
FILES = ["", "/", "/dev/null", "/dev/full", "/no/such/dir/c.json", "{tmp}/c.json",
         "{tmp}/sub"]
SETTINGS = settings(max_examples=2, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def _number_list(n_min: int, n_max: int):
    return st.lists(st.sampled_from(NUMBERS), min_size=n_min, max_size=n_max).map(",".join)


def _problem():
    return st.one_of(
        st.tuples(st.just("--counts"), _number_list(0, 4)),
        st.tuples(st.just("--step"), _number_list(3, 5)),
        st.tuples(st.just("--long-tail"), _number_list(2, 4)),
    ).map(list)


def _option(names_and_values):
    return st.one_of([st.tuples(st.just(name), values).map(list)
                      for name, values in names_and_values])


_VALUE = st.sampled_from(NUMBERS)
_SOLVE_OPTIONS = _option([
    ("--level", st.sampled_from(["auto", "group", "class", "sample", "cls"])),
    ("--solver", st.sampled_from(["auto", "native", "scs", "gurobi"])),
    ("--time-limit", _VALUE), ("--gap-tol", _VALUE), ("--excess-tol", _VALUE),
    ("--certificate", st.sampled_from(FILES)),
    ("--json", st.just(None)), ("--full-gram", st.just(None)), ("--colour", _VALUE),
])
_TIGHT_OPTIONS = _option([
    ("--dims", _number_list(0, 3)), ("--restarts", st.sampled_from(["-1", "0", "x", "1"])),
    ("--seed", _VALUE), ("--level", st.sampled_from(["class", "group"])),
    ("--time-limit", _VALUE), ("--rtol", _VALUE), ("--json", st.just(None)),
])


@st.composite
def command_lines(draw):
    command = draw(st.sampled_from(["solve", "tightness", "verify", "solver", ""]))
    args = [command] if command else []
    if command == "verify":
        args.append(draw(st.sampled_from(FILES)))
        return args
    if draw(st.booleans()):
        args += draw(_problem())
    if draw(st.integers(0, 4)):
        args += ["--tau", draw(_VALUE)]
    options = _TIGHT_OPTIONS if command == "tightness" else _SOLVE_OPTIONS
    for extra in draw(st.lists(options, max_size=3)):
        args += [a for a in extra if a is not None]
    if command == "tightness" and "--dims" not in args:
        args += ["--dims", "2", "--restarts", "1"]
    return args


def _run(args, tmp):
    args = [a.replace("{tmp}", str(tmp)) for a in args]
    proc = subprocess.run([sys.executable, "-m", "scconvex", *args], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "SCCONVEX_MEMORY_LIMIT": "4G"})
    return args, proc


def _check(results):
    bad = []
    for args, proc in results:
        lines = proc.stderr.strip().splitlines()
        if proc.returncode not in (0, 1, 2) or "Traceback" in proc.stderr \
                or (proc.returncode != 0 and len(lines) != 1):
            bad.append((args, proc.returncode, proc.stderr[-600:]))
    assert not bad, bad


@SETTINGS
@given(batch=st.lists(command_lines(), min_size=8, max_size=8))
def test_malformed_command_lines(tmp_path, batch):
    (tmp_path / "sub").mkdir(exist_ok=True)
    with ThreadPoolExecutor(4) as pool:
        _check(list(pool.map(lambda args: _run(args, tmp_path), batch)))


_GENUINE = None


def _genuine() -> dict:
    global _GENUINE
    if _GENUINE is None:
        _GENUINE = solve(ProblemSpec((6, 6, 3, 2), 0.5), level="group").to_dict(full_gram=True)
    return json.loads(json.dumps(_GENUINE))


_JUNK = [None, "x", "nan", "inf", -1, 0, 1e308, -1e308, True, [], {}, [[1, 2], [3]],
         [[None]], 10**30, "9" * 5000, {"counts": [3, 3], "tau": 1}]


def _corrupt(data, rng: random.Random):
    """Replace, delete or add a random entry somewhere in the JSON tree."""
    node = data
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = rng.choice(keys)
        child = node[key]
        if isinstance(child, (dict, list)) and child and rng.random() < 0.5:
            node = child
            continue
        action = rng.random()
        if action < 0.7:
            node[key] = rng.choice(_JUNK)
        elif isinstance(node, dict):
            del node[key]
        else:
            node.append(rng.choice(_JUNK))
        break
    return data


@SETTINGS
@given(seeds=st.lists(st.integers(0, 2**32 - 1), min_size=8, max_size=8))
def test_malformed_certificates(tmp_path, seeds):
    paths = []
    for i, seed in enumerate(seeds):
        rng = random.Random(seed)
        data = _genuine()
        for _ in range(rng.randint(1, 3)):
            data = _corrupt(data, rng)
        path = tmp_path / f"c{i}.json"
        if rng.random() < 0.2:  # truncated or raw bytes instead of JSON
            text = json.dumps(data)
            path.write_bytes(text[: rng.randint(0, len(text))].encode()
                             + bytes(rng.randrange(256) for _ in range(rng.randint(0, 8))))
        else:
            write_json(path, data) if _finite_json(data) else path.write_text(json.dumps(data))
        paths.append(str(path))
    with ThreadPoolExecutor(4) as pool:
        _check(list(pool.map(lambda p: _run(["verify", p], tmp_path), paths)))


def _finite_json(data) -> bool:
    try:
        json.dumps(data, allow_nan=False)
        return True
    except ValueError:
        return False
