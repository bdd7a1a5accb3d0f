"""The libvirt provider without libvirt: how the host runs VMs (KVM, PVM,
emulation), what the rendered Vagrantfile asks of libvirt, labctl's box as
Vagrant gets it, and the second /24 a libvirt lab takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl import providers
from labctl.lab import hostnet
from labctl.lab.home import LabHome
from labctl.lab.spec import spec_from_record, spec_to_record
from labctl.ops import doctor, host
from labctl.ops.up.prepare import Purpose, prepare, with_subnets_claimed
from labctl.ops.up.source import Request
from labctl.project import render
from labctl.providers import libvirt, libvirt_box
from labctl.providers.libvirt import is_remote
from labctl.providers.libvirt_box import LIBVIRT_BOX

from ..labs import topology


def host_with(tmp_path: Path, *modules: str, device: bool = True) -> dict[str, object]:
    """vm_accel's view of a host: these kernel modules loaded, /dev/kvm
    usable or absent, and QEMU installed (`sh` stands for its program)."""
    mods = tmp_path / "module"
    for m in modules:
        (mods / m).mkdir(parents=True)
    dev = tmp_path / "kvm"
    if device:
        dev.write_text("")
    return {"modules": mods, "device": str(dev), "qemu": "sh"}


def test_kvm_from_the_hardware_module(tmp_path: Path) -> None:
    accel = libvirt.vm_accel(**host_with(tmp_path, "kvm", "kvm_intel"))
    assert (accel.kind, accel.driver, accel.detail) == ("kvm", "kvm", "KVM (kvm_intel)")


def test_pvm_kvm_is_emulation(tmp_path: Path) -> None:
    """This CI host: /dev/kvm is there and usable, but only PVM kernels boot on it."""
    accel = libvirt.vm_accel(**host_with(tmp_path, "kvm", "kvm_pvm"))
    assert (accel.kind, accel.driver) == ("tcg", "qemu")
    assert "PVM (kvm_pvm)" in accel.detail


def test_no_kvm_device_is_emulation(tmp_path: Path) -> None:
    accel = libvirt.vm_accel(**host_with(tmp_path, device=False))
    assert accel.kind == "tcg"
    assert "no hardware virtualization" in accel.detail


def test_without_qemu_no_vms(tmp_path: Path) -> None:
    given = {**host_with(tmp_path, "kvm_intel"), "qemu": "no-such-qemu-here"}
    accel = libvirt.vm_accel(**given)
    assert accel.kind == ""
    assert "apt-get install qemu-system-x86" in accel.detail


@pytest.mark.parametrize(
    ("accel", "ok"),
    [
        (libvirt.Accel("kvm", "KVM (kvm_amd)"), True),
        (libvirt.Accel("tcg", "QEMU emulation: /dev/kvm is PVM (kvm_pvm), ..."), False),
    ],
)
def test_doctor_says_which(monkeypatch: pytest.MonkeyPatch, accel: libvirt.Accel, ok: bool) -> None:
    monkeypatch.setattr(libvirt, "vm_accel", lambda: accel)
    kvm = next(c for c in doctor.run_all() if c.name == "kvm")
    assert (kvm.ok, kvm.detail, kvm.required) == (ok, accel.detail, False)
    assert "emulated" in kvm.fix


def spec(**kw: object):
    return topology(
        "nodes", "libvirt", count=2, name="lv", subnet="192.168.70", mgmt_subnet="192.168.71", **kw
    )


def test_emulation_renders_qemu_with_a_plain_cpu() -> None:
    text = render.render_vagrantfile(spec(), accel="tcg")
    for line in ('lv.driver = "qemu"', 'lv.cpu_mode = "custom"', 'lv.cpu_model = "qemu64"'):
        assert text.count(line) == 2  # once per machine
    assert "lv.driver" not in render.render_vagrantfile(spec(), accel="kvm")


def test_the_lab_has_its_own_networks() -> None:
    text = render.render_vagrantfile(spec())
    assert text.count("lv.management_network_name = 'labctl-lv-mgmt'") == 2
    assert text.count("lv.management_network_address = '192.168.71.0/24'") == 2
    assert text.count("libvirt__network_name: 'labctl-lv', libvirt__forward_mode: \"none\"") == 2


def test_libvirt_labs_use_labctls_box() -> None:
    assert providers.get("libvirt").default_box() == LIBVIRT_BOX
    assert {m.box for m in spec().machines} == {LIBVIRT_BOX}
    assert providers.get("virtualbox").default_box() == "debian/bookworm64"


def test_the_record_keeps_the_management_subnet() -> None:
    made = spec()
    assert spec_from_record(json.loads(json.dumps(spec_to_record(made)))) == made
    old = spec_to_record(made)
    del old["mgmt_subnet"]  # a lab recorded before it existed
    assert spec_from_record(old).mgmt_subnet is None
    assert made.subnets() == ["192.168.70", "192.168.71"]


def test_up_chooses_a_second_free_subnet(tmp_path: Path) -> None:
    """The management /24 is neither the lab's own nor another lab's."""
    (tmp_path / "home").mkdir()
    home = LabHome(tmp_path / "home")
    other = topology("nodes", "docker", count=1, name="other", subnet="192.168.57")
    render.write_tree(render.lab_files(other, ""), home.paths("other").root)
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text("machines:\n  vm: {}\n")
    prepared = prepare(
        home, None, "lv", Request(file=str(lab_file), provider="libvirt"), Purpose.VALIDATE
    )
    assert (prepared.spec.subnet, prepared.spec.mgmt_subnet) == ("192.168.56", "192.168.58")
    assert prepared.files is not None
    assert "192.168.58.0/24" in str(prepared.files["Vagrantfile"])
    docker = prepare(
        home, None, "dk", Request(file=str(lab_file), provider="docker"), Purpose.VALIDATE
    )
    assert docker.spec.mgmt_subnet is None


def test_a_lab_claims_both_its_subnets(tmp_path: Path) -> None:
    claims = hostnet.SubnetClaims(tmp_path / "host")
    home = tmp_path / "home"
    claims.claim(["192.168.56", "192.168.57"], home, "a", "id-a")
    assert set(claims.others(home, "b")) == {"192.168.56", "192.168.57"}
    with pytest.raises(hostnet.SubnetTaken, match=r"192\.168\.57"):
        claims.claim(["192.168.58", "192.168.57"], home, "b", "id-b")
    assert set(claims.others(home, "a")) == set()  # nothing half-claimed by b
    claims.release(home, "a")
    assert claims.others(home, "b") == {}


def test_the_box_boots_its_own_kernel_from_where_qemu_reads() -> None:
    text = libvirt_box.box_vagrantfile(
        Path("/var/lib/libvirt/boot/k-vmlinuz"), Path("/var/lib/libvirt/boot/k-initrd.img")
    )
    assert "File.readable?('/var/lib/libvirt/boot/k-vmlinuz')" in text
    assert 'File.join(here, "vmlinuz")' in text  # the box folder's copy otherwise
    assert "lv.cmd_line = 'root=/dev/vda rw console=ttyS0 net.ifnames=0'" in text
    assert "config.vm.box_check_update = false" in text


def test_each_build_is_a_newer_version(tmp_path: Path) -> None:
    first, second = libvirt_box.new_version(0), libvirt_box.new_version(86400 * 365 + 1)
    as_numbers = [tuple(int(x) for x in v.split(".")) for v in (first, second)]
    assert as_numbers[0] < as_numbers[1]
    found = libvirt_box.catalog(LIBVIRT_BOX, first, tmp_path / "x.box")
    (version,) = found["versions"]  # type: ignore[misc]
    assert version["version"] == first
    assert version["providers"] == [{"name": "libvirt", "url": (tmp_path / "x.box").as_uri()}]


def test_box_build_for_virtualbox_is_refused() -> None:
    from labctl.errors import SpecError

    with pytest.raises(SpecError, match="labctl builds no box for virtualbox"):
        host.build_box("virtualbox", False, lambda line: None)


def test_a_remote_libvirt_host_gets_debians_box_and_kvm() -> None:
    """labctl's box boots a kernel from this host's disk, which a remote
    libvirt host has not; and only this host's KVM can be looked at."""
    remote = "qemu+ssh://lab@big-host/system"
    assert is_remote(remote) and not is_remote("qemu:///system") and not is_remote(None)
    assert providers.get("libvirt").default_box(remote) == "debian/bookworm64"
    far = topology("nodes", "libvirt", count=1, libvirt_uri=remote)
    assert providers.get(far.provider).accel(far) == "kvm"


def test_up_claims_the_management_subnet_host_wide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another home's new lab must not take the management /24 either."""
    monkeypatch.setenv("LABCTL_HOST_DIR", str(tmp_path / "host"))
    (tmp_path / "home").mkdir()
    home = LabHome(tmp_path / "home")
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text("machines:\n  vm: {}\n")
    request = Request(file=str(lab_file), provider="libvirt")
    prepared = with_subnets_claimed(
        home, lambda: prepare(home, None, "lv", request, Purpose.VALIDATE)
    )
    held = hostnet.SubnetClaims().others(tmp_path / "elsewhere", "lv")
    assert sorted(held) == sorted(prepared.spec.subnets()) == ["192.168.56", "192.168.57"]
