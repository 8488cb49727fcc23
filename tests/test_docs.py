"""The documentation runs: tutorial and command-line examples, API coverage, the site build.

Console blocks in the docs (```console, lines starting with ``$ ``) are run and their output
compared with what the page shows; pycon blocks (``>>>``) run as doctests, in page order and
in one namespace, in a temporary folder. Timings are masked and numbers are compared to
the digits they are printed with (see :func:`same_text`).

A marker comment right before a block changes how it is tested:

* ``<!-- test: slow -->``: run only with ``-m slow``;
* ``<!-- test: needs-command NAME -->``: skipped while ``scconvex NAME`` does not exist;
* ``<!-- test: needs-module NAME -->``: skipped when the module (an optional extra) is not
  installed, e.g. matplotlib for ``scconvex plot``;
* ``<!-- test: skip -->``: shown, never run (e.g. commands that need a cluster).

After an intended change of output, regenerate the console outputs of a page with
``python tests/test_docs.py --update docs/tutorial.md`` and review the diff.
"""

from __future__ import annotations

import doctest
import importlib.util
import inspect
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

FENCE = re.compile(r"(?:<!--\s*test:\s*(?P<marker>[^>]*?)\s*-->\s*\n)?"
                   r"^```(?P<lang>console|pycon)\n(?P<body>.*?)^```\s*$", re.M | re.S)
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
SECONDS = re.compile(r"\d+\.\d+ ?s\b")


@dataclass
class Block:
    lang: str
    body: str
    marker: str
    line: int


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    return [Block(m["lang"], m["body"], (m["marker"] or "").strip(),
                  text.count("\n", 0, m.start("body")) + 1)
            for m in FENCE.finditer(text)]


def commands(body: str) -> list[tuple[str, str]]:
    """``(command, shown output)`` pairs of a console block."""
    out: list[tuple[str, list[str]]] = []
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            cmd = line[2:]
            while cmd.endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd[:-1] + " " + lines[i].strip()
            out.append((cmd, []))
        elif out:
            out[-1][1].append(line)
        i += 1
    return [(cmd, "\n".join(shown)) for cmd, shown in out]


PLAIN = r"scconvex [^|;&<>$`]*?"
PIPED = re.compile(rf"({PLAIN})(\s+2>\s*/dev/null)?\s*\|\s*(python .*)")
EXIT_CODE = re.compile(rf"({PLAIN})(\s*>\s*/dev/null 2>&1)?;\s*echo \"exit code \$\?\"")


def run_command(cmd: str, cwd: Path) -> str:
    """Run one documented shell command line; ``scconvex`` and ``python`` mean this checkout's.

    The line runs as bash would run it (pipes, ``;`` and ``$?``), stderr merged into stdout.
    ``scconvex`` runs in this process when the line allows it, which saves an interpreter
    start and the imports per command; the output is the same.
    """
    if re.fullmatch(PLAIN, cmd):
        return _run_in_process(shlex.split(cmd)[1:], cwd)[0]
    piped = PIPED.fullmatch(cmd)
    if piped:
        out, err, _ = _run_in_process(shlex.split(piped[1])[1:], cwd, split=True)
        rest = _bash(piped[3], cwd, stdin=out)
        return "\n".join(x for x in ("" if piped[2] else err, rest) if x)
    code = EXIT_CODE.fullmatch(cmd)
    if code:
        out, _, status = _run_in_process(shlex.split(code[1])[1:], cwd)
        return "\n".join(x for x in ("" if code[2] else out, f"exit code {status}") if x)
    return _bash(cmd, cwd)


def _bash(cmd: str, cwd: Path, stdin: str | None = None) -> str:
    exe = shlex.quote(sys.executable)
    line = re.sub(r"(^|[|;]\s*)scconvex\b", rf"\g<1>{exe} -m scconvex", cmd)
    line = re.sub(r"(^|[|;]\s*)python\b", rf"\g<1>{exe}", line)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(["bash", "-c", line], cwd=cwd, input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, timeout=600)
    return proc.stdout.rstrip("\n")


