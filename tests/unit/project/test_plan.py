"""The plan `up` prints and applies: a pure function of the recorded spec, the
new one and the machines Vagrant has. Each case checks which machines change
and how, because a wrong action destroys a machine or skips a needed one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labctl.lab.spec import LabSpec
from labctl.project import plan

from ..labs import from_text, topology

THREE = "machines:\n  va: {}\n  vb: {}\n  vc: {}\n"


def _spec(text: str, existing: LabSpec | None = None, **kw: Any) -> LabSpec:
    return from_text(text, existing=existing, **kw).spec


def _actions(steps: list[plan.Step]) -> dict[str, str]:
    return {s.machine: s.action for s in steps}


def _by_name(steps: list[plan.Step]) -> dict[str, plan.Step]:
    return {s.machine: s for s in steps}


def test_new_lab_adds_every_machine() -> None:
    spec = topology("jenkins", agents=2)
    steps = plan.make(None, spec, set())
    assert _actions(steps) == {"server": "add", "agent1": "add", "agent2": "add"}
    assert all(s.reasons == ("new machine",) and s.changes for s in steps)


@pytest.mark.parametrize("provider", ["docker", "libvirt"])
def test_unchanged_lab_keeps_everything(provider: str) -> None:
    old = topology("mysql-pair", provider, replicas=2, chain=True)
    new = topology("mysql-pair", provider, existing=old, replicas=2, chain=True)
    steps = plan.make(old, new, set(old.machine_names()))
    assert _actions(steps) == {"primary": "keep", "replica1": "keep", "replica2": "keep"}
    assert not any(s.changes or s.reasons or s.provision for s in steps)


def test_one_added_one_removed_others_kept() -> None:
    old = _spec(THREE)
    new = _spec("machines:\n  va: {}\n  vc: {}\n  vd: {}\n", existing=old)
    steps = _by_name(plan.make(old, new, {"va", "vb", "vc"}))
    assert {n: s.action for n, s in steps.items()} == {
        "va": "keep",
        "vb": "remove",
        "vc": "keep",
        "vd": "add",
    }
    assert steps["vb"].reasons == ("gone from the lab file",)
    assert steps["vd"].reasons == ("new machine",)


def test_adding_a_machine_does_not_reprovision_the_others() -> None:
    """Every machine's LAB_HOSTS grows with a new machine; that alone must not
    provision the running ones again."""
    old = _spec(THREE)
    new = _spec(THREE + "  vd: {}\n", existing=old)

    def hosts(spec: LabSpec, name: str) -> str:
        (common,) = [p for p in spec.machine(name).provisioners if p.name == "common"]
        return common.env["LAB_HOSTS"]

    assert hosts(old, "va") != hosts(new, "va")
    assert "=vd" in hosts(new, "va")
    assert _actions(plan.make(old, new, {"va", "vb", "vc"})) == {
        "va": "keep",
        "vb": "keep",
        "vc": "keep",
        "vd": "add",
    }


def test_adding_an_agent_reprovisions_only_the_controller() -> None:
    """The controller lists its agents (JENKINS_AGENTS); the other agents are
    untouched."""
    old = topology("jenkins", agents=1)
    new = topology("jenkins", existing=old, agents=2)
    steps = _by_name(plan.make(old, new, set(old.machine_names())))
    assert {n: s.action for n, s in steps.items()} == {
        "server": "provision",
        "agent1": "keep",
        "agent2": "add",
    }
    assert steps["server"].reasons == ("provisioners changed: jenkins",)


@pytest.mark.parametrize(
    ("change", "reason"),
    [("cpus: 4", "cpus 2 -> 4"), ("memory: 2048", "memory 1024 -> 2048")],
)
def test_docker_resources_recreate(change: str, reason: str) -> None:
    """A container's resources are fixed when it is created."""
    old = _spec(THREE)
    new = _spec(THREE.replace("vb: {}", f"vb: {{{change}}}"), existing=old)
    steps = _by_name(plan.make(old, new, {"va", "vb", "vc"}))
    assert {n: s.action for n, s in steps.items()} == {"va": "keep", "vb": "recreate", "vc": "keep"}
    assert steps["vb"].reasons == (reason,)


@pytest.mark.parametrize(
    ("change", "reason"),
    [("cpus: 4", "cpus 2 -> 4"), ("memory: 2048", "memory 1024 -> 2048")],
)
def test_libvirt_resources_reload(change: str, reason: str) -> None:
    """A VM keeps its disk: new cpus or memory need a reload, not a new machine."""
    old = _spec(THREE, provider="libvirt")
    new = _spec(THREE.replace("vb: {}", f"vb: {{{change}}}"), existing=old, provider="libvirt")
    steps = _by_name(plan.make(old, new, {"va", "vb", "vc"}))
    assert {n: s.action for n, s in steps.items()} == {"va": "keep", "vb": "reload", "vc": "keep"}
    assert steps["vb"].reasons == (reason,)
    assert steps["vb"].provision is False


