"""Real validators over what the program renders: Kubernetes schemas, shellcheck, cloud-init, CI schemas and
GitLab's own pipeline parser rules (gitlab-ci-local).

Each function raises (or returns problems) on an invalid artifact; test_artifacts.py runs them over
every stack and over the repository's pipeline files, and proves each one rejects a bad input.
"""

from __future__ import annotations

import atexit
import base64
import functools
import gzip
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import referencing
import yaml

from components.charts import K3S_VERSION
from policy.rules import is_secret, kubernetes_kind
from providers import hetzner
from tests.runs import QUOTED_ESCAPE
from tools import yamlread
from tools.ci import cloud_init_schema
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
        _builtin_validator(manifest["apiVersion"], manifest["kind"]).validate(manifest)
        return
    schema_file = CRD_SCHEMAS / f"{group}_{kind}.yaml"
    if not schema_file.exists():
        raise AssertionError(f"custom resource {group}/{kind} has no documented schema in "
                             f"{schema_file.relative_to(ROOT)}; write one from the operator's API reference")
    _crd_validator(schema_file).validate(manifest)


# kubernetes_validate.validate builds a new $ref registry and validator for every object, and jsonschema.validate
# checks the schema itself on every call: most of a stack's validation time. The same schema files and the same
# drafts, each validator built once per kind (the library's own file selection: kubernetes_validate.utils.validate).
@functools.lru_cache(maxsize=None)
def _builtin_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    utils = kubernetes_validate.utils
    version = [v for v in utils.all_versions()
               if utils.major_minor(v) <= utils.major_minor(KUBERNETES_VERSION)][-1]
    schema_dir = f"v{version}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group_version}.json",
                                       KUBERNETES_VERSION)
    except FileNotFoundError:
        raise utils.SchemaNotFoundError(version=utils.major_minor(KUBERNETES_VERSION), kind=kind,
                                        api_version=api_version) from None
    definitions = utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", KUBERNETES_VERSION)
    registry = referencing.Resource.from_contents(definitions) @ (
        referencing.Resource.from_contents(schema) @ referencing.Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


@functools.lru_cache(maxsize=None)
def _crd_validator(schema_file: Path) -> jsonschema.protocols.Validator:
    schema = yamlread.safe_load(schema_file.read_text())  # libyaml: the pure-Python parser took a second a session
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


def scripts(run: Run) -> dict[str, str]:
    """Every remote script the program runs (the stdin of `bash -s`), by command name."""
    return {r.name: plain(r.inputs["stdin"]) for r in run.of_type("command:remote:Command") if r.inputs.get("stdin")}


SHELLCHECK_ARGS = ("--shell=bash", "--severity=style")
# Where shellcheck() marks the scripts it found clean (tests/conftest.py sets a directory in pytest's cache; None:
# every script is checked every time). A stack's scripts take seconds to check and rarely change between sessions.
shellcheck_clean: Path | None = None


@functools.lru_cache(maxsize=None)
def _shellcheck_digest() -> str:
    """What else decides shellcheck's word on a script: its binary and arguments."""
    return hashlib.sha256((BIN / "shellcheck").read_bytes() + "\0".join(SHELLCHECK_ARGS).encode()).hexdigest()


def _clean_mark(text: str) -> Path | None:
    if shellcheck_clean is None:
        return None
    return shellcheck_clean / hashlib.sha256(f"{_shellcheck_digest()}\0{text}".encode()).hexdigest()


# A rendered script's parameter lines (components/shell render: `readonly NAME=<shlex.quote(value)>`, one line, or
# several for a quoted value with newlines). Their values are data shellcheck never looks into (single-quoted, or
# shlex's unquoted safe characters), and they are all that differs between the scripts of one role's nodes (a node's
# name, addresses, K3s config): checked with every value replaced by one placeholder, those scripts are one text,
# checked once (a production run's 255 distinct scripts are some 30 bodies; issue 22).
# Only values in the forms shlex.quote writes: single-quoted, or its safe characters bare (a body's own
# `readonly X=$(cmd)` or `readonly X="$1"` stays as it is, for shellcheck to judge).
# Only before the body the renderer wraps in main(): a template body's own `readonly X='~/x'` or `readonly X='$Y'`
# keeps its value (shellcheck does read single-quoted words: SC2088, SC2016). A script not rendered (no main) keeps
# all of its text; a value holding the marker cuts the head short, leaving that value as it is, never the reverse.
PARAM_LINE = re.compile(rf"^(readonly [A-Z][A-Z0-9_]*=)(?:'(?:[^']|{QUOTED_ESCAPE})*'|[\w@%+=:,./-]*)$", re.M | re.A)
RENDERED_BODY = "\nmain() {\n"  # components/shell render


def without_values(text: str) -> str:
    """`text` with every parameter's value replaced by the same placeholder: what shellcheck is given."""
    head, body_start, body = text.partition(RENDERED_BODY)
    if not body_start:
        return text
    return PARAM_LINE.sub(r"\1'value'", head) + body_start + body


def shellcheck(named_scripts: dict[str, str]) -> str:
    """shellcheck output for all scripts at once (empty when clean); unique contents checked once (parameter values
    aside: without_values), and a content this shellcheck found clean before (in this session or an earlier one) not
    again: shellcheck checks each file on its own (no sourcing), so leaving out a clean one leaves the report as it
    was."""
    texts = {n: without_values(t) for n, t in named_scripts.items()}
    unique = {text: name for name, text in texts.items() if not ((mark := _clean_mark(text)) and mark.exists())}
    # A clean helper another script names in its `# shellcheck source=SCRIPTDIR/<name>.sh` is given again: missing
    # from the input, shellcheck reports the directive (SC1091) in the script that sources it.
    sourced = {name for name in texts for text in unique if f"source=SCRIPTDIR/{name}.sh" in text}
    unique.update({texts[name]: name for name in sourced if unique and texts[name] not in unique})
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for text, name in unique.items():
            path = Path(tmp) / f"{name}.sh"
            path.write_text(text)
            paths.append(str(path))
        if not paths:
            return ""
        result = subprocess.run([str(BIN / "shellcheck"), *SHELLCHECK_ARGS, *paths],
                                capture_output=True, text=True, check=False)
    report = result.stdout + result.stderr
    if result.returncode == 0 and not report:
        for text in unique:
            if mark := _clean_mark(text):
                mark.touch()
    return report


CLOUD_INIT_KEYS = ("userData", "user_data", "customData")


# Where else user data sits: GCP metadata `user-data` (instances, instance templates), Azure osProfile.customData
# (VMs; a scale set's under virtualMachineProfile).
NESTED_CLOUD_INIT = (("metadata", "user-data"), ("osProfile", "customData"),
                     ("virtualMachineProfile", "osProfile", "customData"))


def _user_data(value: object) -> str | None:
    """A user data input as its document: AWS launch templates and Azure take it base64-encoded."""
    text = plain(value)
    if not isinstance(text, str):
        return None
    if not text.startswith("#"):
        try:
            data = base64.b64decode(text, validate=True)
            # gzip, as cloud-init reads it (AWS launch templates: providers/aws.py)
            return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()
        except (ValueError, UnicodeDecodeError, OSError):
            return text
    return text


def _nested(inputs: dict, path: tuple[str, ...]) -> object:
    """The value at `path`, through secrets on the way (unwrapped one level at a time: plain() of the whole inputs
    at each step cost seconds a session, for the same value)."""
    node: object = inputs
    for key in path:
        while is_secret(node):
            node = node.value
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def cloud_init_documents(run: Run) -> dict[str, str]:
    """Every user data document: machines' and node-group templates' inputs, and the node groups the cluster
    autoscaler creates servers of (on Hetzner its cluster config file holds each group's cloud-init)."""
    found = {}
    for r in run.resources:
        for path in [(key,) for key in CLOUD_INIT_KEYS] + list(NESTED_CLOUD_INIT):
            document = _user_data(_nested(r.inputs, path))
            if document is not None:
                found[f"{r.name}.{'.'.join(path)}"] = document
    for secret in run.of_type("kubernetes:core/v1:Secret"):
        document = (plain(secret.inputs.get("stringData")) or {}).get(HCLOUD_CLUSTER_CONFIG_FILE)
        if document:
            groups = json.loads(document)["nodeConfigs"]
            found.update({f"{secret.name}.{HCLOUD_CLUSTER_CONFIG_FILE}.{name}": group["cloudInit"]
                          for name, group in groups.items()})
    return found


HCLOUD_CLUSTER_CONFIG_FILE = hetzner.CLUSTER_CONFIG_FILE


def cloud_init_problems(document: str) -> list[str]:
    """What cloud-init would reject: the header, YAML, a mapping, then cloud-init's own JSON schema (which needs
    the schema installed: skips or fails the calling test otherwise, see require_cloud_init_schema)."""
    if not document.startswith("#cloud-config\n"):
        return ["does not start with the #cloud-config header"]
    try:
        data = yaml.safe_load(document)
    except yaml.YAMLError as exc:
        return [f"is not YAML: {exc}"]
    if not isinstance(data, dict):
        return ["is not a YAML mapping"]
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in cloud_init_validator().iter_errors(data)]


