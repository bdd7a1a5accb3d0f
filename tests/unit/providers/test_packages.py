"""The roles' package lists (read by lib.sh's helper and by the box build
alike), a box's manifest and the rule that says whether a box is current."""

from __future__ import annotations

import subprocess

import pytest

from labctl.errors import LabctlError
from labctl.local.datafiles import data_dir
from labctl.providers import packages
from labctl.providers.packages import Freshness, Manifest

LIB_SH = data_dir("provision") / "lib.sh"
LISTS = {"containerd": ("containerd", "runc"), "mysql": ("default-mysql-server",)}


def role_packages_in_bash(role: str) -> subprocess.CompletedProcess[str]:
    """lib.sh's own role_packages, in bash (mkdir shadowed: sourcing lib.sh
    makes the guest's state folder)."""
    script = 'mkdir() { :; }; . "$1"; role_packages "$2"'
    return subprocess.run(
        ["bash", "-c", script, "lib", str(LIB_SH), role],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def test_lib_sh_and_labctl_read_the_same_lists() -> None:
    lists = packages.role_packages()
    assert lists["containerd"] == ("containerd", "runc")
    assert lists["mysql"] == ("default-mysql-server", "default-mysql-client")
    assert lists["jdk-17"] == ("openjdk-17-jre-headless",)
    for role, listed in lists.items():
        done = role_packages_in_bash(role)
        assert (done.returncode, done.stdout.split()) == (0, list(listed)), role


def test_lib_sh_refuses_a_role_it_lists_nothing_for() -> None:
    done = role_packages_in_bash("nope")
    assert done.returncode == 3
    assert done.stderr.strip() == (
        "labctl: error: no packages are listed for role nope (ROLE_PACKAGES in lib.sh)"
    )


def test_every_package_the_scripts_name_is_in_the_lists() -> None:
    """A role script installs through its list, never a package of its own
    (but Jenkins, from Jenkins' repository: no box carries it)."""
    scripts = sorted(p for p in LIB_SH.parent.glob("*.sh") if p.name != "lib.sh")
    named = [
        line.split()[1:]
        for script in scripts
        for line in script.read_text().splitlines()
        if line.strip().startswith("ensure_packages ")
    ]
    assert named == [["jenkins"]]


@pytest.mark.parametrize(
    "block",
    [
        "",  # no block at all
        "ROLE_PACKAGES='\ncontainerd containerd\n'\n",  # no colon
        "ROLE_PACKAGES='\nmysql: a\nmysql: b\n'\n",  # a role twice
        "ROLE_PACKAGES='\nmysql:\n'\n",  # no package
    ],
)
def test_a_block_labctl_cannot_read_is_an_error(block: str) -> None:
    with pytest.raises(LabctlError, match="ROLE_PACKAGES"):
        packages.parse_role_packages(block)


def test_the_digest_follows_the_packages_not_their_order() -> None:
    swapped = {"mysql": ("default-mysql-server",), "containerd": ("runc", "containerd")}
    assert packages.lists_digest(swapped) == packages.lists_digest(LISTS)
    more = {**LISTS, "mysql": ("default-mysql-server", "default-mysql-client")}
    assert packages.lists_digest(more) != packages.lists_digest(LISTS)


def test_a_manifest_records_what_was_installed() -> None:
    versions = {"containerd": "1.6.20~ds1-1+b1", "runc": "1.1.5+ds1-1+deb12u1"}
    manifest = packages.manifest_of(LISTS, versions, now=0)
    assert manifest.built == "1970-01-01T00:00:00Z"
    assert manifest.roles == ("containerd",)  # mysql's server is not there
    assert manifest.packages == versions
    assert manifest.lists == packages.lists_digest(LISTS)


def test_a_manifest_round_trips_as_a_file_and_as_labels() -> None:
    manifest = Manifest(
        "0123abcd", "2026-12-02T00:00:00Z", ("containerd", "mysql"), {"mariadb": "1:10.11.6-0"}
    )
    assert Manifest.from_json(manifest.to_json()) == manifest
    labels = manifest.labels()
    assert labels["io.labctl.box.packages"] == "mariadb=1:10.11.6-0"
    assert Manifest.from_labels({**labels, "org.other": "x"}) == manifest
    assert Manifest.from_labels({}) is None and Manifest.from_labels(None) is None
    assert Manifest.from_json("not json") is None and Manifest.from_json("[]") is None


def test_the_staleness_rule() -> None:
    current = packages.manifest_of(LISTS, {}, now=0)
    assert packages.freshness(current, LISTS) is Freshness.CURRENT
    changed = {**LISTS, "jdk-17": ("openjdk-17-jre-headless",)}
    assert packages.freshness(current, changed) is Freshness.STALE
    assert packages.freshness(None, LISTS) is Freshness.UNRECORDED


def test_up_says_in_one_line_what_a_box_that_is_not_current_costs() -> None:
    assert packages.notice("labctl/bookworm", Freshness.CURRENT) is None
    assert packages.notice("labctl/bookworm", Freshness.STALE, "labctl box build -p x") == (
        "box labctl/bookworm was built from older role package lists: the roles will "
        "install what it lacks (labctl box build -p x to rebuild)"
    )
    said = packages.notice("labctl/debian:bookworm", Freshness.UNRECORDED)
    assert said is not None and "\n" not in said and "records no role package lists" in said