def test_libvirt_reload_with_provision_when_roles_change_too() -> None:
    old = _spec(THREE, provider="libvirt")
    new = _spec(
        THREE.replace("vb: {}", "vb: {cpus: 4, roles: [containerd]}"),
        existing=old,
        provider="libvirt",
    )
    step = _by_name(plan.make(old, new, {"va", "vb", "vc"}))["vb"]
    assert (step.action, step.provision) == ("reload", True)
    assert step.reasons == ("cpus 2 -> 4", "roles (none) -> containerd")


def test_ports_reload_a_vm_and_recreate_a_container() -> None:
    text = THREE.replace("vb: {}", "vb: {ports: [{guest: 80, host: 8080}]}")
    for provider, action in (("libvirt", "reload"), ("docker", "recreate")):
        old = _spec(THREE, provider=provider)
        new = _spec(text, existing=old, provider=provider)
        step = _by_name(plan.make(old, new, {"va", "vb", "vc"}))["vb"]
        assert (step.action, step.reasons) == (action, ("forwarded ports",)), provider


@pytest.mark.parametrize("provider", ["docker", "libvirt"])
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("box: other/box", "box {box} -> other/box"),
        ("ip: 50", "ip 10.1.2.11 -> 10.1.2.50"),
        ("hostname: bee", "hostname vb -> bee"),
    ],
)
def test_box_address_or_hostname_recreate(provider: str, change: str, reason: str) -> None:
    old = _spec(THREE, provider=provider)
    new = _spec(THREE.replace("vb: {}", f"vb: {{{change}}}"), existing=old, provider=provider)
    steps = _by_name(plan.make(old, new, {"va", "vb", "vc"}))
    assert steps["vb"].action == "recreate"
    assert steps["vb"].reasons[0] == reason.format(box=old.box)
    # a new address or name reaches the others' /etc/hosts; a new box does not
    others = "keep" if change.startswith("box") else "provision"
    assert steps["va"].action == steps["vc"].action == others


@pytest.mark.parametrize("provider", ["docker", "libvirt"])
def test_roles_changed_provision(provider: str) -> None:
    old = _spec(THREE, provider=provider)
    new = _spec(
        THREE.replace("vc: {}", "vc: {roles: [containerd]}"), existing=old, provider=provider
    )
    steps = _by_name(plan.make(old, new, {"va", "vb", "vc"}))
    assert {n: s.action for n, s in steps.items()} == {
        "va": "keep",
        "vb": "keep",
        "vc": "provision",
    }
    assert steps["vc"].reasons == ("roles (none) -> containerd",)
    assert steps["vc"].provision is True


def test_changed_script_provisions_only_the_machines_that_run_it(tmp_path: Path) -> None:
    script = tmp_path / "setup.sh"
    script.write_text("echo one\n")
    text = (
        "machines:\n"
        "  app:\n    count: 2\n    provision: [setup.sh]\n"
        "  sql:\n    roles: [mysql-primary]\n"
    )
    old = from_text(text, base_dir=tmp_path).spec
    script.write_text("echo two\n")
    new = from_text(text, base_dir=tmp_path, existing=old).spec
    steps = _by_name(plan.make(old, new, {"app1", "app2", "sql"}))
    assert {n: s.action for n, s in steps.items()} == {
        "app1": "provision",
        "app2": "provision",
        "sql": "keep",
    }
    assert steps["app1"].reasons == ("provisioners changed: script:setup.sh",)


def test_machine_recorded_but_not_created_is_added() -> None:
    """A machine whose `vagrant up` never finished is brought up again."""
    old = _spec(THREE)
    steps = _by_name(plan.make(old, old, {"va", "vc"}))
    assert (steps["vb"].action, steps["vb"].reasons) == ("add", ("not created yet",))
    assert steps["va"].action == steps["vc"].action == "keep"


def test_removed_machine_that_was_never_created() -> None:
    old = _spec(THREE)
    new = _spec("machines:\n  va: {}\n  vc: {}\n", existing=old)
    step = _by_name(plan.make(old, new, {"va", "vc"}))["vb"]
    assert (step.action, step.reasons) == ("remove", ("gone (never created)",))


def test_steps_are_ordered_as_applied() -> None:
    """Removed and recreated machines go first (freeing names and addresses),
    then new ones, reloads, provisioning, and the untouched last."""
    old = _spec("machines:\n  k: {}\n  p: {}\n  l: {}\n  r: {}\n  x: {}\n", provider="libvirt")
    new = _spec(
        "machines:\n  k: {}\n  p: {roles: [containerd]}\n  l: {cpus: 3}\n"
        "  r: {box: other/box}\n  n: {}\n",
        existing=old,
        provider="libvirt",
    )
    steps = plan.make(old, new, set(old.machine_names()))
    assert [(s.action, s.machine) for s in steps] == [
        ("remove", "x"),
        ("recreate", "r"),
        ("add", "n"),
        ("reload", "l"),
        ("provision", "p"),
        ("keep", "k"),
    ]
    assert [s.action for s in steps] == list(plan.ACTIONS)