def cloud_init_schema_missing() -> str | None:
    """Why cloud-init's schema cannot be used here, or None when it can."""
    if not cloud_init_schema.installed():
        return (f"cloud-init's schema {cloud_init_schema.VERSION} is not installed: `make test` extracts it from "
                f"Debian's package into {cloud_init_schema.DIRECTORY.relative_to(ROOT)}")
    return None


def require_tool(missing: str | None, what: str) -> None:
    """Skips the calling test saying why (`missing`: why a test tool cannot run here, None when it can); fails
    instead where CI requires the tools (REQUIRE_NODE_TOOLS)."""
    if missing and os.environ.get(REQUIRE_NODE_TOOLS):
        pytest.fail(f"{missing}; {REQUIRE_NODE_TOOLS} is set, so {what} must run here")
    if missing:
        pytest.skip(missing)


def require_cloud_init_schema() -> None:
    require_tool(cloud_init_schema_missing(), "the schema check")


@functools.lru_cache(maxsize=None)
def _cloud_init_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(cloud_init_schema.SCHEMA.read_text())
    # cloud-init validates with a Draft 4 validator (cloudinit/config/schema.py get_jsonschema_validator).
    return jsonschema.Draft4Validator(schema)


def cloud_init_validator() -> jsonschema.protocols.Validator:
    require_cloud_init_schema()
    return _cloud_init_validator()


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


