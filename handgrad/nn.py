"""Drop-in modules: subclasses of the ``torch.nn`` modules whose forward runs the hand Functions.

Each class inherits everything but ``forward`` from its ``torch.nn`` parent: parameter names and
shapes, ``reset_parameters`` (so the same ``torch.manual_seed`` gives the same initial weights),
``repr``, ``extra_repr`` and ``state_dict``. ``isinstance(handgrad.nn.Linear(...), torch.nn.Linear)``
holds, and state dicts load in both directions. The classes are made from the registry
(``handgrad.ops.OPS``: each op names the ``torch.nn`` classes it stands in for and their forward);
``Sequential`` (which fuses a Linear with its activation), ``convert``, ``coverage`` and ``audit``
are here.
"""

import dataclasses
import functools

import torch
from torch.nn.modules import module as torch_module

from handgrad import functional as F
from handgrad._audit import Audit, audit
from handgrad._intercept import MEMORY, forward_hand_derived, hand_derived, intercepted
from handgrad.ops import _function, _registry

globals().update(_registry.MODULES)


class Sequential(torch.nn.Sequential):
    r"""``torch.nn.Sequential`` that runs each stack of handgrad Linear layers, each followed or not by
    a handgrad Sigmoid or ReLU, as one Function: ``functional.linear_chain`` (the seed's forward and
    backward passes in one call each) for two layers or more, ``linear_sigmoid`` / ``linear_relu`` for
    one layer and its activation. The same numbers and gradients, far fewer Python calls.

    Modules, their names and the state dict are those of ``torch.nn.Sequential``. A module with hooks
    ends the stack and runs on its own (its hooks must see their own call).
    """

    def forward(self, input):
        return _run(list(self._modules.values()), input)

    def loss(self, input, target, loss_fn):
        """``loss_fn(self(input), target)``; when this Sequential ends in a stack of Linear layers with
        no activation on the logits, and ``loss_fn`` is a handgrad ``CrossEntropyLoss``, that stack
        and the loss run as one Function (``functional.linear_chain_cross_entropy``: the seed's
        ``update_weights``, from dL/dlogits = softmax − onehot down). The same loss and gradients
        in one Python call fewer each way. Hooks on this module or on the loss, another loss, or no
        such stack: exactly ``loss_fn(self(input), target)``.
        """
        top = self._top_stack(loss_fn)
        if top is None:
            return loss_fn(self(input), target)
        start, layers, activations = top
        params = _parameters(layers)
        features = _run(list(self._modules.values())[:start], input) if start else input
        return F.linear_chain_cross_entropy(
            features, target, activations, *params, weight=loss_fn.weight, ignore_index=loss_fn.ignore_index,
            reduction=loss_fn.reduction, label_smoothing=loss_fn.label_smoothing)

    def _top_stack(self, loss_fn):
        """(start, Linear layers, activations) of the stack of Linear layers this Sequential ends in, if
        it and ``loss_fn`` can run as one Function now (no hooks on them, a handgrad CrossEntropyLoss);
        else None. The stack is worked out once per arrangement of the modules (kept with the tuple
        of modules it was worked out from: adding, removing or replacing one works it out again);
        the hooks are looked at on every call, as they may come and go between calls."""
        if type(loss_fn) is not _CROSS_ENTROPY or _has_hooks(loss_fn) or _has_hooks(self):
            return None
        modules = tuple(self._modules.values())
        known = self.__dict__.get("_handgrad_top_stack")
        if known is None or known[0] != modules:             # tuples of modules compare by identity
            known = (modules, _top_stack(modules))
            self.__dict__["_handgrad_top_stack"] = known
        top = known[1]
        if top is None or any(_has_hooks(module) for module in modules[top[0]:]):
            return None
        return top


def _parameters(layers):
    """W¹, b¹, ..., Wᴸ, bᴸ of the Linear layers, read from their ``_parameters`` where they are
    registered there (a tenth of the cost of ``Module.__getattr__``), from the attribute otherwise."""
    params = []
    for layer in layers:
        own = layer._parameters
        params += (own["weight"] if "weight" in own else layer.weight, own["bias"] if "bias" in own else layer.bias)
    return params


