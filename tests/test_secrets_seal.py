"""OpenBao's auto-unseal with a key outside the cluster (clusterServices.secrets.seal): the cloud provider's key
management service, or the transit engine of an external OpenBao/Vault (any provider; the way out of the cluster on
Hetzner and bare metal). A credential that may use that key alone, delivered to OpenBao's namespace only and kept out
of backups and plaintext state; the in-cluster static key otherwise; migration from it on request."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

import pytest

from components.services import secrets
from config import ConfigError
from providers import aws, gcp
from providers.base import Seal, seal_type
from tests import variants
from tests.cloud_stacks import AWS_PRODUCTION_CLUSTER, AWS_REGION, cloud_production, config_problems, run_cloud
from tests.conftest import UP_TO_SERVICES, SECRET_KEYS, base_raw, lower_layers, run_raw, stack_run
from tools import mockrun
from tools.mockrun import OfflineMocks, Secret

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
PASSWORD = "random:index/randomPassword:RandomPassword"
EXCLUDED = {"velero.io/exclude-from-backup": "true"}


@pytest.fixture(scope="module")
def aws_run():
    return stack_run("staging-aws")


@pytest.fixture(scope="module")
def gcp_run():
    return stack_run("staging-gcp")


def outputs(resource) -> dict:
    """What the offline mocks answered for `resource` (a run records inputs only)."""
    args = SimpleNamespace(typ=resource.type, name=resource.name, inputs=resource.inputs, resource_id=None)
    rid, answered = OfflineMocks().new_resource(args)
    return {"id": rid, **answered}


def server(run):
    return run.named("openbao", RELEASE).inputs["values"]["server"]


def seal_block(run, kind: str) -> str:
    config = server(run)["ha"]["raft"]["config"]
    return config.split(f'seal "{kind}" {{\n', 1)[1].split("\n}", 1)[0]


def secrets_holding(run, value: str) -> list[tuple[str, str]]:
    """(namespace, name) of every Kubernetes Secret whose data carries `value`."""
    found = []
    for r in run.of_type(SECRET):
        data = r.inputs.get("stringData")
        data = data.value if isinstance(data, Secret) else data
        if any(value in str(v.value if isinstance(v, Secret) else v) for v in (data or {}).values()):
            found.append((r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]))
    return found


def assert_no_in_cluster_key(run):
    assert not [r for r in run.resources if r.name == "openbao-unseal-key"], "no unseal key in state or cluster"
    volumes = [v["name"] for v in server(run)["extraVolumes"]]
    assert "openbao-unseal-key" not in volumes
    assert 'seal "static"' not in server(run)["ha"]["raft"]["config"]
    assert "secretsRecovery" not in run.outputs, "nothing in the stack unseals the data: no recovery key to export"


def assert_credential_secret(run, key: str, value: str):
    """The credential sits in OpenBao's namespace, in its one Secret (secret in state), excluded from Velero."""
    secret = run.named("openbao-seal", SECRET)
    assert secret.inputs["metadata"]["namespace"] == "openbao"
    assert secret.inputs["metadata"]["labels"]["velero.io/exclude-from-backup"] == "true"
    data = secret.inputs["stringData"]
    assert isinstance(data, Secret) or isinstance(data[key], Secret)
    assert secrets_holding(run, value) == [("openbao", "openbao-seal")], "no other namespace gets the credential"
    assert secret.urn in run.named("openbao", RELEASE).dependencies


# --- AWS KMS ------------------------------------------------------------------------------------------

def test_aws_stack_unseals_with_a_rotated_kms_key(aws_run):
    key = aws_run.named("openbao-seal", "aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True and key.inputs["keyUsage"] == "ENCRYPT_DECRYPT"
    assert key.inputs["deletionWindowInDays"] == 30
    block = seal_block(aws_run, "awskms")
    assert block.splitlines() == ['  region = "eu-central-1"', f'  kms_key_id = "{outputs(key)["arn"]}"']
    assert key.urn in aws_run.named("openbao", RELEASE).dependencies
    assert_no_in_cluster_key(aws_run)


def test_aws_seal_user_may_only_encrypt_decrypt_and_describe_that_key(aws_run):
    key = aws_run.named("openbao-seal", "aws:kms/key:Key")
    user = aws_run.named("openbao-seal", "aws:iam/user:User")
    [policy] = [p for p in aws_run.of_type("aws:iam/userPolicy:UserPolicy") if p.inputs["user"] == outputs(user)["name"]]
    assert json.loads(policy.inputs["policy"]) == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
        "Resource": outputs(key)["arn"]}]}
    assert not [a for a in aws_run.of_type("aws:iam/userPolicyAttachment:UserPolicyAttachment")
                if a.inputs["user"] == outputs(user)["name"]], "no managed policy widens it"
    access = aws_run.named("openbao-seal", "aws:iam/accessKey:AccessKey")
    assert access.inputs["user"] == outputs(user)["name"]
    assert server(aws_run)["extraSecretEnvironmentVars"] == [
        {"envName": "AWS_ACCESS_KEY_ID", "secretName": "openbao-seal", "secretKey": "access-key-id"},
        {"envName": "AWS_SECRET_ACCESS_KEY", "secretName": "openbao-seal", "secretKey": "secret-access-key"}]
    assert_credential_secret(aws_run, "secret-access-key", outputs(access)["secret"])


