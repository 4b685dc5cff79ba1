"""The records of a test (a ``Sample`` to call, an ``ErrorInput`` that must raise, a ``ModuleSample``
to build and run) and how a sample is run: fresh leaves in the dtype and on the device asked for,
the random generators reseeded, and its outputs differentiated for a random upstream gradient."""

import contextlib
import dataclasses
from typing import Callable

import torch

SEED = 1234                                  # the global RNG is reseeded before every call (dropout)


@dataclasses.dataclass
class Sample:
    """One call of the op under test.

    Args:
        args: positional arguments; float64 CPU tensors with ``requires_grad=True`` are differentiated
        kwargs: keyword arguments (tensors among them are converted too, never differentiated)
        name: how the report names it (default ``sample <i>``)
        dtypes: the dtypes it is compared in (default: every dtype of ``TOLERANCES``), e.g. without
            float16 where the result exceeds float16's range
        reference_devices: device types on which it is compared with the reference and the NumPy
            oracle (default: all); e.g. ``("cpu",)`` for dropout, whose CUDA built-in draws its
            mask from another random stream
        builtin_devices: device types, among those, on which the reference (PyTorch's built-in) is
            trusted (default: all of them); e.g. ``("cpu",)`` where the CUDA built-in itself is
            wrong (embedding's max_norm with norm_type 3), while the NumPy oracle still checks CUDA
        gradcheck: False where the value itself is NaN (a mean over nothing) and finite
            differences mean nothing
        data_dependent: why the size of the work depends on the values (roi_align's adaptive
            sampling, as many samples as the largest box needs), where it does: ``torch.func.vmap``
            cannot follow that (the vmap check is n/a) and ``torch.compile`` breaks its graph there
            (compiled without ``fullgraph``)
    """

    args: tuple
    kwargs: dict = dataclasses.field(default_factory=dict)
    name: str = ""
    dtypes: tuple = None
    reference_devices: tuple = None
    builtin_devices: tuple = None
    gradcheck: bool = True
    data_dependent: str = ""

    def tensors(self):
        """(where, key, tensor) of every tensor argument: where is "args" or "kwargs"."""
        found = [("args", i, a) for i, a in enumerate(self.args) if isinstance(a, torch.Tensor)]
        return found + [("kwargs", k, v) for k, v in self.kwargs.items() if isinstance(v, torch.Tensor)]

    def differentiable(self):
        return [(where, key) for where, key, t in self.tensors() if where == "args" and t.requires_grad]

    def compared_on(self, device):
        """Whether it is compared with the reference and the NumPy oracle on this device."""
        return self.reference_devices is None or torch.device(device).type in self.reference_devices

    def trusted_on(self, device):
        """Whether the reference (PyTorch's built-in) is trusted on this device."""
        return self.compared_on(device) and (self.builtin_devices is None
                                             or torch.device(device).type in self.builtin_devices)

    def call_args(self, dtype=None, device=None, replace=None):
        """Fresh leaves: the sample's tensors in ``dtype`` (floating ones) on ``device``, those that
        require grad requiring it; ``replace`` maps (where, key) to a tensor used as is."""
        replace = replace or {}

        def convert(where, key, value):
            if (where, key) in replace:
                return replace[(where, key)]
            if not isinstance(value, torch.Tensor):
                return value
            floating = value.is_floating_point()
            t = value.detach().to(device=device, dtype=dtype if floating and dtype else None, copy=True)
            return t.requires_grad_(value.requires_grad and where == "args")

        args = tuple(convert("args", i, a) for i, a in enumerate(self.args))
        kwargs = {k: convert("kwargs", k, v) for k, v in self.kwargs.items()}
        return args, kwargs


