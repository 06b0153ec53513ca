"""What the data-plane store tests share: the stack's validated config, its pools, the tolerations a taint
needs, Secret values (asserted secret) and the namespace policies."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from components.data.context import pinned_resources
from components.data.placement import Resources
from config import ConfigError, load
from config.data import DataPlane
from tests.conftest import SECRET_KEYS
from tools.mockrun import Run, Secret

NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"


def stack_config(run: Run):
    """The stack's validated config, loaded the way the program loads it."""
    raw = {k.split(":", 1)[1]: v.value if isinstance(v, Secret) else v for k, v in run.config.items()
           if k.startswith("adplatform:")}
    secrets = {k.split(":", 1)[1] for k, v in run.config.items() if isinstance(v, Secret)}
    return load(run.stack, raw, secrets).config


def pools(run: Run, role: str):
    return [p for p in stack_config(run).cluster.active_pools if p.role == role]


def expected_tolerations(taints) -> list[dict]:
    """Exactly one toleration per taint 'key[=value]:Effect', in the given order (written out here, not
    taken from components/scheduling.py, so a wrong toleration there fails)."""
    out = []
    for taint in taints:
        key_value, effect = taint.rsplit(":", 1)
        key, _, value = key_value.partition("=")
        out.append({"key": key, "operator": "Equal", "value": value, "effect": effect} if value
                   else {"key": key, "operator": "Exists", "effect": effect})
    return out


def string_data(secret) -> dict:
    """Every value of a Secret's stringData, asserting each reached the engine as a secret."""
    data = secret.inputs["stringData"]
    if isinstance(data, Secret):
        return dict(data.value)
    assert all(isinstance(v, Secret) for v in data.values()), secret.name
    return {k: v.value for k, v in data.items()}


def policy(run: Run, namespace: str, name: str) -> dict:
    """The spec of the NetworkPolicy `name` in `namespace` (components/services/namespaces.py names them)."""
    return run.named(f"netpol-{namespace}-{name}", NETPOL).inputs["spec"]


def ports(rule: dict) -> list[int]:
    return sorted(p["port"] for p in rule["ports"])


def operator_budget(run: Run, release: str) -> dict | None:
    """Our PodDisruptionBudget over an operator's replicas (context.py operator_budget), or None."""
    found = [r for r in run.of_type(PDB) if r.name == f"{release}-pdb"]
    return found[0].inputs if found else None


def assert_operator_ha(production: Run, staging: Run, release: str, namespace: str, labels: dict[str, str]) -> None:
    """Production: 2 leader-elected replicas of a chart that ships no PodDisruptionBudget, so ours keeps one
    through drains; staging: one replica and no budget (minAvailable 1 of 1 would block every drain)."""
    assert production.named(release, RELEASE).inputs["values"]["replicaCount"] == 2
    pdb = operator_budget(production, release)
    assert pdb is not None and pdb["metadata"]["namespace"] == namespace
    assert pdb["spec"]["minAvailable"] == 1 and pdb["spec"]["selector"]["matchLabels"] == labels
    assert staging.named(release, RELEASE).inputs["values"]["replicaCount"] == 1
    assert operator_budget(staging, release) is None


def assert_spread_over_nodes(affinity: dict, labels: dict[str, str]) -> None:
    """Operator replicas preferably on different nodes (context.py operator_affinity: preferred, so a
    rolling update's surge pod never waits for a free node)."""
    [weighted] = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    term = weighted["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname" and term["labelSelector"]["matchLabels"] == labels


def refused_memory(store: str, cpu: str, memory: str) -> str:
    """The error pinned_resources raises for a pinned store given `cpu` and `memory` (from its pools or
    configured), before any resource exists."""
    ctx = SimpleNamespace(resources=lambda *_: Resources(cpu, memory), settings=DataPlane(),
                          placements={store: SimpleNamespace(pools=(store,))})
    with pytest.raises(ValueError) as err:
        pinned_resources(ctx, store)
    return str(err.value)


def config_problems(raw: dict, secrets: set[str] = SECRET_KEYS) -> list[str]:
    """The messages of a config the loader must refuse (before any resource exists)."""
    with pytest.raises(ConfigError) as exc:
        load("test", raw, secrets)
    return [str(p) for p in exc.value.problems]


def chart_of(run: Run, release: str) -> tuple[str, str, str | None, str, bool]:
    """(chart, version, repository, namespace, createNamespace) of a Helm release: what pins it and where it
    goes (an OCI chart has no repository: components/helm.py)."""
    rel = run.named(release, RELEASE).inputs
    return (rel["chart"], rel["version"], rel.get("repositoryOpts", {}).get("repo"), rel["namespace"],
            rel["createNamespace"])


def tolerates(tolerations: list[dict], taint: str) -> bool:
    """Kubernetes' matching of a taint 'key[=value]:Effect' by a list of tolerations."""
    key_value, effect = taint.rsplit(":", 1)
    key, _, value = key_value.partition("=")
    for t in tolerations:
        if t.get("effect") not in (None, "", effect):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", key):
            return True
        if t.get("operator", "Equal") == "Equal" and t.get("key") == key and t.get("value", "") == value:
            return True
    return False


def stack_taints(run: Run) -> set[str]:
    cfg = stack_config(run).cluster
    return {*cfg.control_plane.taints, *(t for p in cfg.active_pools for t in p.node_taints)}
