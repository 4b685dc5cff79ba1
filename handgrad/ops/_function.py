"""What every hand-derived Function shares, kept out of the files of derivations.

- ``HandFunction``: the base of handgrad's Functions. It turns on ``generate_vmap_rule`` (so
  ``torch.func.vmap`` works through every backward made of plain tensor ops) and gives forward a
  signature that binds a full set of positional arguments for free: ``Function.apply`` binds its
  arguments to forward's signature on every call, and building then binding it was half of the
  Python cost of a call.
- ``apply(function, *args)``: how the faces apply a Function. Outside torch.func's transforms,
  through its old-style twin (``_eager_twin``, cheaper a call); under them, the Function
  itself; while ``torch.compile`` traces, the twin of ``function`` without ``jvp``: Dynamo refuses
  to trace a Function that defines ``jvp`` (forward mode), yet forward mode is what
  ``torch.func.jacfwd`` and ``hessian`` need, so each Function keeps its ``jvp`` and compiled code
  runs the twin, whose forward, setup_context and backward are the very same functions.
- ``Elementwise``: y = f(x) elementwise, where a subclass states its local derivative once, as the
  rule ``rule(g, x, y) = g ∘ f'(x)``; backward (``g`` the upstream gradient) and forward mode
  (``g`` the input's tangent) both follow from it, as ``auto_element_wise`` does in PyTorch's
  ``derivatives.yaml``.
- ``multilinear_jvp``: the forward mode of every op that is linear in each input on its own
  (``auto_linear`` in ``derivatives.yaml``): the forward applied to the tangents.
- ``derivation``: a backward formula written once as the readable reference, with room for a
  faster form beside it, which the tests check equal to it (``FAST_FORMS``, ``reference_forms``).
"""

import contextlib
import dis
import functools
import inspect
import threading
import warnings

import torch
import torch.utils.checkpoint
from torch.autograd import Function
from torch.autograd.function import _SingleLevelFunction

from handgrad.ops._checks import as_dtype


class HandFunction(Function):
    """Base class of handgrad's Functions (see the module docstring).

    ``recomputable``: True for a Function whose outputs are cheap to make again from its inputs (an
    elementwise op, a norm), "product" for a product (made again only where its output is no larger
    than its input): under ``memory="lean"`` they are made again in backward rather than kept twice
    (``handgrad._lean``).
    """

    generate_vmap_rule = True
    recomputable = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "forward" in vars(cls):
            cls.forward.__signature__ = _PositionalSignature.of(cls.forward)


class _Bound:
    """What ``Signature.bind`` returns, for arguments that need no binding."""

    __slots__ = ("args",)
    kwargs = {}

    def __init__(self, args):
        self.args = args

    def apply_defaults(self):
        pass


class _PositionalSignature(inspect.Signature):
    """forward's signature, whose ``bind`` passes a call that gives every parameter positionally
    (what handgrad's faces do) through untouched, and binds any other call as usual."""

    @classmethod
    def of(cls, function):
        parameters = list(inspect.signature(function).parameters.values())
        fast = cls(parameters)
        fast._positional = sum(p.kind == p.POSITIONAL_OR_KEYWORD for p in parameters)
        fast._variadic = any(p.kind == p.VAR_POSITIONAL for p in parameters)
        fast._keyword_only = any(p.kind == p.KEYWORD_ONLY for p in parameters)
        return fast

    def takes_all(self, n):
        """Whether ``n`` positional arguments give every parameter, so that none needs binding."""
        return (n >= self._positional if self._variadic else n == self._positional) and not self._keyword_only

    def bind(self, *args, **kwargs):
        if not kwargs and self.takes_all(len(args)):
            return _Bound(args)
        return super().bind(*args, **kwargs)


def _without_jvp(function):
    """The same Function without ``jvp``: every attribute of the handgrad classes in its MRO but that."""
    own = function.__mro__[: function.__mro__.index(HandFunction) + 1]
    body = {
        k: v
        for cls in reversed(own)
        for k, v in vars(cls).items()
        if k not in ("jvp", "__dict__", "__weakref__", "__init_subclass__", "traceable_apply", "eager_twin")
    }
    return type(function.__name__, (Function,), body)