def test_the_seal_key_is_protected_in_production():
    run = cloud_production("aws", AWS_REGION, AWS_PRODUCTION_CLUSTER)  # tests/test_aws.py's run
    assert run.named("openbao-seal", "aws:kms/key:Key").protect
    assert_no_in_cluster_key(run)


# --- GCP Cloud KMS ------------------------------------------------------------------------------------

def test_gcp_stack_unseals_with_a_rotated_cloud_kms_key(gcp_run):
    ring = gcp_run.named("openbao-seal", "gcp:kms/keyRing:KeyRing")
    key = gcp_run.named("openbao-seal", "gcp:kms/cryptoKey:CryptoKey")
    assert key.inputs["keyRing"] == outputs(ring)["id"]
    assert key.inputs["rotationPeriod"] == "7776000s" and key.inputs["purpose"] == "ENCRYPT_DECRYPT"
    block = seal_block(gcp_run, "gcpckms").splitlines()
    project, region = gcp_run.config["gcp:project"], gcp_run.config["gcp:region"]
    assert ring.inputs["location"] == region
    assert block == [f'  project = "{project}"', f'  region = "{region}"', f'  key_ring = "{ring.inputs["name"]}"',
                     f'  crypto_key = "{key.inputs["name"]}"',
                     '  credentials = "/openbao/userconfig/openbao-seal/credentials.json"']
    assert {"type": "secret", "name": "openbao-seal", "path": "/openbao/userconfig", "defaultMode": 0o440} in \
        server(gcp_run)["extraVolumes"]
    assert_no_in_cluster_key(gcp_run)


def test_gcp_seal_account_is_bound_to_that_key_with_use_and_get_only(gcp_run):
    key = gcp_run.named("openbao-seal", "gcp:kms/cryptoKey:CryptoKey")
    account = gcp_run.named("openbao-seal", "gcp:serviceaccount/account:Account")
    role = gcp_run.named("openbao-seal", "gcp:projects/iAMCustomRole:IAMCustomRole")
    assert sorted(role.inputs["permissions"]) == ["cloudkms.cryptoKeyVersions.useToDecrypt",
                                                  "cloudkms.cryptoKeyVersions.useToEncrypt", "cloudkms.cryptoKeys.get"]
    member = f"serviceAccount:{outputs(account)['email']}"
    bindings = [r for r in gcp_run.resources if r.type.startswith("gcp:") and "IAM" in r.type
                and r.inputs.get("member") == member]
    assert [(b.type, b.inputs["cryptoKeyId"], b.inputs["role"]) for b in bindings] == [
        ("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", outputs(key)["id"], outputs(role)["name"])], \
        "one binding, on the key alone: nothing on the project, the ring or another key"
    credential = gcp_run.named("openbao-seal", "gcp:serviceaccount/key:Key")
    assert credential.inputs["serviceAccountId"] == outputs(account)["name"]
    decoded = base64.b64decode(outputs(credential)["privateKey"]).decode()
    assert json.loads(decoded)["type"] == "service_account"
    assert_credential_secret(gcp_run, "credentials.json", decoded)


# --- providers without a KMS, migration, config ----------------------------------------------------------

def test_hetzner_keeps_the_static_in_cluster_key(production):
    assert 'seal "static"' in server(production)["ha"]["raft"]["config"]
    assert not [r for r in production.resources if r.name == "openbao-seal"]
    assert "extraSecretEnvironmentVars" not in server(production)