def _top_stack(modules):
    """(start, Linear layers, activations) of the stack of handgrad Linear layers, each followed or not
    by a handgrad Sigmoid or ReLU, that ends ``modules`` on a Linear layer (no activation on the
    logits); None if they end otherwise. The stacks are ``_stacks``'s, hooks not looked at."""
    stacks = list(_stacks(modules, hooks=False))
    if not stacks:
        return None
    start, _, layers, activations = stacks[-1]
    if not activations or activations[-1] is not None:
        return None
    return start, tuple(layers), tuple(activations)


def _stacks(modules, hooks=True):
    """(start, end, Linear layers, activations) for each module or stack of modules that runs as one
    call: a stack of handgrad Linear layers (``_linear_stack``), or any other module (no layers)."""
    i = 0
    while i < len(modules):
        layers, activations, end = _linear_stack(modules, i, hooks)
        if not activations:
            end = i + 1
        yield i, end, layers, activations
        i = end


def _run(modules, input):
    """The modules one after the other, each stack of Linear layers as one Function."""
    for start, end, layers, activations in _stacks(modules):
        if len(activations) > 1:
            input = F.linear_chain(input, tuple(activations), *_parameters(layers))
        elif activations and activations[0] is not None:
            input = _FUSED[activations[0]](input, *_parameters(layers))
        else:
            input = modules[start](input)
    return input


_ACTIVATION_NAMES = {_registry.MODULES["Sigmoid"]: "sigmoid", _registry.MODULES["ReLU"]: "relu"}
_FUSED = {"sigmoid": F.linear_sigmoid, "relu": F.linear_relu}
_CROSS_ENTROPY = _registry.MODULES["CrossEntropyLoss"]
_LINEAR = _registry.MODULES["Linear"]


def _linear_stack(modules, start, hooks=True):
    """(Linear layers, activation names, end): the longest run from ``start`` of handgrad Linear layers,
    each followed or not by a handgrad Sigmoid or ReLU (an activation belongs to the Linear layer
    before it); with ``hooks``, of such modules without hooks (a module with hooks runs on its own)."""
    layers, activations, i = [], [], start
    while i < len(modules) and type(modules[i]) is _LINEAR and not (hooks and _has_hooks(modules[i])):
        layers.append(modules[i])
        following = modules[i + 1] if i + 1 < len(modules) else None
        name = _ACTIVATION_NAMES.get(type(following))
        if name is not None and not (hooks and _has_hooks(following)):
            activations.append(name)
            i += 2
        else:
            activations.append(None)
            i += 1
    return layers, activations, i


def _has_hooks(module):
    return bool(
        module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
        or module._backward_pre_hooks or torch_module._global_forward_hooks
        or torch_module._global_forward_pre_hooks or torch_module._global_backward_hooks
        or torch_module._global_backward_pre_hooks
    )


def _replacements():
    _registry.resolve()
    return {**_registry.REPLACES, torch.nn.Sequential: Sequential}


# Modules that compute nothing themselves: their children do, or they only reshape.
STRUCTURAL = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict, torch.nn.ParameterList,
              torch.nn.ParameterDict, torch.nn.Flatten, torch.nn.Unflatten, torch.nn.Identity, torch.nn.Transformer)


@dataclasses.dataclass
class Entry:
    """One module of a model: its path, its class, and how its backward runs."""

    path: str
    cls: str
    status: str          # "hand", "built-in" or "structural"
    reason: str = ""


@dataclasses.dataclass
class Coverage:
    """What runs hand-derived in a model, what stays on a built-in backward (and why), and what is
    structural (containers, reshaping, modules of your own made of other modules)."""

    entries: list

    def of(self, status):
        return [e for e in self.entries if e.status == status]

    @property
    def complete(self):
        """True when nothing that computes is left on a built-in backward."""
        return not self.of("built-in")

    def __str__(self):
        hand, builtin, structural = self.of("hand"), self.of("built-in"), self.of("structural")
        lines = [f"hand-derived: {len(hand)} modules, built-in: {len(builtin)}, structural: {len(structural)}"]
        width = max([len(e.path) for e in self.entries] + [6])
        cls_width = max([len(e.cls) for e in self.entries] + [6])
        for e in self.entries:
            reason = f"  ({e.reason})" if e.reason else ""
            lines.append(f"  {e.path.ljust(width)}  {e.cls.ljust(cls_width)}  {e.status}{reason}")
        return "\n".join(lines)

    __repr__ = __str__


