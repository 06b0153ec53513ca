"""Real validators over what the program renders: Kubernetes schemas, shellcheck, cloud-init, CI schemas.

Each function raises (or returns problems) on an invalid artifact; test_artifacts.py runs them over
every stack and over the repository's pipeline files, and proves each one rejects a bad input.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import yaml

from components.charts import K3S_VERSION
from policy.rules import is_secret, kubernetes_kind
from tools.mockrun import Resource, Run

ROOT = Path(__file__).resolve().parent.parent
# kubernetes-validate re-reads its (multi-megabyte) definitions file for every object it validates;
# the schemas never change within a run, so read each file once.
kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents)
BIN = Path(sys.executable).parent
CRD_SCHEMAS = ROOT / "tests" / "crd_schemas"
# The Kubernetes minor the cluster runs (from the pinned K3s release), as kubernetes-validate names it.
KUBERNETES_VERSION = ".".join(K3S_VERSION.lstrip("v").split("+")[0].split(".")[:2]) + ".0"
BUILTIN_GROUPS = {"core", "apps", "batch", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
                  "autoscaling", "storage.k8s.io", "scheduling.k8s.io", "admissionregistration.k8s.io",
                  "apiextensions.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "node.k8s.io",
                  "certificates.k8s.io", "flowcontrol.apiserver.k8s.io", "resource.k8s.io"}


def plain(value: Any) -> Any:
    """Inputs with secrets unwrapped (validators check shape, not secrecy)."""
    if is_secret(value):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def kubernetes_objects(run: Run) -> list[Resource]:
    """Every Kubernetes object the program creates directly (not Helm releases, not providers)."""
    return [r for r in run.resources if kubernetes_kind(r.type) is not None]


def validate_kubernetes(resource_type: str, inputs: dict[str, Any]) -> None:
    """Built-in kinds against the cluster version's OpenAPI schema (strict: no unknown fields);
    custom resources against the fields their operator documents (tests/crd_schemas/)."""
    group, kind = kubernetes_kind(resource_type) or ("", "")
    manifest = plain(inputs)
    if group in BUILTIN_GROUPS:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        return
    schema_file = CRD_SCHEMAS / f"{group}_{kind}.yaml"
    if not schema_file.exists():
        raise AssertionError(f"custom resource {group}/{kind} has no documented schema in "
                             f"{schema_file.relative_to(ROOT)}; write one from the operator's API reference")
    jsonschema.validate(manifest, yaml.safe_load(schema_file.read_text()))


def scripts(run: Run) -> dict[str, str]:
    """Every remote script the program runs (the stdin of `bash -s`), by command name."""
    return {r.name: plain(r.inputs["stdin"]) for r in run.of_type("command:remote:Command") if r.inputs.get("stdin")}


def shellcheck(named_scripts: dict[str, str]) -> str:
    """shellcheck output for all scripts at once (empty when clean); unique contents checked once."""
    unique = {text: name for name, text in named_scripts.items()}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for text, name in unique.items():
            path = Path(tmp) / f"{name}.sh"
            path.write_text(text)
            paths.append(str(path))
        if not paths:
            return ""
        result = subprocess.run([str(BIN / "shellcheck"), "--shell=bash", "--severity=style", *paths],
                                capture_output=True, text=True, check=False)
        return result.stdout + result.stderr


CLOUD_INIT_KEYS = ("userData", "user_data", "customData")


def cloud_init_documents(run: Run) -> dict[str, str]:
    return {f"{r.name}.{key}": plain(r.inputs[key]) for r in run.resources
            for key in CLOUD_INIT_KEYS if isinstance(plain(r.inputs.get(key)), str)}


def cloud_init_problems(document: str) -> list[str]:
    if not document.startswith("#cloud-config\n"):
        return ["does not start with the #cloud-config header"]
    try:
        data = yaml.safe_load(document)
    except yaml.YAMLError as exc:
        return [f"is not YAML: {exc}"]
    return [] if isinstance(data, dict) else ["is not a YAML mapping"]


PIPELINE_SCHEMAS = {".gitlab-ci.yml": "vendor.gitlab-ci", ".github/workflows": "vendor.github-workflows"}


def pipeline_files() -> dict[Path, str]:
    """Every pipeline file in the repository with the check-jsonschema built-in schema it must match."""
    found: dict[Path, str] = {}
    for path in ROOT.rglob("*.y*ml"):
        if any(part in (".venv", "build", "node_modules", ".git") for part in path.relative_to(ROOT).parts):
            continue
        rel = path.relative_to(ROOT).as_posix()
        if path.name == ".gitlab-ci.yml" or path.name.endswith(".gitlab-ci.yml"):
            found[path] = PIPELINE_SCHEMAS[".gitlab-ci.yml"]
        elif rel.startswith(".github/workflows/"):
            found[path] = PIPELINE_SCHEMAS[".github/workflows"]
    return found


def check_pipeline(path: Path, schema: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, check=False)