def test_migration_keeps_the_static_seal_disabled_beside_the_kms_seal():
    run = run_cloud(base_raw(provider="aws", profile="staging", clusterServices={
        **base_raw()["clusterServices"], "secrets": {"seal": {"type": "kms", "migrateFromStatic": True}}},
        layers=UP_TO_SERVICES), AWS_REGION, stack="staging-aws")  # OpenBao is a cluster service
    config = server(run)["ha"]["raft"]["config"]
    static = seal_block(run, "static")
    assert 'disabled = "true"' in static and "openbao-unseal-key/key" in static
    assert 'seal "awskms"' in config and "disabled" not in seal_block(run, "awskms")
    assert config.index('seal "static"') < config.index('seal "awskms"')
    assert "openbao-unseal-key" in {v["name"] for v in server(run)["extraVolumes"]}
    key = run.named("openbao-unseal-key", SECRET)
    assert key.inputs["metadata"]["labels"]["velero.io/exclude-from-backup"] == "true"
    assert "secretsRecovery" in run.secret_outputs, "the old key still unseals until the migration is done"


def test_the_seal_opens_the_kms_api_to_openbao_only_when_on():
    # No backups: no snapshot pods reaching S3 (secrets_backup.py), only what the seal needs.
    ctx = SimpleNamespace(settings=SimpleNamespace(secrets=SimpleNamespace(backend="openbao", restore=None),
                                                   backups=SimpleNamespace(enabled=False, s3=None)),
                          secrets_oidc=None, seal=None)
    assert secrets.namespaces(ctx)[0].egress_world_pods == ()
    ctx.seal = Seal("awskms", settings={}, credentials={})
    # The servers' pods alone: they unseal; nothing else of the namespace reaches the internet.
    spec = secrets.namespaces(ctx)[0]
    assert spec.egress_world == ()
    assert [(p.pod_labels, p.ports) for p in spec.egress_world_pods] == [
        ({"app.kubernetes.io/name": "openbao", "app.kubernetes.io/instance": "openbao", "component": "server"}, (443,))]


@pytest.mark.parametrize("configured, offers_kms, backend, expected", [
    (None, True, "openbao", "kms"), (None, False, "openbao", "static"), (None, True, "vault", "static"),
    ("static", True, "openbao", "static"), ("kms", True, "openbao", "kms")])
def test_new_cloud_stacks_default_to_kms_and_existing_ones_can_keep_static(configured, offers_kms, backend, expected):
    loaded = SimpleNamespace(config=SimpleNamespace(cluster_services=SimpleNamespace(
        secrets=SimpleNamespace(backend=backend, seal=SimpleNamespace(type=configured)))))
    assert seal_type(loaded, offers_kms) == expected


def test_providers_name_their_seal():
    assert (aws.Aws.kms_seal, gcp.Gcp.kms_seal) == ("awskms", "gcpckms")


@pytest.mark.parametrize("seal, expected", [
    ({"type": "kms"}, "adplatform:clusterServices.secrets.seal.type must be static or transit on provider hetzner"),
    ({"migrateFromStatic": True}, "adplatform:clusterServices.secrets.seal.migrateFromStatic must be false unless"),
    ({"type": "hsm"}, "adplatform:clusterServices.secrets.seal.type"),
])
def test_seal_config_errors_name_the_key(seal, expected):
    raw = base_raw(clusterServices={**base_raw()["clusterServices"], "secrets": {"seal": seal}})
    with pytest.raises(ConfigError) as err:
        run_raw(raw)
    message = "\n".join(str(p) for p in err.value.problems)
    assert expected in message, message
    if seal.get("type") == "hsm":
        assert "'hsm'" in message and "static" in message and "kms" in message and "transit" in message


def test_kms_seal_needs_the_openbao_backend():
    problems = config_problems(base_raw(provider="aws", clusterServices={
        **base_raw()["clusterServices"], "secrets": {"backend": "vault", "seal": {"type": "kms"}}}), AWS_REGION)
    assert any(p.startswith("adplatform:clusterServices.secrets.seal.type must be left unset with "
                            "clusterServices.secrets.backend vault") for p in problems), problems


# --- transit: an external OpenBao/Vault's transit engine -------------------------------------------------

TRANSIT_TOKEN, CA_PEM, TRANSIT = variants.TRANSIT_TOKEN, variants.CA_PEM, variants.TRANSIT


