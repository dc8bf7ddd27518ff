"""run.manager = "docker" as data: the image made from a release archive, the `docker run`
of an instance (limits, hardening, env file, volumes), and the commands each step sends
through a recording transport."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest

from goship.build.archive import Entry, tar_gz
from goship.command import Cmd
from goship.config import parse
from goship.deploy.docker import (
    DockerServices,
    env_text,
    parse_engine,
    parse_inspect,
    parse_ps,
    release_image,
    run_argv,
)
from goship.deploy.layout import Paths
from goship.errors import ApplyError, ConfigErrors, UsageError
from goship.transport.base import Result
from goship.transport.fake import FakeTransport

PATHS = Paths("/srv", "shop")


def config(docker: dict[str, Any] | None = None, **run: Any) -> Any:
    return parse({"app": {"name": "shop"}, "run": {"manager": "docker", **run},
                  "docker": docker or {}, "build": {"files": ["conf/app.ini"]},
                  "env": {"p": {"hosts": ["10.0.0.1"]}}}).env("p").config


def archive(binary: bytes = b"\x7fELF-binary", version: str = "v1.2.3") -> bytes:
    manifest = {"schema": 1, "app": "shop", "version": version, "commit": "abc1234",
                "release_id": f"{version}-0123456789", "target": "linux/amd64",
                "binary": "shop"}
    entries = [Entry("shop", binary, 0o755), Entry("templates/index.html", b"<p>hi</p>", 0o644),
               Entry("manifest.json", json.dumps(manifest).encode(), 0o644)]
    return tar_gz(entries, 1700000000)


def members(data: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            if f is not None:
                out[m.name] = f.read()
    return out


# ---- the image ------------------------------------------------------------------------------
def test_the_image_is_the_release_archive_tagged_with_its_release_id() -> None:
    img = release_image("shop", "v1.2.3-0123456789", archive())
    files = members(img.data)
    manifest = json.loads(files["manifest.json"])
    assert manifest[0]["RepoTags"] == ["goship-shop:v1.2.3-0123456789"]
    assert img.id == "sha256:" + manifest[0]["Config"].rsplit("/", 1)[1]
    config_blob = json.loads(files[manifest[0]["Config"]])
    assert config_blob["config"]["Entrypoint"] == ["/app/shop"]
    assert config_blob["config"]["User"] == "65532:65532"
    # The environment is never baked in: only the image's own fixed variables.
    names = {e.split("=", 1)[0] for e in config_blob["config"]["Env"]}
    assert names == {"PATH", "GIN_MODE", "SSL_CERT_FILE", "ZONEINFO", "PORT"}


def test_same_archive_same_image_id_other_binary_other_id() -> None:
    a = release_image("shop", "r1", archive())
    b = release_image("shop", "r1", archive())
    c = release_image("shop", "r2", archive(binary=b"\x7fELF-other"))
    assert a.id == b.id
    assert a.id != c.id


def test_an_archive_without_manifest_is_refused() -> None:
    bad = tar_gz([Entry("shop", b"x", 0o755)], 0)
    with pytest.raises(ApplyError, match=r"no manifest\.json"):
        release_image("shop", "r9", bad)


# ---- docker run -------------------------------------------------------------------------
def test_run_argv_hardening_limits_and_env_file() -> None:
    c = config({"memory": "256m", "cpus": 0.5, "pids_limit": 200,
                "ulimits": {"nproc": "512:1024"}})
    argv = run_argv(c, PATHS, color="green", port=8180, release="r1",
                    env_file="/srv/shop/shared/env.green", user="998:998")
    joined = " ".join(argv)
    assert argv[:2] == ["docker", "run"]
    assert argv[argv.index("--name") + 1] == "shop-green-8180"
    assert argv[argv.index("--env-file") + 1] == "/srv/shop/shared/env.green"
    assert argv[argv.index("--network") + 1] == "host"
    assert "PORT=8180" in argv
    assert argv[argv.index("--memory") + 1] == "256m"
    assert argv[argv.index("--cpus") + 1] == "0.5"
    assert argv[argv.index("--pids-limit") + 1] == "200"
    assert "--read-only" in argv
    assert "--cap-drop" in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "no-new-privileges" in argv
    assert argv[argv.index("--user") + 1] == "998:998"
    assert "nproc=512:1024" in argv
    assert not any(a.startswith("nofile=") for a in argv)  # the engine's default
    argv = run_argv(config(limit_nofile=4096), PATHS, color="green", port=8180, release="r1",
                    env_file="/e", user=None)
    assert "nofile=4096:4096" in argv
    assert argv[argv.index("--restart") + 1] == "unless-stopped"
    assert "/tmp:rw,nosuid,nodev,size=64m" in joined
    assert argv[-1] == "goship-shop:r1"


def test_run_argv_args_data_dirs_and_config_files() -> None:
    c = config(args=["serve", "--addr", ":{port}", "--db", "{data}/x.db", "{color}/{release}"],
               data_dirs=["uploads"], config_files=["conf/app.ini"])
    argv = run_argv(c, PATHS, color="blue", port=8080, release="r1",
                    env_file="/e", user=None)
    assert argv[argv.index("goship-shop:r1"):] == [
        "goship-shop:r1", "serve", "--addr", ":8080", "--db", "/data/x.db", "blue/r1"]
    vols = [argv[i + 1] for i, a in enumerate(argv) if a == "--volume"]
    assert vols == ["/srv/shop/shared/data:/data",
                    "/srv/shop/shared/data/uploads:/app/uploads",
                    "/srv/shop/colors/blue-8080/conf/app.ini:/app/conf/app.ini:ro"]
    assert "--user" not in argv


def test_hardening_can_be_turned_off_and_restart_counted() -> None:
    c = config({"read_only": False, "cap_drop_all": False, "restart": "on-failure",
                "restart_max": 3})
    argv = run_argv(c, PATHS, color="blue", port=8080, release="r1", env_file="/e", user=None)
    assert "--read-only" not in argv
    assert "--cap-drop" not in argv
    assert argv[argv.index("--restart") + 1] == "on-failure:3"


@pytest.mark.parametrize("docker", [{"ulimits": {"bogus": "1"}}, {"ulimits": {"nofile": "x"}},
                                    {"memory": "lots"}, {"cpus": 0},
                                    {"restart": "sometimes"},
                                    {"restart": "always", "restart_max": 2},
                                    {"pids_limit": 1}])
def test_bad_docker_settings_are_refused(docker: dict[str, Any]) -> None:
    with pytest.raises(ConfigErrors):
        config(docker)


def test_env_file_is_literal_and_refuses_newlines() -> None:
    assert env_text({"B": "two words $X 'q'", "A": "1"}) == "A=1\nB=two words $X 'q'\n"
    with pytest.raises(UsageError, match="newline"):
        env_text({"K": "a\nb"})


# ---- parsers -------------------------------------------------------------------------------
def test_parse_ps_and_inspect() -> None:
    assert parse_ps("blue 8080 running\ngreen 8180 exited\ngreen 8181 restarting\n"
                    "other 1 running\n") == {"blue": [8080], "green": [8181]}
    got = parse_inspect('/shop-blue-8080|2|abcdef0123456789|goship-shop:r1|{"Status":"running",'
                        '"Pid":123,"ExitCode":0,"Error":"a|b"}\ngarbage\n')
    c = got["shop-blue-8080"]
    assert (c.pid, c.restarts, c.status, c.health, c.image) == \
        (123, 2, "running", "none", "goship-shop:r1")


def test_parse_engine() -> None:
    got = parse_engine("28.2.2|vfs|1|cgroupfs|/var/lib/goship-docker",
                       "tmpfs 6291456 120000 6171456 2% /")
    assert got == {"version": "28.2.2", "driver": "vfs", "cgroup": "1",
                   "cgroup_driver": "cgroupfs", "root": "/var/lib/goship-docker",
                   "free_kib": "6171456"}
    assert parse_engine("nonsense", "") is None


# ---- through a recording transport ----------------------------------------------------------
def services(answers: dict[str, Any]) -> tuple[DockerServices, FakeTransport]:
    t = FakeTransport("h1", answers)
    return DockerServices(t, config(), PATHS, systemd=True), t


def test_load_is_skipped_when_the_host_has_the_image() -> None:
    img = release_image("shop", "r1", archive())
    s, t = services({"docker image inspect": Result(0, img.id + "\n", "")})
    assert s.receive("r1", archive()) == "kept"
    assert not any("load" in c.argv for c in t.calls)


def test_load_streams_the_image_when_missing() -> None:
    img = release_image("shop", "r1", archive())
    loaded: list[bytes] = []

    def inspect(cmd: Cmd) -> Result:
        return Result(0, img.id + "\n", "") if loaded else Result(1, "", "No such image")

    def load(cmd: Cmd) -> Result:
        loaded.append(cmd.stdin or b"")
        return Result(0, "Loaded image: goship-shop:r1\n", "")

    s, _t = services({"docker image inspect": inspect, "docker load": load})
    assert s.receive("r1", archive()) == "loaded"
    assert loaded == [img.data]


def test_an_image_the_engine_refuses_is_one_clear_error() -> None:
    s, _ = services({"docker image inspect": Result(1, "", "No such image"),
                     "docker load": Result(1, "", "open /var/lib/x: no space left on device")})
    with pytest.raises(ApplyError, match="docker load refused the image of r1: open "
                                         "/var/lib/x: no space left on device"):
        s.receive("r1", archive())


def test_engine_down_is_one_clear_error() -> None:
    s, _ = services({"docker version": Result(1, "", "Cannot connect to the Docker daemon at "
                                                     "unix:///var/run/docker.sock. Is the "
                                                     "docker daemon running?")})
    with pytest.raises(ApplyError, match="the Docker engine does not answer: Cannot connect"):
        s.check_engine()


def test_start_runs_one_container_per_port_of_the_color() -> None:
    s, t = services({"docker image inspect": Result(0, "sha256:x\n", ""),
                     "goship-id": Result(0, "998:998\n", ""),
                     "goship-run": Result(0, "cid\n", "")})
    s.port_map["green"] = [8180, 8181]
    s.install("green", "blue", None, {"green": "r2", "blue": "r1"})
    s.start("green")
    runs = [c.argv for c in t.calls if "goship-run" in c.argv]
    assert [r[r.index("goship-run") + 1] for r in runs] == ["shop-green-8180", "shop-green-8181"]
    assert all(r[-1] == "goship-shop:r2" for r in runs)


def test_a_missing_image_stops_the_start() -> None:
    s, t = services({"docker image inspect": Result(1, "", "No such image")})
    s.install("green", "blue", None, {"green": "r2"})
    with pytest.raises(ApplyError, match="image of r2 is not on the host"):
        s.start("green")
    assert not any("goship-run" in c.argv for c in t.calls)


def test_standby_is_a_systemd_timer_that_stops_the_containers() -> None:
    s, t = services({"goship-standby": Result(0, "", "")})
    s.schedule_stop("blue", [8080], 600)
    argv = t.calls[-1].argv
    assert "goship-shop-standby-blue" in argv
    assert "600s" in argv
    assert argv[-1] == "shop-blue-8080"


def test_pids_are_running_containers_only() -> None:
    out = ('/shop-blue-8080|0|a|goship-shop:r1|{"Status":"running","Pid":41,"ExitCode":0}\n'
           '/shop-blue-8081|5|b|goship-shop:r1|{"Status":"restarting","Pid":0,"ExitCode":2,'
           '"Health":{"Status":"unhealthy"}}\n')
    s, _ = services({"docker inspect": Result(0, out, "")})
    s.port_map["blue"] = [8080, 8081]
    assert s.pids("blue") == {8080: 41, 8081: None}
    assert "shop-blue-8081 restarting (exit code 2, restarted 5 time(s))" in s.why("blue")


# ---- goship remove -----------------------------------------------------------------------
def test_remove_plans_the_apps_containers_and_images_only() -> None:
    from goship.deploy.remove import parse_probe, plan_host

    text = ("@root\nyes\n@entries\nreleases\n@containers\nshop-blue-8080\nshop-green-8180\n"
            "shop-admin-blue-8090\n@images\ngoship-shop:v1-abc\ngoship-shop-admin:v1-x\n"
            "@user\n@end\n")
    f = parse_probe(text, "shop", "shop", PATHS)
    assert f.containers == ("shop-blue-8080", "shop-green-8180")
    assert f.images == ("goship-shop:v1-abc",)
    steps = {s.kind: s.what for s in plan_host("h1", "shop", "shop", PATHS, f,
                                               purge_data=False).steps}
    assert steps["stop and remove containers"] == ("shop-blue-8080", "shop-green-8180")
    assert steps["remove images"] == ("goship-shop:v1-abc",)


# ---- [docker] registry --------------------------------------------------------------------
def test_registry_layout_and_reference() -> None:
    from goship.deploy.registry import Registry, read_layout

    img = release_image("shop", "r1", archive())
    lay = read_layout(img.data)
    manifest = json.loads(lay.manifest)
    assert set(lay.blobs) == {manifest["config"]["digest"],
                              *(x["digest"] for x in manifest["layers"])}
    assert "sha256:" + lay.manifest_digest[7:] == lay.manifest_digest
    assert img.id == manifest["config"]["digest"]  # what the host's engine calls it
    reg = Registry.parse("10.78.0.13:5000/team/shop", insecure=True)
    assert reg.base == "http://10.78.0.13:5000/v2/team/shop"
    assert reg.ref(lay.manifest_digest) == f"10.78.0.13:5000/team/shop@{lay.manifest_digest}"


@pytest.mark.parametrize("value", ["no-repo", "Host:5000/app", "h:5000/a b", "h/../x",
                                   "http://h/app", "h:5000/app;rm"])
def test_bad_registry_is_refused(value: str) -> None:
    with pytest.raises(ConfigErrors):
        config({"registry": value})


def test_registry_accepted() -> None:
    assert config({"registry": "registry.example.com:5000/team/app"}).docker.registry


def test_parse_ldd_keeps_the_resolved_libraries_and_the_loader() -> None:
    from goship.deploy.docker import parse_ldd

    text = ("\tlinux-vdso.so.1 (0x00007ffd5b9f5000)\n"
            "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1a2c000000)\n"
            "\t/lib64/ld-linux-x86-64.so.2 (0x00007f1a2c3e0000)\n")
    assert parse_ldd(text) == ["/lib/x86_64-linux-gnu/libc.so.6",
                               "/lib64/ld-linux-x86-64.so.2"]


def test_a_cgo_build_for_another_architecture_is_refused() -> None:
    from goship.deploy.docker import c_libraries

    with pytest.raises(ApplyError, match="cgo build for linux/s390x"):
        c_libraries(b"\x7fELF", "s390x", "r1")


def test_doctor_judges_the_engine() -> None:
    from goship.doctor import judge_engine

    ok = judge_engine("h1", {"version": "28.2.2", "driver": "overlay2", "cgroup": "2",
                             "cgroup_driver": "systemd", "root": "/var/lib/docker",
                             "free_kib": str(20 * 1024 * 1024)})
    assert ok.line() == ("ok   h1: docker: engine 28.2.2, storage overlay2, cgroup v2 "
                         "(systemd), 20.0 GiB free in /var/lib/docker")
    full = judge_engine("h1", {"version": "28.2.2", "driver": "vfs", "cgroup": "1",
                               "cgroup_driver": "cgroupfs", "root": "/d", "free_kib": "1000"})
    assert full.level == "fail"
    assert "docker image prune" in full.line()
    down = judge_engine("h1", None)
    assert down.level == "fail"
    assert "the engine does not answer" in down.line()