def _run_in_process(argv: list[str], cwd: Path, split: bool = False) -> tuple[str, str, int]:
    """``scconvex ARGS`` through :func:`scconvex.cli.main`: (stdout, stderr, exit code).

    Without ``split`` stderr is merged into stdout, in order, as on a terminal.
    """
    import contextlib
    import io
    import warnings

    from scconvex.cli import main

    out = io.StringIO()
    err = io.StringIO() if split else out
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                status = main(argv)
            except SystemExit as exc:  # --version, --help
                status = exc.code or 0
    finally:
        os.chdir(here)
    return out.getvalue().rstrip("\n"), err.getvalue().rstrip("\n") if split else "", status


def _places(token: str) -> float:
    """One unit in the last printed digit of a number token."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - decimals)


NOT_TIGHT = re.compile(r"^(\s*\d+)\s+\S+\s+\S+\s+\S+\s+no\s+(\d+/\d+)\s.*$", re.M)
"""A tightness-table row whose verdict is "no": its numbers are those of whichever local
optimum the random restarts found, which depends on the optimizer's path and the machine's
rounding; only the dimension, the verdict and the reached count are determined."""


GAP = re.compile(r"\b((?:gap|relative|to excess)\s+)[-+]?\d[\d.]*(?:e[-+]?\d+)?", re.I)
"""A certified gap in a solve report: an upper bound whose value depends on where the
solver stopped (machine, load, BLAS), not a property of the problem. The status next to it
is compared; the value is not."""


BAR = re.compile(r"(\+-\s+|within\s+|>= 1 -\s+)\d[\d.]*(?:e[-+]?\d+)?", re.I)
"""A proven cosine bar (``+- 2e-07``, ``within 1.3e-06 of the optimum``, ``>= 1 - 4.7e-08``):
an upper bound that grows with the certified gap, so it depends on where the solver
stopped as the gap does; compared like a gap."""


def _masked(text: str) -> str:
    text = NOT_TIGHT.sub(r"\1 <local optimum> no \2", text)
    text = GAP.sub(r"\1<gap>", text)
    text = BAR.sub(r"\1<bar>", text)
    text = " ".join(SECONDS.sub("<s>", text).split())
    # An iteration count printed just before the time of its run varies with the machine
    # as the time does (the tightness table's "max it" column).
    return re.sub(r"\b\d+ <s>", "# <s>", text)


def same_text(shown: str, got: str) -> bool:
    """Equal up to timings, whitespace runs, and numbers within their printed precision.

    Integers (no point, no exponent) must be equal. Other numbers may differ by one unit in
    their last printed digit or by 1e-9 relative, and any two numbers below 1e-6 in
    magnitude are equal: these are certified gaps at rounding level, which differ from
    machine to machine.
    """
    a, b = _masked(shown), _masked(got)
    na, nb = NUMBER.findall(a), NUMBER.findall(b)
    if NUMBER.sub("#", a) != NUMBER.sub("#", b) or len(na) != len(nb):
        return False
    for x, y in zip(na, nb, strict=True):
        if not any(c in x + y for c in ".eE"):
            if int(x) != int(y):
                return False
            continue
        fx, fy = float(x), float(y)
        if abs(fx) < 1e-6 and abs(fy) < 1e-6:
            continue
        if abs(fx - fy) > max(1.01 * _places(x), 1.01 * _places(y), 1e-9 * abs(fx)):
            return False
    return True


class _Checker(doctest.OutputChecker):
    def check_output(self, want, got, optionflags):
        return super().check_output(want, got, optionflags) or same_text(want, got)


def available_commands() -> set[str]:
    text = run_command("scconvex --help", ROOT)
    match = re.search(r"\{([a-z,-]+)\}", text)
    return set(match.group(1).split(",")) if match else set()


def skip_reason(block: Block, commands_now: set[str]) -> str | None:
    marker = block.marker
    if marker == "skip":
        return "shown only"
    if marker == "slow":
        return "slow"
    if marker.startswith("needs-command"):
        name = marker.split()[1]
        if name not in commands_now:
            return f"scconvex {name} does not exist yet"
    if marker.startswith("needs-module"):
        name = marker.split()[1]
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed"
    return None


def run_page(path: Path, tmp: Path) -> list[str]:
    """Run every block of a page in order; the list of mismatches (empty when it agrees)."""
    problems = []
    cmds = available_commands()
    globs: dict = {"__name__": "__docs__"}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(checker=_Checker(), optionflags=doctest.ELLIPSIS
                                   | doctest.NORMALIZE_WHITESPACE)
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        for block in blocks(path):
            if skip_reason(block, cmds):
                continue
            where = f"{path.name}:{block.line}"
            if block.lang == "console":
                for cmd, shown in commands(block.body):
                    got = run_command(cmd, tmp)
                    if not same_text(shown, got):
                        problems.append(f"{where}: $ {cmd}\n--- shown\n{shown}\n--- got\n{got}")
            else:
                test = parser.get_doctest(block.body, globs, where, str(path), block.line)
                report: list[str] = []
                result = runner.run(test, out=report.append, clear_globs=False)
                globs.update(test.globs)  # DocTest works on a copy; later blocks build on it
                if result.failed:
                    problems.append("".join(report))
    finally:
        os.chdir(cwd)
    return problems


# ---------------------------------------------------------------------- the pages
PAGES = ["tutorial.md", "cli.md", "theory.md", "compare.md"]
# The README (and the proposed one until it is moved there) is run the same way.
README = ["README.md"]


@pytest.mark.parametrize("page", PAGES + README)
def test_page_outputs_are_real(page, tmp_path):
    path = DOCS / page if page in PAGES else ROOT / page
    problems = run_page(path, tmp_path)
    assert not problems, "\n\n".join(problems)


@pytest.mark.slow
def test_slow_blocks_run(tmp_path):
    """The console blocks marked slow (large profiles), compared like the others."""
    problems = []
    for page in PAGES:
        for block in blocks(DOCS / page):
            if block.marker != "slow" or block.lang != "console":
                continue
            for cmd, shown in commands(block.body):
                got = run_command(cmd, tmp_path)
                if not same_text(shown, got):
                    problems.append(f"{page}:{block.line}: $ {cmd}\n--- shown\n{shown}"
                                    f"\n--- got\n{got}")
    assert not problems, "\n\n".join(problems)


def test_same_text_rules():
    assert same_text("loss 96537.3271299", "loss 96537.3271300")
    assert not same_text("loss 96537.3271299", "loss 96537.3371299")
    assert same_text("rank 9   time 0.015 s", "rank 9 time 1.250 s")
    assert not same_text("rank 9", "rank 8")
    assert same_text("gap 2.412e-13", "gap 7.1e-12")
    assert not same_text("cosine 1.1e-02", "cosine 1.3e-02")
    assert not same_text("status OPTIMAL", "status UNCERTIFIED")
    shown = "  2    127.1005180028    1.2e-02     1.9e-01     no      0/2    2.1e+00      14"
    got = "  2    126.4431137912    6.4e-03     1.0e-01     no      0/2    1.1e+00      14"
    assert same_text(shown, got)
    assert not same_text(shown, got.replace(" no ", " yes "))
    assert not same_text(shown, got.replace("0/2", "1/2"))
    assert same_text("gap 3.331e-04   relative 2.331e-10   to excess 3.741e-08",
                     "gap 6.490e-04   relative 4.543e-10   to excess 7.291e-08")
    assert not same_text("status OPTIMAL   excess gap 6.96e-07",
                         "status UNCERTIFIED   excess gap 1.63e-06")


def _subcommands(help_text: str) -> list[str]:
    match = re.search(r"positional arguments:\s*\n\s+\{([a-z,-]+)\}", help_text)
    return match.group(1).split(",") if match else []


def test_every_cli_command_and_flag_is_documented():
    text = (DOCS / "cli.md").read_text()
    cmds = available_commands()
    assert cmds, "could not read the commands from scconvex --help"
    missing = []
    todo = [[cmd] for cmd in sorted(cmds)]
    while todo:
        path = todo.pop(0)
        name = " ".join(path)
        if len(path) == 1 and f"## `scconvex {name}`" not in text:
            missing.append(f"section ## `scconvex {name}`")
        help_text = run_command(f"scconvex {name} --help", ROOT)
        subs = _subcommands(help_text) if len(path) == 1 else []
        todo += [path + [sub] for sub in subs]
        # Options are the lines of the help that start with a flag; flags named inside
        # descriptions (e.g. "as solve's --gap-tol") are not options of this command.
        options = re.findall(r"^ {2}(?:-\w, )?(--[a-z][a-z0-9-]*)", help_text, flags=re.M)
        if subs or not re.search(rf"\$ scconvex {name}\b", text):
            if not subs:
                missing.append(f"an example of scconvex {name}")
            continue
        for flag in sorted(set(options) - {"--help"}):
            if not re.search(rf"\$ scconvex {name}\b[^\n]*{re.escape(flag)}\b", text):
                missing.append(f"an example of scconvex {name} {flag}")
            if f"`{flag}" not in text:
                missing.append(f"a description of scconvex {name} {flag}")
    assert not missing, "docs/cli.md lacks:\n" + "\n".join(missing)


# ---------------------------------------------------------------------- API reference
def _public():
    import scconvex

    return [(name, getattr(scconvex, name)) for name in scconvex.__all__
            if name != "__version__"]


def test_api_page_lists_every_public_name():
    text = (DOCS / "api.md").read_text()
    # The full path: "::: scconvex.pipeline.solve" would document the module of that name.
    missing = [name for name, obj in _public() if f"::: {obj.__module__}.{name}\n" not in text]
    assert not missing, f"docs/api.md lacks {missing}"


def test_public_api_has_docstrings():
    missing = []
    for name, obj in _public():
        doc = obj.__doc__ or ""
        # A dataclass without a docstring gets its signature as __doc__.
        if not doc.strip() or doc.startswith(f"{name}("):
            missing.append(name)
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for attr, value in vars(obj).items():
                if attr.startswith("_"):
                    continue
                func = value.fget if isinstance(value, property) else value
                func = getattr(func, "__func__", func)
                func = getattr(func, "func", func)  # functools.cached_property
                if callable(func) and not (func.__doc__ or "").strip():
                    missing.append(f"{name}.{attr}")
    assert not missing, f"no docstring: {missing}"


# ---------------------------------------------------------------------- the site
def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    # Not --quiet: it hides the warnings that --strict counts, and the build passes.
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "-f", str(config), "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)


@pytest.mark.skipif(not all(_has(m) for m in ("mkdocs", "material", "mkdocstrings_handlers")),
                    reason="the [docs] extra is not installed")
def test_site_builds_strict(tmp_path):
    proc = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = tmp_path / "site" / "api" / "index.html"
    assert api.exists()
    # Sphinx roles are not Markdown: the API page showed 28 of them raw (issue 19).
    text = api.read_text(encoding="utf-8")
    left = re.findall(r":(?:func|data|class|mod|meth|attr|obj|exc|const|ref):", text)
    assert not left, f"{len(left)} Sphinx roles left on the API page"
    assert "STATUSES" in text
    # The math is typeset by a script shipped with the site, not fetched from a CDN.
    for page in (tmp_path / "site").rglob("*.html"):
        assert "cdn.jsdelivr" not in page.read_text(encoding="utf-8"), page


def test_sphinx_roles_become_inline_code():
    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        from sphinx_roles import convert
    finally:
        sys.path.remove(str(DOCS / "hooks"))
    assert convert("One of :data:`STATUSES`.") == "One of `STATUSES`."
    assert convert("See :func:`~scconvex.pipeline.solve.solve`.") == "See `solve`."
    assert convert(":class:`the spec <ProblemSpec>`") == "`the spec`"
    assert convert("a ratio: 2:1") == "a ratio: 2:1"


@pytest.mark.skipif(not all(_has(m) for m in ("mkdocs", "material", "mkdocstrings_handlers")),
                    reason="the [docs] extra is not installed")
def test_site_build_fails_on_a_broken_link(tmp_path):
    import shutil

    shutil.copytree(DOCS, tmp_path / "docs")
    (tmp_path / "docs" / "theory.md").write_text("[gone](theory.md#no-such-section)\n",
                                                 encoding="utf-8")
    config = (ROOT / "mkdocs.yml").read_text().replace("docs_dir: docs",
                                                       f"docs_dir: {tmp_path / 'docs'}")
    (tmp_path / "mkdocs.yml").write_text(config)
    proc = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0
    assert "no-such-section" in proc.stdout + proc.stderr


def test_math_delimiters_balance():
    """Display math is ``$$`` on its own lines and inline ``$`` pairs up on each line, so the
    page renders both on GitHub and in the site."""
    for page in ("theory.md", "tutorial.md"):
        text = re.sub(r"^```.*?^```", "", (DOCS / page).read_text(), flags=re.M | re.S)
        assert text.count("$$") % 2 == 0, page
        for i, line in enumerate(text.splitlines(), 1):
            if "$$" in line:
                assert line.strip() == "$$", f"{page}:{i}: put $$ on its own line"
                continue
            inline = re.sub(r"`[^`]*`", "", line)
            assert inline.count("$") % 2 == 0, f"{page}:{i}: unpaired $"


def test_citation_file_is_valid_cff():
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert data["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert data[key], key
    for author in data["authors"] + data["preferred-citation"]["authors"]:
        assert author.get("family-names") or author.get("name"), author
    import scconvex

    assert str(data["version"]) == scconvex.__version__
    for ref in data.get("references", []):
        assert ref["type"] and ref["title"] and ref["authors"], ref


def test_changelog_starts_at_current_version():
    import scconvex

    text = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{scconvex.__version__}]" in text


def _run_pycon(body: str, globs: dict) -> str:
    """Run the examples of a pycon block as an interpreter would; the block with real output."""
    import contextlib
    import io

    out = []
    for example in doctest.DocTestParser().get_examples(body):
        lines = example.source.rstrip("\n").split("\n")
        out += [(">>> " if i == 0 else "... ") + line for i, line in enumerate(lines)]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(example.source, "<docs>", "single"), globs)  # noqa: S102
        if buf.getvalue():
            out.append(buf.getvalue().rstrip("\n"))
    return "\n".join(out) + "\n"


def update(paths: list[str]) -> None:
    """Rewrite the shown output of every runnable block with the real output."""
    import tempfile
    import warnings

    cmds = available_commands()
    for name in paths:
        path = Path(name).resolve()
        text = path.read_text()
        globs: dict = {"__name__": "__docs__"}
        cwd = os.getcwd()
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            os.chdir(tmp)
            pieces, last = [], 0
            for m in FENCE.finditer(text):
                block = Block(m["lang"], m["body"], (m["marker"] or "").strip(), 0)
                if skip_reason(block, cmds) not in (None, "slow"):
                    continue
                if block.lang == "pycon":
                    new_body = _run_pycon(block.body, globs)
                else:
                    body = []
                    for cmd, _ in commands(block.body):
                        body.append(f"$ {cmd}")
                        got = run_command(cmd, Path(tmp))
                        if got:
                            body.append(got)
                    new_body = "\n".join(body) + "\n"
                pieces.append(text[last:m.start("body")] + new_body)
                last = m.end("body")
            pieces.append(text[last:])
            os.chdir(cwd)
        path.write_text("".join(pieces))
        print(f"updated {path}")


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) < 3 or sys.argv[1] != "--update":
        sys.exit("usage: python tests/test_docs.py --update PAGE.md [...]")
    sys.path.insert(0, str(ROOT))
    update(sys.argv[2:])
