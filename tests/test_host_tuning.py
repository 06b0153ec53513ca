"""Host tuning: vendor values per pool, one owner per setting, real shell that passes shellcheck, the AppArmor
profile of CI build containers on every node (containerd's default plus mounts, compiled by apparmor_parser), and
the seccomp profile of io_uring services (containerd's denials, io_uring allowed)."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.host import TEMPLATE, tuning_script
from components.host.profiles import (BASELINE_SYSCTLS, CI_BUILD_APPARMOR_PROFILE, IO_URING_SECCOMP_PROFILE,
                                      K3S_CIS_SYSCTLS, PROFILES, apparmor_profile, localhost_profile, seccomp_profile)
from components.shell import LIB, content_hash
from config.catalog import ROLES
from tests import validators
from tests.conftest import script_param

SHELLCHECK = str(Path(sys.executable).parent / "shellcheck")
# Values the old scripts set that the vendors contradict (see reference/host-tuning.md).
FORBIDDEN = {"fs.file-max", "fs.nr_open", "kernel.pid_max", "net.ipv4.ip_local_port_range",
             "vm.dirty_ratio", "vm.dirty_background_ratio", "vm.nr_hugepages"}


def sysctls(text: str) -> dict[str, str]:
    return dict(line.split(" = ") for line in text.splitlines() if " = " in line)


def test_every_role_has_a_tuning_profile():
    assert set(PROFILES) == set(ROLES)


def test_the_baseline_never_lowers_what_ubuntu_24_04_sets():
    """procps on 24.04 ships vm.max_map_count=1048576 (/etc/sysctl.d/10-map-count.conf), read before our file."""
    from components.host.profiles import BASELINE_SYSCTLS
    assert int(BASELINE_SYSCTLS["vm.max_map_count"]) >= 1048576


def test_each_setting_has_one_owner():
    for role, profile in PROFILES.items():
        assert not set(profile.sysctls) & set(BASELINE_SYSCTLS), role
        assert not set(profile.sysctls) & set(K3S_CIS_SYSCTLS), role
    assert not set(BASELINE_SYSCTLS) & set(K3S_CIS_SYSCTLS)


def test_no_setting_the_vendors_contradict():
    every = set(BASELINE_SYSCTLS) | set(K3S_CIS_SYSCTLS)
    for profile in PROFILES.values():
        every |= set(profile.sysctls)
    assert not every & FORBIDDEN


def test_cis_values_match_what_protect_kernel_defaults_checks():
    assert K3S_CIS_SYSCTLS == {"vm.panic_on_oom": "0", "vm.overcommit_memory": "1", "kernel.panic": "10",
                               "kernel.panic_on_oops": "1", "kernel.keys.root_maxkeys": "1000000",
                               "kernel.keys.root_maxbytes": "25000000"}


def test_scylladb_pool_gets_vendor_values():
    script = tuning_script("scylladb", "scylladb")
    pool = sysctls(script_param(script, "SYSCTL_POOL"))
    assert pool == {"fs.aio-max-nr": "30000000", "vm.vfs_cache_pressure": "2000"}
    assert script_param(script, "CPU_GOVERNOR") == "performance"
    assert script_param(script, "THP_MODE") == "madvise"
    base = sysctls(script_param(script, "SYSCTL_BASELINE"))
    assert base["vm.swappiness"] == "1" and int(base["fs.inotify.max_user_instances"]) >= 1200


def test_redpanda_pool_leaves_its_settings_to_rpk():
    script = tuning_script("redpanda", "redpanda")
    assert script_param(script, "SYSCTL_POOL") == ""
    assert script_param(script, "CPU_GOVERNOR") == ""
    assert script_param(script, "THP_MODE") == "madvise", "THP stays madvise even on Redpanda nodes"


def test_clickhouse_pool():
    script = tuning_script("clickhouse", "clickhouse")
    assert sysctls(script_param(script, "SYSCTL_POOL")) == {"kernel.task_delayacct": "1"}
    assert script_param(script, "CLOCKSOURCE") == "tsc"
    assert script_param(script, "FSTRIM") == "true"


def test_general_pool_is_baseline_only():
    script = tuning_script("general", "general")
    assert script_param(script, "SYSCTL_POOL") == "" and script_param(script, "CPU_GOVERNOR") == ""


def test_converged_nodes_get_every_database_setting():
    pool = sysctls(script_param(tuning_script("workers", "converged"), "SYSCTL_POOL"))
    assert pool["fs.aio-max-nr"] == "30000000" and pool["kernel.task_delayacct"] == "1"


def test_each_node_tuned_with_its_pool_profile(production):
    for cmd in production.of_type("command:remote:Command"):
        if cmd.name.startswith("tune-scylladb-"):
            assert "fs.aio-max-nr = 30000000" in cmd.inputs["stdin"]
        elif cmd.name.startswith("tune-general-"):
            assert "fs.aio-max-nr" not in cmd.inputs["stdin"]


def test_tuning_reruns_exactly_when_script_changes(production):
    cmd = production.named("tune-scylladb-1")
    assert cmd.inputs["triggers"] == [content_hash(cmd.inputs["stdin"])]
    assert content_hash(tuning_script("a", "scylladb")) != content_hash(tuning_script("a", "clickhouse"))


def test_every_role_script_passes_shellcheck():
    # Stack scripts are swept in test_artifacts.py; this covers roles no stack file uses (converged).
    assert validators.shellcheck({f"tune-{role}": tuning_script("pool", role) for role in ROLES}) == ""


def test_templates_pass_shellcheck():
    root = Path(__file__).resolve().parent.parent / "components"
    templates = [str(p) for p in root.rglob("*.sh")]
    assert len(templates) >= 3
    result = subprocess.run([SHELLCHECK, "--severity=style", "-e", "SC1091", *templates], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def _bash(script: str, cwd: Path) -> str:
    return subprocess.run(["bash", "-c", f"{LIB.read_text()}\n{script}"], cwd=cwd, capture_output=True,
                          text=True, check=True).stdout


def test_write_file_changes_only_when_content_differs(tmp_path):
    target = tmp_path / "etc" / "sysctl.d" / "60.conf"
    assert _bash(f"write_file {target} 0644 'a = 1'", tmp_path) == "changed\n"
    assert _bash(f"write_file {target} 0644 'a = 1'", tmp_path) == ""
    assert target.read_text() == "a = 1\n" and oct(target.stat().st_mode)[-3:] == "644"
    assert _bash(f"write_file {target} 0600 'a = 2'", tmp_path) == "changed\n"
    assert list(target.parent.iterdir()) == [target], "no temporary files left behind"
    assert _bash(f"remove_file {target}", tmp_path) == "changed\n"
    assert _bash(f"remove_file {target}", tmp_path) == ""


@pytest.mark.parametrize("render", ["tune", "k3s"])
def test_scripts_never_read_the_remote_stdin(render, production):
    """bash reads the script from stdin; the body runs as one function with stdin from /dev/null."""
    text = tuning_script("p", "general") if render == "tune" else production.named("k3s-general-1").inputs["stdin"].value
    assert text.rstrip().endswith("main </dev/null")
    assert text.count("\nmain() {\n") == 1




# --- the AppArmor profile of CI build containers ---------------------------------------------------------
APPARMOR_PARSER = shutil.which("apparmor_parser")
ABI_3 = Path("/etc/apparmor.d/abi/3.0")
# containerd's default container profile (contrib/apparmor/template.go): what confines every container.
CONTAINERD_DENIES = {
    "deny @{PROC}/* w,",
    "deny @{PROC}/{[^1-9/],[^1-9/][^0-9/],[^1-9s/][^0-9y/][^0-9s/],[^1-9/][^0-9/][^0-9/][^0-9/]*}/** w,",
    "deny @{PROC}/sys/[^k]** w,", "deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,",
    "deny @{PROC}/sysrq-trigger rwklx,", "deny @{PROC}/kcore rwklx,",
    "deny /sys/[^f]*/** wklx,", "deny /sys/f[^s]*/** wklx,", "deny /sys/fs/[^c]*/** wklx,",
    "deny /sys/fs/c[^g]*/** wklx,", "deny /sys/fs/cg[^r]*/** wklx,", "deny /sys/firmware/** rwklx,",
    "deny /sys/devices/virtual/powercap/** rwklx,", "deny /sys/kernel/security/** rwklx,",
}


def _rules(profile: str) -> list[str]:
    """The profile's rules, without comments (a `#include` is a rule, `# text` is not)."""
    rules = [re.sub(r"\s+#\s.*$", "", line).strip() for line in profile.splitlines()]
    return [rule for rule in rules if rule and not re.match(r"#(?!include)", rule)]


