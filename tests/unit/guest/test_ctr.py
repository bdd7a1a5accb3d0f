"""ctr: builders put flags first; parsers read captured ctr 1.6 output (tests/data/ctr)."""

from __future__ import annotations

import json

import pytest

from labctl.guest import ctr

from ..fakes import data, data_err


def test_flags_always_come_before_positionals() -> None:
    argv = ctr.tasks_exec("default", "test", "pro1", ["/bin/sh", "-c", "echo -n hi"], detach=True)
    assert argv == [
        "ctr",
        "-n",
        "default",
        "tasks",
        "exec",
        "-d",
        "--exec-id",
        "pro1",
        "--",
        "test",
        "/bin/sh",
        "-c",
        "echo -n hi",
    ]
    assert ctr.containers_create("ns", "img", "id", ["sleep", "-n", "9"]) == [
        "ctr",
        "-n",
        "ns",
        "containers",
        "create",
        "--",
        "img",
        "id",
        "sleep",
        "-n",
        "9",
    ]
    assert ctr.tasks_kill("default", "x", "9") == [
        "ctr",
        "-n",
        "default",
        "tasks",
        "kill",
        "-s",
        "9",
        "--",
        "x",
    ]
    assert ctr.tasks_rm("default", "x", force=True) == [
        "ctr",
        "-n",
        "default",
        "tasks",
        "delete",
        "-f",
        "--",
        "x",
    ]
    assert ctr.images_import("default", "/tmp/a.tar", "my/img:1") == [
        "ctr",
        "-n",
        "default",
        "images",
        "import",
        "--index-name",
        "my/img:1",
        "--",
        "/tmp/a.tar",
    ]
    assert ctr.run("default", "img", "id", rm=True)[:6] == [
        "ctr",
        "-n",
        "default",
        "run",
        "--rm",
        "--",
    ]
    assert ctr.run("default", "img", "id")[4] == "-d"


def test_detached_is_ctrs_d_flag_not_a_value() -> None:
    assert ctr.detaches(ctr.tasks_start("default", "x", detach=True))
    assert ctr.detaches(ctr.run("default", "img", "x"))
    assert ctr.detaches(ctr.tasks_exec("default", "x", "e1", ["sh"], detach=True, tty=True))
    assert not ctr.detaches(ctr.run("default", "img", "x", rm=True))
    assert not ctr.detaches(ctr.tasks_kill("default", "x", "-d"))  # a signal named -d
    assert not ctr.detaches(ctr.containers_create("-d", "img", "x", ["-d"]))  # values, arguments
    assert not ctr.detaches(ctr.ps())


def test_hostile_values_stay_single_arguments() -> None:
    from labctl.transport.interface import command_line

    hostile = "x; touch /tmp/pwned $(id) `id` 'q' \"d\""
    line = command_line(ctr.containers_info("default", hostile), sudo=True)
    assert (
        line
        == "sudo -n -H -- ctr -n default containers info -- 'x; touch /tmp/pwned $(id) `id` '\"'\"'q'\"'\"' \"d\"'"
    )


@pytest.mark.parametrize(
    ("short", "full"),
    [
        ("alpine", "docker.io/library/alpine:latest"),
        ("alpine:3.19", "docker.io/library/alpine:3.19"),
        ("bitnami/redis", "docker.io/bitnami/redis:latest"),
        ("ghcr.io/org/app:v1", "ghcr.io/org/app:v1"),
        ("localhost/app", "localhost/app:latest"),
        ("registry:5000/app", "registry:5000/app:latest"),
        ("docker.io/library/alpine:latest", "docker.io/library/alpine:latest"),
        ("alpine@sha256:abc", "docker.io/library/alpine@sha256:abc"),
        ("docker.io/alpine", "docker.io/library/alpine:latest"),
    ],
)
def test_expand_ref(short: str, full: str) -> None:
    assert ctr.expand_ref(short) == full


def test_parse_tasks_ls() -> None:
    assert ctr.parse_tasks_ls(data("ctr/t-ls.txt")) == [ctr.Task("default", "test", 971, "RUNNING")]
    assert ctr.parse_tasks_ls(data("ctr/t-ls-stopped.txt"))[0].status == "STOPPED"


