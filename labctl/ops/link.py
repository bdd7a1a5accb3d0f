"""`labctl link`: a network partition between two machines of a lab, or an
impaired link (delay, loss) on one; and the way back.

Both ends of a cut drop each other's private address, so neither side's
packets cross (a one-sided cut would let the other side's timeouts tell
a different story). A cut that one end could not make is undone on the
other: nothing half-made stays.
"""

from __future__ import annotations

from dataclasses import dataclass

from labctl import providers
from labctl.errors import GuestError, SpecError
from labctl.guest import link as guest
from labctl.lab.home import LabHome
from labctl.session.group import LabSession, Outcome
from labctl.transport.interface import CommandFailed, Result, Transport


@dataclass(frozen=True)
class LinkRow:
    vm: str
    detail: str


@dataclass(frozen=True)
class LinkState:
    """The link faults in place on one machine: the machines it is cut off
    from, and the impairment (netem's settings) on its private interface."""

    cut_from: list[str]
    dev: str
    impaired: str | None


def _checked(result: Result, what: str) -> Result:
    if not result.ok:
        raise CommandFailed(result, what)
    return result


def _two(session: LabSession, a: str, b: str) -> dict[str, list[str]]:
    """Both ends of the link between two machines of the lab."""
    if a == b:
        raise SpecError(f"{a} cannot be cut off from itself: name two machines")
    session.spec.machine(a)
    session.spec.machine(b)
    return links(session, a, [b])


def links(session: LabSession, machine: str, others: list[str]) -> dict[str, list[str]]:
    """Both ends of the links between `machine` and each of `others`: each
    end -> the addresses it drops."""
    ip = {m.name: m.ip for m in session.spec.machines}
    return {machine: [ip[o] for o in others], **{o: [ip[machine]] for o in others}}


def cut_off(session: LabSession, machine: str, others: list[str]) -> list[LinkRow]:
    """`machine` cut off from each of `others`, at both ends; what one end
    could not make is undone at the others."""
    peers = links(session, machine, others)

    def one(t: Transport) -> LinkRow:
        _checked(t.run(guest.cut_argv(peers[t.name]), sudo=True), "iptables")
        return LinkRow(t.name, f"drops {', '.join(peers[t.name])}")

    outcomes = session.each(list(peers), one)
    if outcomes.failed:
        heal_in(session, {o.vm: peers[o.vm] for o in outcomes if o.ok})
        outcomes.check()
    return list(outcomes.values.values())


def heal_in(session: LabSession, peers: dict[str, list[str]]) -> list[LinkRow]:
    """Each machine's cuts from `peers` undone (none listed: every cut)."""

    def one(t: Transport) -> LinkRow:
        _checked(t.run(guest.heal_argv(peers[t.name]), sudo=True), "iptables")
        return LinkRow(t.name, f"healed: {', '.join(peers[t.name]) or 'every cut'}")

    return list(session.each(list(peers), one).check().values.values())


def cut(home: LabHome, lab: str | None, a: str, b: str) -> list[LinkRow]:
    """Drop all traffic between `a` and `b` on the lab's private network."""
    with LabSession(home, lab) as session:
        _two(session, a, b)  # two machines of the lab
        return cut_off(session, a, [b])


def heal(
    home: LabHome, lab: str | None, a: str | None = None, b: str | None = None
) -> list[LinkRow]:
    """Undo the cut between `a` and `b`; with no machine named, every cut on
    every running machine (a machine restarted has lost its cuts already)."""
    if (a is None) != (b is None):
        raise SpecError("name two machines (heal A B), or none to heal every cut")
    with LabSession(home, lab) as session:
        if a is not None and b is not None:
            return heal_in(session, _two(session, a, b))
        return heal_in(session, {vm: [] for vm in session.running()})


def faults(home: LabHome, lab: str | None) -> list[Outcome[LinkState]]:
    """Each running machine's cuts (by the machines they cut it off from)
    and impairment."""
    with LabSession(home, lab) as session:
        ip = {m.name: m.ip for m in session.spec.machines}
        by_ip = {address: name for name, address in ip.items()}

        def one(t: Transport) -> LinkState:
            listing = _checked(t.run(guest.list_argv(), sudo=True), "iptables").stdout
            shown = _checked(t.run(guest.show_argv(ip[t.name]), sudo=True), "tc").stdout
            dev, impaired = guest.shown(shown)
            return LinkState([by_ip.get(a, a) for a in guest.cuts(listing)], dev, impaired)

        return session.each(session.running(), one)


def impair(
    home: LabHome,
    lab: str | None,
    vm: str,
    delay: str | None = None,
    jitter: str | None = None,
    loss: str | None = None,
) -> LinkRow:
    """netem on `vm`'s private-network interface: every packet it sends there
    is delayed (or lost) as asked."""
    try:
        netem = guest.netem_args(delay, jitter, loss)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    return _qdisc(home, lab, vm, netem)


def clear(home: LabHome, lab: str | None, vm: str) -> LinkRow:
    """`vm`'s private-network interface as it was: no netem."""
    return _qdisc(home, lab, vm, [])


def _qdisc(home: LabHome, lab: str | None, vm: str, netem: list[str]) -> LinkRow:
    with LabSession(home, lab) as session:
        machine = session.spec.machine(vm)
        result = session.transport(vm).run(guest.impair_argv(machine.ip, netem), sudo=True)
        if not result.ok and guest.no_netem(result.stderr):
            shared = providers.get(session.spec.provider).shares_host_kernel
            raise GuestError(
                f"{vm}: its kernel has no netem, so a link cannot be delayed or made lossy there"
                + (" (the docker provider's guests run on the host's kernel)" if shared else ""),
                hint="a VM provider's guest has its own kernel: --provider libvirt or virtualbox"
                if shared
                else "load the sch_netem module in the guest",
            )
        dev = _checked(result, "tc").stdout.strip()
        done = " ".join(netem) if netem else "no impairment"
        return LinkRow(vm, f"{dev}: {done}")
