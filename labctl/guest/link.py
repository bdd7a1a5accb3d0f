"""Network faults inside guests (pure: the commands, and what their failures mean).

A partition is iptables DROP rules in a chain of labctl's own (LABCTL-LINK),
jumped to from INPUT and OUTPUT, so `heal` removes exactly what labctl added
and nothing of the guest's own firewall. An impairment is a netem qdisc on
the interface that holds the machine's private address. Each script is a
constant; addresses and netem settings reach it as positional arguments.
"""

from __future__ import annotations

import re

CHAIN = "LABCTL-LINK"

# $@: the peers' addresses. iptables comes from the distribution if missing
# (ensure_role_packages: provision/lib.sh, which is bash).
CUT_SCRIPT = f"""set -eu
if ! command -v iptables >/dev/null; then
  . /var/tmp/labctl/lib.sh
  ensure_role_packages link >/dev/null
fi
iptables -w -N {CHAIN} 2>/dev/null || true
for hook in INPUT OUTPUT; do
  iptables -w -C "$hook" -j {CHAIN} 2>/dev/null || iptables -w -I "$hook" -j {CHAIN}
done
for peer in "$@"; do
  iptables -w -C {CHAIN} -s "$peer" -j DROP 2>/dev/null || iptables -w -A {CHAIN} -s "$peer" -j DROP
  iptables -w -C {CHAIN} -d "$peer" -j DROP 2>/dev/null || iptables -w -A {CHAIN} -d "$peer" -j DROP
done
"""

# $@: the peers to heal; none: every cut, and the chain itself.
HEAL_SCRIPT = f"""set -eu
command -v iptables >/dev/null || exit 0
iptables -w -n -L {CHAIN} >/dev/null 2>&1 || exit 0
if [ "$#" -eq 0 ]; then
  for hook in INPUT OUTPUT; do
    while iptables -w -D "$hook" -j {CHAIN} 2>/dev/null; do :; done
  done
  iptables -w -F {CHAIN}
  iptables -w -X {CHAIN}
  exit 0
fi
for peer in "$@"; do
  while iptables -w -D {CHAIN} -s "$peer" -j DROP 2>/dev/null; do :; done
  while iptables -w -D {CHAIN} -d "$peer" -j DROP 2>/dev/null; do :; done
done
"""

# $1: the machine's private address; $dev: the interface that holds it.
_DEVICE = """set -eu
dev=$(ip -o -4 addr show to "$1" | awk '{print $2; exit}')
if [ -z "$dev" ]; then echo "labctl-link: no interface holds $1" >&2; exit 3; fi
"""

# $1: the machine's private address; the rest: netem's settings (none: clear).
IMPAIR_SCRIPT = f"""{_DEVICE}shift
if [ "$#" -eq 0 ]; then
  tc qdisc del dev "$dev" root 2>/dev/null || true
else
  tc qdisc replace dev "$dev" root netem "$@"
fi
echo "$dev"
"""

LIST_SCRIPT = f"""command -v iptables >/dev/null || exit 0
iptables -w -S {CHAIN} 2>/dev/null || true
"""

# $1: the machine's private address. The interface holding it on the first
# line, then that interface's root qdisc as tc shows it.
SHOW_SCRIPT = f"""{_DEVICE}echo "$dev"
tc qdisc show dev "$dev" root
"""


def cut_argv(peers: list[str]) -> list[str]:
    return ["bash", "-c", CUT_SCRIPT, "labctl-link", *peers]


def heal_argv(peers: list[str]) -> list[str]:
    return ["bash", "-c", HEAL_SCRIPT, "labctl-link", *peers]


def impair_argv(address: str, netem: list[str]) -> list[str]:
    return ["bash", "-c", IMPAIR_SCRIPT, "labctl-link", address, *netem]


def list_argv() -> list[str]:
    return ["bash", "-c", LIST_SCRIPT, "labctl-link"]


def show_argv(address: str) -> list[str]:
    return ["bash", "-c", SHOW_SCRIPT, "labctl-link", address]


_DELAY = re.compile(r"\d+(\.\d+)?(us|ms|s)")
_LOSS = re.compile(r"\d+(\.\d+)?%")


def netem_args(delay: str | None, jitter: str | None, loss: str | None) -> list[str]:
    """netem's settings from the options; ValueError naming the bad one."""
    args: list[str] = []
    if delay is not None:
        if not _DELAY.fullmatch(delay):
            raise ValueError(f"--delay {delay!r}: a time such as 200ms, 1.5s or 500us")
        args += ["delay", delay]
        if jitter is not None:
            if not _DELAY.fullmatch(jitter):
                raise ValueError(f"--jitter {jitter!r}: a time such as 20ms")
            args.append(jitter)
    elif jitter is not None:
        raise ValueError("--jitter varies a --delay: give both")
    if loss is not None:
        if not _LOSS.fullmatch(loss) or float(loss[:-1]) > 100:
            raise ValueError(f"--loss {loss!r}: a percentage such as 1% or 0.5%")
        args += ["loss", loss]
    if not args:
        raise ValueError("say what to impair: --delay and/or --loss")
    return args


def no_netem(stderr: str) -> bool:
    """tc's words for a kernel without the netem qdisc."""
    text = stderr.lower()
    return "qdisc kind is unknown" in text or "specified qdisc not found" in text


def cuts(listing: str) -> list[str]:
    """The peers cut off, from `iptables -S LABCTL-LINK`."""
    found = re.findall(rf"^-A {CHAIN} -[sd] (\S+?)(?:/32)? -j DROP$", listing, re.M)
    return list(dict.fromkeys(found))


_NETEM = re.compile(r"^qdisc netem \S+ root(?: refcnt \d+)?(?: limit \d+)?(?P<settings>.*)$", re.M)


def shown(output: str) -> tuple[str, str | None]:
    """(the interface, netem's settings on it such as "delay 300ms 20ms loss 1%",
    or None when it has no netem) from the show script's output."""
    dev, _, qdisc = output.partition("\n")
    found = _NETEM.search(qdisc)
    return dev.strip(), (" ".join(found["settings"].split()) or None) if found else None