def test_parse_ps_over_namespaces() -> None:
    tasks = ctr.parse_ps(data("ctr/ps-all.txt"))
    assert [(t.namespace, t.container, t.status) for t in tasks] == [
        ("default", "test", "RUNNING"),
        ("other", "svc", "RUNNING"),
    ]
    assert all(t.pid > 0 for t in tasks)


@pytest.mark.parametrize("name", ["ctr/t-ps.txt", "ctr/t-ps-exec-id-format.txt"])
def test_parse_tasks_ps_both_formats(name: str) -> None:
    procs = ctr.parse_tasks_ps(data(name))
    assert [p.exec_id for p in procs] == ["", "pro1", "pro2", "pro3"]
    assert len({p.pid for p in procs}) == 4


def test_parse_images_ls_keeps_cells_with_spaces() -> None:
    (img,) = ctr.parse_images_ls(data("ctr/images-ls.txt"))
    assert img == {
        "ref": "docker.io/labctl/busybox:latest",
        "digest": "sha256:dacf83c5c16acdd32721c5ebf625d29ff26fea496b99570cfd6a904ce311b555",
        "size": "2.0 MiB",
        "platforms": "linux/amd64",
    }


def test_parse_containers_ls_and_namespaces_ls() -> None:
    assert ctr.parse_containers_ls(data("ctr/c-ls.txt")) == [
        {
            "container": "test",
            "image": "docker.io/labctl/busybox:latest",
            "runtime": "io.containerd.runc.v2",
        }
    ]
    assert ctr.parse_namespaces_ls(data("ctr/ns-ls.txt")) == [
        {"namespace": "default", "labels": ""},
        {"namespace": "other", "labels": ""},
    ]


def test_parse_containers_info_is_json() -> None:
    info = ctr.parse_containers_info(data("ctr/c-info.txt"))
    assert info["ID"] == "test"
    assert info["Spec"]["process"]["args"] == ["/bin/sh"]  # type: ignore[index]
    json.dumps(info)


def test_empty_tables() -> None:
    assert ctr.parse_tasks_ls("") == []
    assert ctr.parse_tasks_ls("TASK    PID    STATUS    \n") == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ctr/err-task-exists.txt", "ctr: task test: already exists"),
        (
            "ctr/err-container-not-found.txt",
            'ctr: container "nope" in namespace "default": not found',
        ),
        ("ctr/err-image-not-found.txt", 'ctr: image "docker.io/library/alpine:latest": not found'),
        (
            "ctr/err-container-rm-missing.txt",
            'ctr: container "test" in namespace "default": not found',
        ),
        (
            "ctr/err-pull-short-name.txt",
            'ctr: failed to resolve reference "alpine": object required',
        ),
        (  # the logrus line before it is not the message
            "ctr/err-namespace-not-empty.txt",
            'ctr: unable to delete other: namespace "other" must be empty, but it still has '
            'images, blobs, containers, snapshots on "overlayfs" snapshotter: failed precondition',
        ),
    ],
)
def test_error_text_is_ctrs_own_line(name: str, message: str) -> None:
    assert ctr.error_text(data_err(name)) == message


def test_identifiers() -> None:
    for good in ("test", "svc-1", "a.b_c", "A1"):
        assert ctr.is_identifier(good)
    for bad in ("", "-x", "x;id", "a b", "a\nExecStart=/bin/evil", "x" * 77, "a..b"):
        assert not ctr.is_identifier(bad)


def test_service_unit() -> None:
    unit = ctr.service_unit("default", "svc")
    assert "ExecStart=/usr/bin/ctr -n default tasks start svc\n" in unit
    assert "Restart=always" in unit
    assert ctr.unit_name("default", "svc") == "labctl-ctr-default-svc.service"


@pytest.mark.parametrize(("ns", "cid"), [("default", "x; reboot"), ("a b", "svc")])
def test_unit_builders_refuse_what_is_not_an_identifier(ns: str, cid: str) -> None:
    assert not ctr.can_have_unit(ns, cid)
    for build in (ctr.unit_name, ctr.service_unit):
        with pytest.raises(ValueError, match="invalid container id or namespace"):
            build(ns, cid)
