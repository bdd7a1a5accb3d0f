"""containerd's `ctr`: argument builders and output parsers (pure).

ctr's traps, handled here once:
- flags after positional arguments are silently taken as arguments, so every
  builder puts flags first and ends them with `--`;
- `t exec` needs `--exec-id`;
- `images pull` does not expand short names (`alpine`): expand_ref() does;
- `ns rm` of a non-empty namespace fails: the caller says what is left.
Parsing of ctr's column tables lives here too, tested on captured output;
`c info` is JSON and parsed as such. Builders and parsers bear ctr's names
(`tasks_kill`, `parse_tasks_ls`); a builder's parameters are its command's
arguments, by the names ops.ctr's table and cli/ctr.py serve them under.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

CTR = "ctr"
DEFAULT_NAMESPACE = "default"
# containerd's identifier rule (containers, namespaces): also what keeps a
# systemd unit file written from an ID free of injected lines.
_IDENTIFIER = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
_EXEC_ID_KV = re.compile(r'exec_id:"([^"]*)"')
_EXEC_ID_GO = re.compile(r"ExecID:([^,}]*)")


def is_identifier(value: str) -> bool:
    return len(value) <= 76 and bool(_IDENTIFIER.fullmatch(value))


def ctr(
    namespace: str, *words: str, flags: Sequence[str] = (), args: Sequence[str] = ()
) -> list[str]:
    """`ctr -n NS WORDS... FLAGS... -- ARGS...`: flags never after positionals."""
    return [CTR, "-n", namespace, *words, *flags, "--", *args]


# ---------------------------------------------------------------- builders


def namespaces_ls() -> list[str]:
    return [CTR, "namespaces", "ls"]


def namespaces_create(name: str) -> list[str]:
    return [CTR, "namespaces", "create", "--", name]


def namespaces_rm(name: str) -> list[str]:
    return [CTR, "namespaces", "remove", "--", name]


def images_ls(ns: str) -> list[str]:
    return ctr(ns, "images", "ls")


def images_pull(ns: str, ref: str) -> list[str]:
    return ctr(ns, "images", "pull", args=[ref])


def images_import(ns: str, path: str, name: str | None = None) -> list[str]:
    flags = ["--index-name", name] if name else []
    return ctr(ns, "images", "import", flags=flags, args=[path])


def images_rm(ns: str, ref: str) -> list[str]:
    return ctr(ns, "images", "rm", args=[ref])


def images_mount(ns: str, ref: str, directory: str) -> list[str]:
    return ctr(ns, "images", "mount", args=[ref, directory])


def images_unmount(ns: str, directory: str) -> list[str]:
    return ctr(ns, "images", "unmount", args=[directory])


def containers_ls(ns: str) -> list[str]:
    return ctr(ns, "containers", "ls")


def containers_create(ns: str, ref: str, cid: str, command: Sequence[str] = ()) -> list[str]:
    return ctr(ns, "containers", "create", args=[ref, cid, *command])


def containers_info(ns: str, cid: str) -> list[str]:
    return ctr(ns, "containers", "info", args=[cid])


def containers_rm(ns: str, cid: str) -> list[str]:
    return ctr(ns, "containers", "rm", args=[cid])


def tasks_ls(ns: str) -> list[str]:
    return ctr(ns, "tasks", "ls")


def tasks_start(ns: str, cid: str, detach: bool = False) -> list[str]:
    return ctr(ns, "tasks", "start", flags=["-d"] if detach else [], args=[cid])


def tasks_exec(
    ns: str, cid: str, exec_id: str, command: Sequence[str], detach: bool = False, tty: bool = False
) -> list[str]:
    flags = [*(["-d"] if detach else []), *(["-t"] if tty else []), "--exec-id", exec_id]
    return ctr(ns, "tasks", "exec", flags=flags, args=[cid, *command])


def tasks_ps(ns: str, cid: str) -> list[str]:
    return ctr(ns, "tasks", "ps", args=[cid])


def tasks_kill(ns: str, cid: str, signal: str) -> list[str]:
    return ctr(ns, "tasks", "kill", flags=["-s", signal], args=[cid])


def tasks_rm(ns: str, cid: str, force: bool = False) -> list[str]:
    return ctr(ns, "tasks", "delete", flags=["-f"] if force else [], args=[cid])


def run(ns: str, ref: str, cid: str, command: Sequence[str] = (), rm: bool = False) -> list[str]:
    """`ctr run`: detached, or with --rm in the foreground (ctr allows not both)."""
    return ctr(ns, "run", flags=["--rm"] if rm else ["-d"], args=[ref, cid, *command])


def detaches(argv: Sequence[str]) -> bool:
    """Whether ctr runs the process detached: -d among the flags (before `--`),
    as a flag, not as another flag's value (`-s -d`)."""
    flags = argv[: argv.index("--")] if "--" in argv else argv
    return any(w == "-d" and not flags[i - 1].startswith("-") for i, w in enumerate(flags) if i)


# Every task of every namespace in one round trip. A fixed script: nothing of
# the user's reaches it.
PS_SCRIPT = 'for ns in $(ctr namespaces ls -q); do echo "@@ns $ns"; ctr -n "$ns" tasks ls; done'


def ps() -> list[str]:
    return ["sh", "-c", PS_SCRIPT]


