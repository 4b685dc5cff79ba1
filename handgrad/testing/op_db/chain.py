"""The seed's network as one Function (``handgrad.ops.chain``): NumPy oracles (the seed's layers one
after the other), samples, bad inputs, bench sizes."""

import torch

from handgrad.testing import ErrorInput, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, x32
from handgrad.testing.op_db.activation import relu_numpy, sigmoid_numpy
from handgrad.testing.op_db.classification import cross_entropy_numpy
from handgrad.testing.op_db.linear import _linear_bench, _linear_samples, linear_numpy

# -- references and NumPy oracles --------------------------------------------------------------------


def _then(activation_fn):
    def reference(input, weight, bias=None):
        return activation_fn(torch.nn.functional.linear(input, weight, bias))
    return reference


def _linear_then_numpy(activation_numpy):
    def run(x, W, b=None):
        z, linear_vjp = linear_numpy(x, W, b)
        y, activation_vjp = activation_numpy(z)
        return y, lambda g: linear_vjp(activation_vjp(g)[0])
    return run


# -- samples and registration ----------------------------------------------------------------------


def _chain_reference(input, activations, *params):
    torch_activations = {"sigmoid": torch.sigmoid, "relu": torch.relu, None: lambda t: t}
    for i, name in enumerate(activations):
        input = torch_activations[name](torch.nn.functional.linear(input, params[2 * i], params[2 * i + 1]))
    return input


def linear_chain_numpy(x, activations, *params):
    """The seed's forward pass and its backward pass, one layer's oracle after another."""
    numpy_activations = {"sigmoid": sigmoid_numpy, "relu": relu_numpy}
    vjps, l = [], x
    for i, name in enumerate(activations):
        l, linear_vjp = linear_numpy(l, params[2 * i], params[2 * i + 1])
        l, activation_vjp = numpy_activations[name](l) if name else (l, lambda g: (g,))
        vjps.append((linear_vjp, activation_vjp))

    def vjp(g):
        grads = [None] * (2 + len(params))
        for i in reversed(range(len(activations))):
            linear_vjp, activation_vjp = vjps[i]
            g, grads[2 + 2 * i], grads[3 + 2 * i] = linear_vjp(activation_vjp(g)[0])
        grads[0] = g
        return tuple(grads)

    return l, vjp


def _chain_cross_entropy_reference(input, target, activations, *params, **options):
    return torch.nn.functional.cross_entropy(_chain_reference(input, activations, *params), target, **options)


def linear_chain_cross_entropy_numpy(x, target, activations, *params, **options):
    """The chain's oracle, then the cross-entropy's on its logits; vjp the other way round."""
    logits, chain_vjp = linear_chain_numpy(x, activations, *params)
    loss, loss_vjp = cross_entropy_numpy(logits, target, **options)

    def vjp(g):
        grad_x, _, *grad_params = chain_vjp(loss_vjp(g)[0])
        return (grad_x, None, None, *grad_params)

    return loss, vjp


# -- samples, bad inputs, bench sizes ----------------------------------------------------------------


def _chain_samples(gen):
    def sample(name, x_shape, sizes, activations, bias=True):
        params = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            params += [randn(gen, n_out, n_in), randn(gen, n_out) if bias else None]
        return Sample((randn(gen, *x_shape), activations, *params), name=name)

    return [
        sample("better: sigmoid, sigmoid, none", (8, 5), (5, 7, 6, 3), ("sigmoid", "sigmoid", None)),
        sample("quickstart: relu, relu, none", (8, 5), (5, 7, 6, 3), ("relu", "relu", None)),
        sample("basic: no activation, no bias", (8, 5), (5, 7, 6, 3), (None, None, None), bias=False),
        sample("ends on an activation", (8, 5), (5, 4, 3), ("relu", "sigmoid")),
        sample("one layer", (8, 5), (5, 3), ("sigmoid",)),
        sample("(B, T, in)", (2, 3, 5), (5, 4, 3), ("sigmoid", None)),
        sample("(0, in) empty batch", (0, 5), (5, 4, 3), ("relu", None)),
    ]


def _chain_bench(device):
    """The seed's networks: the better one (sigmoid) at batch 64 and 1024, the quickstart's (ReLU) at 1024."""
    found = []
    for activation, batch in (("sigmoid", 64), ("sigmoid", 1024), ("relu", 1024)):
        params = [bench_randn(device, *shape) for n_in, n_out in zip((784, 512, 512), (512, 512, 10))
                  for shape in ((n_out, n_in), (n_out,))]
        found.append((f"784-512-512-10 {activation}, batch {batch}",
                      (bench_randn(device, batch, 784), (activation, activation, None), *params), {}))
    return found


