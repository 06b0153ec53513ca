"""The K3s cluster: HA servers, joins, flags for Cilium, secrets, dependency shape, Cilium values."""

from __future__ import annotations

import re

import pytest
import yaml

from components.charts import CILIUM, K3S_VERSION
from components.k3s import CLUSTER_IDENTIFIER
from tests.conftest import UP_TO_K3S, UP_TO_SERVICES, base_raw, k3s_config, run_raw, script_param
from tests.runs import stack_run
from tests.test_hetzner import without_api_balancer
from tools.mockrun import ROOT, Secret

CMD = "command:remote:Command"
RELEASE = "kubernetes:helm.sh/v3:Release"


def test_first_server_initialises_etcd_others_join(production):
    first = k3s_config(production, "control-plane-1")
    assert first["cluster-init"] is True and "server" not in first
    for node in ("control-plane-2", "control-plane-3"):
        cfg = k3s_config(production, node)
        assert "cluster-init" not in cfg
        assert cfg["server"] == "https://10.0.1.254:6443", "servers join through the private API load balancer"
        assert cfg["token"] == first["token"]


def test_agents_join_with_the_agent_token_only(production):
    server = k3s_config(production, "control-plane-1")
    agent = k3s_config(production, "scylladb-1")
    assert agent["token"] == server["agent-token"] != server["token"]
    assert agent["server"] == "https://10.0.1.254:6443"
    for server_only in ("cluster-init", "tls-san", "disable", "flannel-backend", "secrets-encryption", "agent-token"):
        assert server_only not in agent


def test_server_flags_for_cilium_and_hardening(production):
    cfg = k3s_config(production, "control-plane-2")
    assert cfg["flannel-backend"] == "none"
    assert cfg["disable-network-policy"] is True and cfg["disable-kube-proxy"] is True
    assert set(cfg["disable"]) == {"servicelb", "traefik", "local-storage"}
    assert cfg["disable-cloud-controller"] is True and "cloud-provider=external" in cfg["kubelet-arg"]
    assert cfg["secrets-encryption"] is True and cfg["protect-kernel-defaults"] is True
    assert cfg["cluster-cidr"] == "10.244.0.0/16" and cfg["service-cidr"] == "10.43.0.0/16"
    assert "10.0.1.254" in cfg["tls-san"], "the API load balancer address is in the serving certificate"
    assert cfg["write-kubeconfig-mode"] == "0600"


def test_nodes_use_private_addresses_inside_the_cluster(production):
    cfg = k3s_config(production, "general-1")
    assert cfg["node-ip"].startswith("10.0.1.") and not cfg["node-external-ip"].startswith("10.")


def test_labels_and_taints_reach_the_nodes(production):
    scylla = k3s_config(production, "scylladb-2")
    assert "adplatform.io/pool=scylladb" in scylla["node-label"]
    assert scylla["node-taint"] == ["adplatform.io/dedicated=scylladb:NoSchedule"]
    assert k3s_config(production, "general-1")["node-taint"] == []
    assert k3s_config(production, "control-plane-1")["node-taint"] == ["CriticalAddonsOnly=true:NoExecute"]


def test_static_cpu_manager_on_database_pools_only(production):
    for node in ("scylladb-1", "redpanda-1", "clickhouse-1", "stateful-1"):
        assert "cpu-manager-policy=static" in k3s_config(production, node)["kubelet-arg"], node
    assert not any("cpu-manager" in a for a in k3s_config(production, "general-1")["kubelet-arg"])


def test_k3s_version_pinned_and_installer_from_the_same_tag(production):
    stdin = production.named("k3s-general-1", CMD).inputs["stdin"].value
    assert script_param(stdin, "K3S_VERSION") == K3S_VERSION
    assert script_param(stdin, "INSTALL_SCRIPT_URL") == \
        "https://raw.githubusercontent.com/k3s-io/k3s/v1.36.4%2Bk3s1/install.sh"


# The cluster services stay on: the etcd snapshot settings come with their backups (program.py); no test here
# reads the data plane.
def rotated(purpose: str, **overrides):
    """base_raw up to the cluster services, with `purpose`'s S3 secret key rotated."""
    raw = base_raw(layers=UP_TO_SERVICES, **overrides)
    raw["backupCredentials"][purpose]["secretAccessKey"] = f"rotated-{purpose}-key"
    return raw