def test_as_rows_shape() -> None:
    """The rows of `up --dry-run --json`: plain JSON values only."""
    old = _spec(THREE, provider="libvirt")
    new = _spec(
        "machines:\n  va: {cpus: 4, roles: [containerd]}\n  vc: {}\n",
        existing=old,
        provider="libvirt",
    )
    rows = plan.as_rows(plan.make(old, new, {"va", "vb", "vc"}))
    assert rows == [
        {
            "machine": "vb",
            "action": "remove",
            "reasons": ["gone from the lab file"],
            "provision": False,
        },
        {
            "machine": "va",
            "action": "reload",
            "reasons": ["cpus 2 -> 4", "roles (none) -> containerd"],
            "provision": True,
        },
        {"machine": "vc", "action": "keep", "reasons": [], "provision": False},
    ]
    assert json.loads(json.dumps(rows)) == rows


def test_a_moved_machine_updates_the_others_hosts() -> None:
    """The agent reaches the controller by its hostname: when the controller
    moves to another address, the agent's /etc/hosts must follow."""
    text = (
        "machines:\n  ci: {hostname: jenkins, roles: [jenkins-controller]IP}\n"
        "  agent1: {roles: [jenkins-agent]}\n"
    )
    old = _spec(text.replace("IP", ""))
    new = _spec(text.replace("IP", ", ip: 20"), existing=old)
    steps = _by_name(plan.make(old, new, {"ci", "agent1"}))
    assert steps["ci"].action == "recreate"
    assert steps["agent1"].action != "keep"


def test_a_source_recreated_under_its_replicas_is_refused() -> None:
    """Its data would be gone while its replicas keep theirs."""
    from labctl import roles
    from labctl.errors import SpecError

    text = "machines:\n  sql1: {roles: [mysql-primary]CPU}\n  sql2: {roles: [mysql-replica]}\n"
    old = _spec(text.replace("CPU", ""))
    new = _spec(text.replace("CPU", ", cpus: 4"), existing=old)
    steps = plan.make(old, new, {"sql1", "sql2"})
    assert _by_name(steps)["sql1"].action == "recreate"
    with pytest.raises(
        SpecError, match=r"sql1 would be recreated .* while sql2 replicates from it"
    ):
        roles.check_plan(old, new, steps)
    # recreating both is fine: the replica is seeded again from the new source
    both = _spec(
        "machines:\n  sql1: {roles: [mysql-primary], cpus: 4}\n"
        "  sql2: {roles: [mysql-replica], cpus: 4}\n",
        existing=old,
    )
    roles.check_plan(old, both, plan.make(old, both, {"sql1", "sql2"}))


def test_gtid_cannot_change_under_running_servers() -> None:
    from labctl import roles
    from labctl.errors import SpecError

    text = "mysql: {gtid: GTID}\nmachines:\n  sql1: {roles: [mysql-primary]}\n"
    old = _spec(text.replace("GTID", "false"))
    new = _spec(text.replace("GTID", "true"), existing=old)
    with pytest.raises(SpecError, match=r"mysql\.gtid cannot change while sql1 exist"):
        roles.check_plan(old, new, plan.make(old, new, {"sql1"}))
    roles.check_plan(None, new, plan.make(None, new, set()))  # a new lab chooses freely


def test_reordered_roles_change_nothing() -> None:
    text = "machines:\n  va: {roles: [ROLES]}\n"
    old = _spec(text.replace("ROLES", "jenkins-controller, containerd"))
    new = _spec(text.replace("ROLES", "containerd, jenkins-controller"), existing=old)
    assert [s.action for s in plan.make(old, new, {"va"})] == ["keep"]


def test_a_moved_machine_also_provisions_those_being_reloaded() -> None:
    """On VMs a reload alone would leave the reloaded machine's hosts stale."""
    text = "machines:\n  va: {IP}\n  vb: {MEM}\n"
    old = _spec(text.replace("IP", "").replace("MEM", ""), provider="libvirt")
    new = _spec(
        text.replace("IP", "ip: 40").replace("MEM", "memory: 2048"),
        existing=old,
        provider="libvirt",
    )
    steps = _by_name(plan.make(old, new, {"va", "vb"}))
    assert steps["va"].action == "recreate"
    assert (steps["vb"].action, steps["vb"].provision) == ("reload", True)
    assert steps["vb"].reasons[-1].startswith("the lab's hosts changed (va moved)")


def test_a_machine_whose_provisioning_was_cut_short_is_provisioned_again() -> None:
    """Vagrant marks a machine provisioned before its provisioners run: an `up`
    interrupted there leaves a machine that a plain `vagrant up` never
    provisions. labctl's own record of it makes the next plan do so."""
    old = _spec(THREE)
    steps = _by_name(plan.make(old, old, {"va", "vb", "vc"}, unprovisioned={"vb", "gone"}))
    assert steps["vb"].action == "provision" and steps["vb"].provision
    assert steps["vb"].reasons == ("its provisioning was cut short",)
    assert steps["va"].action == steps["vc"].action == "keep"
    # one never made is simply made (and provisioned) by the plan's "add"
    steps = _by_name(plan.make(old, old, {"va", "vc"}, unprovisioned={"vb"}))
    assert steps["vb"].action == "add"