def test_every_node_loads_the_ci_build_apparmor_profile():
    """The runner names this profile in every build container: a node without it could not start them."""
    for role in ROLES:
        script = tuning_script("pool", role)
        assert script_param(script, "APPARMOR_PROFILE_NAME") == CI_BUILD_APPARMOR_PROFILE, role
        assert script_param(script, "APPARMOR_PROFILE") == apparmor_profile(CI_BUILD_APPARMOR_PROFILE), role
    body = TEMPLATE.read_text()
    assert 'apparmor_file="/etc/apparmor.d/$APPARMOR_PROFILE_NAME"' in body  # apparmor.service loads it at boot
    assert 'write_file "$apparmor_file" 0644 "$APPARMOR_PROFILE"' in body
    assert 'apparmor_parser --replace --write-cache "$apparmor_file"' in body


def test_the_ci_build_profile_is_containerds_default_plus_mounts():
    rules = _rules(apparmor_profile(CI_BUILD_APPARMOR_PROFILE))
    assert rules[0] == "abi <abi/3.0>,", "containerd's abi: user namespaces unmediated, as for any container"
    assert f"profile {CI_BUILD_APPARMOR_PROFILE} flags=(attach_disconnected,mediate_deleted) {{" in rules
    assert "deny mount," not in rules
    assert {"mount,", "remount,", "umount,", "pivot_root,"} <= set(rules)
    assert CONTAINERD_DENIES <= set(rules), "everything else containerd denies stays denied"
    grants = {r for r in rules if not r.startswith(("deny ", "#include", "abi ", "profile ", "signal ", "ptrace ", "}"))}
    assert grants == {"network,", "capability,", "file,", "mount,", "remount,", "umount,", "pivot_root,"}
    peers = {re.search(r"peer=(\S+),", r).group(1) for r in rules if r.startswith(("signal ", "ptrace "))}
    assert peers == {"unconfined", "runc", "crun", CI_BUILD_APPARMOR_PROFILE}


