"""README.md, run as written: every command of its ```bash blocks and every ```python block.

A bash command runs exactly as written (``bash -c`` on the line, its ``# comment`` included) in a
scratch copy of the repository (the files a clone with the working tree's changes would have, the
Fashion-MNIST ``.gz`` files included, so ``runs/`` is written there), one after the other in README
order, as a reader following the README would: ``--ckpt_path last`` resumes the run of a command
above it. Each must exit with status 0, without a traceback and without a warning. A python block
runs as a script; the output of each ``print(...)`` is compared with the ``# <expected>`` comment at
its end and the comment-only lines right below it (text after two spaces and ``= `` explains the
value and is not compared). The two set-up commands that CI itself runs (``.ci/run``) are the only
ones not run here, and a test checks that CI does run them. A block of any other language, or an
output block (plain or ```text) holding what looks like a command, fails the test: no documented
command goes untested.
"""

import ast
import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CI = REPO / ".ci" / "run"
# Set-up and this suite: CI runs them itself, in a fresh virtual environment.
RUN_BY_CI = ('python -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]"', "pytest -q")
TIMEOUT_S = 3600                                  # a seed experiment at batch 1 takes minutes
WARNING_LINE = re.compile(r"^\S+\.py:\d+: ", re.M)    # how Python and Lightning print a warning
SHELL_LOOKING = re.compile(r"^\s*(\$ |python |python3 |pip |pytest|bash |handgrad-check)", re.M)
OUTPUT_LANGUAGES = ("", "text")                 # blocks of printed output and layouts, not run


def _blocks():
    """(language, first line number, text) of every fenced block of README.md."""
    text = README.read_text()
    return [
        (m.group(1), text[: m.start(2)].count("\n") + 1, m.group(2))
        for m in re.finditer(r"^```(\S*)[^\n]*\n(.*?)^```", text, re.M | re.S)
    ]


def _commands():
    """(line number, command line) of every bash block's commands, continuation lines joined."""
    commands = []
    for language, start, text in _blocks():
        if language != "bash":
            continue
        pending = None
        for number, line in enumerate(text.splitlines(), start):
            if pending is not None:
                pending = (pending[0], pending[1][:-1] + line)
            elif line.strip() and not line.lstrip().startswith("#"):
                pending = (number, line)
            if pending is not None and not pending[1].rstrip().endswith("\\"):
                commands.append(pending)
                pending = None
    return commands


def _without_comment(command):
    return re.split(r"\s+#\s", command, maxsplit=1)[0].strip()


COMMANDS = [(n, c) for n, c in _commands() if _without_comment(c) not in RUN_BY_CI]


def test_readme_has_only_blocks_that_a_test_runs():
    untested = [
        f"README.md:{start}: ```{language}"
        for language, start, text in _blocks()
        if language not in ("bash", "python") and (language not in OUTPUT_LANGUAGES or SHELL_LOOKING.search(text))
    ]
    assert not untested, (
        f"no test runs these blocks (label commands ```bash, code ```python, output ```text): {untested}"
    )
    assert COMMANDS, "README.md documents no command"


def test_readme_commands_not_run_here_are_run_by_ci():
    documented = [_without_comment(c) for _, c in _commands()]
    ci = CI.read_text()
    for command in RUN_BY_CI:
        assert command in documented, f"RUN_BY_CI names {command!r}, which README.md no longer has"
        for part in command.split("&&"):
            part = part.strip()
            assert part in ci or part.replace("python ", "python3 ", 1) in ci, f"{CI} does not run {part!r}"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A copy of the repository's files as a clone would have them, with the working tree's changes."""
    root = tmp_path_factory.mktemp("readme") / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():                      # a tracked file deleted in the working tree is not
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    return root


def _environment():
    """The test's own Python first on PATH, so that ``python`` is this virtual environment's."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize("line, command", COMMANDS, ids=[f"L{n} {_without_comment(c)}" for n, c in COMMANDS])
def test_readme_command_runs_as_written(scratch, line, command):
    result = subprocess.run(
        ["bash", "-c", command], cwd=scratch, env=_environment(), capture_output=True, text=True,
        timeout=TIMEOUT_S,
    )
    where = f"README.md:{line}: {command}"
    assert result.returncode == 0, f"{where}\nexit status {result.returncode}\n{result.stderr[-3000:]}"
    output = result.stdout + result.stderr
    assert "Traceback" not in output, f"{where}\n{output[-3000:]}"
    warnings = WARNING_LINE.findall(output) + [l for l in output.splitlines() if "💡" in l]
    assert not warnings, f"{where} prints warnings or tips:\n" + "\n".join(
        l for l in output.splitlines() if WARNING_LINE.match(l) or "💡" in l
    )


def _expected_prints(source):
    """[(line, expected output)] for each top-level ``print(...)`` of a python block, in order."""
    comments, comment_only = {}, set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string[1:]
            if not token.line[: token.start[1]].strip():
                comment_only.add(token.start[0])
    expected = []
    for node in ast.parse(source).body:
        call = getattr(node, "value", None)
        if not (isinstance(node, ast.Expr) and isinstance(call, ast.Call) and getattr(call.func, "id", None) == "print"):
            continue
        parts = [comments[node.end_lineno]] if node.end_lineno in comments else []
        row = node.end_lineno + 1
        while row in comment_only:
            parts.append(comments[row])
            row += 1
        text = re.split(r"\s{2,}= ", " ".join(parts), maxsplit=1)[0]   # "  = why" is an explanation
        expected.append((node.lineno, " ".join(text.split())))
    return expected


PYTHON_BLOCKS = [(start, text) for language, start, text in _blocks() if language == "python"]
SEPARATOR = "\x1e"
# Each print is followed by a separator, so that what each one printed can be told apart.
RUNNER = (
    "import builtins, sys\n"
    "_print = builtins.print\n"
    f"builtins.print = lambda *a, **k: (_print(*a, **k), _print({SEPARATOR!r}, end=''))\n"
    "exec(compile(sys.stdin.read(), 'README.md', 'exec'), {'__name__': '__main__'})\n"
)


@pytest.mark.parametrize("start, source", PYTHON_BLOCKS, ids=[f"L{s}" for s, _ in PYTHON_BLOCKS])
def test_readme_python_block_prints_what_it_says(scratch, start, source):
    expected = _expected_prints(source)
    missing = [start - 1 + line for line, text in expected if not text]
    assert not missing, f"README.md lines {missing}: a print(...) without its '# <expected output>' comment"
    result = subprocess.run(
        [sys.executable, "-c", RUNNER], input="\n" * (start - 1) + source, cwd=scratch, env=_environment(),
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"README.md:{start}: the python block fails\n{result.stderr[-3000:]}"
    printed = [" ".join(out.split()) for out in result.stdout.split(SEPARATOR)[:-1]]
    assert len(printed) == len(expected), f"README.md:{start}: {len(expected)} prints, {len(printed)} outputs"
    for (line, want), got in zip(expected, printed):
        assert got == want, f"README.md:{start - 1 + line}: printed\n  {got}\nthe README says\n  {want}"