def make_twins(function):
    """Give ``function`` its two twins as class attributes (the registry does it for every op):
    ``traceable_apply``, which applies the twin without ``jvp`` (a static method, because that is
    what Dynamo follows from a Function class passed around as a value; a lookup keyed by the class
    is not traceable), and ``eager_twin`` (``_eager_twin``)."""
    if "traceable_apply" not in vars(function):
        twin = _without_jvp(function)
        # read here, not from the class while Dynamo traces (it does not follow a Function's attributes)
        kind = function.recomputable

        def applied(*args):              # what checkpoint runs: Dynamo takes no Function's apply there
            return twin.apply(*args)

        def traceable_apply(*args):
            if kind and LEAN_TRACED:
                return lean_traced(kind, applied, *args)
            return twin.apply(*args)

        function.traceable_apply = staticmethod(traceable_apply)
        function.eager_twin = _eager_twin(function)


def _eager_twin(function):
    """``function`` in the old style: one ``forward(ctx, *inputs)`` that runs its forward, then its
    setup_context. PyTorch's ``Function.apply`` costs more a call (tens of µs on a CPU, the
    benchmarks page) for a Function that defines ``setup_context`` (the style that torch.func's
    transforms need) than for one whose forward takes ``ctx``; outside those transforms the twin gives the same outputs, saved tensors, backward
    and jvp for the old style's price. A subclass, so ``grad_fn._forward_cls`` is still a
    ``function``. It takes the calls that give every parameter positionally (``takes_all``: apply
    binds no default for those); None when forward has keyword-only parameters."""
    signature = function.forward.__signature__
    if signature._keyword_only:
        return None
    run, setup = function.forward, function.setup_context

    def forward(ctx, *inputs):
        output = run(*inputs)
        setup(ctx, inputs, output)
        return output

    twin = type(function.__name__, (function,), {"__module__": function.__module__,
                                                 "__qualname__": function.__qualname__})
    twin.forward = staticmethod(forward)
    twin.setup_context = staticmethod(_SingleLevelFunction.setup_context)   # "not defined": the old style
    twin.takes_all = staticmethod(signature.takes_all)
    return twin


class _Producers(threading.local):
    lean = None                  # the memory="lean" context that recomputable outputs register with


PRODUCERS = _Producers()
LEAN_TRACED = []                 # a LeanTrace per memory="lean" context entered while torch.compile traces


class LeanTrace:
    """What ``lean_traced`` needs to know of one ``memory="lean"`` context while torch.compile traces
    it, made fresh each time the context is entered (nothing of it outlives the trace, and it holds
    no tensor, so nothing in it is guarded on where the graph breaks):

    - ``region``: the number of the checkpoint region the partitioner sees the call traced now in.
      With ``blocks`` (a model ``convert(model, memory="lean")`` found blocks in: it puts forward
      hooks on them, which enter and leave them), one a block, from its start to the next block's
      start: the calls before the first block are the first block's region, those after the last
      the last one's. Otherwise a region for each call;
    - ``in_block``: whether the calls traced now run inside a block;
    - ``inside``: whether a region's body is being traced (a copy it makes is no region of its own).
    """

    def __init__(self, blocks=False):
        self.blocks = blocks
        self.region = 1 if blocks else 0
        self.entered = False
        self.in_block = False
        self.inside = False

    def enter_block(self):
        if self.entered:
            self.region += 1
        self.entered = self.in_block = True

    def leave_block(self):
        self.in_block = False

    def next_region(self):
        if not self.blocks:
            self.region += 1
        return self.region