@pytest.mark.skipif(APPARMOR_PARSER is None or not ABI_3.exists(), reason="needs apparmor_parser (Debian: apparmor)")
def test_the_ci_build_profile_compiles_and_allows_mounts(tmp_path):
    def compile_(text: str) -> subprocess.CompletedProcess:
        path = tmp_path / "profile"
        path.write_text(text)
        return subprocess.run([APPARMOR_PARSER, "--skip-kernel-load", "--stdout", "--warn=all", "-M", str(ABI_3),
                               str(path)], capture_output=True, check=False)
    profile = apparmor_profile(CI_BUILD_APPARMOR_PROFILE)
    compiled = compile_(profile)
    assert compiled.returncode == 0, compiled.stderr.decode()
    assert b"not enforce" not in compiled.stderr, "every rule is enforced under abi 3.0"
    # The mount rules reach the compiled policy: containerd's denial compiles to something else.
    assert compile_(profile.replace("\n  mount,\n", "\n  deny mount,\n")).stdout != compiled.stdout
    assert compile_(profile.replace("pivot_root,", "pivot_root_anywhere,")).returncode != 0, "the parser checks"


# --- the seccomp profile of io_uring services -------------------------------------------------------------
# What containerd's default profile (contrib/seccomp/seccomp_default.go) refuses a container without
# capabilities; the profile must keep refusing each of them while it allows io_uring.
DENIED = {
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot", "bpf",
    "perf_event_open", "fanotify_init", "lookup_dcookie", "mount", "umount2", "pivot_root", "chroot", "fsopen",
    "fsmount", "move_mount", "open_tree", "mount_setattr", "unshare", "setns", "ptrace", "process_vm_readv",
    "process_vm_writev", "kcmp", "pidfd_getfd", "keyctl", "add_key", "request_key", "settimeofday", "clock_settime",
    "swapon", "swapoff", "quotactl", "acct", "name_to_handle_at", "open_by_handle_at", "iopl", "ioperm",
    "sethostname", "setdomainname", "userfaultfd", "syslog", "vhangup",
}
NAMESPACE_FLAGS = {0x20000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000}
IO_URING = {"io_uring_setup", "io_uring_enter", "io_uring_register"}


