"""Policy selection by resource group, pattern and properties; opt-in/out; conflicts (pure)."""

from __future__ import annotations

from drbdbackup.linstor.selection import (
    PROP_EXCLUDE,
    PROP_POLICY,
    ResourceView,
    SelectionRule,
    select,
)

VMS = [ResourceView(f"pm-{i}", "proxmox", {"Aux/pm/vmid": str(100 + i)}) for i in range(3)]
PVCS = [ResourceView(f"pvc-{i}", "k8s", {"Aux/csi/ns": "prod" if i else "dev"}) for i in range(2)]
LOOSE = [ResourceView("legacy-db")]


def _names(sel, policy: str) -> list[str]:
    return [c.resource for c in sel.chosen[policy]]


def test_a_group_selects_every_resource_spawned_from_it_and_nothing_else() -> None:
    sel = select(VMS + PVCS + LOOSE, [SelectionRule("vms", resource_groups=("proxmox",))])
    assert _names(sel, "vms") == ["pm-0", "pm-1", "pm-2"]
    assert "spawned from resource group proxmox" in sel.chosen["vms"][0].reason
    assert {u.resource for u in sel.unprotected} == {"pvc-0", "pvc-1", "legacy-db"}
    assert all(u.reason == "no policy selects it" for u in sel.unprotected)


def test_a_new_resource_is_selected_on_the_next_pass() -> None:
    rule = [SelectionRule("vms", resource_groups=("proxmox",))]
    assert len(_names(select(VMS, rule), "vms")) == 3
    assert "pm-9" in _names(select([*VMS, ResourceView("pm-9", "proxmox")], rule), "vms")


def test_property_match_names_and_excludes() -> None:
    rules = [SelectionRule("prod", resource_groups=("k8s",), match={"Aux/csi/ns": "prod"}),
             SelectionRule("pattern", names=("pm-*",), exclude=("pm-2",))]
    sel = select(VMS + PVCS, rules)
    assert _names(sel, "prod") == ["pvc-1"] and "properties match Aux/csi/ns=prod" in sel.chosen["prod"][0].reason
    assert _names(sel, "pattern") == ["pm-0", "pm-1"]


def test_match_alone_selects_across_groups() -> None:
    sel = select(PVCS, [SelectionRule("dev", match={"Aux/csi/ns": "dev"})])
    assert _names(sel, "dev") == ["pvc-0"]


def test_opt_in_and_opt_out_properties_override_selection() -> None:
    res = [ResourceView("a", "proxmox", {PROP_POLICY: "db"}),
           ResourceView("b", "proxmox", {PROP_EXCLUDE: "true"}),
           ResourceView("c", "proxmox", {PROP_EXCLUDE: "true", PROP_POLICY: "db"}),
           ResourceView("d", "proxmox", {PROP_POLICY: "nosuch"})]
    sel = select(res, [SelectionRule("vms", resource_groups=("proxmox",)), SelectionRule("db")])
    assert _names(sel, "db") == ["a"] and _names(sel, "vms") == []
    why = {u.resource: u.reason for u in sel.unprotected}
    assert why["b"] == f"{PROP_EXCLUDE}=true"
    assert "exclude wins" in why["c"] and "names no policy" in why["d"]


def test_two_policies_first_in_file_order_wins_and_it_is_reported() -> None:
    rules = [SelectionRule("first", names=("pm-*",)), SelectionRule("second", resource_groups=("proxmox",))]
    sel = select(VMS, rules)
    assert _names(sel, "first") == ["pm-0", "pm-1", "pm-2"] and _names(sel, "second") == []
    assert len(sel.conflicts) == 3 and "first wins" in sel.conflicts[0]


def test_warnings_for_empty_selection_and_unknown_group() -> None:
    sel = select(VMS, [SelectionRule("x", resource_groups=("nosuch",)),
                       SelectionRule("y", match={"Aux/none": "1"})], known_groups={"proxmox"})
    assert any("resource group nosuch does not exist" in w for w in sel.warnings)
    assert any("policy y selects no resource" in w for w in sel.warnings)
