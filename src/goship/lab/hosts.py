"""Boot, inspect, break and remove lab hosts."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from goship.errors import LabError, UsageError
from goship.lab import layout, system
from goship.lab.layout import BRIDGE, BRIDGE_ADDR, LAB_DIR, MAX_HOSTS, HostLayout
from goship.lab.system import sh
from goship.transport.base import Transport

# A fresh server runs none of these; on the lab's copy of this machine they would only
# cost memory or fail for want of hardware.
MASKED_UNITS = (
    "postgresql.service", "docker.service", "docker.socket", "containerd.service",
    "getty@tty1.service", "console-getty.service", "supervisor.service", "redis-server.service",
    "memcached.service", "systemd-networkd.service", "systemd-resolved.service",
    "apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer",
    "fstrim.timer", "logrotate.timer", "systemd-tmpfiles-clean.timer",
    "prometheus.service", "rsyslog.service", "syslog.socket",
    "etcd.service",  # Debian's etcd-server enables it; `up --kubernetes` runs it on h1 only
)
DOCKER_UNITS = ("docker.service", "docker.socket", "containerd.service")
# Debian's dockerd on a lab host (`lab up --docker`): its default /var/lib/docker sits in
# the overlay root, which refuses to rename a directory of the lower layer (EXDEV), and
# overlay2 cannot stack on that overlay: a fresh data-root and the vfs driver work (cgroup
# v1, cgroupfs). Nothing is pulled: images come from `goship package --image` or a deploy.
# No bridge and no iptables: goship's containers use the host's network.
DOCKER_DAEMON = {
    "data-root": "/var/lib/goship-docker",
    "exec-root": "/run/goship-docker",
    "storage-driver": "vfs",
    "exec-opts": ["native.cgroupdriver=cgroupfs"],
    "bridge": "none",
    "iptables": False,
    "ip6tables": False,
    "log-level": "warn",
    # A registry on a lab host speaks plain HTTP ([docker] registry_insecure).
    "insecure-registries": ["10.78.0.0/24"],
}
KUBE_MAX_HOSTS = 5
HOST_KEY_TYPES = ("ed25519", "ecdsa")
LAUNCH_SCRIPT = """#!/bin/sh
# On the machine: join the host's own cgroups, then enter its namespaces.
for procs in {procs}; do echo $$ > "$procs"; done
exec ip netns exec {netns} unshare --cgroup --pid --fork --mount --uts \\
  --propagation private {boot}
"""
BOOT_SCRIPT = """#!/bin/sh
# Runs inside the host's own network, mount, UTS, cgroup and PID namespaces: becomes PID 1.
R={root}
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
# cgroup filesystems mounted inside the cgroup namespace show only this host's subtree.
umount -R "$R/sys/fs/cgroup" 2>/dev/null || umount -l "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=755 tmpfs "$R/sys/fs/cgroup"
{cgroup_mounts}
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
hostname lab-{name}
export container=goship-lab
# pivot_root, not chroot: inside a chroot the kernel refuses user namespaces, and real
# servers run units with PrivateUsers=yes.
mkdir -p "$R/.goship-oldroot"
cd "$R"
pivot_root . .goship-oldroot
umount -l /.goship-oldroot
exec /lib/systemd/systemd --system
"""


@dataclass(frozen=True)
class HostStatus:
    name: str
    addr: str
    running: bool
    network: str  # up | cut | missing
    ssh: bool
    init_pid: int | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One lab command at a time: two `up`s must never build the same host twice."""
    lock_path = Path(str(LAB_DIR) + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ssh_argv(h: HostLayout) -> list[str]:
    return [
        "ssh", "-i", str(layout.key_path()), "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={layout.known_hosts_path()}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
        "-o", "ConnectTimeout=3", f"root@{h.addr}",
    ]


def _ensure_network() -> None:
    if not system.link_exists(BRIDGE):
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{BRIDGE_ADDR}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    # A Docker engine sets FORWARD to DROP (with br_netfilter, bridged frames pass it):
    # let lab hosts reach each other, and nothing else.
    if shutil.which("iptables"):
        rule = ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]
        if sh("iptables", "-C", *rule, check=False).returncode != 0:
            sh("iptables", "-I", *rule)


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_PER_HOST = 48  # systemd, journald, logind, a user manager: measured ~30 a host