def _chain_cross_entropy_samples(gen):
    def sample(name, x_shape, sizes, activations, bias=True, **kwargs):
        params = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            params += [randn(gen, n_out, n_in), randn(gen, n_out) if bias else None]
        target = torch.randint(0, sizes[-1], x_shape[:1], generator=gen)
        if "ignore_index" in kwargs:
            target[::3] = kwargs["ignore_index"]
        return Sample((randn(gen, *x_shape), target, activations, *params), kwargs, name=name)

    return [
        sample("better: sigmoid, sigmoid, none", (8, 5), (5, 7, 6, 4), ("sigmoid", "sigmoid", None)),
        sample("quickstart: relu, relu, none", (8, 5), (5, 7, 6, 4), ("relu", "relu", None)),
        sample("basic: no activation, no bias", (8, 5), (5, 7, 6, 4), (None, None, None), bias=False),
        sample("one layer", (8, 5), (5, 4), (None,)),
        sample("reduction sum", (8, 5), (5, 6, 4), ("sigmoid", None), reduction="sum"),
        sample("reduction none", (8, 5), (5, 6, 4), ("relu", None), reduction="none"),
        sample("label_smoothing 0.1", (8, 5), (5, 6, 4), ("sigmoid", None), label_smoothing=0.1),
        sample("ignore_index=-100 on some rows: run apart", (9, 5), (5, 6, 4), ("relu", None), ignore_index=-100),
        sample("ignore_index=2, a class", (9, 5), (5, 6, 4), ("relu", None), ignore_index=2),
        sample("class weight: run apart", (8, 5), (5, 6, 4), ("relu", None),
               weight=torch.rand(4, generator=gen, dtype=torch.float64) + 0.1),
        sample("ends on an activation: run apart", (8, 5), (5, 6, 4), ("relu", "sigmoid")),
    ]


def _chain_cross_entropy_bench(device):
    """linear_chain's sizes, with a target for each row."""
    return [(label, (x, torch.randint(0, 10, (x.shape[0],), device=device), *rest), kwargs)
            for label, (x, *rest), kwargs in _chain_bench(device)]


_CHAIN_ERRORS = (
    ErrorInput("unknown activation", lambda F, nn: F.linear_chain(x32(2, 3), ("tanh",), x32(4, 3), None), ValueError,
               r"linear_chain: unknown activation 'tanh'"),
    ErrorInput("a parameter missing", lambda F, nn: F.linear_chain(x32(2, 3), ("relu", None), x32(4, 3), None, x32(2, 4)),
               TypeError, r"2 layers take 4 parameters .*got 3"),
    ErrorInput("layer sizes that do not chain",
               lambda F, nn: F.linear_chain(x32(2, 3), ("relu", None), x32(4, 3), None, x32(2, 5), None), RuntimeError,
               r"linear_chain: layer 2: input has 4 features .* weight of shape \(2, 5\) expects 5"),
)


# Three layers of low-precision rounding (of each hidden output) against float64 NumPy: the
# gradients of the bottom layers, sums of sums, move by more than one layer's do.
_CHAIN_TOLERANCES = {torch.bfloat16: Tolerance(atol=0.25, rtol=3e-2), torch.float16: Tolerance(atol=3e-2, rtol=4e-3)}

OP_INFOS = (
    OpInfo("linear_chain", _chain_reference, _chain_samples, linear_chain_numpy, _chain_bench, errors=_CHAIN_ERRORS,
           tolerances=_CHAIN_TOLERANCES, parameters=tuple(range(2, 16))),      # W¹, b¹, ... after the activations
    OpInfo("linear_sigmoid", _then(torch.sigmoid), _linear_samples(fused=True), _linear_then_numpy(sigmoid_numpy),
           _linear_bench, parameters=(1, 2)),
    OpInfo("linear_relu", _then(torch.relu), _linear_samples(fused=True), _linear_then_numpy(relu_numpy),
           _linear_bench, parameters=(1, 2)),
    OpInfo("linear_chain_cross_entropy", _chain_cross_entropy_reference, _chain_cross_entropy_samples,
           linear_chain_cross_entropy_numpy, _chain_cross_entropy_bench, tolerances=_CHAIN_TOLERANCES,
           parameters=tuple(range(3, 17))),                                       # W¹, b¹, ... after the activations
)
