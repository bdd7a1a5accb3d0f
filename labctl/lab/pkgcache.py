"""The host's package cache: one apt-cacher-ng for every guest of every lab,
so a package that no box carries is downloaded once per host, not once per
guest.

labctl starts it (`labctl cache start`) and stops it (`labctl cache stop`);
it is never started behind the user's back. It lives in the host-wide
folder (LABCTL_HOST_DIR, /var/tmp/labctl) with its own configuration, so a
system apt-cacher-ng, if there is one, is not touched. Guests find it at
their default gateway (the host, on all three providers: docker's bridge,
libvirt's management network, VirtualBox's NAT) on PORT, and fetch directly
when it does not answer (provision/common.sh), so a stopped cache never
breaks a lab.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import LabctlError, SpecError
from labctl.lab.hostnet import host_dir
from labctl.local import process

PORT = 3142  # apt-cacher-ng's own
# apt-cacher-ng 3.7 starts on a port from 32768 up but listens on none
# ("Error resolving address for binding"), so those are refused here.
PORTS = range(1024, 32768)
PROGRAM = "apt-cacher-ng"
START_WAIT = 15.0

# Debian's and Ubuntu's archives, named the way Debian's own apt-cacher-ng
# package names them (the mirror lists ship with it, in its SupportDir), so
# a guest on any official mirror shares one copy of each file.
_CONF = """\
# Written by labctl (labctl cache start); rewritten at every start.
CacheDir: {cache}
LogDir: {log}
SupportDir: /usr/lib/apt-cacher-ng
Port: {port}
PidFile: {pid}
Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian
Remap-uburep: file:ubuntu_mirrors /ubuntu ; file:backends_ubuntu
Remap-secdeb: security.debian.org security.debian.org/debian-security \
deb.debian.org/debian-security /debian-security ; deb.debian.org/debian-security
ReportPage: acng-report.html
ExThreshold: 4
"""
_BACKENDS = {
    "backends_debian": "http://deb.debian.org/debian/\n",
    "backends_ubuntu": "http://archive.ubuntu.com/ubuntu/\n",
}


def port() -> int:
    """The cache's port: LABCTL_CACHE_PORT, else apt-cacher-ng's 3142."""
    text = os.environ.get("LABCTL_CACHE_PORT", "").strip()
    if not text:
        return PORT
    if not text.isascii() or not text.isdigit() or int(text) not in PORTS:
        raise SpecError(
            f"LABCTL_CACHE_PORT={text!r} is not a port from {PORTS.start} to {PORTS.stop - 1}"
            " (apt-cacher-ng listens on no higher one)"
        )
    return int(text)


@dataclass(frozen=True)
class Stats:
    """What the cache's own log says: package files served from the cache
    (hits), fetched from the archive (misses), and their bytes."""

    hits: int = 0
    misses: int = 0
    bytes_served: int = 0
    bytes_fetched: int = 0


@dataclass(frozen=True)
class CacheState:
    running: bool
    pid: int | None
    port: int
    folder: str
    size: int  # bytes on disk
    stats: Stats


def stats_of(log: str) -> Stats:
    """Hits and misses of package files (.deb) in apt-cacher-ng's transfer
    log, whose lines are `TIME|I|BYTES|CLIENT|PATH` for a file fetched from
    the archive and `TIME|O|BYTES|CLIENT|PATH` for one sent to a guest: a
    file sent more often than fetched was served from the cache."""
    fetched: Counter[str] = Counter()
    served: Counter[str] = Counter()
    bytes_in = bytes_out = 0
    for line in log.splitlines():
        fields = line.split("|", 4)
        if len(fields) != 5 or not fields[4].endswith(".deb") or not fields[2].isdigit():
            continue
        if fields[1] == "I":
            fetched[fields[4]] += 1
            bytes_in += int(fields[2])
        elif fields[1] == "O":
            served[fields[4]] += 1
            bytes_out += int(fields[2])
    hits = sum(max(0, n - fetched[path]) for path, n in served.items())
    return Stats(hits, sum(fetched.values()), bytes_out, bytes_in)


@dataclass(frozen=True)
class PackageCache:
    """One cache's folder: configuration, files, logs, pid."""

    root: Path

    @classmethod
    def locate(cls) -> PackageCache:
        return cls(host_dir() / "apt-cache")

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    @property
    def pidfile(self) -> Path:
        return self.root / "apt-cacher-ng.pid"

    def pid(self) -> int | None:
        """The running cache's pid: the pid file's process, if it is this
        cache's apt-cacher-ng (never another program that took the number)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        ours = Path(argv[0].decode(errors="replace")).name == PROGRAM and (
            str(self.conf).encode() in argv
        )
        return pid if ours else None

    def state(self) -> CacheState:
        pid = self.pid()
        try:
            log = (self.logs / "apt-cacher.log").read_text(errors="replace")
        except OSError:
            log = ""
        return CacheState(
            running=pid is not None,
            pid=pid,
            port=self.running_port() if pid is not None else port(),
            folder=str(self.root),
            size=_size(self.files),
            stats=stats_of(log),
        )

    def running_port(self) -> int:
        """The port in the configuration the cache was started with."""
        try:
            text = (self.conf / "acng.conf").read_text()
        except OSError:
            return port()
        found = re.search(r"^Port: (\d+)$", text, re.M)
        return int(found.group(1)) if found else port()

    def start(self) -> tuple[CacheState, bool]:
        """(state, started): the cache running, and whether it was started now."""
        if self.pid() is not None:
            return self.state(), False
        chosen = port()
        if shutil.which(PROGRAM) is None:
            raise LabctlError(f"{PROGRAM} is not installed", hint=f"apt-get install {PROGRAM}")
        if _answers(chosen):
            raise LabctlError(
                f"port {chosen} is taken by another program",
                hint="stop it, or choose another: LABCTL_CACHE_PORT=N labctl cache start",
            )
        self.write_config(chosen)
        done = process.run([PROGRAM, "-c", str(self.conf)], timeout=60)
        if done.returncode != 0:
            raise LabctlError(f"{PROGRAM} did not start: {done.stderr.strip()[-300:]}")
        deadline = time.monotonic() + START_WAIT
        while not (_answers(chosen) and self.pid() is not None):
            if time.monotonic() > deadline:
                self.stop()  # nothing half-started is left running
                said = (done.stderr or done.stdout).strip()
                raise LabctlError(
                    f"{PROGRAM} did not answer on port {chosen} within {START_WAIT:g} s"
                    + (f": {said[-200:]}" if said else ""),
                    hint=f"see {self.logs / 'apt-cacher.err'}",
                )
            time.sleep(0.1)
        return self.state(), True

    def write_config(self, chosen: int) -> None:
        for folder in (self.conf, self.files, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        text = _CONF.format(cache=self.files, log=self.logs, port=chosen, pid=self.pidfile)
        (self.conf / "acng.conf").write_text(text)
        for name, body in _BACKENDS.items():
            (self.conf / name).write_text(body)

    def stop(self) -> bool:
        """Stop this cache; False when it was not running (nothing to do)."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + START_WAIT
        while Path(f"/proc/{pid}").exists() and self.pid() == pid:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.1)
        self.pidfile.unlink(missing_ok=True)
        return True


def _answers(chosen: int) -> bool:
    """Something accepts connections on this port of the host's loopback."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", chosen)) == 0


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):  # a file expired while walking
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
