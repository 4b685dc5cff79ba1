"""Section 1: each op's forward + backward, ``handgrad.functional`` against its torch built-in, at the
sizes the op declares in the test database (``OpInfo.bench``). Section 9: each derivation's faster
form against its readable reference, in the ops that take it, at the same sizes."""

import torch

from handgrad.bench.timing import ms, paired, print_table
from handgrad.ops._function import FAST_FORMS, reference_forms
from handgrad.testing.graph import recording_fast_forms
from handgrad.testing.op_db import OP_DB


def _forward_backward(function, args, kwargs, grad_outputs):
    wrt = [t for t in args if isinstance(t, torch.Tensor) and t.requires_grad]

    def run():
        out = function(*args, **kwargs)
        outputs = [o for o in (out if isinstance(out, tuple) else (out,)) if isinstance(o, torch.Tensor) and o.requires_grad]
        torch.autograd.grad(outputs, wrt, grad_outputs(outputs))
    return run


def _upstream(device):
    cache = {}

    def grad_outputs(outputs):
        key = tuple((o.shape, o.dtype) for o in outputs)
        if key not in cache:                                 # drawn once, outside the timed calls
            cache[key] = [torch.randn(o.shape, dtype=o.dtype, device=device) for o in outputs]
        return cache[key]
    return grad_outputs


def bench_ops(device, mode, names=None):
    results = []
    for op in OP_DB.values():
        if op.bench is None or (names and op.name not in names):
            continue
        for size, args, kwargs in op.bench(device):
            grad_outputs = _upstream(device)
            hand = _forward_backward(op.called(op.function), args, kwargs, grad_outputs)
            builtin = _forward_backward(op.called(op.reference), args, kwargs, grad_outputs)
            hand(), builtin()                                # the upstream gradients are drawn here
            timing = paired(hand, builtin, device, mode["repeats"], mode["sample_s"])
            results.append({"op": op.name, "size": size} | timing)
    print_table(
        "1. Forward + backward per call (ms): handgrad.functional vs its torch built-in",
        ["op", "size", "hand", "torch", "hand/torch"],
        [[r["op"], r["size"], ms(r["hand_s"]), ms(r["torch_s"]), f"{r['ratio']:.2f}"] for r in results],
    )
    return results


def _with_reference_forms(run):
    def reference():
        with reference_forms():
            run()
    return reference


def bench_fast_forms(device, mode):
    """Forward + backward of every bench case that takes a faster form, with the faster form and with
    ``reference_forms()``, alternated as section 1 alternates hand and built-in."""
    results = []
    for formula in FAST_FORMS:
        for op in OP_DB.values():
            for size, args, kwargs in op.bench(device):
                fast = _forward_backward(op.called(op.function), args, kwargs, _upstream(device))
                with recording_fast_forms([formula]) as ran:
                    fast()                                   # also draws the upstream gradients
                if not ran:
                    continue
                timing = paired(fast, _with_reference_forms(fast), device, mode["repeats"], mode["sample_s"])
                results.append({"derivation": formula.__name__, "op": op.name, "size": size} | timing)
    print_table(
        "9. Faster forms (ms): forward + backward of the op with the derivation's faster form vs its reference",
        ["derivation", "op", "size", "faster", "reference", "faster/reference"],
        [[r["derivation"], r["op"], r["size"], ms(r["hand_s"]), ms(r["torch_s"]), f"{r['ratio']:.2f}"] for r in results],
    )
    return results
