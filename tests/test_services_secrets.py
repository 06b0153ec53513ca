"""Secrets management: OpenBao/Vault in HA on raft over TLS, explicit unsealing and exported recovery material,
ESO with one SecretStore per consuming namespace, each reading only its own path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from components import charts
from components.services import secrets
from config import ConfigError, load
from providers.hetzner import STORAGE_CLASS
from tests import validators, variants
from components.layer import EXCLUDE_FROM_BACKUP
from tests.conftest import SECRET_KEYS, base_raw, run_raw
from tests.netpol import PROMETHEUS_PEER
from tools.mockrun import Secret

RELEASE = "kubernetes:helm.sh/v3:Release"
STORE = "kubernetes:external-secrets.io/v1:SecretStore"
CERT = "kubernetes:cert-manager.io/v1:Certificate"
JOB = "kubernetes:batch/v1:Job"
TEAMS, RECIPIENT = variants.TEAMS, variants.RECIPIENT
SERVICES = {"tls": {"acmeEmail": "ops@example.com"},
            "backups": {"s3": {"endpoint": "https://fsn1.your-objectstorage.com", "region": "fsn1",
                               "bucket": "adp-test-backups"}}}


def server_values(run, name="openbao"):
    return run.named(name, RELEASE).inputs["values"]


@pytest.fixture(scope="module")
def vault_run():
    return run_raw(base_raw(clusterServices={**SERVICES, "secrets": {"backend": "vault"}, "teams": TEAMS}))


@pytest.fixture(scope="module")
def teams_run():
    """Two team namespaces consume the store; the unseal key goes to one PGP recipient (a run shared with other
    files: tests/variants.py)."""
    return variants.services_variant()


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
        assert f'leader_api_addr = "https://openbao-{i}.openbao-internal:8200"' in config
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


def test_openbao_initialises_itself_with_kv_kubernetes_auth_and_the_admin_role(production):
    config = production.named("openbao-self-init", "kubernetes:core/v1:ConfigMap").inputs["data"]["init.hcl"]
    config += server_values(production)["server"]["ha"]["raft"]["config"]
    assert 'initialize "platform" {' in config
    assert 'path = "sys/mounts/secret"' in config and '"version" = "2"' in config
    assert 'path = "sys/auth/kubernetes"' in config
    assert 'path = "auth/kubernetes/role/platform-admin"' in config
    assert '"bound_service_account_names" = ["openbao-admin"]' in config
    assert 'audit "file" "stdout" {' in config and "unauthenticated_metrics_access = true" in config
    # No reader of every path is created any more: each consuming namespace gets its own role (configure Job).
    assert "external-secrets" not in config and 'path "secret/data/*"' not in config


def test_injector_csi_and_ui_service_are_off(production):
    values = server_values(production)
    assert values["injector"] == {"enabled": False}
    assert values["csi"] == {"enabled": False} and values["ui"] == {"enabled": False}


def test_openbao_api_listener_serves_tls_from_the_stores_ca_and_every_client_verifies_it(production):
    values = server_values(production)
    server = values["server"]
    config = server["ha"]["raft"]["config"]
    listener = config.split('listener "tcp" {', 1)[1].split("storage", 1)[0]
    assert "tls_disable" not in config
    assert 'tls_cert_file = "/openbao/userconfig/openbao-tls/tls.crt"' in listener
    assert 'tls_key_file = "/openbao/userconfig/openbao-tls/tls.key"' in listener
    # Joiners verify the leader; the chart's addresses and probes go https; the CLI in the pods verifies.
    assert config.count('leader_ca_cert_file = "/openbao/userconfig/openbao-tls/ca.crt"') == 3
    assert values["global"] == {"tlsDisable": False}
    assert server["extraEnvironmentVars"] == {"BAO_CACERT": "/openbao/userconfig/openbao-tls/ca.crt"}
    assert {"type": "secret", "name": "openbao-tls", "path": "/openbao/userconfig", "defaultMode": 0o440} \
        in server["extraVolumes"]
    assert values["serverTelemetry"]["serviceMonitor"]["tlsConfig"] == {
        "ca": {"secret": {"name": "openbao-tls", "key": "ca.crt"}}, "serverName": "openbao-active.openbao.svc"}
    cert = production.named("openbao-tls", CERT).inputs
    spec = cert["spec"]
    assert cert["metadata"]["namespace"] == "openbao" and spec["secretName"] == "openbao-tls"
    assert spec["issuerRef"] == {"name": "openbao-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    # Every name a client dials: the active Service (ESO, the Job), each pod (raft joins), 127.0.0.1 (BAO_ADDR).
    assert {"openbao-active.openbao.svc", "*.openbao-internal"} <= set(spec["dnsNames"])
    assert spec["ipAddresses"] == ["127.0.0.1"] and "server auth" in spec["usages"]
    assert spec["secretTemplate"]["labels"] == EXCLUDE_FROM_BACKUP
    assert production.named("openbao-tls", CERT).urn in production.named("openbao", RELEASE).dependencies
    issuer = production.named("openbao-ca-clusterissuer", "kubernetes:cert-manager.io/v1:ClusterIssuer")
    assert issuer.inputs["spec"] == {"ca": {"secretName": "openbao-ca"}}
    ca = production.named("openbao-ca-certificate", CERT).inputs["spec"]
    assert ca["isCA"] is True and ca["secretTemplate"]["labels"] == EXCLUDE_FROM_BACKUP


def test_no_store_serves_every_namespace(production, teams_run, vault_run):
    for run in (production, teams_run, vault_run):
        assert not run.of_type("kubernetes:external-secrets.io/v1:ClusterSecretStore")
    # The profile's team namespace (the ad services') is the only consumer of a default stack.
    assert [(r.inputs["metadata"]["namespace"], r.inputs["spec"]["provider"]["vault"]["auth"]["kubernetes"]["role"])
            for r in production.of_type(STORE)] == [("ads", "namespace-ads")]
    # ESO may not mint tokens for any ServiceAccount in the cluster.
    assert server_values(production, "external-secrets")["rbac"] == {"serviceAccountTokenCreate": False}


@pytest.mark.parametrize("namespace", ["bidding", "analytics"])
def test_each_team_namespace_gets_its_own_store_logging_in_as_its_own_account(teams_run, namespace):
    store = teams_run.named(f"secret-store-{namespace}", STORE)
    assert store.inputs["metadata"]["namespace"] == namespace and store.inputs["metadata"]["name"] == "platform-secrets"
    assert store.inputs["spec"] == {"provider": {"vault": {
        "server": "https://openbao-active.openbao.svc:8200", "path": "secret", "version": "v2",
        "caProvider": {"type": "Secret", "name": "openbao-ca", "key": "ca.crt"},
        "auth": {"kubernetes": {"mountPath": "kubernetes", "role": f"namespace-{namespace}",
                                "serviceAccountRef": {"name": "secret-store-reader", "audiences": ["openbao"]}}}}}}
    reader = teams_run.named(f"secret-store-reader-{namespace}", "kubernetes:core/v1:ServiceAccount").inputs
    assert reader["metadata"]["namespace"] == namespace and reader["automountServiceAccountToken"] is False
    # The namespace's copy of the CA (cert-manager's CA issuer writes ca.crt into the Secret it issues).
    ca = teams_run.named(f"openbao-ca-{namespace}", CERT).inputs
    assert ca["metadata"]["namespace"] == namespace and ca["spec"]["secretName"] == "openbao-ca"
    assert ca["spec"]["issuerRef"]["name"] == "openbao-ca" and ca["spec"]["secretTemplate"]["labels"] == EXCLUDE_FROM_BACKUP
    # ESO's token right, in this namespace, for this account only.
    role = teams_run.named(f"eso-token-{namespace}", "kubernetes:rbac.authorization.k8s.io/v1:Role").inputs
    assert role["metadata"]["namespace"] == namespace
    assert role["rules"] == [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"],
                              "resourceNames": ["secret-store-reader"]}]
    binding = teams_run.named(f"eso-token-{namespace}-binding",
                              "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding").inputs
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "external-secrets", "namespace": "external-secrets"}]
    deps = {teams_run.by_urn(u).name for u in store.dependencies}
    assert {"external-secrets", "openbao-configure", f"openbao-ca-{namespace}",
            f"secret-store-reader-{namespace}", f"eso-token-{namespace}-binding"} <= deps


def _configure_script(run) -> str:
    return run.named("openbao-configure", "kubernetes:core/v1:ConfigMap").inputs["data"]["configure.sh"]


def test_each_namespace_role_reads_only_its_own_path(teams_run):
    script = _configure_script(teams_run)
    assert validators.shellcheck({"openbao-configure": script}) == ""
    policies = {ns: secrets.consumer_policy(ns) for ns in ("bidding", "analytics")}
    assert policies["bidding"] == ('path "secret/data/bidding/*" { capabilities = ["read"] }\n'
                                   'path "secret/metadata/bidding/*" { capabilities = ["read", "list"] }\n')
    requests = {r.path: r for r in secrets.consumer_requests(secrets.BACKENDS["openbao"], ["bidding", "analytics"])}
    for ns, policy in policies.items():
        assert requests[f"sys/policies/acl/namespace-{ns}"].data == {"policy": policy}
        assert requests[f"auth/kubernetes/role/namespace-{ns}"].data == {
            "bound_service_account_names": ["secret-store-reader"], "bound_service_account_namespaces": [ns],
            "token_policies": [f"namespace-{ns}"], "token_ttl": "1h", "token_max_ttl": "4h", "audience": "openbao"}
        assert f"bao write sys/policies/acl/namespace-{ns} - <<'JSON'" in script
    # The cluster-wide reader of earlier versions is removed from existing stores.
    assert "bao delete auth/kubernetes/role/external-secrets" in script
    assert "bao delete sys/policies/acl/external-secrets" in script
    assert 'secret/data/*' not in script


def test_configure_job_logs_in_as_the_admin_account_without_a_token_on_any_command_line(teams_run, tmp_path):
    job = teams_run.named("openbao-configure", JOB).inputs
    pod = job["spec"]["template"]["spec"]
    assert "name" not in job["metadata"], "a changed script replaces the Job, which runs again"
    assert pod["serviceAccountName"] == "openbao-admin" and pod["automountServiceAccountToken"] is False
    [token] = [v for v in pod["volumes"] if v["name"] == "token"]
    assert token["projected"]["sources"] == [{"serviceAccountToken": {
        "audience": "openbao", "expirationSeconds": 600, "path": "token"}}]
    [ca] = [v for v in pod["volumes"] if v["name"] == "ca"]
    assert ca["secret"] == {"secretName": "openbao-tls", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    [container] = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["BAO_ADDR"] == "https://openbao-active.openbao.svc:8200" and env["BAO_CACERT"] == "/ca/ca.crt"
    assert container["image"] == "quay.io/openbao/openbao:2.6.2"
    assert teams_run.named("openbao", RELEASE).urn in teams_run.named("openbao-configure", JOB).dependencies
    # Run the script against a stub CLI that records each call: the login reads the token from its file, the
    # store's token reaches the later calls by the environment only.
    calls = tmp_path / "calls"
    stub = tmp_path / "bao"
    stub.write_text('#!/bin/sh\necho "$* token=${BAO_TOKEN:-}" >> "$CALLS"\ncat > /dev/null\n'
                    'case "$*" in *login*) echo s.stub-token ;; esac\n')
    stub.chmod(0o755)
    script = tmp_path / "configure.sh"
    script.write_text(_configure_script(teams_run))
    result = subprocess.run(["sh", str(script)], capture_output=True, text=True, env={
        **{k: v for k, v in env.items() if k != "HOME"}, "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "CALLS": str(calls), "TOKEN_FILE": "/var/run/secrets/openbao/token"})
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    assert lines[0] == ("write -field=token auth/kubernetes/login role=platform-admin "
                        "jwt=@/var/run/secrets/openbao/token token=")
    # login, the two legacy deletions, a policy and a role per team, the snapshot policy and role, the restore role
    # and policy's deletions (no restore set)
    assert all(line.endswith("token=s.stub-token") for line in lines[1:]) and len(lines) == 1 + 2 + 2 * 2 + 2 + 2
    assert not any("s.stub-token" in line.split(" token=")[0] for line in lines)
    assert "s.stub-token" not in result.stdout + result.stderr


def test_unseal_key_is_kept_out_of_backups_and_exported_as_a_secret_output(production):
    key = production.named("openbao-unseal-key", "kubernetes:core/v1:Secret")
    assert key.inputs["metadata"]["labels"]["velero.io/exclude-from-backup"] == "true"
    assert "secretsRecovery" in production.secret_outputs
    output = production.outputs["secretsRecovery"]
    assert output["unsealKey"] == key.inputs["stringData"].value["key"]
    assert output["backend"] == "openbao" and output["sealKeyId"] == "adplatform-1"
    assert not production.of_type("command:local:Command"), "no PGP recipient: nothing to encrypt"


def test_with_pgp_recipients_the_unseal_key_is_exported_encrypted_only(teams_run):
    [encrypt] = teams_run.of_type("command:local:Command")
    assert isinstance(encrypt.inputs["stdin"], Secret), "the key reaches gpg on stdin, as a secret"
    assert encrypt.inputs["environment"] == {"PGP_KEY_COUNT": "1", "PGP_KEY_0": RECIPIENT}
    assert encrypt.inputs["create"] == (Path(secrets.SCRIPTS) / "pgp-encrypt.sh").read_text()
    assert encrypt.inputs["logging"] == "stderr", "the ciphertext is the output, not a log line"
    assert validators.shellcheck({"pgp-encrypt": encrypt.inputs["create"]}) == ""
    assert "secretsRecovery" in teams_run.secret_outputs
    output = teams_run.outputs["secretsRecovery"]
    assert "unsealKey" not in output and output["recipients"] == 1 and "unsealKeyPgp" in output


def test_pgp_encrypt_script_encrypts_to_every_recipient(tmp_path):
    """The real gpg (where installed) encrypts to the test key; the fixture's private half is not kept, so only
    the message's recipient list is checked."""
    gpg = subprocess.run(["sh", "-c", "command -v gpg"], capture_output=True, text=True).stdout.strip()
    if not gpg:
        pytest.skip("gpg is not installed")
    result = subprocess.run(["bash", str(secrets.SCRIPTS / "pgp-encrypt.sh")], input="unseal-key-value",
                            capture_output=True, text=True, env={**os.environ, "PGP_KEY_COUNT": "2",
                                                                 "PGP_KEY_0": RECIPIENT, "PGP_KEY_1": RECIPIENT})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-----BEGIN PGP MESSAGE-----") and "unseal-key-value" not in result.stdout
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    packets = subprocess.run([gpg, "--homedir", str(home), "--list-packets"], input=result.stdout,
                             capture_output=True, text=True)
    assert "pubkey enc packet" in packets.stdout + packets.stderr


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
    assert server["serverTelemetry"]["serviceMonitor"]["enabled"] is True
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
    assert "seal" not in config and "initialize" not in config
    assert server["extraVolumes"] == [{"type": "secret", "name": "vault-tls", "path": "/vault/userconfig",
                                       "defaultMode": 0o440}]
    assert not [r for r in vault_run.resources if r.name == "openbao" or "unseal-key" in r.name]
    store = vault_run.named("secret-store-bidding", STORE).inputs["spec"]["provider"]["vault"]
    assert store["server"] == "https://vault-active.vault.svc:8200" and store["caProvider"]["name"] == "vault-ca"
    assert server["extraEnvironmentVars"] == {"VAULT_CACERT": "/vault/userconfig/vault-tls/ca.crt"}
    script = vault_run.named("vault-bootstrap", "kubernetes:core/v1:ConfigMap").inputs["data"]["bootstrap.sh"]
    assert "vault read sys/mounts/secret >/dev/null 2>&1 || vault write sys/mounts/secret - <<'JSON'" in script
    assert "vault write auth/kubernetes/role/namespace-bidding - <<'JSON'" in script
    assert "vault write auth/kubernetes/role/external-secrets" not in script
    assert validators.shellcheck({"vault-bootstrap": script}) == ""
    assert not [r for r in vault_run.of_type(JOB) if "configure" in r.name], \
        "Vault is initialised by hand: its roles come with the bootstrap script"


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


@pytest.mark.parametrize("given, expected", [
    ("not a key", "must be an ASCII-armored OpenPGP public key"),
    ("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n-----END PGP PRIVATE KEY BLOCK-----", "is a PRIVATE key block"),
    ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----", "ASCII-armored"),
    # Valid armor and base64, but the first packet is a signature (tag 2), not a public key.
    ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\niQAA\n-----END PGP PUBLIC KEY BLOCK-----", "public-key packet"),
])
def test_recovery_pgp_keys_must_be_armored_public_keys(given, expected):
    with pytest.raises(ConfigError) as err:
        load("test", base_raw(clusterServices={**SERVICES, "secrets": {"recoveryPgpKeys": [RECIPIENT, given]}}),
             SECRET_KEYS)
    [problem] = [str(p) for p in err.value.problems]
    assert problem.startswith("adplatform:clusterServices.secrets.recoveryPgpKeys") and expected in problem


def test_an_exported_public_key_is_accepted():
    cfg = load("test", base_raw(clusterServices={**SERVICES, "secrets": {"recoveryPgpKeys": [RECIPIENT]}}),
               SECRET_KEYS)
    assert cfg.config.cluster_services.secrets.recovery_pgp_keys == [RECIPIENT]
