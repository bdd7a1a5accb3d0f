"""The box build's tree: what apt in it resolves names with."""

from __future__ import annotations

from pathlib import Path

from labctl.providers import debootstrap

HOST = Path("/etc/resolv.conf").read_bytes()


def test_apt_in_a_tree_whose_resolver_is_a_link_to_a_running_guest_uses_the_hosts(
    tmp_path: Path,
) -> None:
    """systemd-resolved (the libvirt box's) links /etc/resolv.conf to a file
    that exists only once the guest runs; the link is back afterwards."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    with debootstrap.host_dns(tmp_path):
        assert not (etc / "resolv.conf").is_symlink()
        assert (etc / "resolv.conf").read_bytes() == HOST
    assert str((etc / "resolv.conf").readlink()) == "/run/systemd/resolve/stub-resolv.conf"


def test_a_trees_own_resolver_file_is_put_back(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "resolv.conf").write_text("nameserver 192.0.2.1\n")
    with debootstrap.host_dns(tmp_path):
        assert (etc / "resolv.conf").read_bytes() == HOST
    assert (etc / "resolv.conf").read_text() == "nameserver 192.0.2.1\n"
