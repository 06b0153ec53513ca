"""Whole-program variants shared by several test files: one run carries every independent change they need.

A production run costs seconds; tests that each need production with one switch flipped share ONE run with
all those switches (each change is independent of the others: a test asserts only on what its own switch
touches). Add a switch here rather than a new production variant when it does not contradict the others.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from config.ads import REGISTRY_TOKEN
from config.rules import RUNNER_TOKEN
from tests.runs import UP_TO_PLATFORM, base_raw, run_raw
from tools import mockrun
from tools.mockrun import Run

# tests/test_ads_variants.py: a dedicated pool, the team's own images from a private registry, a separate metrics
# port, services disabled, monitoring and traces off, the ads namespace meshed by Linkerd.
REGISTRY_TOKEN_VALUE = "offline-registry-token-0123456789"
HOT_PATH_TAINT = "adplatform.io/dedicated=hot-path:NoSchedule"
ADS_OVERRIDES: dict[str, Any] = {
    "cluster": {"location": "fsn1", "pools": [{"name": "hot", "role": "general", "count": 2,
                                               "size": "dedicated-large", "taints": [HOT_PATH_TAINT]}]},
    "platform": {"monitoring": {"enabled": False}, "traces": {"enabled": False}},
    "adServices": {
        "registry": {"host": "registry.ads.example.com", "username": "ads-deploy"},
        "services": {
            "bidding": {"pool": "hot", "metricsPort": 9090,
                        "image": {"repository": "registry.ads.example.com/ads/bidding", "tag": "1.4.2"}},
            "ad-serving": {"image": {"repository": "registry.ads.example.com/ads/ad-serving",
                                     "digest": "sha256:" + "ab" * 32}},
            "reporting": {"enabled": False},
            "analytics-ingestion": {"enabled": False},
            "api-gateway": {"env": {"LOG_LEVEL": "debug"}},
        },
    },
}
MESH = {"linkerd": True, "namespaces": ["ads"]}
# tests/test_platform_sso.py: kubectl rights from GitLab groups.
KUBECTL_BINDINGS = [{"group": "teams/ads", "clusterRole": "edit", "namespace": "ads"},
                    {"group": "platform-admins", "clusterRole": "cluster-admin"}]
# tests/test_platform_gitlab.py, tests/test_platform_runner_bootstrap.py: the runner with its token set in the stack
# (instead of the bootstrap's).
RUNNER_TOKEN_VALUE = "glrt-offline-runner-token-0123456789abcdef"
# tests/test_platform_ml.py: MLflow and Kubeflow off (JupyterHub and Airflow, their clients, stay on).
ML_OFF = {"mlflow": {"enabled": False}, "kubeflow": {"enabled": False}}


def production_variant() -> Run:
    """Production with every switch above. Through the run cache: executed once a session, and each caller gets
    its own copy (a test may not change another's run)."""
    values, secret = mockrun.stack_config("production")
    values.update({f"adplatform:{k}": copy.deepcopy(v) for k, v in ADS_OVERRIDES.items() if k != "platform"})
    values["adplatform:platform"] = {**copy.deepcopy(ADS_OVERRIDES["platform"]),
                                     "sso": {"kubectl": {"bindings": copy.deepcopy(KUBECTL_BINDINGS)}},
                                     "gitlab": {"runner": {"enabled": True}}, **copy.deepcopy(ML_OFF)}
    values["adplatform:clusterServices"] = {**values.get("adplatform:clusterServices", {}), "mesh": dict(MESH)}
    values[f"adplatform:{REGISTRY_TOKEN}"] = REGISTRY_TOKEN_VALUE
    values[f"adplatform:{RUNNER_TOKEN}"] = RUNNER_TOKEN_VALUE
    return mockrun.run(values, secret | {f"adplatform:{REGISTRY_TOKEN}", f"adplatform:{RUNNER_TOKEN}"}, "production")


# tests/test_platform_monitoring.py: two alert receivers with their secrets, no logs and traces, no ScyllaDB and
# ClickHouse; tests/test_platform_dataeng.py: Airflow, Spark and JupyterHub off. The ad services (which use those
# stores) are off.
SLACK_URL = "https://hooks.slack.com/services/T0000/B0000/offline-receiver-secret"
PAGER_KEY = "offline-pagerduty-routing-key-0123456789"
ALERTING = {
    "receivers": [{"name": "ops-slack", "type": "slack", "channel": "#alerts"},
                  {"name": "oncall", "type": "pagerduty"}],
    "routes": [{"receiver": "oncall", "matchers": ['severity="critical"', 'namespace=~"ads|postgres"'],
                "continue": True}],
    "defaultReceiver": "ops-slack",
}
DATA_ENGINEERING = ("airflow", "spark", "jupyterhub")


def production_quiet() -> Run:
    """Production with the switches above (through the run cache, like production_variant)."""
    values, secret = mockrun.stack_config("production")
    values["adplatform:layers"] = {"adServices": False}
    values["adplatform:platform"] = {"logs": {"enabled": False}, "traces": {"enabled": False},
                                     "monitoring": {"alerting": copy.deepcopy(ALERTING)},
                                     **{name: {"enabled": False} for name in DATA_ENGINEERING}}
    values["adplatform:dataPlane"] = {"scylladb": {"enabled": False}, "clickhouse": {"enabled": False}}
    values["adplatform:alertingSecrets"] = {"ops-slack": SLACK_URL, "oncall": PAGER_KEY}
    return mockrun.run(values, secret | {"adplatform:alertingSecrets"}, "production")


# tests/test_data_objectstore.py, tests/test_platform_observability.py, tests/test_platform_ml.py: the provider's S3
# (backend external) instead of the in-cluster store, with MLflow and Kubeflow on in staging (one replica of
# everything). Each file asserts on its own consumers of the store. GitLab stays off (test_platform_ml asserts that
# without single sign-on the Kubeflow UI is not published).
EXTERNAL_S3 = {"endpoint": "https://fsn1.your-objectstorage.com", "region": "fsn1", "bucketPrefix": "adp-stage"}
OBJECT_KEYS = {"objectStorageAccessKeyId": "stage-object-key", "objectStorageSecretAccessKey": "stage-object-secret"}


def staging_external() -> Run:
    """Staging with the switches above, without the ad services (UP_TO_PLATFORM: they add only their own objects,
    which none of those files reads); through the run cache, like production_variant."""
    values, secret = mockrun.stack_config("staging")
    values["adplatform:platform"] = {"mlflow": {"enabled": True},
                                     "kubeflow": {"enabled": True, "databaseStorageSize": "50Gi"}}
    values["adplatform:dataPlane"] = {"objectStorage": {"backend": "external", "external": dict(EXTERNAL_S3)}}
    values["adplatform:layers"] = dict(UP_TO_PLATFORM)
    values.update({f"adplatform:{k}": v for k, v in OBJECT_KEYS.items()})
    return mockrun.run(values, secret | {f"adplatform:{k}" for k in OBJECT_KEYS}, "staging")


# tests/test_platform_dataeng.py: Airflow, Spark and JupyterHub on in staging (its profile turns them off), with
# non-default settings; tests/test_platform_observability.py: logs and traces off.
DATA_ENGINEERING_ON = {
    "airflow": {"enabled": True, "dagsRepo": "https://gitlab.example.com/data/dags.git", "dagsPath": "dags"},
    "spark": {"enabled": True, "requestsCpu": "8", "requestsMemory": "32Gi", "limitsMemory": "48Gi", "pods": 50},
    "jupyterhub": {"enabled": True, "userCpuLimit": "4", "userMemoryLimit": "16Gi", "userCpuGuarantee": "1",
                   "userMemoryGuarantee": "4Gi", "userStorageSize": "20Gi", "idleTimeoutMinutes": 30}}
OBSERVABILITY_OFF = {"logs": {"enabled": False}, "traces": {"enabled": False}}


def staging_data_on() -> Run:
    """Staging with the switches above, without the ad services (UP_TO_PLATFORM: they add only their own objects,
    which neither file reads); through the run cache, like production_variant."""
    platform = {**copy.deepcopy(DATA_ENGINEERING_ON), **OBSERVABILITY_OFF}
    return mockrun.run_stack("staging", {"platform": platform, "layers": dict(UP_TO_PLATFORM)})


# tests/test_services_secrets.py: two team namespaces consume the secrets store, the unseal key goes to one PGP
# recipient; tests/test_services_secrets_sso.py: no platform layer (run_raw's default), so no GitLab to log in with;
# tests/test_services_reboots.py: kured off; tests/test_services_namespaces.py: the teams replace the profile's
# (`ads`, `ci`), one with its own quota; tests/test_store_users.py: the ad services on (in a team's namespace, without
# the platform), three of them reading other services' data.
TEAMS = [{"name": "bidding"}, {"name": "analytics"}]
TEAM_QUOTA = {"requestsCpu": "64", "requestsMemory": "128Gi", "limitsMemory": "160Gi"}  # bidding's
READS_FROM = {"analytics-ingestion": {"readsFrom": ["ad-serving", "bidding"]},
              "reporting": {"readsFrom": ["analytics-ingestion"]}, "ml-inference": {"readsFrom": ["bidding"]}}
RECIPIENT = (Path(__file__).parent / "fixtures" / "recovery-recipient.asc").read_text()  # a throwaway test key


def services_variant() -> Run:
    """A raw config's run (up to the data plane, and the ad services) with the switches above; through the run
    cache, like production_variant."""
    raw = base_raw(layers={"adServices": True},
                   adServices={"namespace": "bidding", "services": copy.deepcopy(READS_FROM)})
    teams = [{**team, **TEAM_QUOTA} if team["name"] == "bidding" else dict(team) for team in TEAMS]
    raw["clusterServices"] = {**raw["clusterServices"], "teams": teams,
                              "secrets": {"recoveryPgpKeys": [RECIPIENT]}, "reboots": {"enabled": False}}
    return run_raw(raw)


# tests/test_data_redpanda.py: the console off, 24 h retention; tests/test_data_dragonfly.py: 2 CPUs, 6Gi and hourly
# snapshots; tests/test_data_drills.py: drills monthly but ClickHouse's daily, PostgreSQL backing up every 6 h;
# tests/test_disaster_recovery.py: every store restored from its own backup (PostgreSQL under a new server name).
STORE_RESTORES = {
    "postgres": {"backupServerName": "postgres-2",
                 "restore": {"fromServer": "postgres", "backupId": "20261120T020012",
                             "targetTime": "2026-11-20T14:30:00Z"}},
    "clickhouse": {"restore": {"backup": "full-20261120T010000Z"}},
    "scylladb": {"restore": {"snapshotTag": "sm_20261120030000UTC"}},
    "dragonfly": {"restore": {"backup": "cluster-20261120020012"}},
    "redpanda": {"restore": {"backup": "20261120T030000Z"}},
}
DATA_PLANE = {"redpanda": {"console": False, "retentionHours": 24, **STORE_RESTORES["redpanda"]},
              "dragonfly": {"cpu": "2", "memory": "6Gi", "snapshotSchedule": "0 * * * *", **STORE_RESTORES["dragonfly"]},
              "drills": {"schedule": "0 3 1 * *", "schedules": {"clickhouse": "0 5 * * *"}},
              "postgres": {"backupSchedule": "0 */6 * * *", **STORE_RESTORES["postgres"]},
              "clickhouse": STORE_RESTORES["clickhouse"], "scylladb": STORE_RESTORES["scylladb"]}


# tests/test_secrets_seal.py: OpenBao unsealed by a transit engine elsewhere, its token given as a secret.
TRANSIT_TOKEN = "s.transit-seal-token-under-test"
# A certificate-shaped PEM block (a DER SEQUENCE): what the config accepts as the transit server's CA.
CA_PEM = ("-----BEGIN CERTIFICATE-----\n"
          "MIIBAAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSor\n"
          "LC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpb\n"
          "XF1eX2BhYmNkZWZnaGlqa2xtbm9wcXJzdHV2dw==\n"
          "-----END CERTIFICATE-----\n")
TRANSIT = {"address": "https://bao.example.net:8200", "keyName": "adplatform-unseal", "mountPath": "transit/",
           "tlsCa": CA_PEM}


def data_variant() -> Run:
    """A raw config's run (up to the data plane) with the stores' settings and the transit seal above; through the
    run cache, like production_variant."""
    raw = base_raw(dataPlane=copy.deepcopy(DATA_PLANE), secretsSealToken=TRANSIT_TOKEN)
    raw["clusterServices"] = {**raw["clusterServices"], "secrets": {"seal": {"type": "transit", "transit": dict(TRANSIT)}}}
    return run_raw(raw, secret={"secretsSealToken"})


# tests/test_platform_gitlab.py: GitLab on in staging, its objects in the provider's S3 (backend external);
# tests/test_ads.py: bidding on an io_uring runtime (its own seccomp profile, installed on every node).
GITLAB_S3 = {"endpoint": "https://nbg1.your-objectstorage.com", "region": "nbg1", "bucketPrefix": "adp-staging"}
GITLAB_S3_KEY_ID = "offline-provider-key-id"


def staging_gitlab() -> Run:
    """Staging (one of everything, every layer) with the switches above; through the run cache, like
    production_variant."""
    values, secret = mockrun.stack_config("staging")
    values["adplatform:platform"] = {"gitlab": {"enabled": True}}
    values["adplatform:dataPlane"] = {"objectStorage": {"backend": "external", "external": dict(GITLAB_S3)}}
    values["adplatform:adServices"] = {"services": {"bidding": {"ioUring": True}}}
    values["adplatform:objectStorageAccessKeyId"] = GITLAB_S3_KEY_ID
    values["adplatform:objectStorageSecretAccessKey"] = "offline-provider-secret-key"
    secret |= {"adplatform:objectStorageAccessKeyId", "adplatform:objectStorageSecretAccessKey"}
    return mockrun.run(values, secret, "staging")


# tests/test_data_zones.py: every database pool over the three locations of eu-central, as the control plane;
# tests/test_data_scylladb.py: ScyllaDB on the provider's volumes (`storage: network`) with its own keyspaces and
# backup retention. Each file asserts on its own settings (placement per location; storage, mode, the bootstrap).
LOCATIONS = ["fsn1", "nbg1", "hel1"]
SPANNING_POOLS = ("scylladb", "redpanda", "clickhouse", "stateful")
NETWORK_SCYLLADB = {"storage": "network", "keyspaces": ["ads", "bidding"], "backupRetention": 14}


def spanning_variant() -> Run:
    """A raw config's run (up to the data plane) with the switches above; through the run cache, like
    production_variant."""
    return run_raw(base_raw(cluster={"location": "fsn1", "controlPlane": {"locations": list(LOCATIONS)},
                                     "pools": [{"name": p, "locations": list(LOCATIONS)} for p in SPANNING_POOLS]},
                            dataPlane={"scylladb": copy.deepcopy(NETWORK_SCYLLADB)}))
