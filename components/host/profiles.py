"""Host tuning as data: a baseline for every node, K3s CIS parameters, one profile per pool role.

Values follow the vendors (../shared/reference/host-tuning.md). Each setting has one owner: a key
set in the baseline is never repeated in a pool profile, and what a database's own tuner owns
(Redpanda's rpk tuners, the ScyllaDB operator's NodeConfig for disks and IRQs) is left to it.
Deliberately absent: fs.file-max / fs.nr_open / kernel.pid_max (systemd already raises them),
ip_local_port_range (the wide range collides with NodePorts and database ports),
vm.dirty_* (the old 80% caused writeback stalls), static hugepages (no database here uses them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Every node. inotify 1200 instances satisfies ScyllaDB (1200) and Kubernetes (512). vm.max_map_count: Ubuntu 24.04
# already sets 1048576 (procps' /etc/sysctl.d/10-map-count.conf, Launchpad #2057792), which our later file would
# override: the same value, above the 262144 the stores ask for as a minimum (host-tuning.md), so nothing is lowered.
BASELINE_SYSCTLS: dict[str, str] = {
    "fs.inotify.max_user_instances": "1200",
    "fs.inotify.max_user_watches": "524288",
    "vm.max_map_count": "1048576",
    "vm.swappiness": "1",
}

# The kubelet refuses to start with protect-kernel-defaults unless these match exactly.
K3S_CIS_SYSCTLS: dict[str, str] = {
    "vm.panic_on_oom": "0",
    "vm.overcommit_memory": "1",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
    "kernel.keys.root_maxkeys": "1000000",
    "kernel.keys.root_maxbytes": "25000000",
}

# SSH on every node. A drop-in, read through the `Include /etc/ssh/sshd_config.d/*.conf` at the top of Debian's
# and Ubuntu's sshd_config; sshd keeps the first value it reads, so the name sorts before cloud-init's
# 50-cloud-init.conf (which may turn passwords on). Pulumi and operators log in with keys only: a password is
# never accepted, root only with a key (bare-metal hosts may be managed as root).
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/01-adplatform.conf"
SSHD_SETTINGS: dict[str, str] = {
    "PasswordAuthentication": "no",
    "KbdInteractiveAuthentication": "no",  # PAM's keyboard-interactive would ask for the password all the same
    "PermitEmptyPasswords": "no",
    "PermitRootLogin": "prohibit-password",
}

# Unattended upgrades: security updates only, never a reboot (kernel updates wait for the coordinated,
# drained reboots of the lifecycle work). Later apt.conf.d files override earlier scalars but append to
# lists, so the origin lists of 50unattended-upgrades are cleared before ours are set.
APT_UNATTENDED_DROP_IN = "/etc/apt/apt.conf.d/52adplatform-unattended-upgrades"
APT_PERIODIC_DROP_IN = "/etc/apt/apt.conf.d/21adplatform-auto-upgrades"  # after 20auto-upgrades
APT_UNATTENDED = """\
#clear Unattended-Upgrade::Allowed-Origins;
#clear Unattended-Upgrade::Origins-Pattern;
Unattended-Upgrade::Origins-Pattern {
  "origin=${distro_id},archive=${distro_codename}";
  "origin=${distro_id},archive=${distro_codename}-security";
  "origin=${distro_id},codename=${distro_codename}-security,label=Debian-Security";
};
Unattended-Upgrade::Automatic-Reboot "false";
Unattended-Upgrade::Remove-Unused-Kernel-Packages "true";"""
APT_PERIODIC = """\
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";"""


def managed_file(title: str, body: str, comment: str = "#") -> str:
    return f"{comment} {title} -- managed by adplatform (Pulumi); local edits are overwritten\n{body}"


def sshd_drop_in() -> str:
    return managed_file("sshd hardening", "\n".join(f"{k} {v}" for k, v in SSHD_SETTINGS.items()))


def apt_drop_ins() -> tuple[str, str]:
    """(unattended-upgrades policy, periodic switches); apt.conf takes // comments."""
    return (managed_file("unattended-upgrades: security only, no reboot", APT_UNATTENDED, "//"),
            managed_file("apt periodic: refresh lists and run unattended-upgrades daily", APT_PERIODIC, "//"))