def lean_traced(kind, run, *args, **kwargs):
    """``run(*args, **kwargs)`` as torch.compile traces it under ``memory="lean"``, ``kind`` True for
    a recomputable Function, "product" for a product (``HandFunction.recomputable``), "copy" for a
    copy between layers (``_lean.COPIES``).

    Saved-tensor hooks, which the eager context uses, do not reach a compiled graph: what it keeps,
    AOTAutograd's partitioner chooses. So the call is traced inside ``torch.utils.checkpoint``, a
    region whose outputs the partitioner must make again in backward from its inputs rather than
    keep: the recomputable Functions and the copies always, and inside a block a product by a
    square matrix (its output then the size of its input: a layer's output projection, whose output
    the residual stream adds).

    The partitioner keeps a region's output that a later region reads (``cleanup_recompute_tags``:
    the boundary of two checkpoints). Were each call its own region, that would keep the residual
    sum after the attention, which the next norm reads. The calls of a block are one region to the
    partitioner (``_region_contexts``): the block's input is kept (the region before ends there),
    and what the block makes from it, the residual sum included, is made again, the output
    projection from attention's output, which attention keeps: a chain of things made again ends
    at a block's input."""
    trace = LEAN_TRACED[-1]
    if trace.inside or (kind == "product" and not (trace.in_block and _by_square(args))):
        return run(*args, **kwargs)
    region = trace.next_region()
    context = {} if _Region is None else {"context_fn": functools.partial(_region_contexts, region)}
    trace.inside = True              # set outside the region: Dynamo refuses a region that changes what is outside it
    try:
        return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=False, **context, **kwargs)
    finally:
        trace.inside = False


def _by_square(args):
    """Whether a product's second factor is a square matrix (its output then the size of its first input)."""
    return len(args) > 1 and isinstance(args[1], torch.Tensor) and args[1].dim() == 2 and \
        args[1].shape[0] == args[1].shape[1]


_CachingMode = getattr(torch.utils.checkpoint, "_CachingTorchDispatchMode", None)   # torch's own, private


class _Region(_CachingMode or object):
    """The forward mode of a checkpoint region that lean traces: the graph id it tags its nodes with
    (``ac_graph_id``, a new one for each checkpoint call otherwise) is the region's number, so the
    calls of a block are one region. (Where a torch to come has no such mode, each call is a region
    of its own, as without blocks.)"""

    region = 0
    ac_graph_id = property(lambda self: self.region, lambda self, value: None)


if _CachingMode is None:
    _Region = None


def _region_contexts(region):
    """torch.utils.checkpoint's ``context_fn`` for a call in ``region``: recompute everything, as a
    checkpoint without one does, with the nodes tagged as ``region``'s."""
    forward, recompute = torch.utils.checkpoint.create_selective_checkpoint_contexts(_recompute)
    forward.__class__ = _Region
    forward.region = region
    return forward, recompute


def _recompute(ctx, op, *args, **kwargs):
    return torch.utils.checkpoint.CheckpointPolicy.PREFER_RECOMPUTE


def aside(function, *args, **kwargs):
    """``function(*args, **kwargs)`` with ``hand_derived``'s mode, if it is the innermost, set aside
    while it runs: handgrad's own code (a handgrad.nn layer's forward, the hooks of memory="lean")
    calls nothing that needs taking, and inside the mode every call, ``x.shape`` included, costs a
    call of its Python handler."""
    depth = torch._C._len_torch_function_stack()
    if not depth or torch.compiler.is_compiling() or \
            not getattr(torch._C._get_function_stack_at(depth - 1), "handgrad_mode", False):
        return function(*args, **kwargs)
    mode = torch._C._pop_torch_function_stack()
    try:
        return function(*args, **kwargs)
    finally:
        torch._C._push_on_torch_function_stack(mode)


def apply(function, *args):
    """``function.apply(*args)``: through its old-style twin (``_eager_twin``) when every input is
    given and no torch.func transform is active; the twin without ``jvp`` while ``torch.compile``
    traces. Under ``memory="lean"``, a recomputable Function's outputs are registered with the
    context, with its forward and these arguments."""
    if torch.compiler.is_compiling():
        return function.traceable_apply(*args)
    twin = function.__dict__.get("eager_twin")          # its own: a subclass's is not its parent's
    if twin is not None and twin.takes_all(len(args)) and not torch._C._are_functorch_transforms_active():
        result = twin.apply(*args)
    else:
        result = function.apply(*args)
    lean = PRODUCERS.lean
    if lean is not None and function.recomputable:
        lean.produced(function.forward, args, result, function.__name__, kind=function.recomputable)
    return result


