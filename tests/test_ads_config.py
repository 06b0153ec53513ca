"""Config of the ad services: each rule refuses a bad stack before any resource exists, naming the key."""

from __future__ import annotations

import pytest

from config import load
import types

from components.services import mesh
from config.ads import (MESH_PROXY_CPU, MESH_PROXY_MEMORY, MESH_PROXY_MEMORY_LIMIT, PLACEHOLDER_REPOSITORY,
                        PLACEHOLDER_TAG, REGISTRY_TOKEN, Image, peak_pods)
from config.ads import Service
from config.quantity import cpu_millis
from tests.conftest import SECRET_KEYS, base_raw
from tests.stores import config_problems


def ads(services: dict, **extra) -> dict:
    return {"adServices": {"services": services, **extra}}


def problems_of(**overrides) -> list[str]:
    return config_problems(base_raw(**overrides))


def only(found: list[str], key: str) -> str:
    hits = [p for p in found if p.startswith(f"adplatform:{key} ")]
    assert len(hits) == 1, found
    return hits[0]


def test_the_profiles_validate_as_they_are():
    for profile in ("production", "staging", "compact"):
        cfg = load("test", base_raw(profile=profile), SECRET_KEYS).config
        assert len(cfg.ad_services.enabled) == 8


def test_io_uring_is_off_unless_a_service_asks_for_it():
    cfg = load("test", base_raw(**ads({"bidding": {"ioUring": True}})), SECRET_KEYS).config
    services = cfg.ad_services.services
    assert services["bidding"].io_uring is True
    assert not any(svc.io_uring for name, svc in services.items() if name != "bidding")


def test_a_stack_file_changes_one_key_of_one_service():
    cfg = load("test", base_raw(**ads({"bidding": {"maxReplicas": 12}})), SECRET_KEYS).config
    bidding = cfg.ad_services.services["bidding"]
    assert (bidding.min_replicas, bidding.max_replicas, bidding.host) == (3, 12, "rtb")
    assert bidding.stores == ["dragonfly", "scylladb", "redpanda"]


def test_unknown_and_unwired_stores():
    found = problems_of(**ads({"reporting": {"stores": ["clickhouse", "mongodb"]},
                               "campaign-management": {"stores": ["scylladb", "postgres"]}}))
    assert "must list only scylladb, dragonfly, redpanda, clickhouse, got 'mongodb'" in \
        only(found, "adServices.services.reporting.stores")
    assert "PostgreSQL admits only the platform layer's namespaces" in \
        only(found, "adServices.services.campaign-management.stores")


def test_a_store_switched_off_in_the_data_plane():
    found = problems_of(dataPlane={"clickhouse": {"enabled": False}})
    for svc in ("reporting", "analytics-ingestion"):
        assert "dataPlane.clickhouse.enabled is false" in only(found, f"adServices.services.{svc}.stores")


def test_callers_must_be_services():
    found = problems_of(**ads({"reporting": {"callers": ["api-gateway", "billing"]}}))
    assert "must name services of adServices.services (ad-serving, " in \
        only(found, "adServices.services.reporting.callers")
    assert found[0].endswith("got 'billing'")


def test_replica_bounds():
    found = problems_of(**ads({"bidding": {"minReplicas": 4, "maxReplicas": 3}}))
    assert "must be at least minReplicas (4), got 3" in only(found, "adServices.services.bidding.maxReplicas")


def test_production_refuses_a_single_replica_staging_takes_it():
    found = problems_of(**ads({"reporting": {"minReplicas": 1}}))
    assert "must be at least 2 in the production profile" in only(found, "adServices.services.reporting.minReplicas")
    load("test", base_raw(profile="staging", **ads({"reporting": {"minReplicas": 1}})), SECRET_KEYS)


def test_public_hosts_need_a_listener_unless_the_gateway_has_a_wildcard():
    found = problems_of(**ads({"reporting": {"host": "reports"}}))
    assert "must include 'reports' for adServices.services.reporting.host" in \
        only(found, "clusterServices.gateway.hostnames")
    dns01 = {"tls": {"acmeEmail": "ops@example.com", "dns01": {"provider": "cloudflare", "zone": "example.com"}},
             "backups": base_raw()["clusterServices"]["backups"]}
    load("test", base_raw(clusterServices=dns01, dnsApiToken="x", **ads({"reporting": {"host": "reports"}})),
         SECRET_KEYS)


