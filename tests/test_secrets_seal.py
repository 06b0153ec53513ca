"""OpenBao's auto-unseal with the cloud provider's key management service (clusterServices.secrets.seal): the key
outside the cluster, a credential that may use that key alone, delivered to OpenBao's namespace only and kept out of
backups; Hetzner and bare metal keep the in-cluster static key; migration from it on request."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from components.services import secrets
from config import ConfigError
from providers import aws, gcp
from providers.base import Seal, seal_type
from tests.cloud_stacks import config_problems, run_cloud
from tests.conftest import base_raw, run_raw, stack_run
from tools.mockrun import OfflineMocks, Secret

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
PASSWORD = "random:index/randomPassword:RandomPassword"
AWS_REGION = {"aws:region": "eu-central-1"}
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
    run = run_cloud(base_raw(provider="aws"), AWS_REGION, stack="production-aws")
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
        **base_raw()["clusterServices"], "secrets": {"seal": {"type": "kms", "migrateFromStatic": True}}}),
        AWS_REGION, stack="staging-aws")
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
    ctx = SimpleNamespace(settings=SimpleNamespace(secrets=SimpleNamespace(backend="openbao")), secrets_oidc=None,
                          seal=None)
    assert secrets.namespaces(ctx)[0].egress_world == ()
    ctx.seal = Seal("awskms", settings={}, credentials={})
    assert secrets.namespaces(ctx)[0].egress_world == (443,)


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
    ({"type": "kms"}, "adplatform:clusterServices.secrets.seal.type must be static on provider hetzner"),
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
        assert "'hsm'" in message and "static" in message and "kms" in message


def test_kms_seal_needs_the_openbao_backend():
    problems = config_problems(base_raw(provider="aws", clusterServices={
        **base_raw()["clusterServices"], "secrets": {"backend": "vault", "seal": {"type": "kms"}}}), AWS_REGION)
    assert any(p.startswith("adplatform:clusterServices.secrets.seal.type must be left unset with "
                            "clusterServices.secrets.backend vault") for p in problems), problems
