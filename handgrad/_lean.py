"""``memory="lean"``: keep fewer bytes than autograd by recomputing what a derivation knows is cheap.

A network keeps most tensors twice over. The output y of an elementwise op or a norm is the input of
the next layer, which keeps it for its own backward (the Linear after GELU keeps GELU's output for
dL/dW = gᵀ y), while the op itself keeps its own input (GELU keeps z, layer norm keeps x, μ and 1/σ):
everything needed to make y again, for the price of the op's forward, a pass over memory, which is
cheap beside the products around it. Megatron's "selective activation recomputation" (Korthikanti
et al., 2022) is this trade, chosen by hand for a transformer layer; here it is chosen for any model,
from what the ops declare and what is actually kept.

How. While ``Lean`` is active (around a converted model's forward, ``convert(model, memory="lean")``,
or ``hand_derived(memory="lean")``):

1. every call of a Function that declares itself ``recomputable`` (elementwise ops, norms, dropout with
   its mask given) registers its outputs with a recipe: the Function's own ``forward`` and the
   arguments it was called with; so do the built-in copies a forward makes between layers
   (``.contiguous()`` after a transpose, ``reshape``, ``cat``: ``COPIES``). A product (``Linear``,
   ``Matmul``) registers its output where it is no larger than its input, as a layer's output
   projection is: one product, the cheapest kind in the layer, to save a tensor of the layer's
   width (the residual stream it adds to, which the next norm keeps); it is made again only from
   inputs kept as they are, never from others made again, so that no chain of products grows;
2. every tensor autograd saves passes through ``saved_tensors_hooks``: a registered output (or a view of
   one) whose recipe's tensor arguments are all kept anyway (saved already by some node, a parameter,
   or recomputable in turn) is replaced by its recipe, holding those arguments, not the output; anything
   else is kept as it is;
3. when backward unpacks a recipe, the output is made again by the very same ``forward`` on the very same
   tensors, so the values are exactly those forward computed, and the view is taken again. An output
   that several of the saved tensors are made from (a layer's input, which its norm keeps and the
   next product's input is made from) is made once a backward pass: the last few made are held until
   the pass ends (``_Recent``).

Autograd keeps the saved tensor's place in the graph, so double backward differentiates through the
original nodes as before. A recipe whose inputs were changed in place since raises, as autograd does.
Outside the context, and where grad is disabled (nothing is kept then), nothing changes; inside
torch.func's transforms the context steps aside and everything is kept as usual. Another pair of
saved-tensor hooks around the context (the benchmark's count of bytes kept) sees every tensor that is
kept, and no recipe.

Compiled. A compiled graph takes no saved-tensor hooks: what it keeps, AOTAutograd's partitioner
chooses from the joint graph of forward and hand backward, and left to itself it keeps GELU's output
beside its input, as autograd does. So while torch.compile traces a lean context
(``_function.LEAN_TRACED``), the same calls (the recomputable Functions, the copies between layers)
are traced inside ``torch.utils.checkpoint`` (``_function.lean_traced``): the partitioner must make
their outputs again in backward from their inputs, which is step 3 above, chosen by the same
declarations, fused by the compiler into the backward's kernels. The partitioner keeps a region's
output that a later region reads (``cleanup_recompute_tags``), so the regions follow the model's
blocks, which ``convert`` finds (the children of its outermost ``ModuleList`` or ``Sequential``, a
transformer's layers) and marks with forward hooks: the calls of a block are one region, whose input
is kept, and from which the partitioner makes again what the block's recomputable calls made, the
residual sum after attention included (from the block's input and the output projection, a product
by a square matrix, traced in the region inside a block and made again from attention's output,
which attention keeps). Where nothing marks blocks, each call is its own region. Compiled, lean
keeps 0.55 of the built-in's bytes at nanoGPT's CPU recipe (eager lean 0.56), at the compiled
built-in's speed (benchmark section 12b).
"""

import collections
import contextlib
import dataclasses
import threading
import weakref

import torch

from handgrad.ops import _function

Tensor = torch.Tensor

# Built-in calls that copy their input into a new tensor and compute nothing: the layouts a forward makes
# between layers (nanoGPT's y.transpose(1, 2).contiguous() before its output projection).
COPIES = {Tensor.contiguous, Tensor.clone, torch.clone, Tensor.reshape, torch.reshape, Tensor.flatten, torch.flatten,
          torch.cat, torch.concat, torch.stack, Tensor.to, Tensor.float, Tensor.type_as}


def _storage(t):
    return t.untyped_storage().data_ptr()


@dataclasses.dataclass
class _Weak:
    """A tensor argument of a registered call, not kept alive by the registration: its version then,
    and, where a registered call made it, that call and the view of its output it was (so that it can
    be made again once it is gone)."""

    ref: weakref.ref
    version: int
    made_by: object = None
    view: tuple = None


@dataclasses.dataclass
class _Held:
    """A tensor argument of a recipe, kept anyway elsewhere, with the version forward read."""

    tensor: Tensor
    version: int


