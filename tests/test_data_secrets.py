"""No credential reaches Pulumi state, a Kubernetes object or a stack output in plain text: every generated
password (pulumi_random) and every secret config value, in production and staging, is looked for in every
resource's inputs (ConfigMaps, env `value:`, args, Helm values, custom resources ...) outside the parts the
engine received marked secret, and in the stack outputs."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Iterator

import pytest

from tools.mockrun import Run, Secret

PASSWORD = "random:index/randomPassword:RandomPassword"


def _generated(run: Run) -> dict[str, str]:
    """Each RandomPassword's value as the offline mocks make it (tools/mockrun.py OfflineMocks)."""
    return {r.name: (f"offline-{r.name}-" + "x" * 64)[:int(r.inputs.get("length", 16))]
            for r in run.of_type(PASSWORD)}


def _configured(run: Run) -> dict[str, str]:
    return {k: str(v.value) for k, v in run.config.items() if isinstance(v, Secret) and len(str(v.value)) >= 8}


def _forms(value: str) -> set[str]:
    """The value and what a template would make of it: base64 (Secret `data`), sha256 / double sha1 (user configs)."""
    raw = value.encode()
    return {value, base64.b64encode(raw).decode(), hashlib.sha256(raw).hexdigest(),
            hashlib.sha1(hashlib.sha1(raw).digest()).hexdigest()}


def _plain_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string outside a Secret wrapper, with where it sits."""
    if isinstance(value, Secret):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _plain_strings(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _plain_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


@pytest.fixture(scope="module", params=["production", "staging"])
def run(request) -> Run:
    return request.getfixturevalue(request.param)


def test_the_walk_knows_the_data_plane_credentials(run):
    """The check below is only as good as its list: every store's generated credentials are in it."""
    names = set(_generated(run))
    for store in ("seaweedfs", "scylla", "redpanda", "clickhouse", "dragonfly", "postgres"):
        assert any(n.startswith(store) for n in names), f"no generated password of {store}"


def test_the_walk_knows_the_platform_credentials(production):
    """Production runs every platform component: their generated logins and keys are in the walk too."""
    names = set(_generated(production))
    for component in ("gitlab", "grafana", "airflow", "jupyterhub", "mlflow", "kubeflow"):
        assert any(n.startswith(component) for n in names), f"no generated password of {component}"


def test_no_credential_appears_unwrapped_in_any_resource(run):
    needles = {form: name for name, value in {**_generated(run), **_configured(run)}.items()
               for form in _forms(value)}
    leaks = [f"{r.type} {r.name}{where}: {needles[n]}"
             for r in run.resources for where, text in _plain_strings(r.inputs)
             for n in needles if n in text]
    assert not leaks, "\n".join(leaks)


def test_no_credential_in_the_stack_outputs(run):
    text = json.dumps({k: v for k, v in run.outputs.items() if k not in run.secret_outputs}, default=str)
    leaked = [name for name, value in {**_generated(run), **_configured(run)}.items()
              if any(form in text for form in _forms(value))]
    assert not leaked, leaked
    assert "dataPlane" not in run.secret_outputs, "the data plane output must be plain: it holds no secret"


def test_generated_credentials_are_protected_exactly_in_production(production, staging):
    """Losing a database's password (a `pulumi destroy` of the stack's RandomPassword) locks its data out."""
    data = [r for r in production.of_type(PASSWORD) if r.name not in ("server-token", "agent-token")]
    assert data and all(r.protect for r in data), [r.name for r in data if not r.protect]
    assert not [r.name for r in staging.of_type(PASSWORD) if r.protect]