INTERCEPTED = "its own calls run inside hand_derived, by the rules of the tensor algebra"


def _classify(module, replacements, inside=False):
    """(status, reason) of one module, before or after conversion; ``inside``: within a converted
    model, whose forward runs inside ``hand_derived``."""
    cls = type(module)
    name = cls.__name__
    if isinstance(module, STRUCTURAL):
        return "structural", ""
    unsupported = _unsupported(module)
    if cls.__module__ == "handgrad.nn":
        return ("built-in", unsupported) if unsupported else ("hand", "")
    if cls in replacements:
        return "built-in", unsupported or "not converted: run handgrad.nn.convert(model)"
    torch_parent = next((c for c in cls.__mro__ if c in replacements), None)
    if torch_parent is not None:
        if inside:
            return "hand", f"a subclass of torch.nn.{torch_parent.__name__} with a forward of its own: {INTERCEPTED}"
        return "built-in", f"a subclass of torch.nn.{torch_parent.__name__} with a forward of its own, left as written"
    if cls.__module__.startswith("torch.nn"):
        return "built-in", f"handgrad has no hand-derived {name}"
    own = [n for n, _ in module.named_parameters(recurse=False)] + [n for n, _ in module.named_buffers(recurse=False)]
    if own and inside:
        return "hand", f"a module of your own holding tensors ({', '.join(own[:3])}): {INTERCEPTED}"
    if own:
        return "built-in", f"a module of your own holding tensors ({', '.join(own[:3])}): its forward is not hand-derived"
    return "structural", "made of its submodules"


def _unsupported(module):
    """Why this module's configuration runs on the built-in even as a handgrad class, or ""."""
    check = _registry.UNSUPPORTED.get(next((c for c in type(module).__mro__ if c in _registry.UNSUPPORTED), None))
    return (check(module) or "") if check else ""


def coverage(module):
    """A ``Coverage`` report of ``module``: by module path and class, what runs hand-derived, what
    stays on a built-in backward (with the reason), and what is structural. It reads the modules; the
    proof of what a forward computes is in its graph: ``audit(output)``."""
    replacements = _replacements()
    inside = intercepted(module)
    entries = []
    for path, sub in module.named_modules():
        status, reason = _classify(sub, replacements, inside)
        entries.append(Entry(path or "(model)", type(sub).__name__, status, reason))
    return Coverage(entries)


def convert(module, strict=False, memory="plain"):
    """Make ``module`` run hand-derived: its ``torch.nn`` modules that handgrad derives by hand, and
    every call its forward makes to an op handgrad has a rule for.

    Works in place on any model (nested containers, custom modules, torchvision models) and returns
    it. Each matching module has its class switched to the handgrad subclass, which holds exactly
    the same state, so parameters, buffers, hooks, devices and any optimizer already holding the
    parameters are untouched. Only modules of exactly those classes, in a configuration handgrad
    supports, are converted: a user's subclass with a forward of its own is left alone. Then
    ``module``'s forward runs inside ``handgrad.hand_derived()``, so the calls written in any of its
    modules (``out += identity``, ``F.relu(x)``, ``q @ k.transpose(-2, -1)``) run handgrad's rules too.
    ``handgrad.nn.audit(output)`` shows, from the autograd graph, what is left built-in.

    With ``strict=True``, raises ``RuntimeError`` (and converts nothing) when a module would stay on
    a built-in backward (``coverage(model)`` says why), and the forward raises, naming the op, on a
    call that would leave a built-in computing node in the graph.

    With ``memory="lean"``, the forward keeps fewer bytes for backward than autograd would: the output
    of an elementwise op, a norm or a copy between layers, which the next layer keeps and the op could
    make again from what it keeps itself, is made again in backward instead (``handgrad._lean``). The
    values and gradients are exactly those of ``memory="plain"``, the default; converting again
    changes the setting. For ``torch.compile``, lean also puts a forward pre-hook and a forward hook on
    each of the model's blocks (its transformer layers, its residual blocks: ``_blocks``), which tell
    the compiled graph where a block begins and ends; they do nothing else, and converting to plain
    takes them off.
    """
    if memory not in MEMORY:
        raise ValueError(f"convert: memory must be one of {MEMORY}, got {memory!r}")
    replacements = _replacements()
    if strict:
        report = coverage(module)
        gaps = [e for e in report.of("built-in") if not e.reason.startswith("not converted")]
        if gaps:
            raise RuntimeError(f"convert(strict=True): {len(gaps)} module(s) would stay on a built-in backward:\n"
                               + _grouped(gaps))
    swap_classes(module, replacements)
    module._handgrad_blocks = _count_blocks(module, memory == "lean")
    if not intercepted(module):
        module.forward = functools.partial(forward_hand_derived, module)
    module._handgrad_strict = strict
    module._handgrad_memory = memory
    return module