def _seccomp() -> dict:
    return json.loads(seccomp_profile(IO_URING_SECCOMP_PROFILE))


def _unconditional(profile: dict, action: str) -> set[str]:
    return {n for rule in profile["syscalls"] if rule["action"] == action and not rule.get("args")
            for n in rule["names"]}


def test_the_io_uring_profile_denies_what_containerd_denies_and_allows_io_uring():
    profile = _seccomp()
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"], "no 32-bit ABI to slip past"
    assert {r["action"] for r in profile["syscalls"]} == {"SCMP_ACT_ERRNO"}, "a denylist: every rule denies"
    denied = _unconditional(profile, "SCMP_ACT_ERRNO")
    assert DENIED <= denied, DENIED - denied
    assert not IO_URING & {n for r in profile["syscalls"] for n in r["names"]}, "io_uring is what this profile is for"
    # clone: denied with any namespace flag (arg 0 on both architectures), allowed otherwise (threads, fork).
    clone = [r for r in profile["syscalls"] if r["names"] == ["clone"]]
    assert "clone" not in denied
    assert {(a["index"], a["op"], a["value"], a["valueTwo"]) for r in clone for a in r["args"]} == \
        {(0, "SCMP_CMP_MASKED_EQ", flag, flag) for flag in NAMESPACE_FLAGS}
    assert all(len(r["args"]) == 1 for r in clone), "one flag per rule: rules OR, a rule's arguments AND"
    [clone3] = [r for r in profile["syscalls"] if "clone3" in r["names"]]
    assert clone3["errnoRet"] == 38, "ENOSYS, so the C library falls back to the filtered clone"


def test_every_node_installs_the_io_uring_profile_where_the_kubelet_looks():
    for role in ROLES:
        script = tuning_script("pool", role)
        assert script_param(script, "SECCOMP_PROFILE_PATH") == \
            "/var/lib/kubelet/seccomp/profiles/adplatform-io-uring.json", role
        assert json.loads(script_param(script, "SECCOMP_PROFILE")) == _seccomp(), role
    assert localhost_profile(IO_URING_SECCOMP_PROFILE) == "profiles/adplatform-io-uring.json"
    # Idempotent: written only when the content differs (write_file), nothing to reload.
    assert 'write_file "$SECCOMP_PROFILE_PATH" 0644 "$SECCOMP_PROFILE"' in TEMPLATE.read_text()


def test_the_io_uring_profile_is_installed_idempotently(tmp_path):
    """The script's own lines, run twice against a scratch root: written once, unchanged the second time."""
    target = tmp_path / "var/lib/kubelet/seccomp/profiles/adplatform-io-uring.json"
    content = seccomp_profile(IO_URING_SECCOMP_PROFILE)
    step = f"write_file {shlex.quote(str(target))} 0644 {shlex.quote(content)}"
    assert _bash(step, tmp_path) == "changed\n"
    assert _bash(step, tmp_path) == ""
    assert json.loads(target.read_text()) == _seccomp()


_LIBSECCOMP = ctypes.util.find_library("seccomp")
# Newer than the libseccomp of the test host (2.5.x): runc skips a name its libseccomp cannot resolve.
NEWER_THAN_TEST_LIBSECCOMP = {"open_tree_attr"}


