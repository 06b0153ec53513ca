"""Secrets management: OpenBao/Vault in HA on raft, explicit unsealing, ESO and its ClusterSecretStore."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from components import charts
from components.services import secrets
from config import ConfigError, load
from providers.hetzner import STORAGE_CLASS
from tests import validators
from tests.conftest import SECRET_KEYS, base_raw, run_raw
from tests.netpol import PROMETHEUS_PEER
from tools.mockrun import Secret

RELEASE = "kubernetes:helm.sh/v3:Release"
STORE = "kubernetes:external-secrets.io/v1:ClusterSecretStore"
SERVICES = {"tls": {"acmeEmail": "ops@example.com"},
            "backups": {"s3": {"endpoint": "https://fsn1.your-objectstorage.com", "region": "fsn1",
                               "bucket": "adp-test-backups"}}}


def server_values(run, name="openbao"):
    return run.named(name, RELEASE).inputs["values"]


@pytest.fixture(scope="module")
def vault_run():
    return run_raw(base_raw(clusterServices={**SERVICES, "secrets": {"backend": "vault"}}))


def test_openbao_runs_three_raft_voters_one_per_node_with_a_budget(production):
    server = server_values(production)["server"]
    assert server["ha"]["enabled"] is True and server["ha"]["replicas"] == 3
    assert server["ha"]["raft"]["enabled"] is True and server["ha"]["raft"]["setNodeId"] is True
    assert server["ha"]["disruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    [term] = server["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "openbao", "app.kubernetes.io/instance": "openbao", "component": "server"}
    assert server["dataStorage"] == {"enabled": True, "size": "10Gi", "storageClass": STORAGE_CLASS}
    config = server["ha"]["raft"]["config"]
    for i in range(3):
        assert f'leader_api_addr = "http://openbao-{i}.openbao-internal:8200"' in config
    assert "openbao-3" not in config


def test_versions_are_pinned_from_the_catalog(production):
    bao = production.named("openbao", RELEASE).inputs
    assert (bao["chart"], bao["version"], bao["repositoryOpts"]["repo"]) == (
        "openbao", "0.29.2", "https://openbao.github.io/openbao-helm")
    assert bao["values"]["server"]["image"] == {"registry": "quay.io", "repository": "openbao/openbao", "tag": "2.6.2"}
    eso = production.named("external-secrets", RELEASE).inputs
    assert (eso["chart"], eso["version"], eso["repositoryOpts"]["repo"]) == (
        "external-secrets", "2.9.0", "https://charts.external-secrets.io")
    assert charts.CHARTS["vault"].version == "0.34.1" and charts.VAULT_VERSION == "2.0.4"


def test_unseal_key_is_random_secret_mounted_and_protected_in_production(production, staging):
    key = production.named("openbao-unseal-key", "kubernetes:core/v1:Secret")
    string_data = key.inputs["stringData"]
    assert isinstance(string_data, Secret)
    assert len(string_data.value["key"]) == 43  # raw URL-safe base64 of 32 bytes
    generator = production.named("openbao-unseal-key", "random:index/randomPassword:RandomPassword")
    assert generator.inputs["length"] == 43 and generator.inputs["overrideSpecial"] == "-_"
    assert key.protect and generator.protect
    assert not staging.named("openbao-unseal-key", "kubernetes:core/v1:Secret").protect
    server = server_values(production)["server"]
    assert server["extraVolumes"][0] == {"type": "secret", "name": "openbao-unseal-key",
                                         "path": "/openbao/userconfig", "defaultMode": 0o440}
    config = server["ha"]["raft"]["config"]
    assert 'seal "static" {' in config
    assert 'current_key = "file:///openbao/userconfig/openbao-unseal-key/key"' in config
    release = production.named("openbao", RELEASE)
    assert key.urn in release.dependencies


def test_only_the_first_pod_self_initialises_the_others_join(production):
    server = server_values(production)["server"]
    assert "initialize" not in server["ha"]["raft"]["config"]
    assert server["podManagementPolicy"] == "OrderedReady"
    assert {"type": "configMap", "name": "openbao-self-init", "path": "/openbao/userconfig"} in server["extraVolumes"]
    args = server["extraArgs"]
    assert args == ('$(test "${HOSTNAME}" = openbao-0 && echo '
                    '-config=/openbao/userconfig/openbao-self-init/init.hcl)')
    for pod, expected in (("openbao-0", "-config=/openbao/userconfig/openbao-self-init/init.hcl"), ("openbao-1", "")):
        shell = subprocess.run(["sh", "-ec", f"echo {args}"], env={"HOSTNAME": pod}, capture_output=True, text=True)
        assert shell.stdout.strip() == expected
    init = production.named("openbao-self-init", "kubernetes:core/v1:ConfigMap")
    assert init.urn in production.named("openbao", RELEASE).dependencies


def test_openbao_initialises_itself_with_kv_kubernetes_auth_and_the_eso_role(production):
    config = production.named("openbao-self-init", "kubernetes:core/v1:ConfigMap").inputs["data"]["init.hcl"]
    config += server_values(production)["server"]["ha"]["raft"]["config"]
    assert 'initialize "platform" {' in config
    assert 'path = "sys/mounts/secret"' in config and '"version" = "2"' in config
    assert 'path = "sys/auth/kubernetes"' in config
    assert 'path = "auth/kubernetes/role/external-secrets"' in config
    assert '"bound_service_account_names" = ["secret-store-reader"]' in config
    assert '"bound_service_account_namespaces" = ["external-secrets"]' in config
    assert 'audit "file" "stdout" {' in config
    assert "tls_disable = true" in config and "unauthenticated_metrics_access = true" in config


def test_injector_csi_and_ui_service_are_off(production):
    values = server_values(production)
    assert values["injector"] == {"enabled": False}
    assert values["csi"] == {"enabled": False} and values["ui"] == {"enabled": False}


def test_cluster_secret_store_points_at_the_active_server_with_kubernetes_auth(production):
    store = production.named("platform-secrets", STORE)
    assert store.inputs["apiVersion"] == "external-secrets.io/v1"
    assert store.inputs["spec"] == {"provider": {"vault": {
        "server": "http://openbao-active.openbao.svc:8200", "path": "secret", "version": "v2",
        "auth": {"kubernetes": {"mountPath": "kubernetes", "role": "external-secrets", "serviceAccountRef": {
            "name": "secret-store-reader", "namespace": "external-secrets", "audiences": ["openbao"]}}}}}}
    deps = set(store.dependencies)
    assert production.named("openbao", RELEASE).urn in deps
    assert production.named("external-secrets", RELEASE).urn in deps
    assert production.named("secret-store-reader", "kubernetes:core/v1:ServiceAccount").urn in deps


def test_eso_is_ha_in_production_and_single_in_staging(production, staging):
    prod, stage = server_values(production, "external-secrets"), server_values(staging, "external-secrets")
    assert prod["leaderElect"] is True and stage["leaderElect"] is False
    for values, component in ((prod, prod), (prod, prod["webhook"]), (prod, prod["certController"])):
        assert component["replicaCount"] == 2
        assert component["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
        assert component["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert set(component["resources"]["requests"]) == {"cpu", "memory"} and "memory" in component["resources"]["limits"]
    for component in (stage, stage["webhook"], stage["certController"]):
        assert component["replicaCount"] == 1 and component["podDisruptionBudget"]["enabled"] is False
    assert prod["installCRDs"] is True and prod["webhook"]["port"] == 10250


def test_namespaces_allow_exactly_eso_to_openbao_and_the_webhook(production):
    ingress = production.named("netpol-openbao-allow-from-external-secrets",
                               "kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]["ingress"]
    assert ingress[0]["ports"] == [{"protocol": "TCP", "port": 8200}]
    egress = production.named("netpol-external-secrets-allow-to-openbao",
                              "kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]["egress"]
    assert egress[0]["ports"] == [{"protocol": "TCP", "port": 8200}]
    webhook = production.named("netpol-external-secrets-allow-api-server-webhooks",
                               "kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]["ingress"]
    assert webhook[0]["ports"] == [{"protocol": "TCP", "port": 10250}]
    ns = production.named("ns-openbao", "kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"


def _deps(run, name: str) -> set[str]:
    return {run.by_urn(u).name for u in run.named(name, RELEASE).dependencies}


def _monitoring_ports(run, namespace: str) -> list[dict]:
    spec = run.named(f"netpol-{namespace}-allow-from-monitoring", "kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]
    assert spec["ingress"][0]["from"] == [PROMETHEUS_PEER], "Prometheus' pods only, not Grafana"
    return spec["ingress"][0]["ports"]


def test_eso_controller_webhook_and_cert_controller_are_scraped_on_8080(production):
    """serviceMonitor.enabled renders one ServiceMonitor per component (chart 2.9.0 templates/servicemonitor.yaml),
    each on its metrics Service; the release waits for the CRDs, so it renders them without asking."""
    values = server_values(production, "external-secrets")
    assert values["serviceMonitor"] == {"enabled": True, "renderMode": "alwaysRender"}
    for component in (values, values["webhook"], values["certController"]):
        assert component["metrics"]["service"]["enabled"] is True
    assert "prometheus-operator-crds" in _deps(production, "external-secrets")
    assert _monitoring_ports(production, "external-secrets") == [{"protocol": "TCP", "port": 8080}]


@pytest.mark.parametrize("backend", ["openbao", "vault"])
def test_the_active_server_is_scraped_without_a_token_on_the_api_port(request, production, backend):
    run = production if backend == "openbao" else request.getfixturevalue("vault_run")
    server = server_values(run, backend)
    assert server["serverTelemetry"]["serviceMonitor"] == {"enabled": True}
    config = server["server"]["ha"]["raft"]["config"]
    # The chart's monitor sends no token: the listener must let /v1/sys/metrics through without one.
    listener = config.split('listener "tcp" {', 1)[1].split("storage", 1)[0]
    assert "unauthenticated_metrics_access = true" in listener and 'prometheus_retention_time = "30s"' in config
    assert "prometheus-operator-crds" in _deps(run, backend)
    assert _monitoring_ports(run, backend) == [{"protocol": "TCP", "port": 8200}]


def test_vault_backend_uses_the_vault_chart_and_shamir_with_a_bootstrap_script(vault_run):
    vault = vault_run.named("vault", RELEASE).inputs
    assert (vault["chart"], vault["version"], vault["repositoryOpts"]["repo"], vault["namespace"]) == (
        "vault", "0.34.1", "https://helm.releases.hashicorp.com", "vault")
    server = vault["values"]["server"]
    assert server["image"] == {"repository": "hashicorp/vault", "tag": "2.0.4"}
    config = server["ha"]["raft"]["config"]
    assert 'path = "/vault/data"' in config and "vault-2.vault-internal" in config
    assert "seal" not in config and "initialize" not in config and server["extraVolumes"] == []
    assert not [r for r in vault_run.resources if r.name == "openbao" or "unseal-key" in r.name]
    store = vault_run.named("platform-secrets", STORE).inputs["spec"]["provider"]["vault"]
    assert store["server"] == "http://vault-active.vault.svc:8200"
    script = vault_run.named("vault-bootstrap", "kubernetes:core/v1:ConfigMap").inputs["data"]["bootstrap.sh"]
    assert "vault read sys/mounts/secret >/dev/null 2>&1 || vault write sys/mounts/secret - <<'JSON'" in script
    assert "vault write auth/kubernetes/role/external-secrets - <<'JSON'" in script
    assert validators.shellcheck({"vault-bootstrap": script}) == ""


def test_two_replicas_are_refused_naming_the_key():
    with pytest.raises(ConfigError) as err:
        load("test", base_raw(clusterServices={**SERVICES, "secrets": {"replicas": 2}}), SECRET_KEYS)
    [problem] = [str(p) for p in err.value.problems]
    assert problem.startswith("adplatform:clusterServices.secrets.replicas must be 1, 3 or 5")


def test_unknown_backend_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"clusterServices\.secrets\.backend must be one of openbao, vault"):
        load("test", base_raw(clusterServices={**SERVICES, "secrets": {"backend": "consul"}}), SECRET_KEYS)


def _ctx(replicas: int, nodes: int, ha: bool):
    return SimpleNamespace(settings=SimpleNamespace(secrets=SimpleNamespace(replicas=replicas)),
                           schedulable_nodes=nodes, ha=ha)


def test_fewer_nodes_than_voters_fails_in_ha_and_relaxes_anti_affinity_elsewhere():
    assert secrets.server_replicas(_ctx(3, 3, True)) == (3, True)
    with pytest.raises(ValueError, match=r"clusterServices\.secrets\.replicas is 3 but only 2 nodes"):
        secrets.server_replicas(_ctx(3, 2, True))
    assert secrets.server_replicas(_ctx(3, 2, False)) == (3, False)
    preferred = secrets.affinity(secrets.BACKENDS["openbao"], required=False)["podAntiAffinity"]
    assert preferred["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100


def test_hcl_renderer_quotes_labels_and_escapes_strings():
    text = secrets.hcl({("seal", "static"): {"current_key": 'a"b'}, "ui": True, ("retry_join",): [{"x": 1}, {"x": 2}]})
    assert text == ('seal "static" {\n  current_key = "a\\"b"\n}\nui = true\n'
                    "retry_join {\n  x = 1\n}\nretry_join {\n  x = 2\n}")


def test_secret_store_pods_meet_the_restricted_level_of_their_namespace(production):
    """The charts' default container context drops no capability: `restricted` would refuse the pods."""
    values = production.named("openbao", "kubernetes:helm.sh/v3:Release").inputs["values"]
    context = values["server"]["statefulSet"]["securityContext"]
    assert context["container"]["capabilities"] == {"drop": ["ALL"]}
    assert context["container"]["allowPrivilegeEscalation"] is False
    assert context["pod"]["runAsNonRoot"] is True and context["pod"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["pod"]["runAsUser"] == 100 and context["pod"]["fsGroup"] == 1000
    ns = next(r for r in production.of_type("kubernetes:core/v1:Namespace") if r.inputs["metadata"]["name"] == "openbao")
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
