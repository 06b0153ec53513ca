"""Host tuning layer: one idempotent remote command per node, profile chosen by the node's role; every node also
gets the AppArmor profile of CI build containers (profiles.CI_BUILD_APPARMOR_PROFILE) and the seccomp profile of
io_uring services (profiles.IO_URING_SECCOMP_PROFILE)."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_command as command

from components.host.profiles import (BASELINE_SYSCTLS, CI_BUILD_APPARMOR_PROFILE, IO_URING_SECCOMP_PROFILE,
                                      APT_PERIODIC_DROP_IN, APT_UNATTENDED_DROP_IN, K3S_CIS_SYSCTLS, KUBELET_SECCOMP_DIR,
                                      PROFILES, SECCOMP_PROFILES_SUBDIR, SSHD_DROP_IN, THP_MODE,
                                      apparmor_profile, apt_drop_ins, seccomp_profile, sshd_drop_in, sysctl_file)
from components.remote import run_script
from components.shell import content_hash, render
from providers.base import Node

TEMPLATE = Path(__file__).parent / "scripts" / "tune.sh"


def tuning_script(node_pool: str, role: str) -> str:
    """The exact script a node of this pool and role runs (pure: used by tests and shellcheck)."""
    profile = PROFILES[role]
    return render(TEMPLATE, {
        "POOL_NAME": node_pool,
        "SYSCTL_BASELINE": sysctl_file(BASELINE_SYSCTLS, "baseline for every node"),
        "SYSCTL_CIS": sysctl_file(K3S_CIS_SYSCTLS, "K3s CIS kernel parameters (protect-kernel-defaults)"),
        "SYSCTL_POOL": sysctl_file(profile.sysctls, f"{role} pool profile") if profile.sysctls else "",
        "THP_MODE": THP_MODE,
        "CPU_GOVERNOR": profile.cpu_governor,
        "CLOCKSOURCE": profile.clocksource,
        "FSTRIM": profile.fstrim,
        "APPARMOR_PROFILE_NAME": CI_BUILD_APPARMOR_PROFILE,
        "APPARMOR_PROFILE": apparmor_profile(CI_BUILD_APPARMOR_PROFILE),
        "SECCOMP_PROFILE_PATH": f"{KUBELET_SECCOMP_DIR}/{SECCOMP_PROFILES_SUBDIR}/{IO_URING_SECCOMP_PROFILE}",
        "SECCOMP_PROFILE": seccomp_profile(IO_URING_SECCOMP_PROFILE),
        "SSHD_DROP_IN": SSHD_DROP_IN,
        "SSHD_CONFIG": sshd_drop_in(),
        "APT_UNATTENDED_DROP_IN": APT_UNATTENDED_DROP_IN,
        "APT_UNATTENDED": apt_drop_ins()[0],
        "APT_PERIODIC_DROP_IN": APT_PERIODIC_DROP_IN,
        "APT_PERIODIC": apt_drop_ins()[1],
    })


class HostTuning(pulumi.ComponentResource):
    """Tunes every node in parallel; `ready[node name]` is what K3s on that node waits for."""

    def __init__(self, name: str, nodes: list[Node], opts: pulumi.ResourceOptions | None = None):
        super().__init__("adplatform:host:HostTuning", name, None, opts)
        self.ready: dict[str, command.remote.Command] = {}
        for node in nodes:
            script = tuning_script(node.spec.pool, node.spec.workload_role)
            self.ready[node.name] = run_script(f"tune-{node.name}", node, script, content_hash(script), parent=self)
        self.register_outputs({})
