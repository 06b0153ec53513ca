"""The push-to-deploy templates (templates/gitlab-ci) that teams copy into their service repositories.

Every template matches GitLab's CI schema; each language template, with its `include` and `extends` resolved
the way GitLab does, builds, tests, pushes and deploys as the platform expects (runner tags per environment,
the deployer ServiceAccount, the service container), with pinned images, no Docker daemon, no privileges and no
secret on a command line. The scripts pass shellcheck and behave: deploy.sh against a fake kubectl that records
its calls, build-image.sh against a fake buildah, install-kubectl.sh against a local file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.charts import K3S_VERSION
from components.host.profiles import CI_BUILD_APPARMOR_PROFILE
from components.platform import gitlab_runner
from config.catalog import DEPLOYER_SERVICE_ACCOUNT, ENVIRONMENTS, SERVICE_CONTAINER
from tests import validators
from tests.conftest import ROOT

TEMPLATES = ROOT / "templates" / "gitlab-ci"
SCRIPTS = TEMPLATES / "scripts"
# Where a service repository keeps the copied folder: the templates' `include: local` paths start here.
INCLUDE_ROOT = ".gitlab/ci"
LANGUAGES = ("rust.yml", "cpp-seastar.yml", "python.yml")
# Top-level keys of a .gitlab-ci.yml that are not jobs.
GLOBAL_KEYS = {"default", "include", "stages", "variables", "workflow", "image", "services", "cache",
               "before_script", "after_script", "spec"}
DEPLOY_JOBS = ("deploy-staging", "deploy-production", "rollback")
SENSITIVE = ("TOKEN", "PASSWORD", "SECRET", "PASSPHRASE", "ACCESS_KEY")
IMAGE = "registry.example.com/ads/bidding:0123456789abcdef0123456789abcdef01234567"
OLD_IMAGE = "registry.example.com/ads/bidding:fedcba9876543210fedcba9876543210fedcba98"


# --- resolving a template the way GitLab does ----------------------------------------------------

def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """GitLab's merge for `include` and `extends`: hashes merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _with_includes(path: Path) -> dict[str, Any]:
    document = _load(path)
    merged: dict[str, Any] = {}
    for item in document.get("include", []):
        local = item["local"].lstrip("/")
        assert local.startswith(f"{INCLUDE_ROOT}/"), f"{path.name} includes {local} outside {INCLUDE_ROOT}/"
        merged = _merge(merged, _with_includes(TEMPLATES / local.removeprefix(f"{INCLUDE_ROOT}/")))
    return _merge(merged, {k: v for k, v in document.items() if k != "include"})


def _resolve(name: str, document: dict[str, Any]) -> dict[str, Any]:
    job = document[name]
    parents = job.get("extends", [])
    merged: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = _merge(merged, _resolve(parent, document))
    return _merge(merged, {k: v for k, v in job.items() if k != "extends"})


def pipeline(language: str) -> dict[str, Any]:
    """The language template as GitLab sees it: includes merged, every job's `extends` resolved."""
    document = _with_includes(TEMPLATES / language)
    return {name: _resolve(name, document) if name not in GLOBAL_KEYS and isinstance(value, dict) else value
            for name, value in document.items()}


def jobs(resolved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: job for name, job in resolved.items()
            if name not in GLOBAL_KEYS and not name.startswith(".") and isinstance(job, dict)}


def expand(text: str, resolved: dict[str, Any], job: dict[str, Any]) -> str:
    """Substitutes the templates' own variables (job first, then global); GitLab's predefined ones stay."""
    variables = validators.gitlab_variables(resolved.get("variables", {}), job.get("variables", {}))
    return validators.expand_gitlab_variables(text, variables)


def script_lines(job: dict[str, Any]) -> list[str]:
    return [line for key in ("before_script", "script", "after_script") for line in job.get(key, [])]


