"""``python -m handgrad.check`` (or ``handgrad-check``): verify every hand Function here and now.

For each Function, on every available device and dtype, over every input form in
``handgrad.testing.CASES``: gradcheck and gradgradcheck (float64, forward mode included), output and
gradients against the torch built-in, and against the NumPy reference. One row per
function/device/dtype with the largest errors seen, then a summary; the exit status is 1 if
anything failed. ``--json`` prints the same as JSON.
"""

import argparse
import json
import sys
import warnings

import torch

from handgrad import testing

_OPS = tuple(dict.fromkeys(c.op for c in testing.CASES))


def _worst(diffs):
    return {
        "max_abs": max((d.max_abs for d in diffs), default=0.0),
        "max_rel": max((d.max_rel for d in diffs), default=0.0),
        "ok": all(d.ok for d in diffs),
        "failures": [str(d) for d in diffs if not d.ok],
    }


def check_row(op, device, dtype):
    """Everything checked for one function on one device in one dtype."""
    row = {"function": op, "device": device, "dtype": str(dtype).removeprefix("torch."), "forms": 0, "failures": []}
    builtin, ref = [], []
    gradchecks = [] if dtype == torch.float64 else None
    for case in testing.cases(op):
        if dtype not in testing.case_dtypes(case):
            continue
        row["forms"] += 1
        if testing.builtin_supports(case, dtype, device):
            diffs = testing.compare_with_builtin(case, dtype, device)
            builtin += diffs
            row["failures"] += [f"{case.form}: vs torch {d}" for d in diffs if not d.ok]
        diffs = testing.compare_with_reference(case, dtype, device)
        ref += diffs
        row["failures"] += [f"{case.form}: vs NumPy {d}" for d in diffs if not d.ok]
        if gradchecks is not None and case.differentiable:
            first, second = testing.gradchecks(case, device)
            gradchecks.append((first, second))
            for name, result in (("gradcheck", first), ("gradgradcheck", second)):
                if result is not True:
                    row["failures"].append(f"{case.form}: {name} {result.splitlines()[0]}")
    row["vs_torch"] = _worst(builtin) if builtin else None
    row["vs_numpy"] = _worst(ref)
    if gradchecks is not None:
        row["gradcheck"] = all(first is True for first, _ in gradchecks)
        row["gradgradcheck"] = all(second is True for _, second in gradchecks)
    row["ok"] = not row["failures"]
    return row


def run_checks(ops=_OPS, devices=None):
    rows = []
    for op in ops:
        for device in devices or testing.devices():
            for dtype in testing.DTYPES:
                rows.append(check_row(op, device, dtype))
    return rows


def _errors(result):
    return "n/a" if result is None else f"{result['max_abs']:.1e} / {result['max_rel']:.1e}"


def format_table(rows):
    header = ["function", "device", "dtype", "forms", "gradcheck", "gradgradcheck", "vs torch abs / rel",
              "vs NumPy abs / rel", "result"]
    lines = []
    for r in rows:
        lines.append([
            r["function"], r["device"], r["dtype"], str(r["forms"]),
            {True: "pass", False: "FAIL", None: "-"}[r.get("gradcheck")],
            {True: "pass", False: "FAIL", None: "-"}[r.get("gradgradcheck")],
            _errors(r["vs_torch"]), _errors(r["vs_numpy"]), "pass" if r["ok"] else "FAIL",
        ])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines]
    for r in rows:
        for failure in r["failures"]:
            out.append(f"FAIL {r['function']} {r['device']} {r['dtype']}: {failure}")
    return "\n".join(out)


def summary(rows):
    failed = [r for r in rows if not r["ok"]]
    devices = sorted({r["device"] for r in rows})
    checked = sum(r["forms"] for r in rows)
    verdict = "all passed" if not failed else f"{len(failed)} of {len(rows)} rows FAILED"
    return f"{verdict}: {len(rows)} rows, {checked} form checks, devices: {', '.join(devices)}"


def main(argv=None):
    # torch's own forward-mode decompositions warn about torch.jit.script when first imported.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=FutureWarning)
    parser = argparse.ArgumentParser(prog="handgrad-check", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--op", choices=_OPS, action="append", help="check only this function (repeatable)")
    parser.add_argument("--device", action="append", help="check only on this device (repeatable)")
    args = parser.parse_args(argv)
    for device in args.device or []:
        if device not in testing.devices():
            parser.error(f"device {device!r} is not available here (available: {', '.join(testing.devices())})")
    rows = run_checks(tuple(args.op or _OPS), args.device)
    ok = all(r["ok"] for r in rows)
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary(rows), "ok": ok}, indent=2))
    else:
        print(format_table(rows))
        print(summary(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
