"""handgrad's ops, one module per family, each declaring its ops once (``handgrad.ops.OPS``).

A family module holds, for each of its ops, the mathematics and its faces: the
``torch.autograd.Function`` with the derivation beside the code, the functional face (argument
checks, reshaping, ``apply``), the forward of its ``torch.nn`` module, and the ``register(Op(...))``
that hands them to ``handgrad.autograd``, ``handgrad.functional``, ``handgrad.nn`` and the README's
table of derivatives. Its test cases (samples, NumPy oracle, bad inputs, bench sizes) are the test
database's, ``handgrad.testing.op_db.<family>``.
"""

# Each family module registers its ops on import; the order here is the order of the table of derivatives.
# The elementwise rules come before the poolings, which compose lp_pool from them.
from handgrad.ops import activation, linear, dropout, softmax, classification, regression, chain, head  # noqa: F401
from handgrad.ops import norm, batch_norm, embedding, elementwise, pad, conv, pool  # noqa: F401
from handgrad.ops import special, reductions, products, indexing, distance, losses  # noqa: F401
from handgrad.ops import attention, transformer, rnn  # noqa: F401
from handgrad.ops import resample, roi  # noqa: F401
from handgrad.ops._registry import OPS, Derivative, Op, derivative_table, register, register_function, unregister

__all__ = ["OPS", "Op", "Derivative", "register", "register_function", "unregister", "derivative_table"]
