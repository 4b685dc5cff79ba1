"""The test database: for every op of the registry (``handgrad.ops.OPS``), the cases that verify it,
as PyTorch keeps ``op_db`` apart from its ops. One module per op family, beside the family's
mathematics in ``handgrad.ops.<family>``: NumPy oracles, samples, bad inputs, module samples, bench
sizes and tolerances, in one ``OpInfo`` per op.

The tests, ``handgrad-check``, the benchmark and the documentation read ``OP_DB``; nothing here is
imported by ``import handgrad``.
"""

import importlib.util

from handgrad.ops import OPS, _registry
from handgrad.testing.op_db import (activation, attention, batch_norm, chain, classification, conv, distance, dropout,
                                    elementwise, embedding, head, indexing, linear, losses, norm, pad, pool, products,
                                    reductions, regression, resample, rnn, roi, softmax, special, transformer)
from handgrad.testing.op_db._common import OpInfo

_FAMILIES = (activation, linear, dropout, softmax, classification, regression, chain, head, norm, batch_norm, embedding,
             elementwise, pad, conv, pool, special, reductions, products, indexing, distance, losses, attention,
             transformer, rnn, resample, roi)


def _database():
    """name → OpInfo, in the registry's order; every registered op must have its entry: handgrad's in
    its family's module, one registered with ``handgrad.register_function`` from its own cases."""
    infos = {info.name: info for family in _FAMILIES for info in family.OP_INFOS}
    infos.update({name: OpInfo(name, **cases) for name, cases in _registry.CASES.items()})
    missing = [name for name in OPS if name not in infos]
    if missing:
        raise LookupError(f"the test database has no cases for the registered op(s) {missing}: add an OpInfo to "
                          f"handgrad/testing/op_db/<family>.py, beside the family's mathematics")
    unknown = sorted(set(infos) - set(OPS))
    if unknown:
        raise LookupError(f"the test database has cases for {unknown}, which no family registers")
    return {name: infos[name] for name in OPS}


OP_DB = _database()


def _follow(name):
    """Keep OP_DB the registry's after ``register_function`` or ``unregister``."""
    OP_DB.clear()
    OP_DB.update(_database())


_registry.ON_REGISTER.append(_follow)


def module_samples():
    """(torch.nn class, ModuleSample) for every module of every op; a class named by its import path
    (torchvision's) where its package is installed, which this imports."""
    return [(_registry.module_class(key), sample) for info in OP_DB.values() for key, samples in info.modules.items()
            if not isinstance(key, str) or importlib.util.find_spec(key.partition(".")[0]) is not None
            for sample in samples]


__all__ = ["OP_DB", "OpInfo", "module_samples"]
