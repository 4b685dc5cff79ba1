"""timm's architecture families (``handgrad.zoo.timm_models``): every family's representative audited
on the meta device at its own size in training mode, dropout and stochastic depth on (those of 60 M
parameters or more too, which the zoo does not compare); the families of
``covering()`` (``"ci"`` in ``timm_families.json``: together they hold every Function any family's
audit holds) compared with the built-in in float64. ``python -m handgrad.zoo --timm`` compares every
family."""

import pytest

from handgrad.zoo import __main__ as cli
from handgrad.zoo import timm_models

# Families whose graph keeps built-in computing nodes: family → (those nodes by count, on the meta
# device in training mode, why). None: every family is hand-derived end to end. A family that
# regresses, or one listed here that is fixed, fails.
KNOWN_GAPS = {}

FAMILIES = [family for family, entry in timm_models.FAMILIES.items() if "excluded" not in entry]
COMPARED = timm_models.covered()
COMPARED_FUNCTIONS = set().union(*(timm_models.FAMILIES[family]["functions"] for family in COMPARED))


def test_timm_families_table_holds_every_family():
    assert set(timm_models.FAMILIES) == set(timm_models.family_names()), "timm_families.json is stale (--families)"
    assert FAMILIES and all(timm_models.FAMILIES[family].get("functions") for family in FAMILIES)
    assert all(entry["parameters"] >= timm_models.REPRESENTATIVE_LIMIT for family, entry in
               timm_models.FAMILIES.items() if family not in FAMILIES)
    assert set(KNOWN_GAPS) <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_timm_family_hand_derived_on_meta(family):
    found, parameters = timm_models.audit_family(family)
    entry = timm_models.FAMILIES[family]
    assert parameters == entry["parameters"] and found.hand, f"{family}: {found}"
    left, _ = KNOWN_GAPS.get(family, ({}, None))
    assert dict(found.builtin) == left, f"{family}: built-in computing nodes {dict(found.builtin)}, known {left}"
    # What CI compares in float64 holds every Function this family's graph holds.
    assert set(found.hand) <= COMPARED_FUNCTIONS, f"{family}: {set(found.hand) - COMPARED_FUNCTIONS} compared nowhere"
    if entry["ci"]:
        assert sorted(found.hand) == entry["functions"], f"{family}: timm_families.json is stale (--families)"


@pytest.mark.parametrize("family", [family for family in timm_models.FAMILIES if family not in FAMILIES])
def test_timm_large_family_hand_derived_on_meta(family):
    """The families whose smallest model has 60 M parameters or more: audited (on the meta device,
    for nothing), not compared."""
    found, parameters = timm_models.audit_family(family)
    assert parameters >= timm_models.REPRESENTATIVE_LIMIT and found.complete, f"{family}: {found}"


@pytest.mark.parametrize("family", COMPARED)
def test_timm_family_equals_builtin_in_float64(family):
    comparison = timm_models.compare_family(family)
    assert comparison.equal, f"{family}: " + "; ".join(comparison.problems())
    assert comparison.audit.complete or family in KNOWN_GAPS, f"{family}: {comparison.audit}"


def test_zoo_cli_prints_one_line_a_model(capsys):
    assert cli.main(["--timm", "--only", "starnet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("starnet (starnet_s050)"), out
    assert "hand-derived: yes" in out[0] and "equal in float64: yes" in out[0], out[0]


@pytest.mark.parametrize("argv", [["--timm", "--only", "no_such_model"], ["--families", "--timm"], ["--bogus"]])
def test_zoo_cli_refuses_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("python -m handgrad.zoo: error: ")
