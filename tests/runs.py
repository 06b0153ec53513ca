"""What the tests share: whole-program runs under Pulumi mocks (each stack's run held once per process) and the
raw configs and readers they build them from.

tests/conftest.py re-exports these names for tests that still import them from there."""

from __future__ import annotations

import copy
import re
import shlex
from functools import lru_cache
from typing import Any, Callable

from tools import mockrun, yamlread
from tools.mockrun import Run, Secret

SECRET_KEYS = {"sshPrivateKey", "backupAccessKeyId", "backupSecretAccessKey", "backupCredentials", "dnsApiToken"}
# One key pair per backup purpose (production requires them: config/rules.py), distinct values so tests can tell
# which consumer holds which.
BACKUP_CREDENTIALS = {purpose: {"accessKeyId": f"test-{purpose}-access-key",
                                 "secretAccessKey": f"test-{purpose}-secret-key"}
                      for purpose in ("etcd", "velero", "secrets", "postgres", "clickhouse", "scylladb", "redpanda", "drills")}
VALID_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGyQ5iLrXL0W1eJqkqG9y5WnA2s8pC3qvGfQe1cW9r7H test@example.com"


@lru_cache(maxsize=None)
def stack_run(stack: str) -> Run:
    """The run of a stack file, executed (or read from the run cache) once per process."""
    return mockrun.run_stack(stack)


def stack_plan(stack: str) -> dict[str, Any]:
    """tools.plan.model.build of a stack file's run: built once per session and kept in the run cache beside the
    run (a build costs up to a second, most of it the policy pack, and a dozen tests in several files read each
    stack's plan). Each call returns a fresh copy, as build() does."""
    return _recorded_plan(*mockrun.stack_config(stack), stack, lambda: stack_run(stack))


def _recorded_plan(values: dict[str, Any], secret_keys: set[str], stack: str, run: Callable[[], Run]) -> dict[str, Any]:
    """model.build of `run()`, the run of this config, through the run cache (kind "plan") when there is one."""
    from tools.plan import model  # the planner, only for the tests that read plans

    if mockrun.cache is None or mockrun._fakes_replaced():
        return model.build(run())
    return mockrun.cache.recorded(values, secret_keys, stack, lambda *config: model.build(run()), kind="plan")


def base_raw(**overrides: Any) -> dict[str, Any]:
    """A minimal valid raw config (keys without namespace), as the loader receives it."""
    raw = {
        "provider": "hetzner",
        "profile": "production",
        "domain": "ads.example.com",
        "adminCidrs": ["203.0.113.0/24"],
        "sshPublicKeys": [VALID_KEY],
        "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----",
        "clusterServices": {"tls": {"acmeEmail": "ops@example.com"},
                            "backups": {"s3": {"endpoint": "https://fsn1.your-objectstorage.com",
                                               "region": "fsn1", "bucket": "adp-test-backups"}}},
        "backupCredentials": {p: dict(keys) for p, keys in BACKUP_CREDENTIALS.items()},  # a copy: tests edit it
    }
    raw.update(overrides)
    return raw


# What a run from a raw config builds unless the raw config says otherwise: the layers up to the data plane.
# The platform and the ad services are tested on the stack files' runs (and variants of them), which keeps
# the lower layers' many variant runs fast.
LOWER_LAYERS = {"platform": False, "adServices": False}


# Layers off for a variant whose assertions concern only the providers, host tuning and K3s (`layers=UP_TO_K3S`), or
# the layers up to the cluster services or the platform: the layers above would cost much of its run and prove
# nothing more there.
UP_TO_PLATFORM = {"adServices": False}  # the ad services add their own objects only (ads-*, store users)
UP_TO_SERVICES = {"dataPlane": False, "platform": False, "adServices": False}
UP_TO_K3S = {"clusterServices": False, **UP_TO_SERVICES}


def lower_layers(raw: dict[str, Any]) -> dict[str, Any]:
    return {**raw, "layers": {**LOWER_LAYERS, **(raw.get("layers") or {})}}


def raw_config(raw: dict[str, Any], secret: set[str] = frozenset()) -> tuple[dict[str, Any], set[str]]:
    """The config values and secret keys run_raw runs a raw config with."""
    values = {f"adplatform:{k}": v for k, v in lower_layers(raw).items()}
    values["hcloud:token"] = "test-token"
    return values, {f"adplatform:{k}" for k in SECRET_KEYS | secret} | {"hcloud:token"}


