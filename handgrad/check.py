"""``python -m handgrad.check`` (or ``handgrad-check``): verify every hand Function here and now.

For every op of the registry (``handgrad.ops.OPS``), on every available device, over all its sample
inputs from the test database (``handgrad.testing.op_db``): ``handgrad.testing.verify`` against the
torch built-in and the NumPy oracle in every dtype, gradcheck and gradgradcheck (forward mode
included), vmap, torch.compile, non-contiguous inputs, ``needs_input_grad``, the hand-derived
guarantee (backward and double backward) and autocast. Each op is reported on stderr as it is done
(a minute or two for all of them on two cores); then one row per op/device/dtype with the largest
errors seen, every failure and a summary; the exit status is 1 if anything failed. ``--json``
prints the same as JSON.
"""

import argparse
import json
import sys
import time
import warnings

from handgrad import testing
from handgrad.testing.op_db import OP_DB


def run_checks(ops=None, devices=None, checks=testing.CHECKS, progress=None):
    """``testing.verify`` of each op (default: every op), on its samples drawn from a fixed seed;
    ``progress(line)`` is told of each op as it is done."""
    names = list(ops or OP_DB)
    reports = []
    for i, name in enumerate(names, 1):
        start = time.perf_counter()
        reports.append(OP_DB[name].verify(devices, checks))
        if progress is not None:
            verdict = "passed" if reports[-1].passed else "FAILED"
            progress(f"handgrad-check: {name} {verdict} ({i}/{len(names)}, {time.perf_counter() - start:.0f} s)")
    return reports


def main(argv=None):
    # torch's own forward-mode decompositions warn about torch.jit.script when first imported.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=FutureWarning)
    parser = argparse.ArgumentParser(prog="handgrad-check", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--op", choices=list(OP_DB), action="append", metavar="OP",
                        help=f"check only this op (repeatable): {', '.join(OP_DB)}")
    parser.add_argument("--device", action="append", help="check only on this device (repeatable)")
    parser.add_argument("--check", choices=testing.CHECKS, action="append", metavar="CHECK",
                        help=f"run only this check (repeatable): {', '.join(testing.CHECKS)}")
    args = parser.parse_args(argv)
    for device in args.device or []:
        if device not in testing.available_devices():
            parser.error(f"device {device!r} is not available here (available: "
                         f"{', '.join(testing.available_devices())})")
    reports = run_checks(args.op, args.device, tuple(args.check or testing.CHECKS),
                         progress=lambda line: print(line, file=sys.stderr, flush=True))
    ok = all(report.passed for report in reports)
    if args.json:
        print(json.dumps({"reports": [r.to_dict() for r in reports], "ok": ok, "summary": testing.summary(reports)},
                         indent=2, default=str))
    else:
        print(testing.format_table(reports))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