def _ensure_inotify(count: int, state: dict[str, object]) -> None:
    """Every host's systemd shares root's inotify instance limit (128 by default); 20 hosts
    need more. Raised only as far as needed, and `down` puts the old value back."""
    current = int(INOTIFY_INSTANCES.read_text())
    wanted = 128 + INOTIFY_PER_HOST * count
    if current < wanted:
        state.setdefault("inotify_instances_before", current)
        INOTIFY_INSTANCES.write_text(str(wanted))


def _restore_inotify(state: dict[str, object]) -> None:
    before = state.get("inotify_instances_before")
    if isinstance(before, int):
        INOTIFY_INSTANCES.write_text(str(before))


def _ensure_key() -> None:
    key = layout.key_path()
    if not key.exists():
        LAB_DIR.mkdir(parents=True, exist_ok=True)
        os.chmod(LAB_DIR, 0o700)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "goship-lab", "-f", str(key))


def _prepare_root(h: HostLayout) -> list[str]:
    """The host's disk: tmpfs, overlay of /, identity. Returns its known_hosts lines."""
    h.dir.mkdir(parents=True, exist_ok=True)
    if not system.is_mountpoint(h.dir):
        sh("mount", "-t", "tmpfs", "-o", "size=6g,mode=755", "tmpfs", str(h.dir))
    for sub in ("upper", "work", "root"):
        (h.dir / sub).mkdir(exist_ok=True)
    fresh = not system.is_mountpoint(h.root)
    if fresh:
        # A fresh server has an empty /srv, whatever this machine keeps in its own.
        (h.dir / "upper" / "srv").mkdir(exist_ok=True)
        os.setxattr(h.dir / "upper" / "srv", "trusted.overlay.opaque", b"y")
        sh("mount", "-t", "overlay", "overlay", "-o",
           f"lowerdir=/,upperdir={h.dir}/upper,workdir={h.dir}/work", str(h.root))
    r = h.root
    ssh_dir = r / "etc" / "ssh"
    if fresh:
        (r / "etc" / "hostname").write_text(f"lab-{h.name}\n")
        (r / "etc" / "machine-id").write_text(secrets.token_hex(16) + "\n")
        for old in ssh_dir.glob("ssh_host_*"):
            old.unlink()
        for kind in HOST_KEY_TYPES:
            sh("ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"lab-{h.name}",
               "-f", str(ssh_dir / f"ssh_host_{kind}_key"))
        (r / "root" / ".ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
        auth = r / "root" / ".ssh" / "authorized_keys"
        auth.write_text(Path(str(layout.key_path()) + ".pub").read_text())
        auth.chmod(0o600)
        units = r / "etc" / "systemd" / "system"
        units.mkdir(parents=True, exist_ok=True)
        for unit in MASKED_UNITS:
            link = units / unit
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to("/dev/null")
    lines = []
    for kind in HOST_KEY_TYPES:
        pub = (ssh_dir / f"ssh_host_{kind}_key.pub").read_text().split()
        lines.append(f"{h.addr} {pub[0]} {pub[1]}")
    return lines


def _ensure_netns(h: HostLayout) -> None:
    if not system.netns_exists(h.netns):
        sh("ip", "netns", "add", h.netns)
    if not system.link_exists(h.veth):
        sh("ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
        sh("ip", "-n", h.netns, "addr", "add", f"{h.addr}/24", "dev", "eth0")
        # Only a new link is brought up: a host cut on purpose stays cut until `heal`.
        sh("ip", "link", "set", h.veth, "master", BRIDGE, "up")
        sh("ip", "-n", h.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", h.netns, "link", "set", "lo", "up")


def _boot(h: HostLayout) -> None:
    if system.init_pid(h.netns) is not None:
        return
    procs = [d / "cgroup.procs" for d in system.host_cgroups(h.name)]
    mounts = []
    for fstype, point, opts in system.cgroup_mounts():
        target = f'"$R{point}"'
        option = f" -o {opts}" if opts else ""
        mounts.append(f"mkdir -p {target} && mount -t {fstype}{option} {fstype} {target}")
    boot = h.dir / "boot.sh"
    boot.write_text(BOOT_SCRIPT.format(root=h.root, name=h.name,
                                       cgroup_mounts="\n".join(mounts)))
    boot.chmod(0o755)
    launch = h.dir / "launch.sh"
    launch.write_text(LAUNCH_SCRIPT.format(procs=" ".join(str(p) for p in procs),
                                           netns=h.netns, boot=boot))
    launch.chmod(0o755)
    console = open(h.console, "ab")  # noqa: SIM115 (handed to the host; closed below)
    try:
        subprocess.Popen(
            [str(launch)],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True,  # the host outlives this goship process
        )
    finally:
        console.close()


def _port_open(addr: str, port: int = 22, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True
    except OSError:
        return False


# A unit of this machine's copy that fails at boot (one timing out on a loaded machine) is
# restarted once, as a supervisor would, and named: a lab host serves like a server whose
# boot went right, and what failed is said, never hidden.
BOOT_SETTLED = r"""
state=$(timeout 60 systemctl is-system-running --wait)
[ "$state" = degraded ] || { echo "$state"; exit 0; }
failed=$(systemctl list-units --failed --plain --no-legend | awk '{print $1}')
for u in $failed; do
  # the unit's own last words, else systemd's about it
  msg=$(journalctl -b _SYSTEMD_UNIT="$u" -n 2 --no-pager -o cat)
  [ -n "$msg" ] || msg=$(journalctl -b -u "$u" -n 2 --no-pager -o cat)
  echo "failed: $u: $(echo "$msg" | tr '\n' ' ')"
done
systemctl reset-failed
[ -z "$failed" ] || systemctl restart $failed
echo "after restart: $(timeout 60 systemctl is-system-running --wait)"
"""


def _failed_units_note(h: HostLayout, out: str) -> str | None:
    """BOOT_SETTLED's answer -> a line naming what failed (None: the boot went right)."""
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    if not any(ln.startswith("failed: ") for ln in lines):
        return None
    note = f"{h.name}: units failed at boot, restarted once: " + "; ".join(
        ln.removeprefix("failed: ") for ln in lines if ln.startswith("failed: "))
    after = next((ln for ln in lines if ln.startswith("after restart: ")), "")
    return f"{note} ({after or 'after restart: unknown'})"


def _wait_ssh(h: HostLayout, timeout: float = 60) -> str | None:
    """Until the host's boot finished; a line on units that failed at boot, if any."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(h.addr):
            try:
                res = subprocess.run([*ssh_argv(h), "true"], capture_output=True, timeout=15,
                                     check=False)
            except subprocess.TimeoutExpired:
                continue  # a handshake slower than that on a loaded machine: again
            if res.returncode == 0:
                # sshd answers before the rest of the boot is done (nginx among others):
                # a host is up once systemd says its start-up finished, so a deploy made at
                # once finds the services a running server has.
                settled = subprocess.run([*ssh_argv(h), BOOT_SETTLED], capture_output=True,
                                         text=True, timeout=150, check=False)
                return _failed_units_note(h, settled.stdout)
        if system.init_pid(h.netns) is None and time.monotonic() > deadline - timeout + 3:
            break  # PID 1 is gone: the host will not come up
        time.sleep(0.2)
    raise LabError(f"{h.name} did not boot (no sshd at {h.addr} after {timeout:g}s); "
                   f"console: {_console_tail(h)}")


def _console_tail(h: HostLayout, lines: int = 8) -> str:
    try:
        text = h.console.read_text(errors="replace")
    except FileNotFoundError:
        return "(no console log)"
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(empty console log)"


def existing_hosts() -> list[HostLayout]:
    found = set(layout.read_state().get("hosts", []))
    found |= {int(p.name[1:]) for p in LAB_DIR.glob("h*") if p.is_dir() and p.name[1:].isdigit()}
    return [HostLayout(i) for i in sorted(found)]


def _enable_docker(h: HostLayout) -> None:
    """A running Docker engine on the host (see DOCKER_DAEMON): its units unmasked, its
    configuration written into the host's disk, started and answering."""
    import json

    units = h.root / "etc" / "systemd" / "system"
    for unit in DOCKER_UNITS:
        link = units / unit
        if link.is_symlink() and os.readlink(link) == "/dev/null":
            link.unlink()
    conf = h.root / "etc" / "docker" / "daemon.json"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(json.dumps(DOCKER_DAEMON, indent=2) + "\n")
    script = ("systemctl daemon-reload && systemctl start docker.service && "
              "for i in $(seq 100); do docker info >/dev/null 2>&1 && exit 0; sleep 0.2; done; "
              "exit 1")
    res = subprocess.run([*ssh_argv(h), script], capture_output=True, text=True, timeout=120,
                         check=False)
    if res.returncode != 0:
        log = subprocess.run([*ssh_argv(h), "journalctl -u docker -n 5 --no-pager -o cat"],
                             capture_output=True, text=True, timeout=30, check=False)
        tail = " | ".join(x.strip() for x in log.stdout.splitlines() if x.strip())
        raise LabError(f"{h.name}: dockerd did not start: {tail or res.stderr.strip()}")


def up(count: int, docker: bool = False, kubernetes: bool = False,
       consul: bool = False, progress: Callable[[str], None] = lambda _m: None,
       ) -> tuple[list[HostLayout], list[HostLayout]]:
    """Boot h1..hN (reusing hosts already up). Returns (all hosts, those booted now).
    `docker`: every host also runs a Docker engine. `kubernetes`: h1..hN form a Kubernetes
    cluster (goship.lab.kubernetes). `consul`: a Consul cluster (goship.lab.consul)."""
    if not 1 <= count <= MAX_HOSTS:
        raise UsageError(f"--hosts {count}: expected 1 to {MAX_HOSTS}")
    if kubernetes and count > KUBE_MAX_HOSTS:
        raise UsageError(f"--hosts {count} --kubernetes: expected 1 to {KUBE_MAX_HOSTS}",
                         hint="a Kubernetes lab has at most 5 nodes")
    system.require()
    if kubernetes:
        from goship.lab import kube_build, metrics_build
        from goship.lab import kubernetes as kube

        kube.require()
        kube.check_nodes([HostLayout(i) for i in range(1, count + 1)])
        # Built (or found in the cache) before any host boots: hosts see it through their
        # overlay of this machine's root.
        kube_build.ensure(progress)
        metrics_build.ensure(progress)
    if consul:
        from goship.lab import consul as lab_consul
        from goship.lab import consul_build

        lab_consul.check_servers([HostLayout(i) for i in range(1, count + 1)])
        consul_build.ensure(progress)  # before any host boots, as Kubernetes'
    with _locked():
        _ensure_key()
        _ensure_network()
        state = layout.read_state()
        _ensure_inotify(count, state)
        layout.write_state(state)
        hosts = [HostLayout(i) for i in range(1, count + 1)]
        booting = [h for h in hosts if system.init_pid(h.netns) is None]
        with ThreadPoolExecutor(max_workers=8) as pool:
            key_lines = list(pool.map(_prepare_root, hosts))
        _write_known_hosts(hosts, key_lines)
        for h in hosts:
            _ensure_netns(h)
        for h in booting:
            _boot(h)
        errors = []
        with ThreadPoolExecutor(max_workers=MAX_HOSTS) as pool:
            for h, exc in zip(booting, pool.map(_try_wait, booting), strict=True):
                if isinstance(exc, str):
                    progress(exc)
                    with open(layout.boot_notes_path(), "a") as notes:
                        notes.write(exc + "\n")
                elif exc is not None:
                    errors.append(f"{h.name}: {exc}")
        state["hosts"] = sorted({*state.get("hosts", []), *(h.index for h in hosts)})
        layout.write_state(state)
        if errors:
            raise LabError("; ".join(errors), hint="`goship lab down` removes what was made")
        if docker:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(_enable_docker, hosts))
        if kubernetes:
            kube.enable(hosts, progress)
        if consul:
            lab_consul.enable(hosts, progress)
        return [HostLayout(i) for i in state["hosts"]], booting


def boot_notes() -> list[str]:
    """What failed at the lab hosts' boots since `lab up` (each restarted once)."""
    try:
        return layout.boot_notes_path().read_text().splitlines()
    except FileNotFoundError:
        return []


def _try_wait(h: HostLayout) -> Exception | str | None:
    try:
        return _wait_ssh(h)
    except LabError as e:
        return e


def _write_known_hosts(hosts: list[HostLayout], key_lines: list[list[str]]) -> None:
    path = layout.known_hosts_path()
    keep: dict[str, list[str]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                keep.setdefault(line.split()[0], []).append(line)
    for h, lines in zip(hosts, key_lines, strict=True):
        keep[h.addr] = lines
    path.write_text("".join(f"{line}\n" for ls in keep.values() for line in ls))


def status(*, probe_ssh: bool = True) -> list[HostStatus]:
    """Each host's state. `probe_ssh=False`: no TCP probe of sshd (each probe costs the host
    a forked and re-executed sshd, paid by every deploy and rollback on every host)."""
    out = []
    for h in existing_hosts():
        pid = system.init_pid(h.netns)
        if not system.link_exists(h.veth):
            net = "missing"
        else:
            net = "up" if "UP" in _link_flags(h.veth) else "cut"
        ssh_ok = pid is not None and net == "up" and (not probe_ssh or _port_open(h.addr))
        out.append(HostStatus(h.name, h.addr, pid is not None, net, ssh_ok, pid))
    return out


def _link_flags(name: str) -> str:
    flags = int(Path(f"/sys/class/net/{name}/flags").read_text().strip(), 16)
    return "UP" if flags & 0x1 else "DOWN"


def stop(name: str) -> None:
    """Power off: every process of the host ends at once; its disk stays for `start`."""
    h = _known(name)
    system.require()
    with _locked():
        system.kill_netns_processes(h.netns)


def start(name: str) -> None:
    h = _known(name)
    system.require()
    with _locked():
        _ensure_network()
        _prepare_root(h)
        _ensure_netns(h)
        _boot(h)
        note = _wait_ssh(h)
    if note:
        with open(layout.boot_notes_path(), "a") as notes:
            notes.write(note + "\n")


def cut(name: str) -> None:
    """The host keeps running but drops off the network."""
    h = _known(name)
    system.require()
    sh("ip", "link", "set", h.veth, "down")


def heal(name: str) -> None:
    h = _known(name)
    system.require()
    sh("ip", "link", "set", h.veth, "up")


def _known(name: str) -> HostLayout:
    h = layout.parse_host(name)
    if h.index not in {x.index for x in existing_hosts()}:
        raise UsageError(f"{name} is not part of the lab",
                         hint="`goship lab status` lists the hosts")
    return h


def down() -> list[str]:
    """Remove everything the lab made, from its state and from what is found running."""
    system.require()
    removed: list[str] = []
    with _locked():
        state = layout.read_state()
        system.end_ssh_clients(LAB_DIR)
        indexes = {h.index for h in existing_hosts()}
        for ns in _lab_netns():
            indexes.add(int(ns.rsplit("-h", 1)[1]))
        for i in sorted(indexes):
            h = HostLayout(i)
            system.kill_netns_processes(h.netns)
            for point in system.mounts_under(h.dir):
                sh("umount", "-l", point, check=False)
            if system.netns_exists(h.netns):
                sh("ip", "netns", "del", h.netns, check=False)
            if system.link_exists(h.veth):
                sh("ip", "link", "del", h.veth, check=False)
            system.remove_host_cgroups(h.name)
            removed.append(h.name)
        system.remove_lab_cgroups()
        if system.link_exists(BRIDGE):
            sh("ip", "link", "del", BRIDGE, check=False)
        if shutil.which("iptables"):
            rule = ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]
            while sh("iptables", "-C", *rule, check=False).returncode == 0:
                sh("iptables", "-D", *rule)
        _restore_inotify(state)
        left = system.mounts_under(LAB_DIR)
        if left:
            raise LabError(f"still mounted: {', '.join(left)}",
                           hint="stop what uses them, then run `goship lab down` again")
        # Nothing is mounted below LAB_DIR any more, so this removes only the lab's files.
        shutil.rmtree(LAB_DIR, ignore_errors=True)
        Path(str(LAB_DIR) + ".lock").unlink(missing_ok=True)
    return removed


def _lab_netns() -> list[str]:
    try:
        return sorted(n for n in os.listdir("/run/netns")
                      if n.startswith("goship-lab-h") and n.rsplit("-h", 1)[1].isdigit())
    except FileNotFoundError:
        return []


def transports(count: int) -> list[Transport]:
    """SSH transports to h1..hN of the running lab, strict host key checking on."""
    system.require()
    running = {s.name for s in status(probe_ssh=False) if s.running}
    missing = [f"h{i}" for i in range(1, count + 1) if f"h{i}" not in running]
    if missing:
        raise UsageError(f"lab host(s) {', '.join(missing)} not running",
                         hint=f"run `goship lab up --hosts {count}`")
    return [transport(i) for i in range(1, count + 1)]


def transport(index: int) -> Transport:
    """SSH as root to lab host h<index>, with the lab's key and known_hosts."""
    from goship.transport import SshOptions, SshTransport

    h = HostLayout(index)
    opts = SshOptions(identity_file=str(layout.key_path()),
                      known_hosts=str(layout.known_hosts_path()))
    return SshTransport(f"root@{h.addr}", opts, name=h.name)
