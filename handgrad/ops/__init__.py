"""handgrad's ops, one module per family, each declaring its ops once (``handgrad.ops.OPS``).

A family module holds, for each of its ops: the ``torch.autograd.Function`` with the derivation
beside the code, the functional face (argument checks, reshaping, ``apply``), the forward of its
``torch.nn`` module, its NumPy oracle, its sample inputs, and the ``register(Op(...))`` that hands
all of them to ``handgrad.autograd``, ``handgrad.functional``, ``handgrad.nn``, the tests,
``handgrad-check``, the benchmark and the README's table of derivatives.
"""

# Each family module registers its ops on import; the order here is the order of the table of derivatives.
from handgrad.ops import activation, linear, dropout, softmax, loss, norm, embedding, conv, pool  # noqa: F401
from handgrad.ops._registry import OPS, Derivative, Op, derivative_table, register

__all__ = ["OPS", "Op", "Derivative", "register", "derivative_table"]