@pytest.mark.skipif(_LIBSECCOMP is None, reason="needs libseccomp (Debian: libseccomp2)")
def test_every_name_in_the_io_uring_profile_is_a_system_call_of_its_architectures():
    """A misspelt name would be skipped silently by the runtime, leaving that call allowed."""
    resolve = ctypes.CDLL(_LIBSECCOMP).seccomp_syscall_resolve_name_arch
    resolve.argtypes, resolve.restype = [ctypes.c_uint32, ctypes.c_char_p], ctypes.c_int
    arches = {"SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_AARCH64": 0xC00000B7}  # AUDIT_ARCH_* tokens
    profile = _seccomp()
    unknown = {n for r in profile["syscalls"] for n in r["names"]
               if all(resolve(arches[a], n.encode()) < 0 for a in profile["architectures"])}
    assert unknown <= NEWER_THAN_TEST_LIBSECCOMP, unknown
    assert all(resolve(arches[a], n.encode()) >= 0 for a in arches for n in IO_URING)
    assert resolve(arches["SCMP_ARCH_X86_64"], b"not_a_syscall") < 0, "the resolver can fail"


# --- SSH and unattended upgrades ------------------------------------------------------------------

def test_sshd_accepts_keys_only_and_sorts_before_cloud_init():
    from components.host.profiles import SSHD_DROP_IN, sshd_drop_in
    settings = dict(line.split(" ", 1) for line in sshd_drop_in().splitlines() if not line.startswith("#"))
    assert settings == {"PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no",
                        "PermitEmptyPasswords": "no", "PermitRootLogin": "prohibit-password"}
    # sshd keeps the first value it reads: ours must come before cloud-init's 50-cloud-init.conf.
    name = SSHD_DROP_IN.rsplit("/", 1)[1]
    assert SSHD_DROP_IN.startswith("/etc/ssh/sshd_config.d/") and name < "50-cloud-init.conf"


def test_every_node_gets_the_ssh_drop_in_checked_before_sshd_reloads(production):
    script = production.named("tune-general-1", "command:remote:Command").inputs["stdin"]
    from components.host.profiles import sshd_drop_in
    assert script_param(script, "SSHD_CONFIG") == sshd_drop_in()
    checked, reloaded = script.index('if ! "$sshd" -t; then'), script.index('systemctl reload "$unit.service"')
    assert checked < reloaded, "a drop-in sshd refuses never reaches a reload"
    # Ubuntu 24.04's socket-activated sshd has not created its privilege separation directory before the first
    # connection (never, on a node configured from cloud-init): sshd -t and -T refuse to run without it.
    assert script.index("install -d -m 0755 -o root -g root /run/sshd") < script.index('"$sshd" -t')
    assert "grep -qx 'passwordauthentication no'" in script, "the effective configuration is verified"


def _failed_then_retried(tmp_path, script: str, section: str, stubs: dict[str, str], fail: str,
                         root_dirs: dict[str, str]) -> tuple[list[str], str, list[str]]:
    """One section of a tuning script (from its `# --- <section>` header to the next) under a temporary root with stub
    commands, run three times: the first with `fail` set (the stubs fail then), the retry, and one more. Returns the
    retry's calls and stderr and the third run's calls; the first must have failed and the retry succeeded."""
    from tests.stubs import run_with_stubs
    head = script.split("main() {", 1)[0]
    body = script.split(f"# --- {section}", 1)[1].split("\n", 1)[1].split("\n# --- ", 1)[0]
    root = tmp_path / "root"
    for path, text in root_dirs.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        if text:
            (root / path).write_text(text)
        else:
            (root / path).mkdir(exist_ok=True)
    text = (head + "main() {\n" + body + "}\nmain\n").replace("/etc/", f"{root}/etc/").replace(
        "/var/lib/", f"{root}/var/lib/")
    runs = []
    for n, env in enumerate(({fail: "1"}, {}, {})):
        (tmp_path / str(n)).mkdir()
        runs.append(run_with_stubs(tmp_path / str(n), text, {**stubs, "install": 'mkdir -p "${!#}"\n'}, **env))
    (failed, _, _), (code, calls, err), (_, settled, _) = runs
    assert failed != 0 and code == 0, err
    return calls, err, settled