def pipeline_problems(files: Mapping[Path, str]) -> dict[Path, list[str]]:
    """The pipeline files (file -> the check-jsonschema built-in schema it must match), each file's problems (none:
    it matches): one check-jsonschema per
    schema, its start-up being most of its time (issue 22), and its JSON report read back per file. Raises when the checker itself fails (a file it cannot open, a schema it does not know)."""
    by_schema: dict[str, list[Path]] = {}
    for path, schema in files.items():
        by_schema.setdefault(schema, []).append(path)
    problems: dict[Path, list[str]] = {path: [] for path in files}
    for schema, paths in by_schema.items():
        result = _check_jsonschema(schema, paths, "--output-format", "json")
        try:
            report = json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"check-jsonschema failed on {paths}:\n{result.stdout}{result.stderr}") from None
        by_name = {str(path): path for path in paths}
        for error in report.get("errors", []):  # absent when every file matched
            problems[by_name[error["filename"]]].append(f"{error['path']}: {error['message']}")
        for error in report.get("parse_errors", []):
            problems[by_name[error["filename"]]].append(f"not parsed: {error['message']}")
        # Its exit code says the same as the report (0: every file matched), or the report is not the whole story.
        assert (result.returncode == 0) == (report["status"] == "ok") == (not any(problems[p] for p in paths)), \
            result.stdout + result.stderr
    return problems


def _check_jsonschema(schema: str, paths: list[Path], *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, *options, *map(str, paths)],
                          capture_output=True, text=True, check=False)


# --- GitLab's parser -------------------------------------------------------------------------------
# The JSON schema only checks shapes, and check-jsonschema's copy follows GitLab's feature-flagged limits
# (ten files for cache:key:files where GitLab allows two). gitlab-ci-local builds the pipeline the way GitLab
# does (include, extends, needs, stages, rules) and refuses what GitLab refuses at pipeline creation. It is
# pinned in tools/ci/node/package-lock.json; `make test` installs it (npm ci, no install scripts).
NODE_TOOLS = ROOT / "tools" / "ci" / "node"
GITLAB_CI_LOCAL = NODE_TOOLS / "node_modules" / "gitlab-ci-local" / "src" / "index.js"
# .ci/run sets this: there the tools `make test` installs (this parser, cloud-init's schema) must run, never skip.
REQUIRE_NODE_TOOLS = cloud_init_schema.STRICT


def gitlab_ci_local_missing() -> str | None:
    """Why gitlab-ci-local cannot run on this machine, or None when it can."""
    if shutil.which("node") is None:
        return "Node.js is not installed (the GitLab CI parser gitlab-ci-local needs Node.js 20 and npm)"
    if not GITLAB_CI_LOCAL.is_file():
        return f"gitlab-ci-local is not installed: `make test` installs it into {NODE_TOOLS.relative_to(ROOT)}"
    return None


def require_gitlab_ci_local() -> None:
    require_tool(gitlab_ci_local_missing(), "the parser")


@dataclass
class ParsedPipeline:
    ok: bool
    output: str                    # the parser's messages: why it refused the file when not ok
    jobs: dict[str, dict[str, Any]]  # job -> stage, when (after rules), needs, as the parser resolved them


