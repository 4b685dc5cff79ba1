"""The file a learner starts from, and reading it back.

``skeleton(name)`` is the exercise's solution with its backward taken out: the source of the
solution's class as it is (docstring, forward, setup_context, helpers), backward's first statements
(those that read ``ctx`` or call the class's own helpers: unpacking what forward saved, computing
forward's values again), and in place of the rest a comment saying what to return with a first
hint, then ``raise NotImplementedError``, which the grader reads as "not written yet". Above the
class, the derivation to do. Nothing of the answer: the tests check that the skeleton fails.

``load(path, name)`` imports a learner's file and returns its Function class, or raises
``LearnerError`` with one sentence saying what is wrong with the file.
"""

import ast
import importlib.util
import inspect
import sys
import textwrap
import traceback

import torch

from handgrad.exercises._exercise import EXERCISES
from handgrad.exercises.grader import UNWRITTEN, get


class LearnerError(Exception):
    """What is wrong with a learner's file, in one sentence."""


def _comment(text, indent):
    return textwrap.fill(text, 100, initial_indent=f"{indent}# ",
                         subsequent_indent=f"{indent}#   ", break_on_hyphens=False)


def _backward_kept(cls, source):
    """(first line of backward's body to replace, its last line, its indentation), 0-based lines of
    ``source``: what follows backward's leading statements that read ``ctx`` or call ``cls``'s own
    helpers."""
    tree = ast.parse(source)
    backward = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "backward")
    lines = source.splitlines()
    body = backward.body
    kept = 0
    while kept < len(body) - 1:
        text = ast.get_source_segment(source, body[kept])
        if "ctx." not in text and f"{cls.__name__}." not in text:
            break
        kept += 1
    first = body[kept].lineno - 1
    indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
    return first, backward.end_lineno - 1, indent


def skeleton(name, command=None):
    """The starting file of exercise ``name``: forward given, backward to write. ``command`` is how
    the header tells to check it (default ``handgrad-learn check NAME``)."""
    exercise = get(name)
    cls = exercise.function
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    first, last, indent = _backward_kept(cls, source)
    todo = [
        _comment(f"Return {exercise.returns}: one gradient per input of forward, in its order.", indent),
        _comment(f"Hint 1: {exercise.hints[0]}", indent),
        f'{indent}raise NotImplementedError("backward of {name}: {UNWRITTEN}")',
    ]
    body = "\n".join(lines[:first] + todo + lines[last + 1:])
    position = list(EXERCISES).index(name) + 1
    derivation = textwrap.fill(exercise.derivation, 100, initial_indent="    ", subsequent_indent="    ")
    check = command or f"handgrad-learn check {name}"
    hint = f"handgrad-learn hint {name}"
    width = max(len(check), len(hint)) + 4
    imports = ["import math", ""] if "math." in body else []
    imports += ["import torch", ""]
    imports += ["import handgrad.functional as hf", ""] if "hf." in body else []
    header = f'''"""handgrad exercise {position} of {len(EXERCISES)}: {name}, {exercise.forward}.

Teaches: {exercise.teaches}.

Derive:
{derivation}

Then write backward below (forward and setup_context are given). In backward, compute with tensor
operations; for a softmax, sigmoid or tanh use handgrad.functional's (hf.softmax, hf.sigmoid,
hf.tanh): torch's own would run PyTorch's derivative kernels when your backward is itself
differentiated, which the check named double_backward refuses.

    {check.ljust(width)}grades it
    {hint.ljust(width)}gives the derivation's next step
"""
'''
    return header + "\n" + "\n".join(imports) + "\n\n" + body + "\n"


def load(path, name):
    """The Function class of exercise ``name`` that the file at ``path`` defines."""
    exercise = get(name)
    module_name = f"handgrad_exercise_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module             # torch.compile looks a traced class's module up by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise LearnerError(f"{path}, line {error.lineno}: SyntaxError: {error.msg}") from None
    except Exception as error:
        line = next((line for frame, line in reversed(list(traceback.walk_tb(error.__traceback__)))
                     if frame.f_code.co_filename == str(path)), None)
        where = f", line {line}" if line else ""
        raise LearnerError(f"{path}{where}: importing it raised {type(error).__name__}: "
                           f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}") from None
    found = [value for value in vars(module).values()
             if isinstance(value, type) and issubclass(value, torch.autograd.Function)
             and value.__module__ == module_name]
    wanted = exercise.function.__name__
    named = [cls for cls in found if cls.__name__ == wanted]
    if named:
        return named[0]
    if len(found) == 1:
        return found[0]
    if not found:
        raise LearnerError(f"{path} defines no torch.autograd.Function class (the skeleton's is {wanted})")
    raise LearnerError(f"{path} defines several Function classes ({', '.join(c.__name__ for c in found)}): "
                       f"name the one to grade {wanted}")

