"""What ``verify`` found, as ``Report``: one ``Outcome`` per check, sample, device and dtype, gathered
into rows (one per device and dtype) whose columns are the table of checks, printed as text
(``handgrad-check``) or Markdown (the documentation's verification tables)."""

import dataclasses
import math
import re

import torch

from handgrad.testing.checks import TABLE, Result
from handgrad.testing.compare import DTYPES

CHECK_ORDER = {check.name: i for i, check in enumerate(TABLE)}
# Which input a failed gradcheck names ("Jacobian mismatch for output 0 with respect to input 1").
_GRADCHECK_INPUT = re.compile(r"with respect to input (\d+)")


def _dtype(dtype):
    return str(dtype).removeprefix("torch.")


def _subject(outcome):
    """What a failure is about: the first tensor that differs ("gradient of input 0"), the input a
    failed gradcheck names, or else the failure itself."""
    bad = next((d for d in outcome.diffs if not d.ok), None)
    if bad is not None:
        return re.split(r" differs| dtype differs| has shape| is missing| is None|: NaN", bad.name)[0]
    if outcome.check == "gradcheck":
        found = _GRADCHECK_INPUT.search(outcome.detail)
        if found:
            return f"gradient of input {found.group(1)}"
    return outcome.detail


@dataclasses.dataclass
class Outcome:
    """The ``Result`` of one check on one sample, on one device, in one dtype."""

    check: str
    sample: str
    device: str
    dtype: torch.dtype
    result: Result

    @property
    def status(self):
        return self.result.status

    @property
    def detail(self):
        return self.result.detail

    @property
    def diffs(self):
        return self.result.diffs


class Report:
    """What ``verify`` found: ``passed``, ``failures``, ``advice`` (legal, worth changing, failing
    nothing), ``rows`` (one per device and dtype), and a table when printed (``str(report)``), the
    same one ``handgrad-check`` prints."""

    def __init__(self, name, outcomes, problems):
        self.name = name
        self.outcomes = outcomes
        self.problems = problems

    @property
    def failures(self):
        """One sentence per failure, said once: the outcomes that fail on the same tensor of the same
        sample (a wrong gradient fails the comparison in every dtype, gradcheck, strided, autocast)
        are one line, the first of them in full and the others named after it."""
        found = list(self.problems)
        groups = {}
        for o in (o for o in self.outcomes if o.status == "FAIL"):
            groups.setdefault((o.device, o.sample, _subject(o)), []).append(o)
        for group in groups.values():
            group.sort(key=lambda o: (CHECK_ORDER[o.check], DTYPES.index(o.dtype) if o.dtype in DTYPES else 0))
            first, *others = group
            line = f"{self.name} {first.device} {_dtype(first.dtype)} [{first.sample}]: {first.check}: {first.detail}"
            if others:
                also = {}
                for o in others:
                    also.setdefault(o.check, []).append(_dtype(o.dtype))
                named = [check if check not in ("reference", "numpy", "autocast") else f"{check} in {', '.join(d)}"
                         for check, d in also.items()]
                line += f" (also failed: {'; '.join(named)})"
            found.append(line)
        return found

    @property
    def advice(self):
        """What is legal but worth changing (it fails nothing), once each."""
        return list(dict.fromkeys(f"{self.name} [{o.sample}]: {o.check}: {o.result.advice}"
                                  for o in self.outcomes if o.result.advice))

    @property
    def passed(self):
        return not self.problems and bool(self.outcomes) and all(o.status != "FAIL" for o in self.outcomes)

    def __bool__(self):
        return self.passed

    @property
    def rows(self):
        """One dict per device and dtype: function, device, dtype, the number of samples, and for each
        check a cell (status, the largest differences, how many outcomes counted) or None; ok."""
        rows = {}
        for o in self.outcomes:
            row = rows.setdefault((o.device, o.dtype), {"function": self.name, "device": o.device,
                                                        "dtype": str(o.dtype).removeprefix("torch."),
                                                        "samples": set(), **{c.name: None for c in TABLE}})
            row["samples"].add(o.sample)
            cell = row[o.check] or {"status": "n/a", "max_abs": 0.0, "max_rel": None, "count": 0}
            if o.status == "FAIL" or (o.status == "pass" and cell["status"] == "n/a"):
                cell["status"] = o.status
            if o.status != "n/a":
                cell["count"] += 1
            for d in o.diffs:
                if math.isfinite(d.max_abs):
                    cell["max_abs"] = max(cell["max_abs"], d.max_abs)
                if d.max_rel is not None and math.isfinite(d.max_rel):
                    cell["max_rel"] = max(cell["max_rel"] or 0.0, d.max_rel)
            row[o.check] = cell
        out = []
        for (device, dtype), row in sorted(rows.items(), key=lambda kv: (kv[0][0], DTYPES.index(kv[0][1]))):
            row["samples"] = len(row["samples"])
            row["ok"] = all(row[c.name] is None or row[c.name]["status"] != "FAIL" for c in TABLE)
            out.append(row)
        return out

    def to_dict(self):
        return {"function": self.name, "passed": self.passed, "rows": self.rows, "failures": self.failures,
                "advice": self.advice}

    def __str__(self):
        return format_table([self])

    __repr__ = __str__


def _cells(row, fail="FAIL"):
    """The row's cells, in the table's order: '-' for nothing checked, the largest differences of a
    passing comparison, 'pass', or ``fail``."""
    cells = []
    for check in TABLE:
        cell = row[check.name]
        if cell is None or cell["status"] == "n/a":
            cells.append("-")
        elif cell["status"] == "FAIL":
            cells.append(fail)
        else:
            rel = "-" if cell["max_rel"] is None else f"{cell['max_rel']:.1e}"
            cells.append(f"{cell['max_abs']:.1e} / {rel}" if check.numeric else "pass")
    return cells


HEADER = ["function", "device", "dtype", "samples", *(c.header for c in TABLE), "result"]


def format_table(reports):
    """One line per function/device/dtype, then every failure, then a one-line summary."""
    rows = [row for report in reports for row in report.rows]
    failures = [failure for report in reports for failure in report.failures]
    lines = [[r["function"], r["device"], r["dtype"], str(r["samples"]), *_cells(r), "pass" if r["ok"] else "FAIL"]
             for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(HEADER)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [fmt(HEADER), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines]
    out += [f"FAIL {f}" for f in failures]
    out += [f"NOTE {a}" for report in reports for a in report.advice]
    out.append(summary(reports))
    return "\n".join(out)


def format_markdown(reports):
    """The same table as Markdown (the documentation's verification tables), without the failures."""
    lines = ["| " + " | ".join(HEADER) + " |", "| --- " * len(HEADER) + "|"]
    for r in (row for report in reports for row in report.rows):
        cells = [f"`{r['function']}`", r["device"], r["dtype"], str(r["samples"]), *_cells(r, "**FAIL**"),
                 "pass" if r["ok"] else "**FAIL**"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(reports):
    rows = [row for report in reports for row in report.rows]
    failures = [failure for report in reports for failure in report.failures]
    checked = sum(1 for report in reports for o in report.outcomes if o.status != "n/a")
    devices_seen = sorted({r["device"] for r in rows})
    verdict = "all passed" if not failures and rows else f"FAILED ({len(failures)} failures)"
    if not rows and not failures:
        verdict = "FAILED (nothing was verified)"
    return f"{verdict}: {len(rows)} rows, {checked} checks, devices: {', '.join(devices_seen) or 'none'}"
