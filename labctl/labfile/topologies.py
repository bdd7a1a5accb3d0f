"""The built-in topologies: lab files that ship with labctl (templates/labs/),
each with the few parameters its template takes.

`labctl up jenkins --agents 3` renders jenkins.yaml.j2 with agents=3 and
reads the result like any lab file; `labctl init jenkins --agents 3` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labctl.errors import SpecError
from labctl.project.render import environment


@dataclass(frozen=True)
class Param:
    """A topology parameter: its default and the values it accepts."""

    default: Any
    flag: str
    low: int | None = None
    high: int | None = None
    choices: tuple[Any, ...] = ()

    def check(self, value: Any) -> Any:
        if value is None:
            return None
        if self.low is not None and self.high is not None and not self.low <= value <= self.high:
            raise SpecError(f"{self.flag} must be between {self.low} and {self.high}, got {value}")
        if self.choices and value not in self.choices:
            raise SpecError(
                f"{self.flag} must be {' or '.join(map(str, self.choices))}, got {value}"
            )
        return value


_CONTAINERD = Param(True, "--containerd/--no-containerd")

# Every topology's own parameters; cpus and memory apply to all of them.
PARAMS: dict[str, dict[str, Param]] = {
    "nodes": {"count": Param(2, "--count", 1, 9), "containerd": _CONTAINERD},
    "jenkins": {
        "agents": Param(2, "--agents", 0, 9),
        "jdk": Param(17, "--jdk", choices=(17, 21)),
        "jenkins_war": Param(None, "--jenkins-war"),
        "containerd": _CONTAINERD,
    },
    "mysql-pair": {
        "replicas": Param(1, "--replicas", 1, 5),
        "chain": Param(False, "--chain/--star"),
        "gtid": Param(False, "--gtid/--no-gtid"),
        "containerd": _CONTAINERD,
    },
}
TOPOLOGIES = tuple(PARAMS)
COMMON = {"cpus": Param(None, "--cpus", 1, 64), "memory": Param(None, "--memory", 256, 262144)}


def check_topology(name: str) -> str:
    if name not in PARAMS:
        raise SpecError(f"unknown topology {name!r} (topologies: {', '.join(TOPOLOGIES)})")
    return name


def params(topology: str, recorded: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a topology lab: its recorded ones, then those given
    (checked). A parameter of another topology is refused."""
    own = PARAMS[check_topology(topology)]
    allowed = {**own, **COMMON}
    for key in given:
        if key not in allowed:
            flag = key.replace("_", "-")
            takes = ", ".join(p.flag for p in own.values())
            raise SpecError(f"--{flag} does not apply to {topology} (its options: {takes})")
    merged = {key: p.default for key, p in allowed.items()}
    merged.update({k: v for k, v in recorded.items() if k in allowed})
    merged.update({k: allowed[k].check(v) for k, v in given.items()})
    return merged


def lab_text(topology: str, values: dict[str, Any]) -> str:
    """The topology's lab file for these parameter values."""
    template = environment("labs").get_template(f"{check_topology(topology)}.yaml.j2")
    return str(template.render(**values))