class Elementwise(HandFunction):
    """y = f(x, *options) elementwise, from the local derivative stated once.

    A subclass defines

    - ``forward(x, *options)``: f;
    - ``rule(g, x, y, *options)``: g ∘ f'(x), from whichever of x and y it names in ``saves``
      (the other arrives as None). It must not write into ``g``; it may write into tensors it made;
    - ``saves``: ``("y",)`` (the default: σ' = σ(1 − σ) needs only y), ``("x",)`` or ``("x", "y")``,
      or a function of the options returning one of those;
    - ``inplace``: True when its last option is PyTorch's ``inplace`` flag; the input is then
      overwritten by y, so the rule may read y only...
    - ``original``: ... unless True: then the face passes, as one input after the options, a copy
      of x taken before forward overwrites it (None out of place), and the rule reads x from it
      (SiLU's derivative needs x, and ``nn.SiLU(inplace=True)`` is what torchvision builds).

    Backward is dL/dx = rule(g, x, y), and forward mode dy = rule(dx, x, y): for an elementwise
    f, the Jacobian is the diagonal f'(x) whether it multiplies g from the left or dx from the right.
    """

    saves = ("y",)
    inplace = False
    original = False
    recomputable = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        rule, saves, inplace, keeps_original = cls.rule, cls.saves, cls.inplace, cls.original
        extra = (None,) if keeps_original else ()
        if inplace and "forward" in vars(cls):
            compute, flag = cls.forward, -2 if keeps_original else -1

            @functools.wraps(compute)
            def forward(x, *options):
                y = compute(x, *options)
                return x if options[flag] else y       # x itself, as torch.compile requires of a dirty input
            cls.forward = staticmethod(forward)

        def setup_context(ctx, inputs, output):
            x, *options = inputs
            original = options.pop() if keeps_original else None
            names = saves(*options) if callable(saves) else saves
            if inplace and options[-1]:
                if "x" in names and original is None:
                    raise RuntimeError(f"{cls.__name__}: in place, x is overwritten by y and cannot be saved")
                ctx.mark_dirty(x)
                x = x if original is None else original          # the values x had before forward
            kept = [t for name, t in (("x", x), ("y", output)) if name in names]
            ctx.save_for_backward(*kept)
            ctx.save_for_forward(*kept)
            ctx.options, ctx.saved_names = options, names

        def saved(ctx):
            kept = iter(ctx.saved_tensors)
            return [next(kept) if name in ctx.saved_names else None for name in ("x", "y")]

        def backward(ctx, g):
            return (rule(g, *saved(ctx), *ctx.options), *(None for _ in ctx.options), *extra)

        def jvp(ctx, dx, *_):
            dy = rule(dx, *saved(ctx), *ctx.options)
            return dx.copy_(dy) if inplace and ctx.options[-1] else dy

        cls.setup_context = staticmethod(setup_context)
        cls.backward = staticmethod(backward)
        cls.jvp = staticmethod(jvp)