@pytest.fixture(scope="module")
def wired_runs():
    """The same stack with etcd snapshots to S3 configured (base_raw has backups), and again at another K3s
    version with Velero's S3 key rotated: two changes that each must leave the install alone (one run for both)."""
    return (run_raw(base_raw(layers=UP_TO_SERVICES)),
            run_raw(rotated("velero", cluster={"k3sVersion": "v1.35.6+k3s1"})))


def _trigger(run, node):
    return run.named(f"k3s-{node}", CMD).inputs["triggers"]


def test_version_from_config_is_used(wired_runs):
    _, older = wired_runs
    assert script_param(older.named("k3s-general-1", CMD).inputs["stdin"].value, "K3S_VERSION") == "v1.35.6+k3s1"


def test_a_version_change_alone_does_not_rerun_the_install(wired_runs):
    current, older = wired_runs  # (older: Velero's key rotated too, which must not rerun it either)
    for node in ("control-plane-1", "control-plane-2", "general-1", "scylladb-1"):
        assert _trigger(current, node) == _trigger(older, node), node
        assert not isinstance(_trigger(current, node)[0], Secret), "previews show which node is reconfigured"
    assert _trigger(current, "control-plane-1") != _trigger(current, "control-plane-2"), "per-node configuration"


def test_running_nodes_keep_their_version_new_nodes_install_the_configured_one(production):
    script = production.named("k3s-general-1", CMD).inputs["stdin"].value
    install = script.index('if [ -z "$installed" ]; then')
    assert 'stage_k3s "$version"' in script[install:script.index("elif", install)]  # never newer than the servers
    stage = script.index("stage_k3s() {")
    assert 'INSTALL_K3S_VERSION="$version"' in script[stage:script.index("\n}", stage)]
    assert '[ "$installed" != "$K3S_VERSION" ]; then\n  installer' not in script


def test_servers_snapshot_etcd_to_s3_on_the_configured_schedule(wired_runs):
    current, _ = wired_runs
    for node in ("control-plane-1", "control-plane-2", "control-plane-3"):
        cfg = k3s_config(current, node)
        assert cfg["etcd-s3"] is True and cfg["etcd-snapshot-compress"] is True
        assert cfg["etcd-s3-endpoint"] == "fsn1.your-objectstorage.com", "host without scheme"
        assert cfg["etcd-s3-bucket"] == "adp-test-backups" and cfg["etcd-s3-region"] == "fsn1"
        assert cfg["etcd-s3-folder"] == "test/etcd"
        assert cfg["etcd-snapshot-schedule-cron"] == "0 */6 * * *" and cfg["etcd-snapshot-retention"] == 28
        # S3 has its own retention flag (K3s >= v1.34.0+k3s1, default 5), counted over all servers' snapshots
        # together: etcdRetention per server holds there too (3 servers)
        assert cfg["etcd-s3-retention"] == 28 * 3
        # the servers' own pair (backupCredentials.etcd), no other purpose's
        assert cfg["etcd-s3-access-key"] == "test-etcd-access-key"
        assert cfg["etcd-s3-secret-key"] == "test-etcd-secret-key"
    assert not any(k.startswith("etcd-") for k in k3s_config(current, "general-1")), "agents run no etcd"
    for cmd in current.of_type(CMD):
        assert "test-etcd-secret-key" not in str(cmd.inputs.get("triggers")), cmd.name


def test_etcd_restore_runbook_renders_from_config_without_secrets():
    from components.k3s.config import EtcdBackup, etcd_restore_commands
    from config import load
    from tests.conftest import SECRET_KEYS

    loaded = load("production", base_raw(), SECRET_KEYS)
    backup = EtcdBackup.from_config(loaded.config.cluster_services.backups, loaded.stack, loaded.secrets)
    lines = etcd_restore_commands(backup, "adp-cp-1", ["adp-cp-2", "adp-cp-3"])
    flags = ("--etcd-s3 --etcd-s3-endpoint=fsn1.your-objectstorage.com --etcd-s3-region=fsn1 "
             "--etcd-s3-bucket=adp-test-backups --etcd-s3-folder=production/etcd")
    assert f"k3s server --cluster-reset --cluster-reset-restore-path=<snapshot> {flags}" in lines
    assert f"k3s etcd-snapshot ls {flags}" in lines
    reset = lines.index(f"k3s server --cluster-reset --cluster-reset-restore-path=<snapshot> {flags}")
    assert lines.index("systemctl stop k3s") < reset < lines.index("rm -rf /var/lib/rancher/k3s/server/db/")
    assert not any("test-secret-key" in line or "test-access-key" in line for line in lines)
    disabled = load("staging", base_raw(profile="staging", clusterServices={"tls": {"acmeEmail": "ops@example.com"}}),
                    SECRET_KEYS)
    assert EtcdBackup.from_config(disabled.config.cluster_services.backups, "staging", disabled.secrets) is None


