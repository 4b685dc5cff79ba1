"""``python -m handgrad.zoo``: the zoos audited and compared, one line a model.

    python -m handgrad.zoo                         # timm's families and torchvision's models (tens of minutes)
    python -m handgrad.zoo --timm                  # timm's families only
    python -m handgrad.zoo --torchvision --only s3d
    python -m handgrad.zoo --families              # remake timm_families.json (every timm model built on meta)

Each line: the model, its parameters, whether every node of its graph is hand-derived (else the
built-in computing nodes left, by count), whether the converted model equals the built-in in float64
(output and every gradient), and the bytes the converted model keeps for backward over the built-in's.
A model is hand-derived when its audit on the meta device in training mode (at its own size) and its
comparison's audit (at the small size) hold no built-in computing node.
"""

import argparse
import collections
import json
import sys
import time

import torch


def result(name, parameters, audits, run_comparison):
    """One model's outcome as a dict: its audits' built-in nodes, and the comparison's (or its error)."""
    builtin = collections.Counter()
    for found in audits:
        builtin.update(found.builtin)
    entry = {"name": name, "parameters": parameters}
    try:
        comparison = run_comparison()
    except Exception as error:                  # noqa: BLE001 (reported on the model's line, the zoo goes on)
        entry.update(hand_derived=not builtin and all(a.hand for a in audits), builtin=dict(builtin),
                     equal=False, problems=[f"the comparison raised {type(error).__name__}: {error}"], kept=None)
        return entry
    builtin.update(comparison.audit.builtin)
    entry.update(hand_derived=not builtin and all(a.hand for a in (*audits, comparison.audit)), builtin=dict(builtin),
                 equal=comparison.equal, problems=comparison.problems(), kept=list(comparison.kept))
    return entry


def line(entry):
    """A result as one line."""
    left = ", ".join(f"{name} {n}" for name, n in sorted(entry["builtin"].items(), key=lambda item: -item[1]))
    hand = "yes" if entry["hand_derived"] else f"no ({left})" if left else "no"
    kept = entry["kept"]
    ratio = f"{kept[0] / kept[1]:.2f}" if kept and kept[1] else "-"
    equal = "yes" if entry["equal"] else "no: " + "; ".join(entry["problems"])[:300]
    return (f"{entry['name']:<52} {entry['parameters'] / 1e6:7.2f} M  hand-derived: {hand}  "
            f"equal in float64: {equal}  kept/built-in: {ratio}")


def run_timm(only):
    from handgrad.zoo import timm_models

    for family, spec in timm_models.FAMILIES.items():
        name = f"{family} ({spec['model']})"
        if "excluded" in spec or only and only not in (family, spec["model"]):
            continue
        found, parameters = timm_models.audit_family(family)

        yield result(name, parameters, [found], lambda family=family: timm_models.compare_family(family))


def run_torchvision(only):
    from handgrad.zoo import torchvision_models

    for name, spec in torchvision_models.MODELS.items():
        if only and only not in (name, name.split(" ")[0]):
            continue
        if spec.meta is None:
            audits, parameters = [], None
        else:
            found, parameters = torchvision_models.audit(name)
            audits = [found]
        entry = result(name, parameters or 0, audits, lambda name=name: torchvision_models.compare_model(name))
        if parameters is None:
            entry["parameters"] = sum(p.numel() for p in torchvision_models.MODELS[name].build(torch.float32)
                                      .parameters())
        yield entry


def families(log):
    """Remake ``timm_families.json``: each family's representative (every timm model built on the
    meta device), its small configuration, the Functions its audit on the meta device holds and the
    built-in computing nodes left (there and in its comparison), whether it equals the built-in in
    float64, the seconds all that takes, and the families CI compares: ``covering`` of the
    Functions, by those seconds."""
    from handgrad.zoo import timm_models

    table = timm_models.representatives()
    for family, entry in table.items():
        if "excluded" in entry:
            continue
        start = time.perf_counter()
        try:
            entry["kwargs"], entry["size"] = timm_models.small_build(entry["model"])
            timm_models.FAMILIES[family] = entry
            found, _ = timm_models.audit_family(family)
            entry["functions"] = sorted(found.hand)
            entry["builtin"] = dict(sorted(found.builtin.items()))
            comparison = timm_models.compare_family(family)
            entry["builtin_compared"] = dict(sorted(comparison.audit.builtin.items()))
            entry["equal"] = comparison.equal
            entry["seconds"] = round(time.perf_counter() - start, 1)
        except Exception as error:              # noqa: BLE001 (recorded in the table: the family's line says why)
            entry["error"] = f"{type(error).__name__}: {error}"[:500]
        log(f"{family} ({entry['model']}): {entry.get('seconds', entry.get('error'))}")
    compared = {f: e for f, e in table.items() if "functions" in e and "seconds" in e}
    chosen = timm_models.covering({f: set(e["functions"]) for f, e in compared.items()},
                                  {f: e["seconds"] for f, e in compared.items()})
    for family, entry in table.items():
        entry["ci"] = family in chosen
    timm_models.TABLE.write_text(json.dumps(table, indent=1) + "\n")
    log(f"{timm_models.TABLE}: {len(table)} families, {len(compared)} compared, CI compares {len(chosen)}: "
        f"{', '.join(chosen)}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m handgrad.zoo", description="The model zoos audited and compared, one line a model.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Each line: " + __doc__.split("Each line: ")[1])
    parser.add_argument("--timm", action="store_true", help="timm's families (one representative each)")
    parser.add_argument("--torchvision", action="store_true",
                        help="torchvision's segmentation, detection, video and optical-flow models")
    parser.add_argument("--only", metavar="NAME", help="one model: a timm family or model name, or a torchvision "
                        "model name (a detector's two modes, or 'NAME (train)')")
    parser.add_argument("--families", action="store_true",
                        help="remake handgrad/zoo/timm_families.json (every timm model built on the meta device, "
                        "every family compared: tens of minutes)")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH as JSON")
    args = parser.parse_args(argv)
    if args.families:
        if args.timm or args.torchvision or args.only or args.json:
            parser.error("--families takes no other option")
        families(lambda text: print(text, flush=True))
        return 0
    zoos = [zoo for zoo, wanted in ((run_timm, args.timm), (run_torchvision, args.torchvision)) if wanted] \
        or [run_timm, run_torchvision]
    results = []
    for zoo in zoos:
        for entry in zoo(args.only):
            print(line(entry), flush=True)
            results.append(entry)
    if args.only and not results:
        parser.error(f"--only {args.only}: no such model in the zoos asked for")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=1)
    return 0 if all(e["hand_derived"] and e["equal"] for e in results) else 1


if __name__ == "__main__":
    sys.exit(main())