def expand_ref(ref: str) -> str:
    """Docker-style normalisation ctr lacks: alpine -> docker.io/library/alpine:latest."""
    name, _, digest = ref.partition("@")
    first, _, rest = name.partition("/")
    if not rest:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    elif first == "docker.io" and "/" not in rest:
        name = f"docker.io/library/{rest}"
    last = name.rsplit("/", 1)[-1]
    if not digest and ":" not in last:
        name += ":latest"
    return f"{name}@{digest}" if digest else name


# ---------------------------------------------------------------- parsers


def parse_table(text: str) -> list[dict[str, str]]:
    """A ctr table (tabwriter-aligned, cells may be empty or contain spaces):
    cut each line at the header's column starts."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


@dataclass(frozen=True)
class Task:
    namespace: str
    container: str
    pid: int
    status: str


@dataclass(frozen=True)
class Process:
    pid: int
    exec_id: str  # "" for the task's init process


def parse_tasks_ls(text: str, namespace: str = DEFAULT_NAMESPACE) -> list[Task]:
    return [Task(namespace, r["TASK"], int(r["PID"] or 0), r["STATUS"]) for r in parse_table(text)]


def parse_ps(text: str) -> list[Task]:
    """Output of ps(): namespace markers, each followed by a tasks table."""
    tasks: list[Task] = []
    namespace, block = "", list[str]()
    for line in [*text.splitlines(), "@@ns "]:
        if line.startswith("@@ns "):
            if namespace:
                tasks += parse_tasks_ls("\n".join(block), namespace)
            namespace, block = line[5:].strip(), []
        else:
            block.append(line)
    return tasks


def parse_tasks_ps(text: str) -> list[Process]:
    """`ctr t ps`: containerd 1.6 prints the exec id as a Go struct
    (&ProcessDetails{ExecID:pro1,...}), later releases as exec_id:"pro1"."""
    found = []
    for row in parse_table(text):
        info = row.get("INFO", "")
        m = _EXEC_ID_KV.search(info) or _EXEC_ID_GO.search(info)
        found.append(Process(int(row["PID"]), m.group(1) if m else ""))
    return found


def _columns(text: str, required: dict[str, str], optional: dict[str, str]) -> list[dict[str, str]]:
    """A ctr table's rows under labctl's keys: `required` columns (key -> ctr's
    column), and `optional` ones, "" where ctr leaves them out."""
    return [
        {**{k: r[c] for k, c in required.items()}, **{k: r.get(c, "") for k, c in optional.items()}}
        for r in parse_table(text)
    ]


def parse_namespaces_ls(text: str) -> list[dict[str, str]]:
    return _columns(text, {"namespace": "NAME"}, {"labels": "LABELS"})


def parse_images_ls(text: str) -> list[dict[str, str]]:
    optional = {"digest": "DIGEST", "size": "SIZE", "platforms": "PLATFORMS"}
    return _columns(text, {"ref": "REF"}, optional)


def parse_containers_ls(text: str) -> list[dict[str, str]]:
    return _columns(text, {"container": "CONTAINER", "image": "IMAGE", "runtime": "RUNTIME"}, {})


def parse_containers_info(text: str) -> dict[str, object]:
    """`ctr c info` is JSON already."""
    return dict(json.loads(text))


def error_text(stderr: str) -> str:
    """ctr's own message: its `ctr: ...` line, without the log lines around it."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    own = [ln for ln in lines if ln.startswith("ctr: ")]
    return (own[-1] if own else (lines[-1] if lines else "")).strip()


def not_found(stderr: str) -> bool:
    """ctr's word for a container (or image, namespace) that is not there."""
    return error_text(stderr).endswith(": not found")


UNIT_DIR = "/etc/systemd/system"


def can_have_unit(namespace: str, cid: str) -> bool:
    """Only identifiers go into a unit's name and its ExecStart lines."""
    return is_identifier(cid) and is_identifier(namespace)


def _unit_words(namespace: str, cid: str) -> None:
    if not can_have_unit(namespace, cid):
        raise ValueError(f"invalid container id or namespace: {cid!r} / {namespace!r}")


def unit_name(namespace: str, cid: str) -> str:
    _unit_words(namespace, cid)
    return f"labctl-ctr-{namespace}-{cid}.service"


def service_unit(namespace: str, cid: str) -> str:
    """A systemd unit that keeps container `cid` running (ctr has no restart
    policy). `ctr task start` without -d stays attached until the task exits,
    so systemd sees the exit and restarts it; stale tasks are cleared first.
    Stopping works like `docker stop`: SIGTERM, and after 10 s the task is
    deleted by force (a container's PID 1 ignores SIGTERM unless it traps it)."""
    _unit_words(namespace, cid)
    ctr_bin = "/usr/bin/ctr"
    return f"""[Unit]
Description=containerd container {cid} in namespace {namespace} (labctl)
After=containerd.service
Requires=containerd.service

[Service]
ExecStartPre=-{ctr_bin} -n {namespace} tasks kill -s SIGKILL {cid}
ExecStartPre=-{ctr_bin} -n {namespace} tasks delete -f {cid}
ExecStart={ctr_bin} -n {namespace} tasks start {cid}
ExecStop=-{ctr_bin} -n {namespace} tasks kill -s SIGTERM {cid}
ExecStopPost=-{ctr_bin} -n {namespace} tasks delete -f {cid}
TimeoutStopSec=10
StandardInput=null
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""