@dataclasses.dataclass
class _Output:
    """A registered output: how it was made, and what it was when made."""

    tensor: weakref.ref
    run: object                  # run(*args, **kwargs) made it
    args: tuple                  # tensors as _Weak, in lists too
    kwargs: dict
    index: int                   # which output of run's result, None for a single one
    name: str
    version: int                 # of the output, when made
    layout: tuple                # the output's (size, stride)
    product: bool                # made again only from inputs kept as they are
    source: object = dataclasses.field(default_factory=object)    # what recipes of this output share


class _Recent:
    """The last few outputs made again in this backward pass, by source: an output two saved tensors are
    made from is made once. Emptied when the pass ends (a callback queued on autograd's engine); outside
    a backward pass nothing is held."""

    SIZE = 8

    def __init__(self):
        self.made = collections.OrderedDict()
        self.lock = threading.Lock()
        self.queued = False

    def get(self, source, make):
        with self.lock:
            base = self.made.get(source)
        if base is not None:
            return base
        base = make()
        try:
            with self.lock:
                if not self.queued:
                    torch.autograd.Variable._execution_engine.queue_callback(self.clear)
                    self.queued = True
                self.made[source] = base
                while len(self.made) > self.SIZE:
                    self.made.popitem(last=False)
        except RuntimeError:                           # not inside a backward pass: nothing to share
            pass
        return base

    def clear(self):
        with self.lock:
            self.made.clear()
            self.queued = False


RECENT = _Recent()


@dataclasses.dataclass
class Recipe:
    """What a saved tensor is replaced by: how to make its base again, and the view of it that was saved."""

    run: object
    args: tuple                  # _Held, Recipe (an argument recomputed too) or a plain value, in lists too
    kwargs: dict
    index: int
    name: str
    layout: tuple
    view: tuple                  # (size, stride, storage offset) of the saved tensor
    nbytes: int
    source: object

    def make(self):
        """The saved tensor, made again by the same forward on the same tensors."""
        return RECENT.get(self.source, self._base).as_strided(*self.view)

    def _base(self):
        args = tuple(_made(a, self.name) for a in self.args)
        with torch.no_grad():
            result = self.run(*args, **self.kwargs)
        base = result if self.index is None else result[self.index]
        size, stride = self.layout
        if tuple(base.stride()) != stride:
            base = torch.empty_strided(size, stride, dtype=base.dtype, device=base.device).copy_(base)
        return base


def _view(t):
    return tuple(t.shape), tuple(t.stride()), t.storage_offset()


def _made(value, name):
    if isinstance(value, Recipe):
        return value.make()
    if isinstance(value, _Held):
        if value.tensor._version != value.version:
            raise RuntimeError(f"memory='lean': an input of {name} was modified by an inplace operation after forward "
                               f"used it (version {value.tensor._version}, was {value.version}), so its output cannot "
                               f"be made again for backward; leave that input unchanged, or use memory='plain'")
        return value.tensor
    if isinstance(value, (list, tuple)):
        return type(value)(_made(v, name) for v in value)
    return value