# The AppArmor profile CI build containers run under (components/host/apparmor.d/; the GitLab runner names it in
# its build containers' security context). Loaded on every node, not only the pools CI jobs land on today: a
# pod naming a profile its node lacks cannot start, and the profile costs nothing where no pod uses it.
CI_BUILD_APPARMOR_PROFILE = "adplatform-ci-build"
APPARMOR_DIR = Path(__file__).parent / "apparmor.d"


def apparmor_profile(name: str) -> str:
    """The profile's text as the node's /etc/apparmor.d/<name> holds it."""
    return (APPARMOR_DIR / name).read_text().rstrip("\n")


# The seccomp profile of services on io_uring runtimes (components/host/seccomp/README.md: containerd's denials
# plus io_uring; adServices.services.<name>.ioUring names it). On every node, like the AppArmor profile: a pod
# naming a Localhost profile its node lacks cannot start. The kubelet resolves `localhostProfile` below its
# seccomp directory; K3s keeps the upstream kubelet root (it sets --root-dir only for rootless agents).
IO_URING_SECCOMP_PROFILE = "adplatform-io-uring.json"
SECCOMP_DIR = Path(__file__).parent / "seccomp"
KUBELET_SECCOMP_DIR = "/var/lib/kubelet/seccomp"
SECCOMP_PROFILES_SUBDIR = "profiles"  # what `localhostProfile` names: profiles/<file>


def seccomp_profile(name: str) -> str:
    """The profile's JSON as the node's /var/lib/kubelet/seccomp/profiles/<name> holds it."""
    return (SECCOMP_DIR / name).read_text().rstrip("\n")


def localhost_profile(name: str) -> str:
    """A pod's `seccompProfile.localhostProfile` for a profile host tuning installs."""
    return f"{SECCOMP_PROFILES_SUBDIR}/{name}"


# madvise: ClickHouse warns on "always", Redis/Dragonfly advise against THP, ScyllaDB and
# Redpanda request huge pages for their own memory under madvise.
THP_MODE = "madvise"


@dataclass(frozen=True)
class TuningProfile:
    sysctls: dict[str, str] = field(default_factory=dict)
    cpu_governor: str = ""  # "" leaves the governor alone
    clocksource: str = ""  # "" leaves the clocksource alone; applied only if the kernel offers it
    fstrim: bool = False  # weekly fstrim.timer for SSD-backed filesystems
    notes: str = ""


_SCYLLADB = TuningProfile(
    sysctls={"fs.aio-max-nr": "30000000", "vm.vfs_cache_pressure": "2000"},
    cpu_governor="performance",
    notes="disks (RAID0 + XFS) and IRQ affinity belong to the operator's NodeConfig/perftune",
)
_CLICKHOUSE = TuningProfile(
    sysctls={"kernel.task_delayacct": "1"}, cpu_governor="performance", clocksource="tsc", fstrim=True,
)
_STATEFUL = TuningProfile(cpu_governor="performance", fstrim=True,
                          notes="PostgreSQL, DragonflyDB, object storage: baseline max_map_count and no swap")


def _merge(*profiles: TuningProfile, notes: str) -> TuningProfile:
    sysctls: dict[str, str] = {}
    for p in profiles:
        for key, value in p.sysctls.items():
            if sysctls.get(key, value) != value:
                raise ValueError(f"tuning profiles disagree on {key}")
            sysctls[key] = value
    return TuningProfile(sysctls=sysctls,
                         cpu_governor=next((p.cpu_governor for p in profiles if p.cpu_governor), ""),
                         clocksource=next((p.clocksource for p in profiles if p.clocksource), ""),
                         fstrim=any(p.fstrim for p in profiles), notes=notes)


PROFILES: dict[str, TuningProfile] = {
    "general": TuningProfile(notes="baseline only"),
    "scylladb": _SCYLLADB,
    "redpanda": TuningProfile(
        notes="rpk's tuners (run by the Redpanda chart at broker start, THP tuner off) own aio, "
              "clocksource, governor, disk scheduler and network queues; nothing here competes with them"),
    "clickhouse": _CLICKHOUSE,
    "stateful": _STATEFUL,
    "converged": _merge(_SCYLLADB, _CLICKHOUSE, _STATEFUL, notes="every database may land here (compact profile)"),
}


def sysctl_file(values: dict[str, str], title: str) -> str:
    return managed_file(title, "\n".join(f"{key} = {value}" for key, value in sorted(values.items())))
