"""Drop-in replacements for ``torch.nn.functional``: argument checks, reshaping, then ``.apply``.

Same signatures, results and gradients as the built-ins, for every input form they accept. Where
PyTorch's message for bad input is cryptic (or PyTorch computes something silently), these raise an
exception of the class PyTorch raises, with a message naming the argument, its shape, dtype or value
and what was expected. Under ``torch.autocast`` each casts its inputs as the built-in's policy does.

Each function is written in its op's family file (``handgrad.ops.<family>``); this module gathers
them by name from the registry (``handgrad.ops.OPS``).
"""

from handgrad.ops import _registry

globals().update(_registry.faces())
__all__ = list(_registry.faces())