def parse_gitlab_pipeline(project: Path, variables: Mapping[str, str | None]) -> ParsedPipeline:
    """<project>/.gitlab-ci.yml (and its local includes) through gitlab-ci-local for one pipeline: the CI
    variables given (None unsets a predefined one) decide the rules; rules:changes count as matched. Nothing
    runs and nothing is fetched. <project> becomes a git repository with its files committed (like GitLab,
    gitlab-ci-local includes only committed files) and gets the parser's state: pass a copy."""
    git = ["git", "-C", str(project), "-c", "user.name=adplatform tests", "-c", "user.email=tests@example.invalid"]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "pipeline under test"]):
        subprocess.run([*git, *command], check=True, capture_output=True)
    # The schema is pipeline_problems' job (check-jsonschema); skipping gitlab-ci-local's copy saves seconds a run.
    args = ["--list-json", "--no-evaluate-rule-changes", "--no-json-schema-validation",
            "--home", str(project / ".gitlab-ci-local-home"), "--no-color"]
    for name, value in variables.items():
        args += ["--unset-variable", name] if value is None else ["--variable", f"{name}={value}"]
    if variables:  # overriding GitLab's predefined variables is the point here: no warning for it
        args += ["--ignore-predefined-vars", ",".join(variables)]
    # It takes only a relative --cwd: it runs in the project instead.
    code, stdout, stderr = _gitlab_ci_local().parse(project, args)
    if code != 0:
        return ParsedPipeline(False, stdout + stderr, {})
    return ParsedPipeline(True, stderr, {job["name"]: job for job in json.loads(stdout)})


PARSE_TIMEOUT_SECONDS = 300


class GitlabCiLocal:
    """One Node process running gitlab-ci-local's command line per request (tools/ci/node/parse-many.mjs): what
    `node src/index.js <args>` in the project exits with and writes, without a Node start and gitlab-ci-local's
    module loading per pipeline (about 0.8 s of CPU each, issue 22). Started at the first parse of a process."""

    DRIVER = NODE_TOOLS / "parse-many.mjs"

    def __init__(self) -> None:
        self.process = subprocess.Popen(["node", str(self.DRIVER), str(GITLAB_CI_LOCAL)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        atexit.register(self.close)

    def close(self) -> None:
        """End of input: the driver exits; waited for, so its CPU counts as this process's children's."""
        self.process.stdin.close()
        self.process.wait(timeout=60)

    def parse(self, project: Path, args: list[str]) -> tuple[int, str, str]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"cwd": str(project), "args": args}) + "\n")
        self.process.stdin.flush()
        # One answer line per request, read whole: nothing is left in the pipe's buffer between requests, so the pipe
        # itself says when the next answer is there (a parse that never answers fails its test, as the CLI's timeout did).
        if not select.select([self.process.stdout], [], [], PARSE_TIMEOUT_SECONDS)[0]:
            self.process.kill()
            raise AssertionError(f"gitlab-ci-local gave no answer within {PARSE_TIMEOUT_SECONDS} s for {project}")
        line = self.process.stdout.readline()
        if not line:  # the driver died: say why
            raise AssertionError(f"gitlab-ci-local's driver exited {self.process.wait()}: {self.process.stderr.read()}")
        answer = json.loads(line)
        return answer["code"], answer["stdout"], answer["stderr"]


@functools.lru_cache(maxsize=None)
def _gitlab_ci_local() -> GitlabCiLocal:
    return GitlabCiLocal()


def gitlab_variables(*scopes: dict[str, Any]) -> dict[str, str]:
    """The values of `variables:` blocks, later scopes winning (global first, then the job's)."""
    return {k: str(v["value"] if isinstance(v, dict) else v) for scope in scopes for k, v in scope.items()}


def expand_gitlab_variables(text: str, variables: Mapping[str, str]) -> str:
    """Substitutes the given variables (nested ones too); any other `$NAME` (GitLab's predefined) stays."""
    for _ in range(5):
        text = re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), text)
    return text


def gitlab_cache_key_problems(document: dict[str, Any]) -> list[str]:
    """Cache keys GitLab cannot use once the file's variables are expanded (GitLab's `.gitlab-ci.yml`
    reference, cache:key: the value can't contain `/` (or %2F), nor be only `.` characters). gitlab-ci-local
    does not check this. `document` is a resolved pipeline (includes and extends merged)."""
    problems = []
    for name, job in document.items():
        if not isinstance(job, dict) or name in ("variables", "workflow", "spec"):
            continue
        caches = job.get("cache", [])
        variables = gitlab_variables(document.get("variables", {}), job.get("variables", {}))
        for cache in [caches] if isinstance(caches, dict) else caches:
            key = cache.get("key")
            key = key.get("prefix") if isinstance(key, dict) else key
            if not isinstance(key, str):
                continue
            expanded = expand_gitlab_variables(key, variables)
            if "/" in expanded or "%2F" in expanded.upper() or re.fullmatch(r"(\.|%2E)+", expanded, re.I):
                problems.append(f"{name}: cache key {key!r} is {expanded!r}, which GitLab refuses")
    return problems