def run_raw(raw: dict[str, Any], stack: str = "test", secret: set[str] = frozenset()) -> Run:
    """The run of a raw config; SECRET_KEYS and the keys in `secret` given as secrets (`pulumi config set --secret`)."""
    return mockrun.run(*raw_config(raw, secret), stack)


def config_plan(values: dict[str, Any], secret_keys: set[str], stack: str) -> dict[str, Any]:
    """tools.plan.model.build of the run of exactly this config, built once per session like stack_plan."""
    return _recorded_plan(values, secret_keys, stack, lambda: mockrun.run(values, secret_keys, stack))


def raw_plan(raw: dict[str, Any], stack: str = "test") -> dict[str, Any]:
    """tools.plan.model.build of run_raw(raw, stack), built once per session like stack_plan (a fresh copy each
    call)."""
    return _recorded_plan(*raw_config(raw), stack, lambda: run_raw(raw, stack))


def staging_with_nodes(nodes: int) -> dict[str, Any]:
    """The staging profile grown to `nodes` servers (3 control plane, 4 database pools, the rest general)."""
    return base_raw(profile="staging", cluster={"pools": [{"name": "general", "count": nodes - 7}]})


# The planner at scale (tests/test_plan.py, tests/test_plan_report.py): one stack of a hundred servers whose run and
# plan every scale test reads (a run of that size costs seconds).
HUNDRED_NODES = 100


# A quoted parameter: '...' with each ' inside written '"'"' (the renderer's quoting).
QUOTED_ESCAPE = "'\"'\"'"


def script_param(script: str, name: str) -> str:
    """The value the renderer gave a script parameter (`readonly NAME='...'`)."""
    value = _param(script, name)
    assert value is not None, f"parameter {name} not in script"
    return value


# Scripts and the K3s config in them are read back hundreds of times a session (k3s_config for every node of a run,
# in test after test on the same fixture's run): each distinct text is searched and parsed once per process (issue
# 22); the texts are the key, so a changed script is read afresh.
@lru_cache(maxsize=4096)
def _param(script: str, name: str) -> str | None:
    match = re.search(rf"^readonly {name}=('(?:[^']|{QUOTED_ESCAPE})*'|\S*)$", script, re.M | re.S)
    if not match:
        return None
    value = match.group(1)
    if value.startswith("'"):
        # What shlex.split reads back from this form (its pure-Python tokenizer costs milliseconds on a long value):
        # the only quotes inside are the escapes' (the pattern above).
        return value[1:-1].replace(QUOTED_ESCAPE, "'")
    return shlex.split(value)[0] if value else ""


@lru_cache(maxsize=4096)
def _k3s_document(text: str) -> Any:
    return yamlread.safe_load(text)


def k3s_config(run: Run, node: str) -> dict[str, Any]:
    """The /etc/rancher/k3s/config.yaml the install command writes on `node` (e.g. 'scylladb-1'): a fresh copy each
    call (a test may edit it)."""
    stdin = run.named(f"k3s-{node}", "command:remote:Command").inputs["stdin"]
    assert isinstance(stdin, Secret), "the K3s install script carries the join token and must be secret"
    return copy.deepcopy(_k3s_document(script_param(stdin.value, "K3S_CONFIG")))


def node_labels(run: Run, node: str) -> dict[str, str]:
    """The labels `node` registers with (its K3s node-label)."""
    return dict(label.split("=", 1) for label in k3s_config(run, node)["node-label"])


def nodes_without_topology(run: Run) -> dict[str, dict[str, str]]:
    """Every node of the run that would end up without topology.kubernetes.io/region, /zone or
    adplatform.io/provider (with the labels it registers with). A node a cloud controller manager initialises
    (kubelet cloud-provider=external) gets region and zone from it, and the kubelet must not set them (the CCM's
    word wins); every other node registers with both."""
    from components.scheduling import REGION_TOPOLOGY, ZONE_TOPOLOGY
    from providers.base import PROVIDER_LABEL
    missing = {}
    for name in (r.name.removeprefix("k3s-") for r in run.of_type("command:remote:Command")
                 if r.name.startswith("k3s-")):
        labels = node_labels(run, name)
        by_ccm = "cloud-provider=external" in k3s_config(run, name)["kubelet-arg"]
        topology = {REGION_TOPOLOGY, ZONE_TOPOLOGY} & set(labels)
        if PROVIDER_LABEL not in labels or (topology if by_ccm else len(topology) != 2):
            missing[name] = labels
    return missing