def transit_raw(transit: dict | None = None, token: str | None = TRANSIT_TOKEN, **seal: Any) -> dict:
    """The production profile on Hetzner with the transit seal (and its token, unless None)."""
    sealed = {"type": "transit", **({"transit": transit} if transit is not None else {}), **seal}
    raw = base_raw(clusterServices={**base_raw()["clusterServices"], "secrets": {"seal": sealed}})
    return {**raw, "secretsSealToken": token} if token is not None else raw


def run_transit(raw: dict, token_secret: bool = True) -> mockrun.Run:
    """The whole program with `raw`, adplatform:secretsSealToken set with --secret unless `token_secret` is False."""
    values = {f"adplatform:{k}": v for k, v in lower_layers(raw).items()}
    values["hcloud:token"] = "test-token"
    secret = {f"adplatform:{k}" for k in SECRET_KEYS} | {"hcloud:token"}
    return mockrun.run(values, secret | ({"adplatform:secretsSealToken"} if token_secret else set()))


def transit_problems(raw: dict, token_secret: bool = True) -> str:
    with pytest.raises(ConfigError) as err:
        run_transit(raw, token_secret)
    assert mockrun.last_monitor.recorded == [], "nothing is created before the config is valid"
    return "\n".join(str(p) for p in err.value.problems)


def plaintext_paths(value: Any, needle: str, path: str = "") -> list[str]:
    """Where `needle` occurs in `value` outside an input marked secret (what Pulumi would store in plain text)."""
    if isinstance(value, Secret):
        return []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in plaintext_paths(v, needle, f"{path}.{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in plaintext_paths(v, needle, f"{path}[{i}]")]
    return [path] if needle in str(value) else []


@pytest.fixture(scope="module")
def transit_run():
    """transit_raw(TRANSIT) with the stores' settings of variants.DATA_PLANE (a run shared with other files)."""
    return variants.data_variant()


def test_transit_seal_renders_openbaos_stanza_without_the_token(transit_run):
    """The stanza carries the documented parameters (OpenBao 2.6 configuration/seal/transit); the token is not one of
    them: OpenBao reads it from VAULT_TRANSIT_SEAL_TOKEN, the seal's own variable, not the CLI's BAO_TOKEN."""
    assert seal_block(transit_run, "transit").splitlines() == [
        '  address = "https://bao.example.net:8200"', '  disable_renewal = "false"',
        '  key_name = "adplatform-unseal"', '  mount_path = "transit/"',
        '  tls_ca_cert = "/openbao/userconfig/openbao-seal/ca.crt"']
    assert server(transit_run)["extraSecretEnvironmentVars"] == [
        {"envName": "VAULT_TRANSIT_SEAL_TOKEN", "secretName": "openbao-seal", "secretKey": "token"}]
    assert {"type": "secret", "name": "openbao-seal", "path": "/openbao/userconfig", "defaultMode": 0o440} in \
        server(transit_run)["extraVolumes"]
    assert_no_in_cluster_key(transit_run)


def test_transit_token_reaches_openbao_alone_and_never_plaintext_state_outputs_or_argv(transit_run):
    assert_credential_secret(transit_run, "token", TRANSIT_TOKEN)  # its one Secret, openbao's, excluded from Velero
    ca = transit_run.named("openbao-seal", SECRET).inputs["stringData"]
    ca = ca.value if isinstance(ca, Secret) else ca
    assert (ca["ca.crt"].value if isinstance(ca["ca.crt"], Secret) else ca["ca.crt"]) == CA_PEM
    leaks = [f"{r.name} ({r.type}){p}" for r in transit_run.resources
             for p in plaintext_paths(r.inputs, TRANSIT_TOKEN)]
    assert leaks == [], "the token is in plain text in state (a command's argv or environment included)"
    assert plaintext_paths(transit_run.outputs, TRANSIT_TOKEN) == []
    assert isinstance(transit_run.config["adplatform:secretsSealToken"], Secret)


def test_transit_opens_egress_to_the_transit_port_only(transit_run):
    [policy] = [r for r in transit_run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                if r.inputs["metadata"]["namespace"] == "openbao"
                and r.inputs["metadata"]["name"] == "allow-egress-internet-server"]
    assert policy.inputs["spec"]["podSelector"]["matchLabels"]["component"] == "server"  # the servers unseal
    assert [p["port"] for rule in policy.inputs["spec"]["egress"] for p in rule["ports"]] == [8200]


def test_migration_from_static_to_transit_keeps_the_old_seal_disabled():
    raw = transit_raw({**TRANSIT, "address": "https://192.168.50.10"}, migrateFromStatic=True)
    run = run_transit({**raw, "layers": UP_TO_SERVICES})  # OpenBao is a cluster service
    config = server(run)["ha"]["raft"]["config"]
    assert 'disabled = "true"' in seal_block(run, "static") and "disabled" not in seal_block(run, "transit")
    assert config.index('seal "static"') < config.index('seal "transit"')
    assert run.named("openbao-unseal-key", SECRET).inputs["metadata"]["labels"] == {
        **run.named("openbao-unseal-key", SECRET).inputs["metadata"]["labels"], **EXCLUDED}
    assert "secretsRecovery" in run.secret_outputs, "the old key still unseals until the migration is done"
    # A transit server of the user's own network, by its private address: that address and port alone.
    policies = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in
                run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                if r.inputs["metadata"]["namespace"] == "openbao"}
    # The servers reach no internet address (the snapshot pods reach the backups' S3: secrets_backup.py).
    assert not [name for name in policies if name.startswith("allow-egress-internet")
                and name != "allow-egress-internet-snapshot"]
    assert policies["allow-egress-addresses"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "192.168.50.10/32"}}], "ports": [{"protocol": "TCP", "port": 443}]}]