def test_a_drop_in_whose_sshd_reload_failed_reloads_on_the_next_run(tmp_path, production):
    """The first run writes the drop-in and stops before sshd reloaded (an SSH drop, a failed reload): the retry finds
    the file unchanged and must still reload, or a running sshd keeps accepting passwords. The tuning script's SSH
    section runs here against stub sshd, systemctl and install under a temporary root."""
    script = production.named("tune-general-1", "command:remote:Command").inputs["stdin"]
    stubs = {"sshd": 'printf "sshd %s\\n" "$*" >>"$CALLS"; [ "$1" = -T ] && echo "passwordauthentication no"; exit 0\n',
             "systemctl": 'printf "systemctl %s\\n" "$*" >>"$CALLS"\n'
                          '[ "$1" = reload ] && [ -n "${FAIL_RELOAD:-}" ] && exit 1; exit 0\n'}
    calls, _, settled = _failed_then_retried(tmp_path, script, "SSH", stubs, "FAIL_RELOAD", {
        "etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\n"})
    assert "systemctl reload ssh.service" in calls, "the retry reloads"
    assert not any(c.startswith("systemctl reload") for c in settled), "reloaded once, then idempotent"


@pytest.mark.parametrize("pool", ["general-1", "scylladb-1"])
def test_sysctl_files_whose_apply_failed_are_applied_on_the_next_run(tmp_path, production, pool):
    """The first run writes the drop-ins and stops before `sysctl --system` ran: the retry finds the files unchanged
    and must still apply them, or the node runs without its tuning until it reboots. The tuning script's sysctl
    section runs here against a stub sysctl under a temporary root (a pool with and one without its own file)."""
    script = production.named(f"tune-{pool}", "command:remote:Command").inputs["stdin"]
    stubs = {"sysctl": 'printf "sysctl %s\\n" "$*" >>"$CALLS"; [ -n "${FAIL_SYSCTL:-}" ] && exit 1; exit 0\n'}
    calls, _, settled = _failed_then_retried(tmp_path, script, "sysctl drop-ins", stubs, "FAIL_SYSCTL",
                                             {"etc/sysctl.d": ""})
    assert "sysctl --system" in calls, "the retry applies"
    assert not any(c.startswith("sysctl") for c in settled), "applied once, then idempotent"


def test_unattended_upgrades_take_security_updates_only_and_never_reboot(tmp_path):
    """apt-config reads the stock policy and ours in apt.conf.d order: only the security origins remain."""
    from components.host.profiles import APT_PERIODIC_DROP_IN, APT_UNATTENDED_DROP_IN, apt_drop_ins
    if not shutil.which("apt-config"):
        pytest.skip("needs apt-config (Debian: apt)")
    stock = tmp_path / "50unattended-upgrades"
    stock.write_text('Unattended-Upgrade::Allowed-Origins { "${distro_id}:${distro_codename}-updates"; };\n'
                     'Unattended-Upgrade::Origins-Pattern { "origin=Debian,codename=${distro_codename},label=Debian"; };'
                     '\nUnattended-Upgrade::Automatic-Reboot "true";\n')
    ours = tmp_path / "52adplatform"
    ours.write_text(apt_drop_ins()[0] + "\n")
    dump = subprocess.run(["apt-config", "-c", str(stock), "-c", str(ours), "dump"], capture_output=True, text=True,
                          check=True).stdout
    origins = re.findall(r'^Unattended-Upgrade::Origins-Pattern:: "(.*)";$', dump, re.M)
    # Security updates, and the release pocket they may pull new dependencies from (it never changes after the
    # release: Ubuntu's own default keeps it for that reason); never -updates, -proposed or -backports.
    assert origins and all("-security" in o or o == "origin=${distro_id},archive=${distro_codename}"
                           for o in origins), origins
    assert "origin=${distro_id},archive=${distro_codename}" in origins
    assert not re.search(r'^Unattended-Upgrade::Allowed-Origins::', dump, re.M), "the stock -updates origin is gone"
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in dump
    assert APT_UNATTENDED_DROP_IN.rsplit("/", 1)[1] > "50unattended-upgrades", "read after the stock policy"
    assert APT_PERIODIC_DROP_IN.rsplit("/", 1)[1] > "20auto-upgrades"
    assert 'APT::Periodic::Unattended-Upgrade "1";' in apt_drop_ins()[1]


def test_every_node_writes_the_apt_policy(production):
    from components.host.profiles import apt_drop_ins
    script = production.named("tune-scylladb-1", "command:remote:Command").inputs["stdin"]
    assert (script_param(script, "APT_UNATTENDED"), script_param(script, "APT_PERIODIC")) == apt_drop_ins()