def test_hosts_are_not_shared_or_taken_from_the_platform():
    found = problems_of(**ads({"reporting": {"host": "api"}, "audience-targeting": {"host": "grafana"}}))
    assert "must not serve host 'api' from more than one service (reporting, api-gateway)" in \
        only(found, "adServices.services")
    assert "is the platform's monitoring host" in only(found, "adServices.services.audience-targeting.host")


@pytest.mark.parametrize("image, message", [
    ({"repository": "registry.ads.example.com/ads/bidding", "tag": "latest"}, "not 'latest'"),
    ({"repository": "registry.ads.example.com/ads/bidding"}, "must be set (or image.digest)"),
])
def test_images_need_a_version(image, message):
    found = problems_of(**ads({"bidding": {"image": image}}))
    assert message in only(found, "adServices.services.bidding.image.tag")


def test_a_digest_pins_the_image_and_a_bad_repository_is_refused():
    cfg = load("test", base_raw(**ads({"bidding": {"image": {"repository": "registry.ads.example.com/ads/bidding",
                                                               "digest": "sha256:" + "0" * 64}}})), SECRET_KEYS).config
    assert cfg.ad_services.services["bidding"].image.reference.endswith("@sha256:" + "0" * 64)
    found = problems_of(**ads({"bidding": {"image": {"repository": "Registry/Bidding:1", "tag": "1"}}}))
    assert "must be a lower-case registry path" in only(found, "adServices.services.bidding.image.repository")
    assert Image(repository=PLACEHOLDER_REPOSITORY, tag=PLACEHOLDER_TAG).reference == \
        "ghcr.io/stefanprodan/podinfo:6.14.1"


def test_pools_must_exist_and_not_be_a_databases():
    found = problems_of(**ads({"bidding": {"pool": "fast"}, "ad-serving": {"pool": "scylladb"}}))
    assert "must name a pool of cluster.pools with nodes or autoscaling (general, scylladb" in \
        only(found, "adServices.services.bidding.pool")
    assert "must not be a scylladb pool" in only(found, "adServices.services.ad-serving.pool")


def test_the_namespace_must_be_a_team_namespace():
    found = problems_of(adServices={"namespace": "apps"})
    assert "must be a team namespace (clusterServices.teams: ads)" in only(found, "adServices.namespace")


def test_the_team_quota_must_hold_the_services_at_their_peak():
    found = problems_of(**ads({"bidding": {"maxReplicas": 40}}))
    message = only(found, "clusterServices.teams[ads].requestsCpu")
    assert "must admit the ad services at maxReplicas plus a rollout's surge" in message
    assert message.endswith("got '32000m'")
    assert peak_pods(Service(max_replicas=10)) == 13 and cpu_millis("1.5") == 1500 and cpu_millis("250m") == 250


def test_linkerds_proxies_count_against_the_quota_when_the_namespace_is_meshed():
    # The proxy the quota rule adds per pod is the one the mesh injects.
    proxy = mesh.control_plane_values(types.SimpleNamespace(ha=False))["proxy"]["resources"]
    assert proxy == {"cpu": {"request": MESH_PROXY_CPU},
                     "memory": {"request": MESH_PROXY_MEMORY, "limit": MESH_PROXY_MEMORY_LIMIT}}
    services = {**base_raw()["clusterServices"], "mesh": {"linkerd": True, "namespaces": ["ads"]}}
    # Production's services at their peak (25.75 CPUs) fit 32 CPUs alone, not with a 100m proxy in each of 64 pods.
    message = only(problems_of(clusterServices=services), "clusterServices.teams[ads].requestsCpu")
    assert "Linkerd's proxy in each pod" in message and "32150m" in message
    # Another namespace meshed: the ad services' pods carry no proxy, the same quota holds them.
    load("test", base_raw(clusterServices={**services, "mesh": {"linkerd": True, "namespaces": ["payments"]},
                                           "teams": [{"name": "ads", "requestsCpu": "32", "requestsMemory": "64Gi",
                                                      "limitsMemory": "96Gi"}, {"name": "payments"}]}), SECRET_KEYS)


