"""`labctl link`: the scripts' arguments (each address and netem setting a
word of its own), what their output and failures mean (captured from
iptables and tc), and both ends of a cut made or neither."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.errors import GuestError, SpecError
from labctl.guest import link as guest
from labctl.lab.home import LabHome
from labctl.ops import link
from labctl.session.group import GroupFailed

from ..fakes import FakeTransport, Reply, argv_starts, data, data_err, install
from ..labs import topology

CUT = argv_starts("bash", "-c", guest.CUT_SCRIPT)
HEAL = argv_starts("bash", "-c", guest.HEAL_SCRIPT)
IMPAIR = argv_starts("bash", "-c", guest.IMPAIR_SCRIPT)
LIST = argv_starts("bash", "-c", guest.LIST_SCRIPT)
SHOW = argv_starts("bash", "-c", guest.SHOW_SCRIPT)


@pytest.mark.parametrize(
    ("delay", "jitter", "loss", "args"),
    [
        ("200ms", None, None, ["delay", "200ms"]),
        ("1.5s", "20ms", "0.5%", ["delay", "1.5s", "20ms", "loss", "0.5%"]),
        (None, None, "1%", ["loss", "1%"]),
    ],
)
def test_netem_settings(delay, jitter, loss, args) -> None:
    assert guest.netem_args(delay, jitter, loss) == args


@pytest.mark.parametrize(
    ("delay", "jitter", "loss", "message"),
    [
        ("200", None, None, "--delay '200'"),
        ("200ms; reboot", None, None, "--delay"),
        (None, "5ms", None, "--jitter varies a --delay"),
        (None, None, "101%", "--loss '101%'"),
        (None, None, None, "say what to impair"),
    ],
)
def test_bad_netem_settings(delay, jitter, loss, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        guest.netem_args(delay, jitter, loss)


def test_what_iptables_and_tc_said() -> None:
    assert guest.cuts(data("link/iptables-S-two-cuts.txt")) == ["192.168.56.20", "192.168.56.22"]
    assert guest.cuts("") == []
    assert guest.shown(data("link/show-docker-noqueue.txt")) == ("eth1", None)
    assert guest.shown(data("link/show-libvirt-fq-codel.txt")) == ("eth1", None)
    assert guest.shown(data("link/show-libvirt-netem-delay.txt")) == ("eth1", "delay 300ms")
    assert guest.shown(data("link/show-libvirt-netem-all.txt")) == (
        "eth1",
        "delay 200ms 20ms loss 1%",
    )
    assert guest.no_netem(data_err("link/tc-netem-unknown.txt"))
    assert not guest.no_netem("RTNETLINK answers: Operation not permitted")


@pytest.fixture
def db(home: Path, monkeypatch: pytest.MonkeyPatch):
    spec = topology("mysql-pair", replicas=2, name="db", subnet="192.168.56")
    return lambda *fakes, down=(): install(
        monkeypatch, home, spec, fakes, dict.fromkeys(down, "stopped")
    )


def test_a_cut_is_made_at_both_ends(db, home: Path) -> None:
    guests = db(
        FakeTransport("primary").on(CUT, Reply()), FakeTransport("replica1").on(CUT, Reply())
    )
    rows = link.cut(LabHome(home), "db", "replica1", "primary")
    assert [(r.vm, r.detail) for r in rows] == [
        ("replica1", "drops 192.168.56.20"),
        ("primary", "drops 192.168.56.21"),
    ]
    assert guests["primary"].sent[0].argv[-1] == "192.168.56.21"  # an argument, not a line
    assert guests["replica1"].sent[0].argv[3:] == ["labctl-link", "192.168.56.20"]
    assert all(g.sent[0].sudo for g in (guests["primary"], guests["replica1"]))


def test_a_cut_one_end_cannot_make_is_undone_at_the_other(db, home: Path) -> None:
    refused = Reply(
        "",
        "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied",
        4,
    )
    guests = db(
        FakeTransport("primary").on(CUT, Reply()).on(HEAL, Reply()),
        FakeTransport("replica1").on(CUT, refused),
    )
    with pytest.raises(GroupFailed, match=r"^replica1: iptables: .*Permission denied$"):
        link.cut(LabHome(home), "db", "primary", "replica1")
    assert [s.argv[2] for s in guests["primary"].sent] == [guest.CUT_SCRIPT, guest.HEAL_SCRIPT]
    assert guests["primary"].sent[1].argv[-1] == "192.168.56.21"


def test_cut_refusals(db, home: Path) -> None:
    db()
    with pytest.raises(SpecError, match="cannot be cut off from itself"):
        link.cut(LabHome(home), "db", "primary", "primary")
    with pytest.raises(SpecError, match="no machine 'nosuch'"):
        link.cut(LabHome(home), "db", "primary", "nosuch")
    with pytest.raises(SpecError, match="name two machines"):
        link.heal(LabHome(home), "db", "primary")


def test_heal_everything_on_every_running_machine(db, home: Path) -> None:
    guests = db(
        FakeTransport("primary").on(HEAL, Reply()),
        FakeTransport("replica1").on(HEAL, Reply()),
        down=("replica2",),
    )
    rows = link.heal(LabHome(home), "db")
    assert [(r.vm, r.detail) for r in rows] == [
        ("primary", "healed: every cut"),
        ("replica1", "healed: every cut"),
    ]
    assert guests["primary"].sent[0].argv[3:] == ["labctl-link"]  # no peer: the whole chain


def test_cuts_and_impairments_are_listed_by_machine(db, home: Path) -> None:
    listing = Reply(data("link/iptables-S-two-cuts.txt"))
    guests = db(
        FakeTransport("primary")
        .on(LIST, Reply())
        .on(SHOW, Reply(data("link/show-libvirt-fq-codel.txt"))),
        FakeTransport("replica1")
        .on(LIST, listing)
        .on(SHOW, Reply(data("link/show-libvirt-netem-delay.txt"))),
        FakeTransport("replica2")
        .on(LIST, Reply())
        .on(SHOW, Reply(data("link/show-libvirt-netem-all.txt"))),
    )
    found = {o.vm: o.value for o in link.faults(LabHome(home), "db")}
    assert found == {
        "primary": link.LinkState([], "eth1", None),
        "replica1": link.LinkState(["primary", "replica2"], "eth1", "delay 300ms"),
        "replica2": link.LinkState([], "eth1", "delay 200ms 20ms loss 1%"),
    }
    shows = [c for c in guests["replica2"].sent if c.argv[2] == guest.SHOW_SCRIPT]
    assert shows[0].argv[3:] == ["labctl-link", "192.168.56.22"]  # its own address, a word
    assert shows[0].sudo  # tc is in /sbin, on root's PATH only


def test_a_machine_whose_link_cannot_be_read_fails_alone(db, home: Path) -> None:
    lost = Reply("", "labctl-link: no interface holds 192.168.56.21", 3)
    db(
        FakeTransport("primary")
        .on(LIST, Reply())
        .on(SHOW, Reply(data("link/show-libvirt-fq-codel.txt"))),
        FakeTransport("replica1").on(LIST, Reply()).on(SHOW, lost),
        down=("replica2",),
    )
    outcomes = link.faults(LabHome(home), "db")
    assert [o.vm for o in outcomes] == ["primary", "replica1"]  # the running machines
    assert outcomes[0].value == link.LinkState([], "eth1", None)
    assert outcomes[1].error is not None
    assert "no interface holds 192.168.56.21" in outcomes[1].error.message


def test_impair_on_a_kernel_without_netem_says_why(db, home: Path) -> None:
    no_netem = Reply("", data_err("link/tc-netem-unknown.txt"), 2)
    guests = db(FakeTransport("replica1").on(IMPAIR, no_netem))
    with pytest.raises(GuestError, match="replica1: its kernel has no netem") as err:
        link.impair(LabHome(home), "db", "replica1", delay="200ms", loss="1%")
    assert "docker provider's guests run on the host's kernel" in err.value.message
    assert "libvirt" in (err.value.hint or "")
    assert guests["replica1"].sent[0].argv[3:] == [
        "labctl-link",
        "192.168.56.21",
        "delay",
        "200ms",
        "loss",
        "1%",
    ]


def test_impair_and_clear_where_netem_exists(db, home: Path) -> None:
    guests = db(FakeTransport("replica1").on(IMPAIR, Reply("eth1\n")))
    row = link.impair(LabHome(home), "db", "replica1", delay="200ms")
    assert (row.vm, row.detail) == ("replica1", "eth1: delay 200ms")
    row = link.clear(LabHome(home), "db", "replica1")
    assert row.detail == "eth1: no impairment"
    assert guests["replica1"].sent[1].argv[3:] == ["labctl-link", "192.168.56.21"]
    with pytest.raises(SpecError, match="--delay"):
        link.impair(LabHome(home), "db", "replica1", delay="soon")


def test_link_ls_as_printed(cli, db) -> None:
    db(
        FakeTransport("primary")
        .on(LIST, Reply())
        .on(SHOW, Reply(data("link/show-libvirt-fq-codel.txt"))),
        FakeTransport("replica1")
        .on(LIST, Reply(data("link/iptables-S-two-cuts.txt")))
        .on(SHOW, Reply(data("link/show-libvirt-netem-all.txt"))),
        FakeTransport("replica2")
        .on(LIST, Reply())
        .on(SHOW, Reply("", "labctl-link: no interface holds 192.168.56.22", 3)),
    )
    table = cli("link", "ls", "--lab", "db")
    assert table.code == 1  # replica2's could not be read: said, and the exit says so
    lines = {ln.split()[0]: ln for ln in table.stdout.splitlines() if ln.strip()}
    assert lines["primary"].split()[1:] == ["-", "-"]
    assert lines["replica1"].split()[1:] == [
        *("primary,", "replica2"),
        *("eth1:", "delay", "200ms", "20ms", "loss", "1%"),
    ]
    assert "replica2: tc: " in table.stderr and "no interface holds" in table.stderr
    rows = json.loads(cli("link", "ls", "--lab", "db", "--json").stdout)
    assert rows[:2] == [
        {"vm": "primary", "cut_from": [], "dev": "eth1", "impaired": None},
        {
            "vm": "replica1",
            "cut_from": ["primary", "replica2"],
            "dev": "eth1",
            "impaired": "delay 200ms 20ms loss 1%",
        },
    ]
    assert rows[2]["vm"] == "replica2" and "no interface holds" in rows[2]["error"]
