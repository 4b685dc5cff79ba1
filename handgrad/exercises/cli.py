"""``handgrad-learn`` (``python -m handgrad.exercises``): the exercises from the command line.

    handgrad-learn list                 the exercises, in order, with your progress
    handgrad-learn start NAME [DIR]     write DIR/NAME.py (DIR: handgrad-exercises): backward to fill in
    handgrad-learn check NAME [FILE]    grade FILE (DIR/NAME.py): exit 0 when it passes, 1 when not
    handgrad-learn hint NAME            the derivation's next step, one at a time

Progress (hints shown, checks run, passed) is kept in ``progress.json`` in the exercises' directory.
A mistake in the command (an unknown exercise, a missing file) is one line on stderr and exit
status 2.
"""

import argparse
import difflib
import json
import os
import sys
import textwrap
import warnings
from pathlib import Path

from handgrad import exercises
from handgrad.exercises.skeleton import LearnerError, load

DEFAULT_DIR = Path("handgrad-exercises")
PROGRESS = "progress.json"
WIDTH = 88


class UsageError(Exception):
    """A mistake in the command, said in one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: {message} ({self.prog} --help)\n")


def _parser():
    parser = _Parser(prog="handgrad-learn", description="Derive a backward by hand; be told what is wrong with it.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,start,check,hint}",
                                     parser_class=_Parser)
    listing = commands.add_parser("list", help="the exercises, in order, with your progress")
    listing.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"the exercises' directory ({DEFAULT_DIR})")
    start = commands.add_parser("start", help="write an exercise's file, backward to fill in")
    start.add_argument("name", help="the exercise (handgrad-learn list)")
    start.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR, help=f"where to write it ({DEFAULT_DIR})")
    start.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    check = commands.add_parser("check", help="grade an exercise's file: exit 0 when it passes")
    check.add_argument("name", help="the exercise")
    check.add_argument("file", nargs="?", type=Path, help=f"the file to grade ({DEFAULT_DIR}/NAME.py)")
    hint = commands.add_parser("hint", help="the next step of an exercise's derivation")
    hint.add_argument("name", help="the exercise")
    hint.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"the exercises' directory ({DEFAULT_DIR})")
    return parser


def main(argv=None):
    # torch's own forward-mode decompositions warn about torch.jit.script when first imported.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=FutureWarning)
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:                    # --help, or a mistake in the command (said already)
        return done.code
    try:
        return {"list": _list, "start": _start, "check": _check, "hint": _hint}[args.command](args)
    except UsageError as error:
        print(f"handgrad-learn: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:                       # the reader (head, less) stopped reading: nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _known(name):
    names = exercises.names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        guess = f"did you mean {close[0]}? " if close else ""
        raise UsageError(f"no exercise {name!r} ({guess}handgrad-learn list shows them all)")
    return name


class Progress:
    """``progress.json`` in an exercises' directory: per exercise, the hints shown, the checks run
    and whether the last one passed."""

    def __init__(self, directory):
        self.path = Path(directory) / PROGRESS
        try:
            self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot read {self.path} ({error}); delete it to start the record afresh") from None

    def of(self, name):
        return self.data.setdefault(name, {"hints": 0, "checks": 0, "passed": False})

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")


def _list(args):
    progress = Progress(args.dir)
    passed = sum(progress.of(name)["passed"] for name in exercises.names())
    print(f"{len(exercises.names())} exercises, {passed} passed (in {args.dir}/):")
    for i, name in enumerate(exercises.names(), 1):
        record = progress.of(name)
        if record["passed"]:
            status = "passed"
        elif record["checks"]:
            status = "not passed"
        else:
            status = "started" if (args.dir / f"{name}.py").is_file() else "-"
        head = f"{i:>3}  {name:<14} {status:<11}"
        print(textwrap.fill(exercises.teaches(name), WIDTH, initial_indent=head,
                            subsequent_indent=" " * len(head), break_on_hyphens=False))
    return 0


def _start(args):
    name = _known(args.name)
    path = args.dir / f"{name}.py"
    if path.exists() and not args.force:
        raise UsageError(f"{path} exists already (your work?): check it with `handgrad-learn check {name} {path}`, "
                         f"or start over with --force")
    command = f"handgrad-learn check {name}" + ("" if args.dir == DEFAULT_DIR else f" {path}")
    text = exercises.skeleton(name, command=command)
    args.dir.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    progress = Progress(args.dir)
    record = progress.of(name)
    record["hints"] = max(record["hints"], 1)                  # the skeleton shows the first
    progress.save()
    print(f"Wrote {path}: forward is written, backward is yours. What to derive is at its top.")
    print(f"Grade it with `{command}`; `handgrad-learn hint {name}` gives the next step.")
    return 0


def _check(args):
    name = _known(args.name)
    path = args.file or DEFAULT_DIR / f"{name}.py"
    if not path.is_file():
        start = f"handgrad-learn start {name}" + ("" if path.parent == DEFAULT_DIR else f" {path.parent}")
        raise UsageError(f"no file {path}: write it first with `{start}`")
    progress = Progress(path.parent)
    record = progress.of(name)
    record["checks"] += 1
    try:
        function = load(path, name)
    except LearnerError as error:
        record["passed"] = False
        progress.save()
        print(textwrap.fill(f"{name}: not passed. {error}", WIDTH, subsequent_indent="  "))
        return 1
    report = exercises.check(name, function)
    record["passed"] = report.passed
    progress.save()
    print(report)
    if report.passed:
        names = exercises.names()
        later = [n for n in names[names.index(name) + 1:] if not progress.of(n)["passed"]]
        if later:
            print(f"\nNext: handgrad-learn start {later[0]}")
    return 0 if report.passed else 1


def _hint(args):
    name = _known(args.name)
    hints = exercises.hints(name)
    progress = Progress(args.dir)
    record = progress.of(name)
    shown = min(record["hints"] + 1, len(hints))
    record["hints"] = shown
    progress.save()
    last = " (the last: the formula itself)" if shown == len(hints) else ""
    print(f"{name}, hint {shown} of {len(hints)}{last}:")
    print(textwrap.fill(hints[shown - 1], WIDTH, initial_indent="  ", subsequent_indent="  ",
                        break_on_hyphens=False))
    return 0