@pytest.fixture(scope="module", params=LANGUAGES)
def language(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def resolved(language) -> dict[str, Any]:
    return pipeline(language)


# --- schema ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schema_problems(tmp_path_factory) -> dict[str, list[str]]:
    """Every template's problems and those of a broken copy of shared.yml (`broken.yml`), by file name: one check
    for all (check-jsonschema's start-up is most of its time)."""
    broken = _load(TEMPLATES / "shared.yml")
    broken["deploy-production"]["rules"][0]["when"] = "sometimes"
    path = tmp_path_factory.mktemp("templates") / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    files = [*TEMPLATES.glob("*.yml"), path]
    problems = validators.pipeline_problems({p: validators.PIPELINE_SCHEMAS[".gitlab-ci.yml"] for p in files})
    return {p.name: found for p, found in problems.items()}


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.yml")))
def test_every_template_matches_the_gitlab_ci_schema(template, schema_problems):
    assert schema_problems[template] == []


def test_the_schema_check_rejects_a_broken_template(schema_problems):
    [problem] = schema_problems["broken.yml"]
    assert problem.startswith("$['deploy-production'].rules[0]: ") and "'when': 'sometimes'" in problem, problem


def test_templates_are_not_taken_for_this_repositorys_own_pipelines():
    # test_pipelines.py pins the repository's pipeline files; the templates are not among them (their names
    # do not end in .gitlab-ci.yml) and are checked here instead.
    assert not [p for p in validators.pipeline_files() if TEMPLATES in p.parents]
    assert {p.name for p in TEMPLATES.glob("*.yml")} == {"shared.yml", *LANGUAGES}


# --- GitLab's parser (gitlab-ci-local) --------------------------------------------------------------

def _service_project(tmp_path: Path, language: str) -> Path:
    """A service repository set up as the README says: the folder at .gitlab/ci, and a .gitlab-ci.yml that
    includes the language template and names the service."""
    validators.require_gitlab_ci_local()
    project = tmp_path / "service"
    shutil.copytree(TEMPLATES, project / INCLUDE_ROOT)
    (project / ".gitlab-ci.yml").write_text(yaml.safe_dump(
        {"include": [{"local": f"{INCLUDE_ROOT}/{language}"}], "variables": {"SERVICE_NAME": "bidding"}}))
    return project


MERGE_REQUEST = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_BRANCH": None}
DEFAULT_BRANCH = {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main"}


@pytest.mark.parametrize("variables, expected", [
    (MERGE_REQUEST, {"build": "on_success", "test": "on_success", "container-image": "on_success",
                     "deploy-staging": "never", "deploy-production": "never", "rollback": "never",
                     "seastar-builder": "never"}),
    (DEFAULT_BRANCH, {"build": "on_success", "test": "on_success", "container-image": "on_success",
                      "deploy-staging": "on_success", "deploy-production": "manual", "rollback": "manual",
                      # its rules:changes count as matched: the builder image's files changed
                      "seastar-builder": "on_success"}),
], ids=["merge-request", "default-branch"])
def test_gitlab_builds_each_service_pipeline_with_includes_extends_and_rules(tmp_path, language, variables, expected):
    parsed = validators.parse_gitlab_pipeline(_service_project(tmp_path, language), variables)
    assert parsed.ok, parsed.output
    if language != "cpp-seastar.yml":
        expected = {k: v for k, v in expected.items() if k != "seastar-builder"}
    assert {name: job["when"] for name, job in parsed.jobs.items()} == expected


@pytest.mark.parametrize("template, old, new, message", [
    # GitLab takes one or two files in cache:key:files (the schema allows ten).
    ("python.yml", "files: [requirements.txt]", "files: [requirements.txt, requirements-dev.txt, pyproject.toml]",
     "cache:key:files"),
    ("shared.yml", "needs: [build]", "needs: [compile]", "compile"),
    ("python.yml", "extends: [.test, .python]", "extends: [.test, .pyhton]", ".pyhton"),
])
def test_gitlab_parser_refuses_a_broken_template(tmp_path, template, old, new, message):
    project = _service_project(tmp_path, "python.yml")
    path = project / INCLUDE_ROOT / template
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    parsed = validators.parse_gitlab_pipeline(project, DEFAULT_BRANCH)
    assert not parsed.ok and message in parsed.output


def test_template_cache_keys_are_keys_gitlab_accepts(resolved):
    assert validators.gitlab_cache_key_problems(resolved) == []


# --- sharing ---------------------------------------------------------------------------------------

def test_language_templates_include_the_shared_stages_and_do_not_copy_them():
    shared_jobs = {name for name in _load(TEMPLATES / "shared.yml") if name not in GLOBAL_KEYS}
    assert {"container-image", *DEPLOY_JOBS} <= shared_jobs
    assert not {"build", "test"} & shared_jobs, "build and test belong to the language templates"
    for language_file in LANGUAGES:
        document = _load(TEMPLATES / language_file)
        assert document["include"] == [{"local": f"{INCLUDE_ROOT}/shared.yml"}]
        assert not {"container-image", *DEPLOY_JOBS, "stages", "workflow"} & set(document), language_file
        assert document["build"]["extends"][0] == ".build" and document["test"]["extends"][0] == ".test"


def test_each_language_has_the_whole_flow_in_stage_order(resolved):
    stages = resolved["stages"]
    found = jobs(resolved)
    order = ["build", "test", "container-image", "deploy-staging", "deploy-production", "rollback"]
    assert set(order) <= set(found)
    positions = [stages.index(found[name]["stage"]) for name in order]
    assert positions == sorted(positions)
    image = found["container-image"]
    assert {"job": "build", "artifacts": True} in image["needs"], "the image packages the build job's output"
    assert any(need["job"] == "test" for need in image["needs"]), "no image before the tests pass"


# --- deploys ---------------------------------------------------------------------------------------

def _default_branch_only(job: dict[str, Any]) -> bool:
    return all("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in rule.get("if", "") for rule in job["rules"])


def test_staging_deploys_automatically_and_only_from_the_default_branch(resolved):
    staging = jobs(resolved)["deploy-staging"]
    assert _default_branch_only(staging)
    assert all(rule.get("when", "on_success") == "on_success" for rule in staging["rules"])
    assert staging["environment"]["name"] == "staging" and staging["resource_group"] == "staging"


def test_production_and_rollback_are_manual_protected_environment_and_serialized(resolved):
    found = jobs(resolved)
    production, rollback = found["deploy-production"], found["rollback"]
    for job in (production, rollback):
        assert _default_branch_only(job)
        assert [rule.get("when") for rule in job["rules"]] == ["manual"]
        assert job["environment"]["name"] == "production"
        assert job["resource_group"] == production["resource_group"] == "production"
        assert job["manual_confirmation"]
    assert production["rules"][0]["allow_failure"] is False, "the pipeline waits for, and fails with, production"
    assert production["needs"] == [{"job": "deploy-staging", "artifacts": False}]
    assert rollback["needs"] == [{"job": "deploy-production", "artifacts": True}], "it reads the deploy record"


def test_deploy_jobs_run_on_their_environments_runner_as_the_deployer(resolved):
    found = jobs(resolved)
    tags = {}
    for name in DEPLOY_JOBS:
        job = found[name]
        assert job["variables"]["KUBERNETES_SERVICE_ACCOUNT_OVERWRITE"] == DEPLOYER_SERVICE_ACCOUNT
        assert job["variables"]["SERVICE_CONTAINER"] == SERVICE_CONTAINER
        assert job["tags"] == [job["environment"]["name"]]
        assert job["interruptible"] is False
        assert job["artifacts"]["reports"]["dotenv"] == "deploy.env"
        tags[name] = job["tags"][0]
    assert set(tags.values()) == set(ENVIRONMENTS)
    for name in ("build", "test", "container-image"):
        assert "KUBERNETES_SERVICE_ACCOUNT_OVERWRITE" not in found[name].get("variables", {}), name
        assert "tags" not in found[name], f"{name} runs on any runner, never pinned to production"


def test_the_readme_says_how_to_create_each_environments_runner():
    """A glrt- token carries the runner's tags from GitLab: the README is where they are set, one row per runner.
    Deploy runners are protected and take only their tag; the build runner takes the untagged jobs."""
    text = (TEMPLATES / "README.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^  \| `(\w+)` \(.*$", text, re.M)}
    assert set(rows) == {*ENVIRONMENTS, "build"}
    for environment in ENVIRONMENTS:
        row = rows[environment]
        assert f"| `{environment}` (deploy) | `{environment}` | no:" in row, "only its environment's tagged jobs"
        assert row.endswith("| yes (protected branches only) |"), "no merge request code reaches the deployer"
    assert "| no: only `deploy-production` and `rollback`" in rows["production"], "no merge request code in production"
    assert "| none | yes: build, test and image jobs" in rows["build"] and rows["build"].endswith("| no |")


def test_deploys_roll_out_this_commits_image_and_rollback_the_recorded_one(resolved):
    found = jobs(resolved)
    variables = validators.gitlab_variables(resolved["variables"])
    assert variables["SERVICE_IMAGE"] == "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA"
    for name in ("deploy-staging", "deploy-production"):
        assert found[name]["script"] == ['bash "$CI_TEMPLATES_DIR/scripts/deploy.sh" "$SERVICE_IMAGE"']
    rollback = "\n".join(found["rollback"]["script"])
    assert "scripts/deploy.sh" in rollback and "$PREVIOUS_IMAGE" in rollback.replace("{", "").replace(":?", " ")
    assert "EXPECTED_CURRENT_IMAGE=\"${DEPLOYED_IMAGE" in rollback
    assert found["container-image"]["script"][0].startswith(
        'bash "$CI_TEMPLATES_DIR/scripts/build-image.sh" "$SERVICE_IMAGE"')
    assert variables["CI_TEMPLATES_DIR"] == INCLUDE_ROOT
    assert variables["K8S_NAMESPACE"] == "ads"
    assert variables["SERVICE_NAME"] == "", "each service sets its own name"


def test_every_script_line_is_a_string(resolved):
    # A plain YAML line containing ": " becomes a mapping, which GitLab rejects or runs wrongly.
    for name, job in jobs(resolved).items():
        assert script_lines(job) and all(isinstance(line, str) for line in script_lines(job)), name


def test_nothing_deploys_from_a_merge_request(resolved):
    workflow = resolved["workflow"]["rules"]
    assert workflow[0]["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    for name in DEPLOY_JOBS:
        assert not any("merge_request" in rule.get("if", "") for rule in jobs(resolved)[name]["rules"])


# --- images ----------------------------------------------------------------------------------------

def _pinned(reference: str) -> bool:
    if "@sha256:" in reference:
        return bool(re.search(r"@sha256:[a-f0-9]{64}$", reference))
    last = reference.rsplit("/", 1)[-1]
    return ":" in last and "$" not in last and last.rsplit(":", 1)[1] not in ("latest", "")


def test_every_job_image_is_pinned(resolved):
    for name, job in jobs(resolved).items():
        image = job["image"]["name"] if isinstance(job["image"], dict) else job["image"]
        reference = expand(image, resolved, job)
        assert _pinned(reference), f"{name}: {reference}"
        assert "dind" not in reference and "docker:" not in reference, name
        assert "services" not in job, f"{name}: no service containers (no Docker daemon)"


def test_containerfiles_use_pinned_fully_qualified_bases():
    files = [*(TEMPLATES / "containerfiles").glob("*.Containerfile"), *(TEMPLATES / "images").glob("*.Containerfile")]
    assert len(files) == 4
    for path in files:
        bases = re.findall(r"^FROM\s+(\S+)", path.read_text(), re.M)
        assert bases, path.name
        for base in bases:
            # Buildah's Fedora image enforces short-name resolution: a bare "debian" would fail without a TTY.
            assert "." in base.split("/")[0] and _pinned(base), f"{path.name}: {base}"


def test_the_images_ship_what_the_build_jobs_produce():
    for language_file, containerfile in (("rust.yml", "rust"), ("cpp-seastar.yml", "cpp-seastar"),
                                         ("python.yml", "python")):
        build = jobs(pipeline(language_file))["build"]
        text = (TEMPLATES / "containerfiles" / f"{containerfile}.Containerfile").read_text()
        assert build["artifacts"]["paths"][0] == "dist/"
        copied = re.findall(r"^COPY\s+(\S+)", text, re.M)
        assert copied and all(source.startswith("dist/") for source in copied), containerfile
        assert re.search(r"^USER\s+\d+:\d+$", text, re.M), "a numeric non-root user for restricted namespaces"
        assert not re.search(r"^RUN\s", text, re.M), "files on a base: nothing to run at image build time"
        if language_file != "python.yml":
            assert any("bundle-libs.sh" in line for line in build["script"])
            assert "ENTRYPOINT [\"/opt/service/bin/service\"]" in text
    python = jobs(pipeline("python.yml"))
    base = re.search(r"^FROM\s+(\S+)", (TEMPLATES / "containerfiles/python.Containerfile").read_text(), re.M)
    assert expand(python["build"]["image"], pipeline("python.yml"), python["build"]) == base.group(1), \
        "the virtual environment links the build image's interpreter: the runtime image must be the same"


def test_kubectl_is_the_clusters_minor_pinned_by_checksum():
    variables = _load(TEMPLATES / "shared.yml")[".kubectl"]["variables"]
    cluster_minor = K3S_VERSION.lstrip("v").split(".")[:2]
    assert variables["KUBECTL_VERSION"].lstrip("v").split(".")[:2] == cluster_minor
    assert re.fullmatch(r"[a-f0-9]{64}", variables["KUBECTL_SHA256_AMD64"])
    assert re.fullmatch(r"[a-f0-9]{64}", variables["KUBECTL_SHA256_ARM64"])


def test_seastar_builder_is_built_on_the_default_branch_and_awaited_by_the_build(tmp_path):
    found = jobs(pipeline("cpp-seastar.yml"))
    builder = found["seastar-builder"]
    assert builder["stage"] == ".pre" and builder["image"].startswith("quay.io/buildah/stable:v")
    assert {"if": '$SEASTAR_BUILDER_REBUILD == "true"'} in builder["rules"]
    on_change = [rule for rule in builder["rules"] if "changes" in rule]
    assert on_change and _default_branch_only({"rules": on_change})
    assert f"{INCLUDE_ROOT}/images/seastar-builder.Containerfile" in on_change[0]["changes"]
    assert found["build"]["needs"] == [{"job": "seastar-builder", "optional": True}]
    text = (TEMPLATES / "images" / "seastar-builder.Containerfile").read_text()
    assert re.search(r"^ARG SEASTAR_COMMIT=[a-f0-9]{40}$", text, re.M), "a moved tag must not change the builder"


# --- no daemon, no privileges, no secrets ----------------------------------------------------------

def _all_text() -> dict[str, str]:
    return {p.relative_to(TEMPLATES).as_posix(): p.read_text() for p in TEMPLATES.rglob("*") if p.is_file()}


def test_image_builds_name_the_apparmor_profile_the_platform_loads():
    # Host tuning loads it on every node, the runner puts it on every build container; the README tells teams.
    readme = (TEMPLATES / "README.md").read_text()
    assert f"`{CI_BUILD_APPARMOR_PROFILE}`" in readme
    assert gitlab_runner.BUILD_APPARMOR_PROFILE == {"type": "Localhost", "localhost_profile": CI_BUILD_APPARMOR_PROFILE}


def test_no_docker_daemon_and_no_privileges_anywhere():
    for name, text in _all_text().items():
        lowered = text.lower()
        assert "privileged: true" not in lowered and "--privileged" not in lowered, name
        assert "dind" not in lowered and "docker_host" not in lowered and "/var/run/docker.sock" not in lowered, name
        assert "kaniko" not in lowered, name
    build = (SCRIPTS / "build-image.sh").read_text()
    assert "buildah=(buildah --storage-driver vfs)" in build and "--isolation chroot" in build


def test_no_secret_is_echoed_or_put_on_a_command_line():
    lines = [line for language_file in LANGUAGES for job in pipeline(language_file).values()
             if isinstance(job, dict) for line in script_lines(job)]
    lines += [line for path in SCRIPTS.glob("*.sh") for line in path.read_text().splitlines()]
    assert lines
    for line in lines:
        assert "set -x" not in line and "printenv" not in line and not re.search(r"\benv\s*$", line), line
        for echoed in re.findall(r"(?:echo|printf)[^|>]*\$\{?(\w+)", line):
            assert not any(word in echoed.upper() for word in SENSITIVE), line
        assert not re.search(r"(?:-p|--password|--creds|-u)[ =]\S*\$\{?\w*(?:TOKEN|PASSWORD|SECRET)", line), line
        if re.search(r"\$\{?(?:CI_JOB_TOKEN|CI_REGISTRY_PASSWORD)\b", line):
            assert "--password-stdin" in line and "<<<" in line, f"a token only ever goes to stdin: {line}"
    build = (SCRIPTS / "build-image.sh").read_text()
    assert '--password-stdin "$CI_REGISTRY" <<<"$CI_JOB_TOKEN"' in build


def test_scripts_pass_shellcheck():
    scripts = {path.stem: path.read_text() for path in SCRIPTS.glob("*.sh")}
    assert set(scripts) == {"deploy", "build-image", "install-kubectl", "bundle-libs"}
    assert validators.shellcheck(scripts) == ""


# --- deploy.sh against a fake kubectl --------------------------------------------------------------

FAKE_KUBECTL = r"""#!/usr/bin/env bash
# Records each call; answers from files: image (the container's image), annotation, bad (an image that fails).
state=$FAKE_STATE
printf '%s\n' "$*" >>"$state/calls"
[[ $1 == --namespace ]] && shift 2
case $1 in
    get)
        if [[ $* == *annotations* ]]; then cat "$state/annotation" 2>/dev/null || true; else cat "$state/image"; fi ;;
    set) printf '%s' "${4#*=}" >"$state/image" ;;
    annotate) printf '%s' "${4#*=}" >"$state/annotation" ;;
    rollout) [[ ! -f $state/bad || "$(cat "$state/image")" != "$(cat "$state/bad")" ]] ;;
    *) exit 3 ;;
esac
"""


class Cluster:
    """A directory standing in for the Deployment, and a kubectl on PATH that reads and writes it."""

    def __init__(self, root: Path, image: str, annotation: str | None = None):
        self.root = root
        self.state = root / "state"
        self.state.mkdir()
        bin_dir = root / "bin"
        bin_dir.mkdir()
        (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
        (bin_dir / "kubectl").chmod(0o755)
        (self.state / "image").write_text(image)
        if annotation:
            (self.state / "annotation").write_text(annotation)
        self.path = f"{bin_dir}:{os.environ['PATH']}"

    def deploy(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        environment = {"PATH": self.path, "FAKE_STATE": str(self.state), "SERVICE_NAME": "bidding", **env}
        return subprocess.run(["bash", str(SCRIPTS / "deploy.sh"), *args], cwd=self.root, env=environment,
                              capture_output=True, text=True, check=False)

    @property
    def calls(self) -> list[str]:
        path = self.state / "calls"
        return path.read_text().splitlines() if path.exists() else []

    @property
    def image(self) -> str:
        return (self.state / "image").read_text()

    def record(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in (self.root / "deploy.env").read_text().splitlines())


def test_deploy_sets_the_image_waits_and_records_the_previous_one(tmp_path):
    cluster = Cluster(tmp_path, OLD_IMAGE)
    result = cluster.deploy(IMAGE)
    assert result.returncode == 0, result.stderr
    assert cluster.image == IMAGE
    assert f"--namespace ads set image deployment/bidding {SERVICE_CONTAINER}={IMAGE}" in cluster.calls
    assert "--namespace ads rollout status deployment/bidding --timeout 5m" in cluster.calls
    assert all(call.startswith("--namespace ads ") for call in cluster.calls)
    assert cluster.record() == {"DEPLOYED_IMAGE": IMAGE, "PREVIOUS_IMAGE": OLD_IMAGE}
    assert (cluster.state / "annotation").read_text() == OLD_IMAGE


def test_deploy_again_is_a_no_op_that_keeps_the_previous_image(tmp_path):
    cluster = Cluster(tmp_path, OLD_IMAGE)
    assert cluster.deploy(IMAGE).returncode == 0
    calls_before = len(cluster.calls)
    again = cluster.deploy(IMAGE)
    assert again.returncode == 0 and "nothing to change" in again.stdout
    new_calls = cluster.calls[calls_before:]
    assert not [call for call in new_calls if " set image " in call or " annotate " in call]
    assert any(" rollout status " in call for call in new_calls)
    assert cluster.record() == {"DEPLOYED_IMAGE": IMAGE, "PREVIOUS_IMAGE": OLD_IMAGE}


def test_deploy_records_no_previous_image_it_does_not_know(tmp_path):
    cluster = Cluster(tmp_path, IMAGE)  # already running, never deployed by this script: no annotation
    assert cluster.deploy(IMAGE).returncode == 0
    assert cluster.record() == {"DEPLOYED_IMAGE": IMAGE}


def test_a_failed_rollout_puts_the_previous_image_back(tmp_path):
    cluster = Cluster(tmp_path, OLD_IMAGE)
    (cluster.state / "bad").write_text(IMAGE)
    result = cluster.deploy(IMAGE, K8S_NAMESPACE="ads-experiments", ROLLOUT_TIMEOUT="90s")
    assert result.returncode == 1 and "putting" in result.stdout
    sets = [call for call in cluster.calls if " set image " in call]
    assert sets == [f"--namespace ads-experiments set image deployment/bidding {SERVICE_CONTAINER}={IMAGE}",
                    f"--namespace ads-experiments set image deployment/bidding {SERVICE_CONTAINER}={OLD_IMAGE}"]
    assert cluster.image == OLD_IMAGE
    assert "--namespace ads-experiments rollout status deployment/bidding --timeout 90s" in cluster.calls
    assert not (cluster.state / "annotation").exists() and not (tmp_path / "deploy.env").exists()


def test_rollback_restores_the_recorded_image_unless_something_newer_runs(tmp_path):
    cluster = Cluster(tmp_path, IMAGE, annotation=OLD_IMAGE)
    newer = "registry.example.com/ads/bidding:1111111111111111111111111111111111111111"
    refused = cluster.deploy(OLD_IMAGE, EXPECTED_CURRENT_IMAGE=newer)
    assert refused.returncode == 2 and "refusing" in refused.stderr
    assert not [call for call in cluster.calls if " set image " in call] and cluster.image == IMAGE
    rolled_back = cluster.deploy(OLD_IMAGE, EXPECTED_CURRENT_IMAGE=IMAGE)
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert cluster.image == OLD_IMAGE and cluster.record() == {"DEPLOYED_IMAGE": OLD_IMAGE, "PREVIOUS_IMAGE": IMAGE}
    # Running the same rollback again changes nothing and succeeds.
    assert cluster.deploy(OLD_IMAGE, EXPECTED_CURRENT_IMAGE=IMAGE).returncode == 0 and cluster.image == OLD_IMAGE


@pytest.mark.parametrize("args, env, message", [
    ((), {}, "usage"),
    ((IMAGE, "extra"), {}, "usage"),
    (("",), {}, "no image"),
    ((IMAGE,), {"SERVICE_NAME": ""}, "SERVICE_NAME is not set"),
    ((IMAGE,), {"SERVICE_NAME": "Bidding_Service"}, "SERVICE_NAME"),
    ((IMAGE,), {"K8S_NAMESPACE": "ads;rm -rf /"}, "K8S_NAMESPACE"),
    ((IMAGE,), {"ROLLOUT_TIMEOUT": "forever"}, "ROLLOUT_TIMEOUT"),
    (("registry.example.com/ads/bidding",), {}, "no tag"),
    (("registry.example.com/ads/bidding:latest",), {}, "latest"),
    (("registry.example.com:5000/ads/bidding",), {}, "no tag"),
    (("registry.example.com/ads/bidding@sha256:abc",), {}, "digest"),
])
def test_deploy_checks_its_arguments_before_calling_kubectl(tmp_path, args, env, message):
    cluster = Cluster(tmp_path, OLD_IMAGE)
    result = cluster.deploy(*args, **env)
    assert result.returncode == 2 and message in result.stderr
    assert cluster.calls == [], "nothing reaches the cluster when the input is wrong"


def test_deploy_refuses_a_deployment_without_the_service_container(tmp_path):
    cluster = Cluster(tmp_path, "")
    result = cluster.deploy(IMAGE)
    assert result.returncode == 2 and f"no container named '{SERVICE_CONTAINER}'" in result.stderr
    assert not [call for call in cluster.calls if " set image " in call]


# What the API server checks for each kubectl command deploy.sh runs (kubectl 1.36: get -> GET; set image and
# annotate -> GET then PATCH; rollout status -> GET, then LIST + WATCH of the Deployment by name, reading its status).
KUBECTL_VERBS = {("get",): {"get"}, ("set", "image"): {"get", "patch"}, ("annotate",): {"get", "patch"},
                 ("rollout", "status"): {"get", "list", "watch"}}


def test_deploys_and_rollbacks_need_only_what_the_deployer_is_granted(tmp_path):
    """Every kubectl call of every path through deploy.sh (deploy, no-op re-run, failed rollout, rollback), against
    the deployer Role the platform binds in the team namespaces: nothing missing, nothing granted in vain."""
    calls = []
    for index, (current, bad, args, env) in enumerate([
            (OLD_IMAGE, None, (IMAGE,), {}), (IMAGE, None, (IMAGE,), {}), (OLD_IMAGE, IMAGE, (IMAGE,), {}),
            (IMAGE, None, (OLD_IMAGE,), {"EXPECTED_CURRENT_IMAGE": IMAGE})]):
        root = tmp_path / str(index)
        root.mkdir()
        cluster = Cluster(root, current, annotation=OLD_IMAGE)
        if bad:
            (cluster.state / "bad").write_text(bad)
        cluster.deploy(*args, **env)
        calls += cluster.calls
    needed = set()
    for call in calls:
        words = call.split()
        assert words[:2] == ["--namespace", "ads"], call
        command = next((c for c in KUBECTL_VERBS if tuple(words[2:2 + len(c)]) == c), None)
        assert command, f"deploy.sh runs a kubectl command the deployer's rights were not checked for: {call}"
        targets = [word for word in words[2 + len(command):] if not word.startswith("-")]
        assert targets and targets[0].startswith("deployment/"), call
        needed |= {("apps", "deployments", verb) for verb in KUBECTL_VERBS[command]}
    assert {command for call in calls for command in KUBECTL_VERBS if " ".join(command) in call} == set(KUBECTL_VERBS)
    granted = {(group, resource, verb) for rule in gitlab_runner.DEPLOYER_RULES for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert needed == granted


# --- build-image.sh against a fake buildah ---------------------------------------------------------

FAKE_BUILDAH = r"""#!/usr/bin/env bash
# Records its arguments, and separately whatever it reads on stdin (the registry password for login).
printf '%s\n' "$*" >>"$FAKE_STATE/calls"
if [[ $* == *--password-stdin* ]]; then cat >>"$FAKE_STATE/stdin"; fi
if [[ $* == *" push "* ]]; then
    for ((i = 1; i <= $#; i++)); do
        if [[ ${!i} == --digestfile ]]; then j=$((i + 1)); printf 'sha256:%064d' 0 >"${!j}"; fi
    done
fi
exit 0
"""


def _build_image(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "buildah").write_text(FAKE_BUILDAH)
    (bin_dir / "buildah").chmod(0o755)
    (tmp_path / "Containerfile").write_text("FROM docker.io/library/debian:trixie-20260803-slim\n")
    environment = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_STATE": str(tmp_path),
                   "CI_REGISTRY": "registry.example.com", "CI_REGISTRY_USER": "gitlab-ci-token",
                   "CI_JOB_TOKEN": "glcbt-not-a-real-token", "CI_COMMIT_SHA": "0123abc", **env}
    return subprocess.run(["bash", str(SCRIPTS / "build-image.sh"), *args], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, check=False)


def test_build_image_logs_in_on_stdin_builds_daemonless_and_pushes(tmp_path):
    result = _build_image(tmp_path, IMAGE, IMAGE_BUILD_ARGS="A=1 B=two")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text()
    assert "glcbt-not-a-real-token" not in calls + result.stdout + result.stderr
    assert (tmp_path / "stdin").read_text().strip() == "glcbt-not-a-real-token"
    login, build, push, logout = calls.splitlines()
    assert login == "--storage-driver vfs login --username gitlab-ci-token --password-stdin registry.example.com"
    assert build.startswith("--storage-driver vfs build --isolation chroot --file Containerfile --tag " + IMAGE)
    assert "--build-arg A=1 --build-arg B=two" in build and build.endswith(" .")
    assert push == f"--storage-driver vfs push --retry 3 --digestfile image.digest {IMAGE}"
    assert logout == "--storage-driver vfs logout registry.example.com"


@pytest.mark.parametrize("args, env, message", [
    (("registry.example.com/ads/bidding:latest",), {}, "latest"),
    (("registry.example.com/ads/bidding",), {}, "with a tag"),
    ((IMAGE, "Missing.Containerfile"), {}, "no Missing.Containerfile"),
    ((IMAGE,), {"CI_JOB_TOKEN": ""}, "CI_JOB_TOKEN is not set"),
    ((IMAGE,), {"IMAGE_BUILD_ARGS": "novalue"}, "KEY=VALUE"),
])
def test_build_image_checks_its_inputs(tmp_path, args, env, message):
    result = _build_image(tmp_path, *args, **env)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "calls").exists() or " build " not in (tmp_path / "calls").read_text()


# --- install-kubectl.sh and bundle-libs.sh ---------------------------------------------------------

def _install_kubectl(tmp_path: Path, url: str, checksum: str) -> subprocess.CompletedProcess:
    environment = {"PATH": os.environ["PATH"], "KUBECTL_VERSION": "v1.36.4", "KUBECTL_URL": url,
                   "KUBECTL_SHA256_AMD64": checksum, "KUBECTL_SHA256_ARM64": checksum,
                   "KUBECTL_DIR": str(tmp_path / ".kubectl")}
    return subprocess.run(["bash", str(SCRIPTS / "install-kubectl.sh")], env=environment, capture_output=True,
                          text=True, check=False)


def test_install_kubectl_keeps_only_a_binary_with_the_pinned_checksum(tmp_path):
    release = tmp_path / "kubectl-release"
    release.write_bytes(b"#!/bin/sh\necho fake kubectl\n")
    checksum = hashlib.sha256(release.read_bytes()).hexdigest()
    wrong = _install_kubectl(tmp_path, release.as_uri(), "0" * 64)
    assert wrong.returncode == 2 and "does not match" in wrong.stderr
    assert not list((tmp_path / ".kubectl").iterdir()), "a download that fails the check is removed"
    assert _install_kubectl(tmp_path, release.as_uri(), checksum).returncode == 0
    installed = tmp_path / ".kubectl" / "kubectl"
    assert installed.read_bytes() == release.read_bytes() and os.access(installed, os.X_OK)
    # Cached: a second job reuses it without downloading (the URL is gone).
    release.unlink()
    cached = _install_kubectl(tmp_path, release.as_uri(), checksum)
    assert cached.returncode == 0 and "already" in cached.stdout


GLIBC = re.compile(r"(libc|libm|libmvec|libdl|libpthread|librt|libresolv|libutil|libanl)\.so")


def _linked(binary: str) -> set[str]:
    listing = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in listing.splitlines() if "=> /" in line}


def test_bundle_libs_copies_every_linked_library_but_the_c_librarys(tmp_path):
    # bash links libtinfo on Debian and Ubuntu, ls libselinux: a dynamic binary with more than glibc.
    binary = next(path for path in (shutil.which("bash"), shutil.which("ls"))
                  if path and {name for name in _linked(path) if not GLIBC.match(name)})
    linked = _linked(binary)
    glibc = {name for name in linked if GLIBC.match(name)}
    result = subprocess.run(["bash", str(SCRIPTS / "bundle-libs.sh"), binary, str(tmp_path / "lib")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (tmp_path / "lib").iterdir()} == linked - glibc
    assert "libc.so.6" in glibc
    static = subprocess.run(["bash", str(SCRIPTS / "bundle-libs.sh"), str(validators.BIN / "shellcheck"),
                             str(tmp_path / "static")], capture_output=True, text=True, check=False)
    assert static.returncode == 0 and not list((tmp_path / "static").iterdir())
