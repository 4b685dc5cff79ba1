"""timm's architecture families, one representative each.

A family is the first word of a model's name, after any prefix naming where its weights come from,
without the size that follows (``timm_family``): resnet50d and resnet10t are resnets, convnextv2_atto a
convnextv2, tf_efficientnet_b0 an efficientnet (TensorFlow's padding, the same architecture),
sam2_hiera_tiny a sam. timm's own test configurations (``test_vit``, ...) are left out: they are small
members of families already counted. Each family's representative is its smallest model by
parameters (counted on the meta device), kept where that is under 60 M parameters
(``REPRESENTATIVE_LIMIT``).

``FAMILIES`` (``timm_families.json``, made by ``python -m handgrad.zoo --families``, minutes: every
model of timm built on the meta device) holds each family's representative, its parameter count,
the timm module its entrypoint lives in, how it is built for a comparison in float64 at a small
input (``kwargs``, ``size``), the Functions its audited graph holds (``functions``), the built-in
computing nodes left (``builtin`` on the meta device, ``builtin_compared`` in the comparison), whether
it equals the built-in in float64 (``equal``), the seconds those took (``seconds``) and whether CI
compares it (``ci``).
"""

import json
import re
from pathlib import Path

import torch

from handgrad.zoo import audit_on_meta, call, compare

REPRESENTATIVE_LIMIT = 60_000_000

# Prefixes that name where a model's weights come from, not an architecture.
WEIGHT_SOURCES = ("tf", "tv", "gluon", "ssl", "swsl", "ig", "adv", "ens", "legacy", "jx", "dm")

TABLE = Path(__file__).with_name("timm_families.json")
FAMILIES = json.loads(TABLE.read_text()) if TABLE.exists() else {}

# Batch norm in training mode normalises over the few values a 64 × 64 image leaves its last stages
# (2 × 2 per channel): its gradients there are cancellation noise, 1e-9 relative apart between any two
# correct computations. Every family is therefore compared in eval mode (batch norms with their
# running statistics, dropout off); training mode is audited on the meta device for every family,
# with dropout and stochastic depth on.
DROP = dict(drop_rate=0.1, drop_path_rate=0.1)


def timm_family(name):
    """A timm model name's family: its first word, after the prefixes of ``WEIGHT_SOURCES``, up to
    its first digit but a version ``v<n>`` (resnet50d → resnet, ghostnetv3_050 → ghostnetv3,
    ens_adv_inception_resnet_v2 → inception)."""
    words = name.split("_")
    while words[0] in WEIGHT_SOURCES:
        words = words[1:]
    return re.match(r"[a-z]+?(?:v\d+)?(?=[^a-z]|$)", words[0]).group(0)


def timm_models():
    """Every model timm registers, but its test configurations."""
    import timm

    return [name for name in timm.list_models() if not name.startswith("test_")]


def family_names():
    """family → its models' names, from timm's registry (names only, nothing built)."""
    families = {}
    for name in timm_models():
        families.setdefault(timm_family(name), []).append(name)
    return families


def parameters_on_meta(name):
    """The parameter count of timm's ``name``, built on the meta device."""
    import timm

    with torch.device("meta"):
        return sum(p.numel() for p in timm.create_model(name).parameters())


def representatives(progress=None):
    """family → {model, parameters, module}: each family's smallest model (fewest parameters, then a
    name without a weight-source prefix, then the name), every model of timm built on the meta device.
    Families whose smallest model has ``REPRESENTATIVE_LIMIT`` parameters or more are included,
    marked ``"excluded"``."""
    from timm.models._registry import _model_to_module

    found = {}
    for family, names in family_names().items():
        counted = []
        for name in names:
            counted.append((parameters_on_meta(name), name.split("_")[0] in WEIGHT_SOURCES, name))
            if progress:
                progress(name)
        params, _, name = min(counted)
        found[family] = {"model": name, "parameters": params, "module": _model_to_module[name]}
        if params >= REPRESENTATIVE_LIMIT:
            found[family]["excluded"] = f"its smallest model, {name}, has {params / 1e6:.1f} M parameters"
    return dict(sorted(found.items()))


def small_build(name):
    """How to build ``name`` for a comparison in float64: (keyword arguments, image size), the first of
    these that runs: an image size of 64 given to the model (its position tables made for it), a
    64 × 64 image without it, the image size the model is made for."""
    import timm

    for kwargs, size in (({"img_size": 64}, 64), ({}, 64), ({}, None)):
        try:
            model = timm.create_model(name, num_classes=10, **kwargs).eval()
            size = size or model.pretrained_cfg["input_size"][-1]
            with torch.no_grad():
                model(torch.randn(1, 3, size, size))
            return kwargs, size
        except Exception:                       # noqa: BLE001 (a model refuses in many ways: the next form)
            continue
    raise RuntimeError(f"{name}: no small configuration runs")


def build(family, dtype=torch.float64):
    """The family's representative as compared: random weights (seed 0), 10 classes, its small
    configuration, in ``dtype``, in eval mode. Returns (model, input shape)."""
    import timm

    entry = FAMILIES[family]
    torch.manual_seed(0)
    model = timm.create_model(entry["model"], num_classes=10, **entry["kwargs"]).to(dtype).eval()
    return model, (2, 3, entry["size"], entry["size"])


def compare_family(family):
    """The family's representative as built by ``build`` compared with its converted copy in float64
    on two random images (``handgrad.zoo.compare``)."""
    model, shape = build(family)
    torch.manual_seed(1)
    return compare(model, [torch.randn(shape, dtype=torch.float64)])


def audit_family(family):
    """The family's representative built on the meta device as timm makes it (its own image size), in
    training mode with dropout and stochastic depth on where it takes them: (audit, parameters)."""
    import timm

    name = FAMILIES[family]["model"]

    def make():
        try:
            return timm.create_model(name, **DROP)
        except TypeError:                       # a model without drop_rate or drop_path_rate
            return timm.create_model(name)

    with torch.device("meta"):
        size = timm.create_model(name).pretrained_cfg["input_size"]
    return audit_on_meta(make, [(2, *size)], call)


def covering(functions, cost):
    """The families whose audited graphs hold, together, every Function any family's holds: greedily,
    the family adding the most Functions not yet held per second of comparison first."""
    needed = set().union(*functions.values())
    chosen = []
    while needed:
        family = max(functions, key=lambda f: (len(functions[f] & needed) / max(cost[f], 0.1), f))
        chosen.append(family)
        needed -= functions[family]
    return sorted(chosen)


def covered():
    """The families CI compares in float64 (``"ci"`` in the table)."""
    return [family for family, entry in FAMILIES.items() if entry.get("ci")]