@dataclasses.dataclass(frozen=True)
class ErrorInput:
    """A call that must raise a clear exception (PyTorch OpInfo's ``error_inputs``).

    ``call(F, nn)`` makes the call with ``F`` a functional namespace and ``nn`` a module namespace,
    handgrad's or torch's; handgrad must raise ``exception`` with a message matching the regular
    expression ``message``, of the class torch raises (so ``except`` clauses written for torch catch
    it) unless ``torch_accepts`` (torch computes a result where handgrad deliberately refuses) or
    ``torch_class`` (torch's class, where it is an accident handgrad does not copy).
    """

    name: str
    call: Callable
    exception: type
    message: str
    torch_accepts: bool = False
    torch_class: type = None


@dataclasses.dataclass(frozen=True)
class ModuleSample:
    """A module to build and an input to run it on (PyTorch ModuleInfo's ``ModuleInput``):
    ``torch.nn.<class>(*args, **kwargs)`` and ``handgrad.nn.<class>(*args, **kwargs)`` under the same
    seed, then ``module(*input(generator), **forward_kwargs)`` with float64 CPU tensors, those that
    require grad being differentiated (floating tensors among ``forward_kwargs``, a float mask, are
    converted to the dtype and device but not differentiated); every tensor output is."""

    name: str
    input: Callable
    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)
    train_devices: tuple = None      # device types where training mode is compared with torch (dropout: CPU)
    forward_kwargs: dict = dataclasses.field(default_factory=dict)   # keywords of the call (masks, need_weights)


def randn(generator, *shape, requires_grad=True, scale=1.0):
    """A float64 CPU tensor of N(0, scale²) draws from ``generator``, a leaf requiring grad by default."""
    t = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    return t.requires_grad_(requires_grad)


def as_samples(samples):
    """``Sample`` objects from samples given as Samples, tuples of arguments or single tensors."""
    out = []
    for i, s in enumerate(samples):
        if not isinstance(s, Sample):
            s = Sample(tuple(s) if isinstance(s, (tuple, list)) else (s,))
        if not s.name:
            s = dataclasses.replace(s, name=f"sample {i}")
        out.append(s)
    return out


def input_name(where, key):
    return f"input {key}" if where == "args" else f"keyword {key}"


@contextlib.contextmanager
def seeded(device):
    """The same random numbers for every call: the device's generator reseeded, then restored
    (by hand rather than with ``torch.random.fork_rng``, which costs 40 times more per call)."""
    cuda = torch.device(device).type == "cuda"
    generator = torch.cuda.default_generators[torch.device(device).index or 0] if cuda else torch.default_generator
    state = generator.get_state()
    generator.manual_seed(SEED)
    try:
        yield
    finally:
        generator.set_state(state)


def outputs_of(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def differentiable_outputs(outputs):
    return [o for o in outputs if isinstance(o, torch.Tensor) and o.requires_grad]


def upstream(outputs, seed):
    """A random upstream gradient for each differentiable output, drawn in float64."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o) for o in outputs]


@dataclasses.dataclass
class Run:
    """What one call gave: every output (tensors or not), the gradient of each differentiable input
    by name (None when not connected), the upstream gradients used, and those inputs by name."""

    outputs: list
    grads: dict
    upstream: list
    inputs: dict = dataclasses.field(default_factory=dict)


def run(function, sample, dtype, device, seed, replace=None, create_graph=False):
    """Call ``function`` on the sample and differentiate its outputs for a random upstream gradient."""
    args, kwargs = sample.call_args(dtype, device, replace)
    with seeded(device):
        outputs = outputs_of(function(*args, **kwargs))
    wrt_keys = sample.differentiable()
    wrt = [args[key] for _, key in wrt_keys]
    diff_outputs = differentiable_outputs(outputs)
    grads = {}
    gradients = upstream(diff_outputs, seed)
    if wrt and diff_outputs:
        found = torch.autograd.grad(diff_outputs, wrt, gradients, allow_unused=True, create_graph=create_graph)
        grads = {input_name(w, k): g for (w, k), g in zip(wrt_keys, found)}
    return Run(outputs, grads, gradients, {input_name(w, k): t.detach() for (w, k), t in zip(wrt_keys, wrt)})