def _tensors(values):
    found = []
    for v in values:
        if isinstance(v, Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            found += _tensors(v)
    return found


class _Unavailable(Exception):
    """A recipe's argument is neither kept nor recomputable."""


class Lean:
    """The context of ``memory="lean"`` (see the module docstring). Counts, in ``recomputed``, the
    bytes it kept as recipes instead of tensors, by the name of the op that made them."""

    def __init__(self):
        self.outputs = {}         # storage address → _Output
        self.kept = {}            # storage address → a weak reference to a tensor kept as it is
        self.recomputed = {}      # op name → bytes not kept
        self._active = False

    # -- registering outputs ------------------------------------------------------------------------

    def produced(self, run, args, result, name, kwargs=None, kind=True):
        _function.aside(self._produced, run, args, result, name, kwargs, kind)

    def _produced(self, run, args, result, name, kwargs, kind):
        """Register the outputs of ``run(*args, **kwargs)`` (``result``, a tensor or a tuple of them);
        ``kind`` "product" for a product (``HandFunction.recomputable``), registered only where its
        output is no larger than its first input."""
        kwargs = kwargs or {}
        product = kind == "product"
        if product and not (isinstance(result, Tensor) and isinstance(args[0], Tensor)
                            and result.numel() <= args[0].numel()):
            return
        inputs = {_storage(t) for t in _tensors(args) + _tensors(kwargs.values())}
        several = isinstance(result, (tuple, list))
        for index, t in enumerate(result if several else (result,)):
            if not isinstance(t, Tensor) or t.storage_offset() != 0 or not t.numel():
                continue
            address = _storage(t)
            if address in inputs or t.untyped_storage().nbytes() != t.numel() * t.element_size():
                continue                                   # in place, or a view into something larger
            self.outputs[address] = _Output(weakref.ref(t), run, self._weak(tuple(args)), self._weak(dict(kwargs)),
                                            index if several else None, name, t._version,
                                            (tuple(t.shape), tuple(t.stride())), product)

    def _weak(self, value):
        """``value`` with each tensor a ``_Weak``, linked to the registered call that made it, if any."""
        if isinstance(value, Tensor):
            made_by = self.outputs.get(_storage(value))
            if made_by is not None and made_by.tensor() is None:
                made_by = None                             # a stale entry: that storage was freed and reused
            return _Weak(weakref.ref(value), value._version, made_by, _view(value))
        if isinstance(value, dict):
            return {k: self._weak(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._weak(v) for v in value)
        return value

    # -- saving ---------------------------------------------------------------------------------------

    def _recipe(self, t):
        """A Recipe for the saved tensor ``t`` if its base is registered and unchanged since, and every
        tensor its recipe reads is kept anyway or can be made again in turn; else None."""
        out = self.outputs.get(_storage(t))
        base = None if out is None else out.tensor()
        if base is None or _storage(base) != _storage(t) or base._version != out.version:
            return None
        try:
            return self._made_by(out, _view(t), t.untyped_storage().nbytes(), ())
        except _Unavailable:
            return None

    def _made_by(self, out, view, nbytes, seen):
        """The Recipe of the view ``view`` of ``out``'s output (raises _Unavailable)."""
        if id(out) in seen:
            raise _Unavailable
        seen = (*seen, id(out))
        args = self._resolved(out.args, seen, out.product)
        kwargs = self._resolved(out.kwargs, seen, out.product)
        return Recipe(out.run, args, kwargs, out.index, out.name, out.layout, view, nbytes, out.source)

    def _resolved(self, value, seen, kept_only=False):
        """``value`` with each tensor as kept (``_Held``) or, unless ``kept_only``, made again (a Recipe)."""
        if isinstance(value, _Weak):
            t = value.ref()
            if t is not None and t._version == value.version and self._available(t):
                return _Held(t, value.version)
            made_by = value.made_by
            if kept_only or made_by is None or value.version != made_by.version:
                raise _Unavailable                         # not kept, or changed in place since it was made
            return self._made_by(made_by, value.view, 0, seen)
        if isinstance(value, dict):
            return {k: self._resolved(v, seen, kept_only) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._resolved(v, seen, kept_only) for v in value)
        return value

    def _available(self, t):
        """Whether ``t`` is kept anyway: a parameter, or a tensor of a storage saved as it is."""
        if isinstance(t, torch.nn.Parameter):
            return True
        ref = self.kept.get(_storage(t))
        return ref is not None and ref() is not None

    def _pack(self, t):
        recipe = self._recipe(t) if _storage(t) in self.outputs else None
        if recipe is not None:
            self.recomputed[recipe.name] = self.recomputed.get(recipe.name, 0) + recipe.nbytes
            return recipe
        self.kept[_storage(t)] = weakref.ref(t)
        return t if self._outer is None else _Outer(self._outer[0](t))

    def _unpack(self, packed):
        if isinstance(packed, Recipe):
            return packed.make()
        return self._outer[1](packed.packed) if isinstance(packed, _Outer) else packed

    # -- the context ------------------------------------------------------------------------------------

    def __enter__(self):
        # is_compiling first: while torch.compile traces, nothing else is read (a guard on the thread's
        # state would make it compile again once an eager step has set it)
        self._active = (not torch.compiler.is_compiling() and torch.is_grad_enabled() and active() is None
                        and not torch._C._are_functorch_transforms_active()
                        and torch._C._autograd._saved_tensors_hooks_is_enabled())
        if not self._active:
            return self
        self._outer = torch._C._autograd._top_saved_tensors_default_hooks(False)
        _function.PRODUCERS.lean = self
        pack = self._pack
        torch._C._autograd._push_saved_tensors_default_hooks(lambda t: _function.aside(pack, t), self._unpack)
        return self

    def __exit__(self, *exc):
        if self._active:
            torch._C._autograd._pop_saved_tensors_default_hooks()
            _function.PRODUCERS.lean = None
            self.outputs.clear()
            self.kept.clear()
            for found in _RECORDING:
                for name, nbytes in self.recomputed.items():
                    found[name] = found.get(name, 0) + nbytes
        return False


@dataclasses.dataclass
class _Outer:
    """What the saved-tensor hooks around the context made of a tensor kept as it is."""

    packed: object


_RECORDING = []          # the dicts of the recorded() contexts open now


@contextlib.contextmanager
def recorded():
    """Yields a dict, op name → bytes, that collects what every ``Lean`` context active inside kept
    as recipes instead of tensors (its ``recomputed``), once it exits: what a model converted with
    ``memory="lean"`` makes again in backward (the benchmark and the tests report it)."""
    found = {}
    _RECORDING.append(found)
    try:
        yield found
    finally:
        _RECORDING.remove(found)


def active():
    """The ``Lean`` context registering this thread's outputs, or None."""
    return _function.PRODUCERS.lean