def test_transit_seal_settings_follow_the_config():
    seal = secrets.transit_seal(secrets.TransitSeal.model_validate(
        {**TRANSIT, "namespace": "platform/", "disableRenewal": True}), token=None)
    assert dict(seal.settings) == {"address": "https://bao.example.net:8200", "disable_renewal": "true",
                                   "key_name": "adplatform-unseal", "mount_path": "transit/",
                                   "namespace": "platform/"}
    assert seal.type == "transit" and dict(seal.file_settings) == {"tls_ca_cert": "ca.crt"}


@pytest.mark.parametrize("transit, expected", [
    ({**TRANSIT, "address": "http://bao.example.net:8200"},
     "adplatform:clusterServices.secrets.seal.transit.address must be an https:// address"),
    ({**TRANSIT, "address": "https://bao.example.net/v1/transit"}, "(no path), got 'https://bao.example.net/v1/"),
    ({**TRANSIT, "address": "https://169.254.169.254"}, "transit.address must be an https:// address"),
    ({**TRANSIT, "address": "https://bao.example.net;id"}, "transit.address must be an https:// address"),
    ({**TRANSIT, "keyName": "key name"}, "seal.transit.keyName must be a single word"),
    ({**TRANSIT, "mountPath": "../sys"}, "adplatform:clusterServices.secrets.seal.transit.mountPath must be a path"),
    ({**TRANSIT, "namespace": "a b"}, "adplatform:clusterServices.secrets.seal.transit.namespace must be a path"),
    ({**TRANSIT, "tlsCa": "not a certificate"}, "seal.transit.tlsCa must be the PEM certificate(s) of the CA"),
    ({**TRANSIT, "tlsCa": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"},
     "transit.tlsCa holds a PRIVATE key"),
    ({k: v for k, v in TRANSIT.items() if k != "tlsCa"}, "adplatform:clusterServices.secrets.seal.transit.tlsCa must be "
                                                           "set"),
    (None, "adplatform:clusterServices.secrets.seal.transit must be set with seal type transit"),
])
def test_transit_config_errors_name_the_key_the_value_and_what_is_accepted(transit, expected):
    message = transit_problems(transit_raw(transit))
    assert expected in message, message


def test_transit_needs_its_token_as_a_secret():
    assert "adplatform:secretsSealToken must be set with seal type transit: pulumi config set --secret" in \
        transit_problems(transit_raw(TRANSIT, token=None))
    message = transit_problems(transit_raw(TRANSIT), token_secret=False)
    assert "adplatform:secretsSealToken must be stored as a secret" in message
    assert TRANSIT_TOKEN not in message, "the error never repeats the secret"


def test_transit_settings_need_the_transit_type_and_openbao():
    raw = base_raw(clusterServices={**base_raw()["clusterServices"], "secrets": {"seal": {"transit": TRANSIT}}})
    assert "adplatform:clusterServices.secrets.seal.transit is only read with clusterServices.secrets.seal.type " \
           "transit (the type is static)" in transit_problems(raw)
    vault = transit_raw(TRANSIT)
    vault["clusterServices"]["secrets"]["backend"] = "vault"
    assert "adplatform:clusterServices.secrets.seal.type must be left unset with clusterServices.secrets.backend " \
           "vault (unsealed by hand with Shamir keys); transit needs backend openbao" in transit_problems(vault)
