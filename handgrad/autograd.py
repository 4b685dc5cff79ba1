"""The derivations as code: every hand-derived ``torch.autograd.Function`` of handgrad.

Each Function is written in its family file (``handgrad.ops.linear``, ``handgrad.ops.activation``,
...) as forward + ``setup_context`` + a hand-written ``backward`` (and ``jvp``, forward mode), with
the derivation beside the code in the seed's notation: x a layer's input, W its weight (out, in),
b its bias, z a pre-activation, y an output and g = dL/dy the gradient arriving from above. Every
backward is plain tensor arithmetic, never the built-in op's autograd or a ``*_backward`` kernel,
so it is itself differentiable: double backward and ``torch.func`` work through it.

This module gathers them by name from the registry (``handgrad.ops.OPS``).
"""

from handgrad.ops import _registry

globals().update(_registry.functions())
__all__ = sorted(_registry.functions())
