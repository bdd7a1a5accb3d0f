"""Lab files -> a validated LabSpec: what the schema (schema.py) cannot say is
checked here with the path of the offending key (sources that exist, no
cycles, names after `count`, addresses inside the subnet, scripts that exist),
then the machines get their provisioners, and the file is normalised for the
lab folder.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import yaml

from labctl import providers, roles
from labctl.errors import InvalidField, SpecError
from labctl.lab import pkgcache
from labctl.lab.hostpaths import HostPaths
from labctl.lab.spec import (
    ForwardedPort,
    LabSpec,
    Machine,
    Origin,
    Provisioner,
    check_name,
    check_subnet,
)
from labctl.labfile.schema import Loc, Parsed, declared_roles
from labctl.project import render

FIRST_AUTO_IP = 10
_HEX = re.compile(r"[0-9a-f]+")
_HOSTNAME = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
USER_SCRIPTS = "user"  # below the lab folder's provision/


# ---------------------------------------------------------------- building the spec


@dataclass(frozen=True)
class Resolved:
    """Lab-wide values decided outside the file (options, the existing lab, the host)."""

    name: str
    provider: str
    box: str
    subnet: str
    timezone: str
    lab_id: str
    origin: Origin
    cpus: int | None = None  # --cpus / --memory: over the file's defaults
    memory: int | None = None
    libvirt_uri: str | None = None
    mgmt_subnet: str | None = None
    moved: roles.Moves = field(default_factory=dict)  # roles labctl moved (a switchover)
    # host paths beyond the lab file's folder that the user allowed
    # (--allow-host-path, a --jenkins-war given, what the lab already had)
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Built:
    """A spec, the user's scripts to copy into the lab folder, and the
    normalised lab file kept beside lab.json."""

    spec: LabSpec
    scripts: dict[str, bytes]
    normalised: str


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:16]


def _script_target(path: Path, base: Path) -> str:
    """A script's path below the lab folder's provision/ (one the user
    allowed from outside the lab file's folder goes to ext/)."""
    try:
        rel = PurePosixPath(path.relative_to(base).as_posix())
    except ValueError:
        rel = PurePosixPath("ext", path.name)
    # a lab folder's own lab.yaml names its copies: keep their place
    if rel.parts[:2] == ("provision", USER_SCRIPTS):
        rel = PurePosixPath(*rel.parts[2:])
    return f"{USER_SCRIPTS}/{rel}"


def _ip(p: Parsed, key: str, value: int | str, subnet: str) -> int:
    """A machine's `ip` as its last octet, checked against the subnet."""
    loc: Loc = ("machines", key, "ip")
    if isinstance(value, int):
        octet = value
    else:
        try:
            addr = ipaddress.IPv4Address(value)
        except ValueError:
            raise p.error(loc, f"{value!r} is not an IPv4 address") from None
        if addr not in ipaddress.IPv4Network(f"{subnet}.0/24"):
            raise p.error(loc, f"{value} is outside the lab's subnet {subnet}.0/24")
        octet = int(str(addr).rsplit(".", 1)[1])
    if not 2 <= octet <= 254:
        raise p.error(loc, f"{value} is not a usable host address of {subnet}.0/24 (2-254)")
    return octet


@dataclass(frozen=True)
class _Planned:
    """A machine after `count`: its name, its key in the file, hostname, and
    the address octet the file fixes (None: chosen here)."""

    name: str
    key: str
    hostname: str
    fixed: int | None


def _names(p: Parsed, subnet: str) -> list[_Planned]:
    """Every machine, `count` expanded; names and hostnames unique."""
    planned: list[_Planned] = []
    names: dict[str, str] = {}
    hostnames: dict[str, str] = {}
    for key, decl in p.model.machines.items():
        count = decl.count
        for i in range(1, (count or 1) + 1):
            name = f"{key}{i}" if count else key
            if len(name) > 31:
                raise p.error(
                    ("machines", key, "count"), f"machine name {name!r} is longer than 31"
                )
            if name in names:
                raise p.error(
                    ("machines", key, "count" if count else "[key]"),
                    f"machine name {name!r} is already taken (by {names[name]})",
                )
            names[name] = key
            _check_not_an_id(p, key, name, count)
            hostname = f"{decl.hostname}{i}" if decl.hostname and count else decl.hostname or name
            if not _HOSTNAME.fullmatch(hostname) or hostname == "localhost":
                raise p.error(
                    ("machines", key, "hostname" if decl.hostname else "[key]"),
                    f"{hostname!r} is not a host name for a machine (RFC 1123: a-z, 0-9 and "
                    "'-', not at either end; not localhost)",
                )
            if hostname in hostnames:
                raise p.error(
                    ("machines", key, "hostname"),
                    f"hostname {hostname!r} is taken by {hostnames[hostname]}",
                )
            hostnames[hostname] = name
            fixed = None
            if decl.ip is not None:
                fixed = _ip(p, key, decl.ip, subnet) + i - 1
                if fixed > 254:
                    raise p.error(
                        ("machines", key, "ip"), f"{count} machines from {decl.ip} run past .254"
                    )
            planned.append(_Planned(name, key, hostname, fixed))
    return planned


def _check_not_an_id(p: Parsed, key: str, name: str, count: int | None) -> None:
    """Vagrant looks every machine name up in its host-wide machine index
    first, where it matches the start of any machine's id (hex digits): a
    name made only of hex digits (db1, a, cafe) would reach another
    project's machine, in labctl and in the user's own `vagrant` alike
    (hashicorp/vagrant#4556)."""
    if not _HEX.fullmatch(name):
        return
    if count:
        loc: Loc = ("machines", key, "count")
        better = f"{key}-"  # db-1, db-2
    else:
        loc = ("machines", key, "[key]")
        better = re.sub(r"(?<=[a-f])(?=[0-9]+$)", "-", name)  # db1 -> db-1
        better = better if better != name else f"{name}-vm"
    raise p.error(
        loc,
        f"machine name {name!r} is only hexadecimal digits, which Vagrant takes for the start "
        "of another machine's id (it would act on that machine)",
        hint=f"give it a letter past f or a '-', e.g. {better!r}",
    )


def _addresses(
    p: Parsed, subnet: str, planned: list[_Planned], existing: LabSpec | None
) -> dict[str, int]:
    """machine -> its address octet: the file's first, then the one a machine
    had (unless the file gives it to another), then the lowest free ones;
    independent of the machines' order in the file."""
    kept = {m.name: int(m.ip.rsplit(".", 1)[1]) for m in existing.machines} if existing else {}
    used: dict[int, str] = {}
    for m in planned:
        if m.fixed is None:
            continue
        if m.fixed in used:
            raise p.error(
                ("machines", m.key, "ip"), f"{subnet}.{m.fixed} is taken by {used[m.fixed]}"
            )
        used[m.fixed] = m.name
    octets = {m.name: m.fixed for m in planned if m.fixed is not None}
    for m in planned:
        had = kept.get(m.name)
        if m.fixed is None and had is not None and had not in used:
            used[had] = m.name
            octets[m.name] = had
    # the addresses of machines leaving in this change stay unused until the
    # next one: the kept machines' /etc/hosts still name them
    staying = {m.name for m in planned}
    leaving = {octet for name, octet in kept.items() if name not in staying}
    for m in planned:
        if m.name in octets:
            continue
        free = next(
            (o for o in range(FIRST_AUTO_IP, 255) if o not in used and o not in leaving), None
        )
        if free is None:
            raise p.error(("machines",), f"more machines than addresses in {subnet}.0/24")
        used[free] = m.name
        octets[m.name] = free
    return octets


def _declarations(
    p: Parsed, reach: HostPaths
) -> tuple[dict[str, list[str]], dict[str, tuple[Path, str]]]:
    """Each declaration's checks that a schema cannot make (repeated roles and
    port ids, scripts that exist where the lab file may reach); (key -> its
    scripts' places below provision/, place -> the script and how the file
    named it)."""
    scripts: dict[str, tuple[Path, str]] = {}
    targets: dict[str, list[str]] = {}
    for key, decl in p.model.machines.items():
        _check_unique(
            p, key, [r for r, _ in declared_roles(decl)], "roles", "role {} is given twice"
        )
        ids = [port.id or f"port{port.guest}" for port in decl.ports]
        _check_unique(
            p, key, ids, "ports", "port id {!r} is given twice (guest ports need their own id)"
        )
        if "ssh" in ids:
            raise p.error(
                ("machines", key, "ports", ids.index("ssh")), "port id 'ssh' is Vagrant's own"
            )
        targets[key] = []
        for i, raw in enumerate(decl.provision):
            loc: Loc = ("machines", key, "provision", i)
            try:
                path = reach.file(raw, "script")
            except SpecError as exc:
                raise p.error(loc, exc.message, exc.hint) from None
            target = _script_target(path, reach.folder)
            if scripts.get(target, (path, raw))[0] != path:
                raise p.error(loc, f"another script is also called {target}")
            scripts[target] = (path, raw)
            targets[key].append(target)
    return targets, scripts


def _machines(
    p: Parsed, r: Resolved, planned: list[_Planned], octets: dict[str, int]
) -> list[Machine]:
    """Machines with their names, addresses, resources and declared roles
    (options as given); no provisioners yet."""
    model = p.model
    machines = []
    for index, m in enumerate(planned):
        decl = model.machines[m.key]
        declared = declared_roles(decl)
        machines.append(
            Machine(
                name=m.name,
                hostname=m.hostname,
                ip=f"{r.subnet}.{octets[m.name]}",
                cpus=decl.cpus or r.cpus or model.defaults.cpus,
                memory=decl.memory or r.memory or model.defaults.memory,
                box=decl.box or r.box,
                roles=tuple(role for role, _ in declared),
                options={role: opts for role, opts in declared if opts},
                primary=index == 0,
                ports=tuple(
                    ForwardedPort(port.id or f"port{port.guest}", port.guest, port.host)
                    for port in decl.ports
                ),
            )
        )
    return machines


def _check_unique(p: Parsed, key: str, values: list[str], field: str, message: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise p.error(("machines", key, field, i), message.format(value))
        seen.add(value)


def _where(p: Parsed, names: dict[str, str]) -> Callable[..., Loc]:
    """machine, then a path inside its declaration -> a loc in the file
    (a role's name becomes its index in `roles`)."""

    def where(machine: str, *rest: str) -> Loc:
        key = names.get(machine, machine)
        loc: list[str | int] = ["machines", key, *rest]
        if len(rest) >= 2 and rest[0] == "roles":
            found = [r for r, _ in declared_roles(p.model.machines[key])]
            if rest[1] in found:
                loc.insert(3, found.index(rest[1]))
        return tuple(loc)

    return where


def build(p: Parsed, r: Resolved, existing: LabSpec | None = None) -> Built:
    """The lab a parsed file describes, with the values decided outside it."""
    model = p.model
    try:
        subnet = check_subnet(r.subnet)
    except SpecError as exc:
        if model.subnet == r.subnet:
            raise p.error(("subnet",), exc.message) from None
        raise
    r = replace(r, subnet=subnet, name=check_name(r.name))
    planned = _names(p, subnet)
    reach = HostPaths.of(p.base_dir, r.allowed)
    targets, scripts = _declarations(p, reach)
    machines = _machines(p, r, planned, _addresses(p, subnet, planned, existing))
    names = {m.name: m.key for m in planned}
    if r.libvirt_uri and not providers.get(r.provider).connects_by_uri:
        if model.libvirt_uri == r.libvirt_uri:
            raise p.error(("libvirt_uri",), "applies only to the libvirt provider")
        raise SpecError("--libvirt-uri applies only to the libvirt provider")
    given = {key: getattr(model, key).model_dump() for key in roles.lab_options()}
    try:
        family_opts = roles.complete_lab_options(given, reach)
    except InvalidField as exc:
        raise p.error(exc.loc, exc.message, exc.hint) from None
    spec = LabSpec(
        id=r.lab_id,
        name=r.name,
        provider=r.provider,
        box=r.box,
        subnet=subnet,
        origin=r.origin,
        machines=tuple(machines),
        timezone=r.timezone,
        libvirt_uri=r.libvirt_uri,
        options=family_opts,
        mgmt_subnet=r.mgmt_subnet,
    )
    try:
        resolved = roles.resolve(spec, _where(p, names))
    except InvalidField as exc:
        raise p.error(exc.loc, exc.message) from None
    machines = [
        replace(m, options={**m.options, **resolved.get(m.name, {})}) for m in spec.machines
    ]
    spec = replace(spec, machines=tuple(roles.follow(machines, r.moved)))
    source = render.data_dir("provision")
    lib = (source / "lib.sh").read_bytes()
    contents = {target: reach.read(path, raw) for target, (path, raw) in scripts.items()}
    digests = {
        script: _digest(lib, (source / script).read_bytes())
        for script in {
            "common.sh",
            *(s.script for m in spec.machines for s in roles.provisioners(spec, m)),
        }
    }

    cache_port = str(pkgcache.port())

    def steps(m: Machine) -> tuple[Provisioner, ...]:
        hosts = " ".join(f"{x.ip}={x.hostname}" for x in spec.machines)
        common = Provisioner(
            "common",
            "common.sh",
            {"LAB_HOSTS": hosts, "LAB_TIMEZONE": spec.timezone, "LAB_APT_CACHE": cache_port},
            digest=digests["common.sh"],
        )
        own = [replace(s, digest=digests[s.script]) for s in roles.provisioners(spec, m)]
        user = [
            Provisioner(f"script:{t.split('/', 1)[1]}", t, digest=_digest(contents[t]))
            for t in targets[names[m.name]]
        ]
        return (common, *own, *user)

    spec = replace(spec, machines=tuple(replace(m, provisioners=steps(m)) for m in spec.machines))
    return Built(spec, contents, normalise(p, spec, r, targets))


def normalise(p: Parsed, spec: LabSpec, r: Resolved, targets: dict[str, list[str]]) -> str:
    """The lab file as given, with the lab-wide values decided and the scripts
    pointing at their copies in the lab folder (so the folder's lab.yaml
    works on its own: `labctl up -f LABFOLDER/lab.yaml`)."""
    data = p.model.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
    data = {
        "name": spec.name,
        "provider": spec.provider,
        "box": spec.box,
        "subnet": spec.subnet,
        "timezone": spec.timezone,
        **{
            k: v
            for k, v in data.items()
            if k not in ("name", "provider", "box", "subnet", "timezone")
        },
    }
    data["defaults"] = p.model.defaults.model_dump()
    for key in ("cpus", "memory"):  # --cpus / --memory win over the file's defaults
        if getattr(r, key) is not None:
            data["defaults"][key] = getattr(r, key)
    for key, decl in p.model.machines.items():
        out = data["machines"][key]
        out["roles"] = [role if not opts else {role: opts} for role, opts in declared_roles(decl)]
        if targets[key]:
            out["provision"] = [f"provision/{t}" for t in targets[key]]
    # each family's options as the role completed them (a war file's path made absolute)
    used = {f.key for f in roles.families_of(spec)}
    for key, options in spec.options.items():
        if key in used or key in data:
            data[key] = {k: v for k, v in options.items() if v is not None}
    # quoted as JSON (a YAML string too): one line, whatever the path holds
    header = f"# Lab {json.dumps(spec.name)}, from {json.dumps(spec.origin.label)}; normalised by labctl.\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