class Pointwise(HandFunction):
    """y = f(a, b, ...) elementwise, the inputs broadcast against each other, from each input's local
    derivative stated once (a row of ``derivatives.yaml`` per input, with ``auto_element_wise``).

    A subclass defines

    - ``forward(*inputs)``: f; an input may be a number (a constant) or an option;
    - ``rules``: one per input, ``rule(g, *inputs, y) = g ∘ ∂y/∂input``, None for an input that has
      no gradient (a mask, an option). The tensors it reads are those named in ``saves`` (the others
      arrive as None; numbers and options always arrive);
    - ``saves``: the positions of the tensor inputs the rules read, and "y" for the output.

    Backward: dL/d input = rule(g, ...) summed over the dimensions the input was broadcast along
    (``sum_to``), in the input's dtype. Forward mode: dy = Σ rule(d input, ...), since for an
    elementwise f each input's Jacobian is the diagonal ∂y/∂input, applied from the left to g or from
    the right to a tangent alike.

    What is kept for backward is what the rules of the inputs that ask for a gradient read
    (``reads``): of y = a b with only a asking, b alone (dL/da = g b), as autograd's own formulas keep.
    """

    saves = ()
    rules = ()
    recomputable = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        rules, keep_y = cls.rules, "y" in cls.saves
        positions = sorted(i for i in cls.saves if i != "y")
        read = [reads(rule) if rule is not None else frozenset() for rule in rules]

        def setup_context(ctx, inputs, output):
            ctx.shapes = [(t.shape, t.dtype) if isinstance(t, torch.Tensor) else None for t in inputs]
            ctx.constants = [None if isinstance(t, torch.Tensor) else t for t in inputs]
            asked = set().union(*(r for r, need in zip(read, ctx.needs_input_grad) if need))
            kept = [i for i in positions if i + 1 in asked and isinstance(inputs[i], torch.Tensor)]
            ctx.kept = (kept, keep_y and len(inputs) + 1 in asked)
            ctx.save_for_backward(*(inputs[i] for i in kept), *([output] if ctx.kept[1] else []))
            ctx.save_for_forward(*(inputs[i] for i in positions if isinstance(inputs[i], torch.Tensor)),
                                 *([output] if keep_y else []))
            ctx.out = (output.shape, output.dtype)

        def values(ctx, kept, with_y):
            """The inputs as the rules see them (those not kept None), and y."""
            tensors = iter(ctx.saved_tensors)
            inputs = [c if shape is None else next(tensors) if i in kept else None
                      for i, (c, shape) in enumerate(zip(ctx.constants, ctx.shapes))]
            return inputs, (next(tensors) if with_y else None)

        def backward(ctx, g):
            inputs, y = values(ctx, *ctx.kept)
            grads = [None] * len(inputs)
            for i, rule in enumerate(rules):
                if rule is not None and ctx.needs_input_grad[i]:
                    shape, dtype = ctx.shapes[i]
                    grads[i] = as_dtype(sum_to(rule(g, *inputs, y), shape), dtype)
            return tuple(grads)

        def jvp(ctx, *tangents):
            inputs, y = values(ctx, positions, keep_y)
            terms = [rule(t, *inputs, y) for rule, t in zip(rules, tangents) if rule is not None and t is not None]
            dy = functools.reduce(torch.add, terms)
            shape, dtype = ctx.out
            return dy.to(dtype) if dy.shape == shape else dy.expand(shape).to(dtype, copy=True)

        cls.setup_context = staticmethod(setup_context)
        cls.backward = staticmethod(backward)
        cls.jvp = staticmethod(jvp)


_LOADS = {"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_LOAD_FAST", "LOAD_FAST_BORROW", "LOAD_FAST_BORROW_LOAD_FAST_BORROW",
          "LOAD_DEREF", "LOAD_CLOSURE"}


def reads(rule):
    """The positions of ``rule(g, *inputs, y)``'s arguments that its code reads (0 for g): what a
    derivative needs kept, read off the derivative itself. A rule that is not plain Python code
    reads them all."""
    code = getattr(rule, "__code__", None)
    if code is None:
        return frozenset(range(64))
    names = set(code.co_cellvars)                      # captured by a nested function: read there
    for instruction in dis.get_instructions(code):
        if instruction.opname in _LOADS:
            value = instruction.argval
            names.update(value if isinstance(value, tuple) else (value,))
    parameters = code.co_varnames[:code.co_argcount]
    return frozenset(i for i, name in enumerate(parameters) if name in names)


def sum_to(g, shape):
    """g summed over the dimensions its input of ``shape`` was broadcast along: the leading
    dimensions it lacked, and those where it had size 1 (for a number, nothing to sum)."""
    if tuple(g.shape) == tuple(shape):
        return g
    return g.sum_to_size(shape) if len(shape) else g.sum()