def test_secrets_never_plain(production):
    for cmd in production.of_type(CMD):
        connection = cmd.inputs["connection"]
        assert isinstance(connection, Secret), f"{cmd.name}: the SSH private key reached state in plain text"
        assert connection.value["privateKey"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        if cmd.name.startswith("k3s-"):
            assert isinstance(cmd.inputs["stdin"], Secret), cmd.name
            assert "stdout" in cmd.options["additionalSecretOutputs"]
            assert cmd.inputs["logging"] == "stderr", "stdout of a secret-bearing script is not logged"
            assert "offline" not in str(cmd.inputs["triggers"]), "triggers must not carry the token"
    for token in production.of_type("random:index/randomPassword:RandomPassword"):
        assert token.inputs["length"] >= 32
    kubeconfig = production.named("kubeconfig", CMD)
    assert kubeconfig.inputs["logging"] == "none" and "stdout" in kubeconfig.options["additionalSecretOutputs"]
    assert "kubeconfig" in production.secret_outputs
    provider = production.of_type("pulumi:providers:kubernetes")[0]
    assert isinstance(provider.inputs["kubeconfig"], Secret)


def test_kubeconfig_points_at_the_public_api_endpoint(production):
    kubeconfig = yaml.safe_load(production.outputs["kubeconfig"])
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    assert server == production.outputs["apiEndpoint"]
    assert "127.0.0.1" not in server


def _deps(run, name):
    return {run.by_urn(u).name for u in run.named(name, CMD).dependencies}


def test_dependency_shape(production):
    # Each node's K3s waits for that node's tuning (CIS sysctls before protect-kernel-defaults).
    assert "tune-control-plane-1" in _deps(production, "k3s-control-plane-1")
    assert "k3s-control-plane-1" not in _deps(production, "tune-control-plane-2"), "tuning runs in parallel"
    # Servers join one at a time (etcd admits one learner at a time).
    assert {"tune-control-plane-2", "k3s-control-plane-1"} <= _deps(production, "k3s-control-plane-2")
    assert "k3s-control-plane-2" in _deps(production, "k3s-control-plane-3")
    # Agents join once the first server answers, in parallel with each other and with the other servers' joins
    # (issue 22: they hold no etcd member; the registration address sends them to a server that answers).
    for agent in ("k3s-scylladb-2", "k3s-general-1"):
        got = _deps(production, agent)
        assert {"k3s-control-plane-1", f"tune-{agent.removeprefix('k3s-')}"} <= got
        assert not any(d.startswith("k3s-") and d != "k3s-control-plane-1" for d in got)


def test_only_the_initialising_server_guards_against_a_second_cluster(production):
    first = production.named("k3s-control-plane-1", CMD).inputs["stdin"].value
    assert script_param(first, "EXISTING_CLUSTER_PROBE") == "https://10.0.1.254:6443/cacerts"
    joining = production.named("k3s-control-plane-2", CMD).inputs["stdin"].value
    assert script_param(joining, "EXISTING_CLUSTER_PROBE") == ""


def test_cilium_release_pinned_with_kube_proxy_replacement(production):
    cilium = production.named("cilium", RELEASE)
    assert cilium.inputs["chart"] == CILIUM.chart and cilium.inputs["version"] == CILIUM.version
    assert cilium.inputs["repositoryOpts"]["repo"] == "https://helm.cilium.io"
    values = cilium.inputs["values"]
    assert values["kubeProxyReplacement"] is True
    # The node-local API endpoint (the K3s server's own API server, an agent's client-side load balancer), not the
    # balancer: losing it or a server never cuts a node's Cilium off the API.
    assert values["k8sServiceHost"] == "127.0.0.1" and values["k8sServicePort"] == 6444
    assert values["ipam"]["mode"] == "kubernetes"
    assert values["routingMode"] == "native" and values["ipv4NativeRoutingCIDR"] == "10.0.0.0/8"
    assert values["MTU"] == 1450 and "tunnelProtocol" not in values
    assert cilium.inputs["atomic"] is False, "a failed upgrade must not uninstall the CNI"
    assert values["operator"]["replicas"] == 2
    assert values["encryption"] == {"enabled": True, "type": "wireguard"}
    assert values["hubble"]["enabled"] and values["hubble"]["relay"]["enabled"]
    assert "k3s-control-plane-1" in {production.by_urn(u).name for u in cilium.dependencies}


def test_hubble_certificates_are_renewed_before_they_expire(production):
    """The chart's default (`helm`) issues Hubble's mTLS certificates once, for 365 days; only the CronJob
    method re-issues them, on a schedule that must come round well inside that validity."""
    tls = production.named("cilium", RELEASE).inputs["values"]["hubble"]["tls"]
    assert tls["auto"]["method"] == "cronJob"
    minute, hour, day, month, weekday = tls["auto"]["schedule"].split()
    assert (minute, hour, day, weekday) == ("0", "0", "1", "*") and month.startswith("*/")
    assert int(month.removeprefix("*/")) * 31 < 365, "renewed at least every few months"
    assert "certValidityDuration" not in tls["auto"], "the chart's default validity (365 days)"


def test_every_release_uses_the_cluster_provider(production):
    (provider,) = production.of_type("pulumi:providers:kubernetes")
    for rel in production.of_type(RELEASE):
        assert rel.provider.startswith(provider.urn), rel.name


def test_without_load_balancer_nodes_join_the_first_server():
    run = without_api_balancer()
    first_private = k3s_config(run, "control-plane-1")["node-ip"]
    assert k3s_config(run, "general-1")["server"] == f"https://{first_private}:6443"


def test_compact_control_plane_runs_workloads_with_database_tuning():
    run = run_raw(base_raw(profile="compact", layers=UP_TO_K3S))
    cfg = k3s_config(run, "control-plane-1")
    assert cfg["node-taint"] == [] and "cpu-manager-policy=static" in cfg["kubelet-arg"]
    assert len(run.of_type("hcloud:index/server:Server")) == 5


def test_rotating_only_the_s3_secret_key_reconfigures_the_servers(wired_runs):
    current, _ = wired_runs
    new = run_raw(rotated("etcd"))
    assert _trigger(new, "control-plane-1") != _trigger(current, "control-plane-1")
    assert _trigger(new, "general-1") == _trigger(current, "general-1"), "agents carry no S3 keys"
    assert "rotated-etcd-key" not in str(_trigger(new, "control-plane-1"))


def _cluster_identifier(run):
    return run.named("k8s", "pulumi:providers:kubernetes").inputs.get("clusterIdentifier")


@pytest.mark.parametrize("stack", sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml")))
def test_every_stack_names_its_cluster_to_the_kubernetes_provider(stack):
    """Without a clusterIdentifier pulumi-kubernetes plans to replace its provider, and every Kubernetes resource with
    it, whenever the kubeconfig is unknown in a preview (any change to control-plane-1's K3s config): every stack has
    one from its first `pulumi up` (docs/lifecycle.md, "The Kubernetes provider keeps its cluster")."""
    assert _cluster_identifier(stack_run(stack)) == CLUSTER_IDENTIFIER == "adplatform-k3s"


def test_the_cluster_identifier_does_not_follow_the_first_servers_config(wired_runs):
    """What re-runs control-plane-1's install (and so leaves the kubeconfig unknown in a preview) must not reach the
    identifier: a change there would replace every Kubernetes resource. Rotated etcd S3 keys, two more servers (every
    server's certificate names them): the first server's trigger changes, the identifier does not."""
    current, _ = wired_runs
    for changed in (run_raw(rotated("etcd")),
                    run_raw(base_raw(layers=UP_TO_SERVICES, cluster={"controlPlane": {"count": 5}}))):
        assert _trigger(changed, "control-plane-1") != _trigger(current, "control-plane-1")
        assert _cluster_identifier(changed) == _cluster_identifier(current) == CLUSTER_IDENTIFIER


def _section(doc: str, heading: str) -> str:
    """The text of a docs/ file from `heading` (a line's start) to the next heading of any level."""
    text = (ROOT / "docs" / doc).read_text()
    start = text.index(heading)
    end = re.search(r"^#", text[start + len(heading):], re.M)
    return text[start:start + len(heading) + end.start()] if end else text[start:]


def test_a_cluster_created_anew_is_recovered_by_a_refresh_between_two_ups():
    """The constant identifier keeps the provider (an update) when a stack's cluster is created anew (staging's one
    server replaced, a whole-cluster loss), and `pulumi up` then creates no Kubernetes object: the docs say so where
    that happens and give the commands, in the order that works (the refresh after the up that updated `k8s`)."""
    lifecycle = _section("lifecycle.md", "**A new cluster under the same stack.**")
    commands = [line.split("#")[0].strip() for line in lifecycle.splitlines() if line.startswith("pulumi ")]
    assert commands == ["pulumi up", "pulumi refresh", "pulumi up"]
    recovery = _section("disaster-recovery.md", "## Whole-cluster loss")
    new_cluster = recovery[recovery.index("1. **New cluster.**"):recovery.index("2. **Stores.**")]
    assert "`pulumi refresh`, then `pulumi up` again" in new_cluster


def test_rotating_another_purposes_key_leaves_the_servers_alone(wired_runs):
    """The servers hold the etcd snapshot keys only: a new Velero key is no concern of theirs."""
    current, rotated_velero = wired_runs
    assert rotated_velero.config["adplatform:backupCredentials"].value["velero"]["secretAccessKey"] == \
        "rotated-velero-key"
    for node in ("control-plane-1", "control-plane-2", "control-plane-3"):
        assert _trigger(rotated_velero, node) == _trigger(current, node), node


def test_join_tokens_are_protected_in_production_only(production, staging):
    for name in ("server-token", "agent-token"):
        assert production.named(name, "random:index/randomPassword:RandomPassword").protect
        assert not staging.named(name, "random:index/randomPassword:RandomPassword").protect


def test_gateway_listeners_expect_proxy_headers_only_where_the_balancer_is_told_to_send_them():
    from components.k3s.cilium import gateway_api_values
    from providers import aws, hetzner
    from providers.base import LOCAL_TRAFFIC
    local = gateway_api_values(LOCAL_TRAFFIC)
    assert (local["enableProxyProtocol"], local["externalTrafficPolicy"]) == (False, "Local")
    for client in (hetzner.GATEWAY_CLIENT_ADDRESS, aws.GATEWAY_CLIENT_ADDRESS):
        values = gateway_api_values(client)
        assert (values["enableProxyProtocol"], values["externalTrafficPolicy"]) == (True, "Cluster")
        assert client.annotations, "PROXY protocol on the listeners needs the balancer's annotation"


# --- CIS hardening (docs.k3s.io/security/hardening-guide) --------------------------------------------

def _args(cfg, key):
    """`kube-apiserver-arg` style list as {flag: value}."""
    return dict(arg.split("=", 1) for arg in cfg.get(key, []))


SECURE_TLS12_SUITE = r"TLS_ECDHE_(ECDSA|RSA)_WITH_(AES_(128_GCM_SHA256|256_GCM_SHA384)|CHACHA20_POLY1305)"


@pytest.mark.parametrize("flag, value", [
    ("audit-log-path", "/var/lib/rancher/k3s/server/logs/audit.log"),
    ("audit-policy-file", "/var/lib/rancher/k3s/server/audit.yaml"),
    ("audit-log-maxage", "30"), ("audit-log-maxbackup", "10"), ("audit-log-maxsize", "100"),
    ("admission-control-config-file", "/var/lib/rancher/k3s/server/admission.yaml"),
    ("service-account-extend-token-expiration", "false"),
    ("tls-min-version", "VersionTLS12"),
])
def test_api_server_carries_the_cis_flag(production, flag, value):
    for node in ("control-plane-1", "control-plane-2"):
        assert _args(k3s_config(production, node), "kube-apiserver-arg")[flag] == value, node


def test_admission_plugins_keep_node_restriction_and_add_rate_limits_and_external_ip_denial(production):
    plugins = _args(k3s_config(production, "control-plane-1"), "kube-apiserver-arg")["enable-admission-plugins"]
    # The flag replaces K3s' own NodeRestriction: losing it would let a kubelet edit any Node.
    assert set(plugins.split(",")) == {"NodeRestriction", "EventRateLimit", "DenyServiceExternalIPs"}


def test_finished_pods_are_garbage_collected(production):
    assert _args(k3s_config(production, "control-plane-1"), "kube-controller-manager-arg") == \
        {"terminated-pod-gc-threshold": "1000"}


@pytest.mark.parametrize("node", ["control-plane-1", "general-1", "scylladb-1"])
def test_every_kubelet_closes_idle_streams_and_speaks_only_strong_tls(production, node):
    kubelet = _args(k3s_config(production, node), "kubelet-arg")
    assert kubelet["streaming-connection-idle-timeout"] == "5m"
    assert kubelet["tls-min-version"] == "VersionTLS12"
    suites = kubelet["tls-cipher-suites"].split(",")
    assert suites and all(re.fullmatch(SECURE_TLS12_SUITE, s) for s in suites), suites


def test_api_server_and_kubelets_accept_the_same_cipher_suites(production):
    api = _args(k3s_config(production, "control-plane-1"), "kube-apiserver-arg")["tls-cipher-suites"]
    assert api == _args(k3s_config(production, "general-1"), "kubelet-arg")["tls-cipher-suites"]


def _server_file(run, node, param):
    return script_param(run.named(f"k3s-{node}", CMD).inputs["stdin"].value, param)


def test_the_files_the_api_server_flags_name_are_written_by_the_install_script(production):
    args = _args(k3s_config(production, "control-plane-2"), "kube-apiserver-arg")
    assert _server_file(production, "control-plane-2", "AUDIT_POLICY_PATH") == args["audit-policy-file"]
    assert _server_file(production, "control-plane-2", "ADMISSION_CONFIG_PATH") == \
        args["admission-control-config-file"]
    assert _server_file(production, "control-plane-2", "AUDIT_LOG_DIR") == args["audit-log-path"].rsplit("/", 1)[0]
    script = production.named("k3s-control-plane-2", CMD).inputs["stdin"].value
    written = script.index('"$ADMISSION_CONFIG_PATH" 0600 "$ADMISSION_CONFIG"')
    assert written < script.index('if [ -z "$installed" ]; then'), "the files exist before K3s first starts"
    assert 'config_changed+=$(write_pending "$restart_pending" "$AUDIT_POLICY_PATH"' in script, \
        "a changed policy restarts K3s"
    assert 'install -d -m 0700 "$AUDIT_LOG_DIR"' in script, "the audit log is root's only"
    assert _server_file(production, "general-1", "AUDIT_POLICY") == "", "agents run no API server"


def test_changing_the_audit_policy_or_admission_config_reconfigures_the_servers(monkeypatch):
    """The trigger hashes the rendered script, which carries both files: a change re-runs install.sh."""
    from types import SimpleNamespace

    from components.k3s import config, install_script
    from components.shell import content_hash
    server = SimpleNamespace(k3s_role="server", workload_role="general")
    before = content_hash(install_script(server, "cp-1", "v", "cfg", join_url="", agent_token=""))
    monkeypatch.setattr(config, "AUDIT_POLICY", {**config.AUDIT_POLICY, "rules": [{"level": "Request"}]})
    assert content_hash(install_script(server, "cp-1", "v", "cfg", join_url="", agent_token="")) != before
    monkeypatch.undo()
    monkeypatch.setattr(config, "ADMISSION_PLUGINS", ("NodeRestriction",))
    monkeypatch.setattr(config, "admission_config", lambda: {"kind": "AdmissionConfiguration", "plugins": []})
    assert content_hash(install_script(server, "cp-1", "v", "cfg", join_url="", agent_token="")) != before


def _audit_level(policy, *, group, resource, verb, user_groups=()):
    """The level the API server applies: the first rule that matches (Kubernetes audit policy semantics)."""
    for rule in policy["rules"]:
        if "nonResourceURLs" in rule:
            continue
        if "verbs" in rule and verb not in rule["verbs"]:
            continue
        if "userGroups" in rule and not set(rule["userGroups"]) & set(user_groups):
            continue
        if "resources" in rule and not any(
                r.get("group", "") == group and ("resources" not in r or resource in r["resources"])
                for r in rule["resources"]):
            continue
        return rule["level"]
    return "None"


@pytest.mark.parametrize("group, resource", [("", "secrets"), ("", "configmaps"), ("", "serviceaccounts/token"),
                                             ("authentication.k8s.io", "tokenreviews")])
@pytest.mark.parametrize("verb", ["get", "create", "update", "patch"])
def test_audit_never_logs_the_bodies_of_credentials(production, group, resource, verb):
    policy = yaml.safe_load(_server_file(production, "control-plane-1", "AUDIT_POLICY"))
    assert policy["apiVersion"] == "audit.k8s.io/v1" and policy["kind"] == "Policy"
    assert _audit_level(policy, group=group, resource=resource, verb=verb, user_groups=["system:authenticated"]) \
        == "Metadata"


def test_audit_records_who_changed_what(production):
    policy = yaml.safe_load(_server_file(production, "control-plane-1", "AUDIT_POLICY"))
    user = ["system:authenticated"]
    assert _audit_level(policy, group="rbac.authorization.k8s.io", resource="clusterrolebindings", verb="create",
                        user_groups=user) == "Request", "a grant is logged with what it grants"
    assert _audit_level(policy, group="apps", resource="deployments", verb="delete", user_groups=user) == "Metadata"
    assert _audit_level(policy, group="", resource="pods", verb="get", user_groups=["system:nodes"]) == "None"
    assert not any(r["level"] == "RequestResponse" for r in policy["rules"])


def test_admission_configuration_defaults_pod_security_and_limits_events(production):
    cfg = yaml.safe_load(_server_file(production, "control-plane-1", "ADMISSION_CONFIG"))
    assert cfg["apiVersion"] == "apiserver.config.k8s.io/v1" and cfg["kind"] == "AdmissionConfiguration"
    plugins = {p["name"]: p["configuration"] for p in cfg["plugins"]}
    pss = plugins["PodSecurity"]
    assert pss["apiVersion"] == "pod-security.admission.config.k8s.io/v1"
    assert pss["defaults"]["enforce"] == "baseline" and pss["defaults"]["warn"] == "restricted"
    assert pss["exemptions"]["namespaces"] == ["kube-system"]
    events = plugins["EventRateLimit"]
    assert events["apiVersion"] == "eventratelimit.admission.k8s.io/v1alpha1" and events["kind"] == "Configuration"
    assert {limit["type"] for limit in events["limits"]} >= {"Server", "Namespace"}
    assert all(limit["qps"] > 0 and limit["burst"] >= limit["qps"] for limit in events["limits"])


def test_every_platform_namespace_states_its_pod_security_level(production):
    """The admission defaults only catch namespaces nobody labelled: every namespace of ours is labelled."""
    for ns in production.of_type("kubernetes:core/v1:Namespace"):
        assert "pod-security.kubernetes.io/enforce" in ns.inputs["metadata"]["labels"], ns.name


def test_servers_narrow_their_certificates_to_root(production):
    script = production.named("k3s-control-plane-1", CMD).inputs["stdin"].value
    assert script_param(script, "PKI_DIR") == "/var/lib/rancher/k3s/server/tls"
    assert "find \"$PKI_DIR\" -name '*.crt' -perm /0077 -exec chmod 0600 {} +" in script


def test_every_node_stages_k3s_in_parallel_right_after_its_tuning(production):
    """Issue 22: the downloads leave the serial etcd joins; each node's staging waits for its own tuning only."""
    nodes = [r.name.removeprefix("tune-") for r in production.of_type(CMD) if r.name.startswith("tune-")]
    assert len(nodes) > 3
    for node in nodes:
        stage_deps = _deps(production, f"stage-k3s-{node}")
        assert f"tune-{node}" in stage_deps
        assert not any(d.startswith(("k3s-", "stage-k3s-")) for d in stage_deps), "staging runs in parallel"
        assert f"stage-k3s-{node}" in _deps(production, f"k3s-{node}"), "the join starts what staging downloaded"
    for node in ("control-plane-1", "control-plane-2", "scylladb-1"):
        join = production.named(f"k3s-{node}", CMD).inputs["stdin"].value
        body = join[join.index("main() {"):]
        install = body[body.index('if [ -z "$installed" ]; then'):body.index("elif", body.index('if [ -z "$installed"'))]
        # The join downloads only where nothing staged K3s (stage_k3s), and otherwise re-runs the kept installer.
        assert install.index('if ! k3s_staged "$version"; then') < install.index('stage_k3s "$version"') < install.index(
            "INSTALL_K3S_SKIP_DOWNLOAD=true")
