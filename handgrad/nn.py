"""Drop-in modules: subclasses of the ``torch.nn`` modules whose forward runs the hand Functions.

Each class inherits everything but ``forward`` from its ``torch.nn`` parent: parameter names and
shapes, ``reset_parameters`` (so the same ``torch.manual_seed`` gives the same initial weights),
``repr``, ``extra_repr`` and ``state_dict``. ``isinstance(handgrad.nn.Linear(...), torch.nn.Linear)``
holds, and state dicts load in both directions.
"""

import torch
from torch.nn.modules import module as torch_module

from handgrad import functional as F

__all__ = ["Linear", "Sigmoid", "ReLU", "Dropout", "CrossEntropyLoss", "Sequential", "convert"]


class Linear(torch.nn.Linear):
    r"""Applies y = xWᵀ + b with a hand-derived backward.

    Args:
        in_features: size of each input sample
        out_features: size of each output sample
        bias: if ``False``, the layer does not learn an additive bias. Default: ``True``
        device, dtype: where and in what dtype the parameters are created

    Shape:
        - Input: (*, H_in) where * means any number of dimensions and H_in = in_features
        - Output: (*, H_out) where H_out = out_features

    Attributes:
        weight: (out_features, in_features), initialised U(−√k, √k) with k = 1 / in_features
        bias: (out_features), initialised U(−√k, √k)

    Examples::

        >>> m = handgrad.nn.Linear(20, 30)
        >>> m(torch.randn(128, 20)).shape
        torch.Size([128, 30])
    """

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)


class Sigmoid(torch.nn.Sigmoid):
    r"""Applies y = σ(x) = 1 / (1 + e⁻ˣ) elementwise, with backward dL/dx = g · y(1 − y).

    Shape:
        - Input: (*), any number of dimensions
        - Output: (*), same shape as the input
    """

    def forward(self, input):
        return F.sigmoid(input)


class ReLU(torch.nn.ReLU):
    r"""Applies y = max(x, 0) elementwise, with backward dL/dx = g · 1[x > 0].

    Args:
        inplace: overwrite the input instead of allocating the output. Default: ``False``

    Shape:
        - Input: (*), any number of dimensions
        - Output: (*), same shape as the input
    """

    def forward(self, input):
        return F.relu(input, inplace=self.inplace)


class Dropout(torch.nn.Dropout):
    r"""In training, zeroes each element with probability p and scales the rest by 1 / (1 − p);
    the identity in eval mode. Backward: dL/dx = g ∘ m / (1 − p) with the same mask m.

    Args:
        p: probability of an element being zeroed. Default: 0.5
        inplace: overwrite the input. Default: ``False``

    Shape:
        - Input: (*), any number of dimensions
        - Output: (*), same shape as the input
    """

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    r"""L = −Σ_c a_c log softmax(x)_c, with backward dL/dx = softmax(x) − onehot(y) (generalised).

    Args:
        weight: a manual rescaling weight per class, shape (C)
        ignore_index: a class index whose targets contribute neither loss nor gradient
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``
        label_smoothing: ε in [0, 1]; the target becomes (1 − ε) target + ε / C

    Shape:
        - Input: (C), (N, C) or (N, C, d_1, ..., d_K)
        - Target: class indices (), (N) or (N, d_1, ..., d_K), or probabilities shaped as the input
        - Output: scalar, or the input's shape without C when ``reduction='none'``
    """

    def forward(self, input, target):
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class Sequential(torch.nn.Sequential):
    r"""``torch.nn.Sequential`` that runs a handgrad Linear followed by a handgrad Sigmoid or ReLU as
    one fused Function (``functional.linear_sigmoid`` / ``linear_relu``): the same numbers and
    gradients, one call and one output tensor fewer per layer.

    Modules, their names and the state dict are those of ``torch.nn.Sequential``. A pair is run
    unfused, module by module, whenever either module has hooks (they must see their own call).
    """

    def forward(self, input):
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            layer, activation = modules[i], modules[i + 1] if i + 1 < len(modules) else None
            fused = _FUSED.get(type(activation)) if type(layer) is Linear else None
            if fused is not None and not _has_hooks(layer) and not _has_hooks(activation):
                input = fused(input, layer.weight, layer.bias)
                i += 2
            else:
                input = layer(input)
                i += 1
        return input


_FUSED = {Sigmoid: F.linear_sigmoid, ReLU: F.linear_relu}


def _has_hooks(module):
    return bool(
        module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
        or module._backward_pre_hooks or torch_module._global_forward_hooks
        or torch_module._global_forward_pre_hooks or torch_module._global_backward_hooks
        or torch_module._global_backward_pre_hooks
    )


_REPLACEMENTS = {
    torch.nn.Linear: Linear,
    torch.nn.Sigmoid: Sigmoid,
    torch.nn.ReLU: ReLU,
    torch.nn.Dropout: Dropout,
    torch.nn.CrossEntropyLoss: CrossEntropyLoss,
    torch.nn.Sequential: Sequential,
}


def convert(module):
    """Make every ``torch.nn`` Linear, Sigmoid, ReLU, Dropout, CrossEntropyLoss and Sequential in
    ``module`` run handgrad.

    Works in place on any model (nested containers, custom modules, torchvision models) and returns
    it. Each matching module has its class switched to the handgrad subclass, which holds exactly
    the same state, so parameters, buffers, hooks, devices and any optimizer already holding the
    parameters are untouched. Only modules of exactly those classes are converted: a user's
    subclass with a forward of its own is left alone.
    """
    for submodule in module.modules():
        replacement = _REPLACEMENTS.get(type(submodule))
        if replacement is not None:
            submodule.__class__ = replacement
    return module