# -- one derivative, stated once ------------------------------------------------------------------


def multilinear_jvp(forward, primals, tangents):
    """Forward mode of a map that is linear in each of ``primals`` on its own (x and W of a linear
    layer or a convolution, the table of an embedding, x of pooling, dropout and nll_loss):
    dy = Σᵢ forward(p₁, ..., dpᵢ, ..., pₙ), the forward itself applied to each tangent in turn, the
    other arguments kept (what ``derivatives.yaml`` calls ``auto_linear``). ``tangents`` holds None
    for an argument without one; None comes back when none has one."""
    terms = [forward(*primals[:i], dp, *primals[i + 1:]) for i, dp in enumerate(tangents) if dp is not None]
    return sum(terms[1:], terms[0]) if terms else None


FAST_FORMS = []          # every derivation with a faster form: the tests check each equal to its reference
DERIVATIONS = []         # every derivation
_fast_forms_on = [True]
_compiled_on = [False]


def derivation(reference):
    """A backward formula, the readable reference: ``g`` and the saved tensors in, a gradient out.

    ``@formula.faster`` beside it gives it a faster form, which computes the same thing with fewer
    passes or buffers by writing into tensors it makes itself. The faster form runs when backward is
    not itself being differentiated (grad mode off, as autograd runs a first-order backward); the
    reference runs otherwise, so double backward, forward mode and ``torch.func`` always see the
    formula as written. ``reference_forms()`` turns every faster form off (the tests compare them).

    Under ``compiled_derivations()`` a first-order backward runs the reference compiled by
    ``torch.compile`` (Inductor: the formula's elementwise steps and sums fused into a few loops), one
    compilation per set of shapes, the first one taking seconds; where compiling is not possible
    (no C++ compiler, a formula Dynamo cannot trace) the eager forms run, and a warning says so once.
    """
    def formula(*args):
        if _fast_forms_on[0] and not torch.is_grad_enabled():
            if _compiled_on[0] and formula.compiled is not False:
                result = _run_compiled(formula, args)
                if result is not _NOT_COMPILED:
                    return result
            fast = formula.fast
            if fast is not None:
                return fast(*args)
        return reference(*args)

    def faster(fast):
        formula.fast = fast
        FAST_FORMS.append(formula)
        return fast

    functools.update_wrapper(formula, reference)
    formula.reference, formula.fast, formula.faster, formula.compiled = reference, None, faster, None
    DERIVATIONS.append(formula)
    return formula


_NOT_COMPILED = object()


def _run_compiled(formula, args):
    """The reference compiled, on ``args``; ``_NOT_COMPILED`` where it cannot be (inside torch.compile
    or torch.func's transforms, or when compiling it failed: then never again)."""
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return _NOT_COMPILED
    if formula.compiled is None:
        formula.compiled = torch.compile(formula.reference, dynamic=False)
    try:
        return formula.compiled(*args)
    except Exception as error:                 # no C++ compiler, or a formula it cannot compile
        formula.compiled = False
        warnings.warn(f"handgrad: {formula.__name__} could not be compiled ({type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}); its eager form runs instead",
                      stacklevel=2)
        return _NOT_COMPILED


@contextlib.contextmanager
def compiled_derivations(enabled=True):
    """While active, every first-order backward whose formula is a ``derivation`` runs that formula
    compiled (see ``derivation``): the fused kernels a compiler makes of the very same formula, where
    the eager forms run one PyTorch kernel per step. ``enabled=False`` turns them off inside."""
    previous = _compiled_on[0]
    _compiled_on[0] = enabled
    try:
        yield
    finally:
        _compiled_on[0] = previous


@contextlib.contextmanager
def reference_forms():
    """Every derivation computes its reference form, never its faster one, while active."""
    _fast_forms_on[0] = False
    try:
        yield
    finally:
        _fast_forms_on[0] = True