def _blocks(module):
    """``module``'s blocks: the children with children of their own of each ``ModuleList`` or
    ``Sequential`` met first on the way down from it (a transformer's layers, a ResNet's residual
    blocks), not those nested inside them (a ViT block's MLP)."""
    if isinstance(module, (torch.nn.ModuleList, torch.nn.Sequential)):
        for child in module.children():
            if next(child.children(), None) is not None:
                yield child
        return
    for child in module.children():
        yield from _blocks(child)


def _enter_block(block, args):
    """The forward pre-hook ``convert(model, memory="lean")`` puts on each of the model's blocks: while
    torch.compile traces the model, the calls that follow run in a block of their own, whose checkpoint
    regions are one to the partitioner (``handgrad.ops._function.lean_traced``). Nothing otherwise."""
    if _function.LEAN_TRACED:
        _function.LEAN_TRACED[-1].enter_block()


def _leave_block(block, args, output):
    """... and its forward hook: the calls that follow run outside the blocks."""
    if _function.LEAN_TRACED:
        _function.LEAN_TRACED[-1].leave_block()


def _count_blocks(module, lean):
    """Put ``_enter_block`` and ``_leave_block`` on ``module``'s blocks where ``lean``; take them off
    every module otherwise (converting again changes the setting). Whether it put them on any."""
    for m in module.modules():
        for hooks in (m._forward_pre_hooks, m._forward_hooks):
            for key, hook in list(hooks.items()):
                if hook in (_enter_block, _leave_block):
                    del hooks[key]
    blocks = list(_blocks(module)) if lean else []
    for block in blocks:
        block.register_forward_pre_hook(_enter_block)
        block.register_forward_hook(_leave_block)
    return bool(blocks)


def _grouped(entries):
    """The entries by class and reason, one line each: ``Bottleneck ×16 (reason): layer1.0, layer1.1, ...``."""
    groups = {}
    for e in entries:
        groups.setdefault((e.cls, e.reason), []).append(e.path)
    lines = []
    for (cls, reason), paths in groups.items():
        shown = ", ".join(paths[:4]) + (f", ... ({len(paths) - 4} more)" if len(paths) > 4 else "")
        lines.append(f"  {cls} ×{len(paths)} ({reason}): {shown}")
    return "\n".join(lines)


def swap_classes(module, replacements=None):
    """Switch each module of exactly a class handgrad replaces (in a supported configuration) to its
    handgrad class, in place; the forwards are not wrapped (``convert`` does that)."""
    replacements = replacements or _replacements()
    for submodule in module.modules():
        replacement = replacements.get(type(submodule))
        if replacement is not None and not _unsupported(submodule):
            submodule.__class__ = replacement
    return module


def __getattr__(name):
    """A class made once its package is loaded (``handgrad.nn.StochasticDepth`` after ``import torchvision``)."""
    _registry.resolve()
    if name in _registry.MODULES:
        return _registry.MODULES[name]
    raise AttributeError(f"module 'handgrad.nn' has no attribute {name!r}")


__all__ = [*_registry.MODULES, "Sequential", "convert", "coverage", "Coverage", "audit", "Audit", "hand_derived"]