def test_registry_and_its_token_go_together():
    registry = {"registry": {"host": "registry.ads.example.com", "username": "deploy"}}
    found = problems_of(adServices=registry)
    assert "must be set with --secret when adServices.registry is set" in only(found, REGISTRY_TOKEN)
    found = config_problems(base_raw(**{REGISTRY_TOKEN: "x"}), SECRET_KEYS | {REGISTRY_TOKEN})
    assert "must be set (host, username)" in only(found, "adServices.registry")


def test_plain_env_holds_no_credentials_and_no_wired_names():
    found = problems_of(**ads({"reporting": {"env": {"API_TOKEN": "x", "KAFKA_BROKERS": "y", "LOG_LEVEL": "info"}}}))
    assert "must not hold a credential" in only(found, "adServices.services.reporting.env.API_TOKEN")
    assert "must not start with" in only(found, "adServices.services.reporting.env.KAFKA_BROKERS")
    assert not [p for p in found if "LOG_LEVEL" in p]


def test_keyspace_must_be_one_of_scyllas():
    found = problems_of(**ads({"bidding": {"keyspace": "metrics"}, "reporting": {"keyspace": "ads"}}))
    assert "must be one of dataPlane.scylladb.keyspaces (ads)" in only(found, "adServices.services.bidding.keyspace")
    assert "only read when stores lists 'scylladb'" in only(found, "adServices.services.reporting.keyspace")


def test_service_names_and_ports():
    found = problems_of(**ads({"Bidding_2": {}}))
    assert "service name 'Bidding_2' must be 1-40 characters" in only(found, "adServices.services")
    found = problems_of(**ads({"bidding": {"metricsPort": 9898}}))
    assert "must differ from port" in only(found, "adServices.services.bidding.metricsPort")
    found = problems_of(**ads({"reporting": {"port": 80}}))  # a field's own check: before the rules
    assert "between 1024 and 65535" in only(found, "adServices.services.reporting.port")


@pytest.mark.parametrize("service, key, message", [
    ({"stores": ["dragonfly", "dragonfly"]}, "stores", "must not repeat a store"),
    ({"memory": "1Gi", "memoryLimit": "512Mi"}, "memoryLimit", "must be at least the memory request (1Gi)"),
    ({"targetCpuUtilization": 5}, "targetCpuUtilization", "between 10 and 100"),
    ({"maxReplicas": 300}, "maxReplicas", "must be between 1 and 200"),
    ({"env": {"1BAD": "x"}}, "env", "must be an environment variable name"),
    ({"runAsUser": 0}, "runAsUser", "must be a non-root UID"),
    ({"requestsPerSecond": "lots"}, "requestsPerSecond", "quantity"),
    ({"consumerLag": {"group": "ingest", "averageValue": "lots"}}, "consumerLag.averageValue", "quantity"),
    ({"livenessPath": "healthz"}, "livenessPath", "must be an absolute URL path"),
    ({"ioUring": "yes"}, "ioUring", "valid boolean"),
    ({"ioUring": "false"}, "ioUring", "valid boolean"),  # quoted: must not silently mean anything
    ({"image": {"repository": "registry.ads.example.com/ads/bidding", "digest": "sha256:abc"}}, "image.digest",
     "must be a digest sha256:<64 hex characters>"),
])
def test_each_field_rule_names_its_key_and_what_it_accepts(service, key, message):
    found = problems_of(**ads({"bidding": service}))
    assert message in only(found, f"adServices.services.bidding.{key}")


def test_a_scylla_user_needs_a_keyspace_and_the_registry_a_host_name():
    found = problems_of(dataPlane={"scylladb": {"keyspaces": []}})
    assert "must list a keyspace for adServices.services.ad-serving (it uses ScyllaDB)" in \
        " ".join(p for p in found if p.startswith("adplatform:dataPlane.scylladb.keyspaces "))
    found = config_problems(base_raw(adServices={"registry": {"host": "https://registry", "username": "u"}},
                                     **{REGISTRY_TOKEN: "x"}), SECRET_KEYS | {REGISTRY_TOKEN})
    assert "must be a registry host name" in only(found, "adServices.registry.host")
