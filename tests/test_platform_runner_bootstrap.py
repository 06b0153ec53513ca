"""The runner bootstrap: production's runner is created in its own GitLab by a Job (no token copied by hand),
with least-privilege RBAC, in order (GitLab -> Job -> runner), writing the Secret the runner chart reads,
idempotently and without the token reaching a command line or a log; the manual token still overrides it."""

from __future__ import annotations

import base64
import re
import subprocess
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from components import charts
from components.platform import gitlab, gitlab_runner, runner_bootstrap, toolbox_job
from config import load
from config.catalog import CI_NAMESPACE
from config.rules import RUNNER_TOKEN
from tests import test_ci_templates as ci_templates, validators, variants
from tests import toolbox_fakes
from tests.toolbox_fakes import run_toolbox_script
from tests.conftest import SECRET_KEYS, UP_TO_PLATFORM, base_raw
from tests.stores import RELEASE, SECRET, config_problems, stack_config, string_data
from tools import mockrun
from tools.mockrun import Run

JOB = "kubernetes:batch/v1:Job"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RUNNER_NS = gitlab_runner.NAMESPACE


def job(run: Run):
    return run.named(runner_bootstrap.NAME, JOB)


def bootstrap_objects(run: Run) -> list:
    return [r for r in run.resources if r.name.startswith(runner_bootstrap.NAME)]


# --- on by default, created by the program ---------------------------------------------------------------
def test_production_runs_a_runner_created_by_the_program(production):
    runner = stack_config(production).platform.gitlab.runner
    assert runner.enabled is True and runner.url is None
    assert production.named("gitlab-runner", RELEASE)
    spec = job(production).inputs["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["image"] == charts.GITLAB_KUBECTL_IMAGE
    assert container["command"] == ["/bin/bash", f"{runner_bootstrap.MOUNT}/{runner_bootstrap.SHELL_SCRIPT}"]
    assert spec["serviceAccountName"] == runner_bootstrap.NAME and spec["restartPolicy"] == "Never"
    assert job(production).inputs["metadata"]["namespace"] == RUNNER_NS
    assert "name" not in job(production).inputs["metadata"]  # auto-named: a changed script replaces (re-runs) it


def test_the_scripts_reach_the_job_through_a_config_map(production):
    data = production.named(runner_bootstrap.NAME, CONFIG_MAP).inputs["data"]
    assert data[runner_bootstrap.SHELL_SCRIPT] == runner_bootstrap.shell_script()  # toolbox.sh + its own part
    ruby = data[runner_bootstrap.RUBY_SCRIPT]
    assert "description = 'adplatform production (production)'" in ruby
    assert "tag_list: ['production'], run_untagged: false, access_level: 'ref_protected'" in ruby
    assert "${" not in ruby  # every parameter rendered
    env = {e["name"]: e["value"] for e in job(production).inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RUNNERS"] == f"{runner_bootstrap.MOUNT}/{runner_bootstrap.RUBY_SCRIPT}={gitlab_runner.TOKEN_SECRET}"
    assert env["RUNNER_NAMESPACE"] == RUNNER_NS
    assert env["GITLAB_NAMESPACE"] == gitlab.NAMESPACE
    assert env["TOOLBOX_SELECTOR"] == f"app=toolbox,release={gitlab.RELEASE}"


def test_the_runner_settings_reach_the_ruby_script():
    raw = base_raw(platform={"gitlab": {"runner": {"enabled": True, "runUntagged": True, "protected": False}}})
    settings = load("test", raw, SECRET_KEYS).config.platform
    ruby = runner_bootstrap.ruby_script(SimpleNamespace(stack="staging-x", environment="staging", settings=settings))
    assert "tag_list: ['staging'], run_untagged: true, access_level: 'not_protected'" in ruby  # as configured
    assert "description = 'adplatform staging-x (staging)'" in ruby


# --- group runners: only the configured group's projects reach the deployer -----------------------------------
def test_the_runners_are_created_as_runners_of_the_configured_group(production_with_staging):
    for script in ("create-runner.rb", "create-runner-staging.rb"):
        ruby = production_with_staging.named(runner_bootstrap.NAME, CONFIG_MAP).inputs["data"][script]
        assert "group_path = 'ad-services'" in ruby  # the default group
        assert "runner_type: 'group_type', scope: group" in ruby and "instance_type" not in ruby
        assert "group.runners.find_by(description: description)" in ruby  # found again there: idempotent
    raw = base_raw(platform={"gitlab": {"runner": {"enabled": True, "group": "teams/deploy"}}})
    settings = load("test", raw, SECRET_KEYS).config.platform
    ruby = runner_bootstrap.ruby_script(SimpleNamespace(stack="p", environment="production", settings=settings))
    assert "group_path = 'teams/deploy'" in ruby


def test_the_group_is_created_when_missing_and_old_instance_runners_are_deleted(production):
    ruby = production.named(runner_bootstrap.NAME, CONFIG_MAP).inputs["data"][runner_bootstrap.RUBY_SCRIPT]
    # Each missing segment, top down, by the administrator (who becomes its Owner and may create group runners).
    assert "Group.find_by_full_path(full_path)" in ruby and "Groups::CreateService.new(admin, params)" in ruby
    # An existing stack's instance runner (same description) is deleted: no manual step, no project outside the
    # group keeps it.
    assert "Ci::Runner.where(description: description)" in ruby
    assert "next if other.group_type? && other.groups.include?(group)" in ruby and "other.destroy!" in ruby


def test_both_deploy_runners_are_protected_and_a_build_runner_takes_the_untagged_jobs(production_with_staging):
    """No unprotected ref reaches a runner whose jobs may become the `deployer`: each deploy runner is protected
    and takes only its environment's tag; merge requests build on the untagged, unprotected build runner."""
    runners = created_runners(production_with_staging)
    assert runners == {
        "production": {"tags": {"production"}, "run_untagged": False, "protected": True},
        "staging": {"tags": {"staging"}, "run_untagged": False, "protected": True},
        "staging-build": {"tags": set(), "run_untagged": True, "protected": False},
    }
    data = production_with_staging.named(runner_bootstrap.NAME, CONFIG_MAP).inputs["data"]
    assert "description = 'adplatform production (staging-build)'" in data["create-runner-staging-build.rb"]


def test_the_manager_restarts_when_the_runners_scope_changes(production):
    from tests.test_platform_gitlab import runner_values
    annotations = runner_values(production)["podAnnotations"]
    assert annotations == {gitlab_runner.RUNNER_SCOPE_ANNOTATION: "group ad-services"}


@pytest.mark.parametrize("group", ["bad group", "a/../b", "-lead", "a//b", "x'y"])
def test_a_bad_runner_group_is_refused_naming_the_key(group):
    problems = config_problems(base_raw(platform={"gitlab": {"runner": {"enabled": True, "group": group}}}))
    assert any("adplatform:platform.gitlab.runner.group" in p and "must be a GitLab group path" in p
               and repr(group) in p for p in problems), problems


@pytest.mark.parametrize("value", ["it's", "a#{b}", "x\ny", "\\"])
def test_ruby_literals_refuse_what_could_escape_the_quotes(value):
    with pytest.raises(ValueError, match="has characters outside"):
        runner_bootstrap.ruby_literal(value)


# --- least privilege ------------------------------------------------------------------------------------------
def test_the_job_may_exec_into_gitlab_and_patch_one_secret_only(production):
    roles = {r.inputs["metadata"]["namespace"]: r.inputs for r in production.of_type(ROLE)
             if r.inputs["metadata"]["name"] == runner_bootstrap.NAME}
    assert set(roles) == {gitlab.NAMESPACE, RUNNER_NS}
    migrations = job(production).inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    [migrations_job] = [e["value"] for e in migrations if e["name"] == "MIGRATIONS_JOB"]
    assert roles[gitlab.NAMESPACE]["rules"] == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "resourceNames": [migrations_job], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]
    assert roles[RUNNER_NS]["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [gitlab_runner.TOKEN_SECRET],
         "verbs": ["get", "patch"]}]
    bindings = [b.inputs for b in production.of_type(ROLE_BINDING) if b.inputs["metadata"]["name"] == runner_bootstrap.NAME]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted([gitlab.NAMESPACE, RUNNER_NS])
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": runner_bootstrap.NAME}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": runner_bootstrap.NAME,
                                        "namespace": RUNNER_NS}]
    assert not [r for r in production.resources if "ClusterRole" in r.type and runner_bootstrap.NAME in r.name]


def test_the_job_runs_under_pod_security_restricted(production):
    spec = job(production).inputs["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 65534
    security = spec["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert production.named("ns-gitlab-runner").inputs["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"


def test_bootstrap_objects_match_their_schemas(production):
    objects = bootstrap_objects(production)
    assert {o.type for o in objects} >= {JOB, ROLE, ROLE_BINDING, CONFIG_MAP}
    for obj in objects:
        validators.validate_kubernetes(obj.type, obj.inputs)


# --- order and the Secret the chart reads ------------------------------------------------------------------
def test_the_job_runs_during_gitlabs_install_then_the_runner_follows_both(production):
    # The Job waits for GitLab's migrations in its script (toolbox.sh), not for the release in Pulumi.
    gitlab_release = production.named("gitlab", RELEASE)
    token = production.named(gitlab_runner.TOKEN_SECRET, SECRET)
    the_job = job(production)
    assert gitlab_release.urn not in the_job.dependencies and token.urn in the_job.dependencies
    assert {the_job.urn, gitlab_release.urn} <= set(production.named("gitlab-runner", RELEASE).dependencies)


def test_the_job_writes_the_secret_the_chart_reads(production):
    # gitlab-runner chart 0.91.0: `runners.secret` names a Secret with keys runner-token and
    # runner-registration-token (templates/_helpers.tpl, deployment.yaml); Pulumi sets only the latter here.
    assert production.named("gitlab-runner", RELEASE).inputs["values"]["runners"]["secret"] == \
        gitlab_runner.TOKEN_SECRET
    assert string_data(production.named(gitlab_runner.TOKEN_SECRET, SECRET)) == {"runner-registration-token": ""}


def test_a_token_in_the_stack_overrides_the_bootstrap():
    run = variants.production_variant()  # the runner with its token set in the stack (a run shared with other files)
    assert not bootstrap_objects(run)
    assert string_data(run.named(gitlab_runner.TOKEN_SECRET, SECRET))["runner-token"] == variants.RUNNER_TOKEN_VALUE


# --- the shell script: clean, idempotent, silent about the token --------------------------------------------
def test_the_bootstrap_script_passes_shellcheck():
    assert validators.shellcheck({"runner-bootstrap": runner_bootstrap.shell_script()}) == ""


FAKE_KUBECTL = r"""#!/bin/bash
# kubectl as the script uses it: one running toolbox pod, an exec printing Rails noise and the token line,
# a Secret kept in $STATE/secret (base64 of runner-token), patches read from stdin.
echo "$*" >> "$STATE/calls"
case "$1" in
  get)
    if [ "$2" = pods ]; then printf 'gitlab-toolbox-abc'; else cat "$STATE/secret" 2>/dev/null || true; fi ;;
  exec)
    cat > "$STATE/stdin.rb"
    echo "Rails boot warning"; echo "RUNNER_TOKEN=$TOKEN" ;;
  patch)
    sed -n 's/.*"runner-token":"\([^"]*\)".*/\1/p' > "$STATE/secret"
    echo "secret/x patched" ;;
esac
"""


def run_script(tmp_path: Path, token: str) -> subprocess.CompletedProcess:
    ruby = tmp_path / "create-runner.rb"
    ruby.write_text("puts 'the rendered script'\n")
    return run_toolbox_script(tmp_path, FAKE_KUBECTL, runner_bootstrap.shell_script(),
                              {"TOKEN": token, "RUNNER_NAMESPACE": "gitlab-runner", "RUNNERS": f"{ruby}=gitlab-runner-token"})


def test_the_script_patches_once_and_is_a_no_op_when_rerun(tmp_path):
    token = "glrt-t1_abcDEF0123456789"
    first = run_script(tmp_path, token)
    assert first.returncode == 0, first.stderr
    assert base64.b64decode((tmp_path / "secret").read_text()).decode() == token
    assert (tmp_path / "stdin.rb").read_text() == "puts 'the rendered script'\n"  # the Ruby came on stdin
    second = run_script(tmp_path, token)
    assert second.returncode == 0, second.stderr
    assert "already holds" in second.stdout
    calls = (tmp_path / "calls").read_text().splitlines()
    assert sum(c.startswith("patch") for c in calls) == 1  # the re-run changed nothing
    for line in calls:  # never on a command line, never in the log
        assert token not in line and base64.b64encode(token.encode()).decode() not in line
    for out in (first, second):
        assert token not in out.stdout + out.stderr
    assert [c for c in calls if c.startswith("exec")] == [
        "exec --stdin --namespace gitlab gitlab-toolbox-abc --container toolbox -- gitlab-rails runner -"] * 2


def test_the_script_fails_without_a_token_line(tmp_path):
    result = run_script(tmp_path, "not-a-runner-token")
    assert result.returncode != 0 and "printed no runner authentication token" in result.stderr
    assert not (tmp_path / "secret").exists()


# --- toolbox.sh: the wait for GitLab's migrations (the Job starts while GitLab installs) ---------------------
def run_with_migrations(tmp_path: Path, states: list[str], wait: int = 60) -> subprocess.CompletedProcess:
    """The script with the migrations Job answering `states` (its true conditions), one per poll, and a `sleep`
    that returns at once (the script polls every 10 s)."""
    (tmp_path / "migrations").write_text("\n".join(states) + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sleep").write_text("#!/bin/sh\necho \"sleep $*\" >> \"$STATE/calls\"\n")
    (bin_dir / "sleep").chmod(0o755)
    ruby = tmp_path / "create-runner.rb"
    ruby.write_text("puts 'the rendered script'\n")
    return run_toolbox_script(tmp_path, FAKE_KUBECTL, runner_bootstrap.shell_script(),
                              {"TOKEN": "glrt-t1_abc", "RUNNER_NAMESPACE": "gitlab-runner",
                               "RUNNERS": f"{ruby}=gitlab-runner-token", "MIGRATIONS_WAIT_SECONDS": str(wait)})


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_the_script_runs_rails_only_once_gitlabs_migrations_completed(tmp_path):
    # Not created yet (the release is still in its pre-install hooks), then running, then complete.
    result = run_with_migrations(tmp_path, ["", "", "SuccessCriteriaMet Complete"])
    assert result.returncode == 0, result.stderr
    made = calls(tmp_path)
    polls = [i for i, c in enumerate(made) if c.startswith("get job")]
    assert len(polls) == 3 and made[polls[0]].split()[:5] == [
        "get", "job", "--namespace", "gitlab", toolbox_fakes.MIGRATIONS_JOB]  # the current revision's, by name
    first_exec = next(i for i, c in enumerate(made) if c.startswith("exec"))
    assert first_exec > polls[-1]  # no Rails before the schema is there
    # The toolbox pod: the newest running one not being deleted (an upgrade may be rolling the Deployment).
    [pods] = [c for c in made if c.startswith("get pods")]
    assert "--sort-by .metadata.creationTimestamp" in pods and "if not .metadata.deletionTimestamp" in pods


def test_the_script_stops_at_once_when_the_migrations_failed(tmp_path):
    result = run_with_migrations(tmp_path, ["", "FailureTarget Failed"])
    assert result.returncode != 0
    assert f"GitLab's migrations Job {toolbox_fakes.MIGRATIONS_JOB} in namespace gitlab failed" in result.stderr
    assert not [c for c in calls(tmp_path) if c.startswith(("exec", "patch"))]


def test_the_script_gives_up_when_the_migrations_never_complete(tmp_path):
    # E.g. only an older revision's Job exists (another name): this revision's never appears.
    result = run_with_migrations(tmp_path, [""], wait=30)
    assert result.returncode != 0 and "not complete after 30s" in result.stderr
    assert sum(c.startswith("get job") for c in calls(tmp_path)) == 4  # at 0, 10, 20 and 30 s
    assert not [c for c in calls(tmp_path) if c.startswith(("exec", "patch"))]


def test_the_jobs_wait_outlasts_gitlabs_install_and_pulumis_wait_outlasts_the_job():
    # The Job starts no later than GitLab's release, whose Helm wait covers the database's wait and the migrations.
    assert toolbox_job.MIGRATIONS_WAIT_SECONDS >= gitlab.RELEASE_TIMEOUT_SECONDS
    minutes = int(toolbox_job.TIMEOUT.removesuffix("m"))
    assert minutes * 60 > toolbox_job.MIGRATIONS_WAIT_SECONDS + toolbox_job.WAIT_SECONDS + 2 * 60


# --- config -----------------------------------------------------------------------------------------------
def test_a_runner_for_another_gitlab_still_needs_its_token():
    raw = base_raw(platform={"gitlab": {"runner": {"enabled": True, "url": "https://gitlab.other.example.com"}}})
    [msg] = config_problems(raw)
    assert msg.startswith(f"adplatform:{RUNNER_TOKEN} must be set with --secret when platform.gitlab.runner "
                          "registers with another stack's GitLab")


def test_a_runner_with_its_own_gitlab_needs_no_token():
    raw = base_raw(platform={"gitlab": {"runner": {"enabled": True}}})
    assert load("test", raw, SECRET_KEYS).config.platform.gitlab.runner.enabled is True


def test_staging_without_gitlab_keeps_the_manual_runner(staging):
    assert not bootstrap_objects(staging)
    assert stack_config(staging).platform.gitlab.runner.enabled is False


# --- a stack without its own GitLab registers through another stack (issue 21) -----------------------------
RUNNER_KEY = "adplatform:platform"


def with_runner(stack: str, runner: dict) -> Run:
    values, secret = mockrun.stack_config(stack)
    values.pop(f"adplatform:{RUNNER_TOKEN}", None)  # offline placeholders fill in every known secret
    secret = secret - {f"adplatform:{RUNNER_TOKEN}"}
    platform = dict(values.get(RUNNER_KEY) or {})
    gitlab_cfg = dict(platform.get("gitlab") or {})
    gitlab_cfg["runner"] = {**(gitlab_cfg.get("runner") or {}), **runner}
    values[RUNNER_KEY] = {**platform, "gitlab": gitlab_cfg}
    values["adplatform:layers"] = UP_TO_PLATFORM  # (the runner is the platform layer's)
    return mockrun.run(values, secret, stack)


@pytest.fixture(scope="module")
def production_with_staging():
    return with_runner("production", {"downstream": ["staging"]})


def test_production_creates_stagings_runner_and_exports_its_token_as_a_secret(production_with_staging):
    run = production_with_staging
    staging_secret = f"{gitlab_runner.TOKEN_SECRET}-staging"
    data = run.named(runner_bootstrap.NAME, CONFIG_MAP).inputs["data"]
    ruby = data["create-runner-staging.rb"]
    assert "description = 'adplatform production (staging)'" in ruby and "tag_list: ['staging']" in ruby
    env = {e["name"]: e["value"] for e in job(run).inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    build_secret = f"{staging_secret}-build"
    assert env["RUNNERS"].split() == [f"/bootstrap/create-runner.rb={gitlab_runner.TOKEN_SECRET}",
                                      f"/bootstrap/create-runner-staging.rb={staging_secret}",
                                      f"/bootstrap/create-runner-staging-build.rb={build_secret}"]
    roles = [r.inputs for r in run.of_type(ROLE) if r.inputs["metadata"]["namespace"] == RUNNER_NS
             and r.inputs["metadata"]["name"] == runner_bootstrap.NAME]
    assert roles[0]["rules"][0]["resourceNames"] == [gitlab_runner.TOKEN_SECRET, staging_secret, build_secret]
    for name in (staging_secret, build_secret):  # the Job may only patch them
        assert run.named(f"{name}-secret", SECRET).urn in job(run).dependencies
    assert "runnerTokens" in run.secret_outputs
    assert run.outputs["runnerTokens"] == {"staging": "glrt-offline-placeholder-written",
                                           "staging-build": "glrt-offline-placeholder-written"}


def created_runners(run: Run) -> dict[str, dict]:
    """runner key (`adplatform <stack> (<key>)`) -> the tags and flags the bootstrap's Ruby scripts give it, read
    from the ConfigMap."""
    found = {}
    for script in run.named(runner_bootstrap.NAME, CONFIG_MAP).inputs["data"].values():
        key = re.search(r"^description = 'adplatform [\w-]+ \(([\w-]+)\)'$", script, re.M)
        match = re.search(r"tag_list: \[([^]]*)\], run_untagged: (true|false), access_level: '(\w+)'", script)
        if key and match:
            found[key.group(1)] = {"tags": set(re.findall(r"'(\w+)'", match.group(1))),
                                   "run_untagged": match.group(2) == "true",
                                   "protected": match.group(3) == "ref_protected"}
    return found


def gitlab_matches(runner: dict, job_tags: set[str], ref_protected: bool) -> bool:
    """GitLab's runner matching (gitlabhq lib/gitlab/ci/matching/runner_matcher.rb, RunnerMatcher#matches?):
    a protected runner refuses jobs of unprotected refs; an untagged job needs run_untagged; every job tag must
    be one of the runner's."""
    if runner["protected"] and not ref_protected:
        return False
    return (runner["run_untagged"] or bool(job_tags)) and job_tags <= runner["tags"]


def intended_runner(name: str, tags: set[str]) -> str:
    """Where the templates mean a job to run: deploys on their environment's deploy runner, all else (build,
    test, container-image) on the build runner."""
    if name in ci_templates.DEPLOY_JOBS:
        [environment] = tags
        return environment
    return "staging-build"


@pytest.mark.parametrize("language", ci_templates.LANGUAGES)
def test_every_template_job_finds_a_runner_the_program_created(production_with_staging, language):
    """With the defaults (production lists staging downstream), each job of the templates has exactly its runner:
    builds, tests and images of merge requests (unprotected refs) and of the default branch on the build runner,
    each deploy on its environment's deploy runner."""
    runners = created_runners(production_with_staging)
    found = ci_templates.jobs(ci_templates.pipeline(language))
    for name, job in found.items():
        tags = set(job.get("tags", []))
        refs = [True] if name in ci_templates.DEPLOY_JOBS else [True, False]  # default branch, merge request
        for protected_ref in refs:
            takers = {key for key, runner in runners.items() if gitlab_matches(runner, tags, protected_ref)}
            assert takers == {intended_runner(name, tags)}, f"{language} {name} (protected ref: {protected_ref})"


@pytest.mark.parametrize("tags", [set(), {"staging"}, {"production"}, {"staging", "production"}])
def test_no_job_of_an_unprotected_ref_and_no_untagged_job_reaches_a_deploy_runner(production_with_staging, tags):
    """What a Developer's pushed branch could write into its .gitlab-ci.yml: untagged or tagged with an
    environment, none of it runs on a deploy runner (whose jobs may run as the deployer); an untagged job of a
    protected ref neither."""
    runners = created_runners(production_with_staging)
    deploy = {key for key in runners if key in ("production", "staging")}
    for protected_ref in (True, False):
        takers = {key for key in deploy if gitlab_matches(runners[key], tags, protected_ref)}
        if not tags or not protected_ref:
            assert not takers, (tags, protected_ref)


def test_a_downstream_runners_flags_can_be_set_per_environment():
    raw = base_raw(platform={"gitlab": {"runner": {
        "enabled": True, "downstream": ["staging"],
        "downstreamRunners": {"staging": {"runUntagged": True, "protected": True}}}}})
    settings = load("test", raw, SECRET_KEYS).config.platform
    ctx = SimpleNamespace(stack="production", environment="production", settings=settings)
    staging = settings.gitlab.runner.specs("staging", "production")[0]
    assert "run_untagged: true, access_level: 'ref_protected'" in runner_bootstrap.ruby_script(ctx, staging)
    assert "run_untagged: false, access_level: 'ref_protected'" in runner_bootstrap.ruby_script(ctx)


def test_a_staging_stack_with_its_own_gitlab_creates_its_deploy_and_build_runners():
    raw = base_raw(platform={"gitlab": {"runner": {"enabled": True}}})
    settings = load("test", raw, SECRET_KEYS).config.platform
    ctx = SimpleNamespace(stack="s", environment="staging", settings=settings)
    found = {script: (spec.key, secret) for spec, script, secret in runner_bootstrap.runners(ctx, "tok")}
    assert found == {"create-runner.rb": ("staging", "tok"), "create-runner-build.rb": ("staging-build", "tok-build")}
    deploy, build = settings.gitlab.runner.specs("staging", "staging")
    assert "tag_list: ['staging'], run_untagged: false, access_level: 'ref_protected'" in runner_bootstrap.ruby_script(
        ctx, deploy)
    assert "tag_list: [], run_untagged: true, access_level: 'not_protected'" in runner_bootstrap.ruby_script(ctx, build)


@pytest.mark.parametrize("runner, key, message", [
    ({"downstreamRunners": {"staging": {"runUntagged": True, "protected": False}}},
     "platform.gitlab.runner.downstreamRunners.staging", "sets the flags of a runner this stack does not create"),
    ({"downstream": ["staging"], "downstreamRunners": {"qa": {"runUntagged": True, "protected": False}}},
     "platform.gitlab.runner.downstreamRunners", "must be one of runner environments production, staging"),
    ({"downstream": ["staging"], "downstreamRunners": {"staging": {"runUntagged": True}}},
     "platform.gitlab.runner.downstreamRunners.staging.protected", ""),
])
def test_downstream_runner_flag_errors_name_the_key(runner, key, message):
    raw = base_raw(platform={"gitlab": {"runner": {"enabled": True, **runner}}})
    problems = config_problems(raw)
    assert any(key in p and message in p for p in problems), problems


def test_production_without_downstream_exports_no_tokens(production):
    assert "runnerTokens" not in production.outputs


@pytest.fixture(scope="module")
def staging_registered() -> Run:
    return with_runner("staging", {"enabled": True, "registration": {"stack": "acme/adplatform/production"}})


def runner_config(run: Run, release: str) -> dict:
    [kube] = [r["kubernetes"] for r in tomllib.loads(run.named(release, RELEASE).inputs["values"]["runners"]["config"])[
        "runners"]]
    return kube


def test_staging_runs_its_deploy_runner_and_a_build_runner_without_kubernetes_rights(staging_registered):
    run = staging_registered
    build_secret = f"{gitlab_runner.TOKEN_SECRET}-build"
    build = run.named("gitlab-runner-build", RELEASE).inputs["values"]
    assert build["runners"]["secret"] == build_secret and build["runners"]["jobNamespace"] == CI_NAMESPACE
    token = string_data(run.named(build_secret, SECRET))["runner-token"]
    assert token == mockrun.OFFLINE_RUNNER_TOKENS["staging-build"]
    # Its jobs: ServiceAccount ci-build, no token mounted, no way to ask for the deployer; resource limits as any job.
    kube = runner_config(run, "gitlab-runner-build")
    assert kube["service_account"] == gitlab_runner.BUILD_SERVICE_ACCOUNT
    assert kube["automount_service_account_token"] is False
    assert "service_account_overwrite_allowed" not in kube and "bearer_token_overwrite_allowed" not in kube
    assert kube["memory_limit"] == gitlab_runner.JOB_DEFAULTS["memory_limit"]
    account = run.named("ci-build", "kubernetes:core/v1:ServiceAccount").inputs
    assert account["metadata"] == {**account["metadata"], "name": "ci-build", "namespace": CI_NAMESPACE}
    assert account["automountServiceAccountToken"] is False
    validators.validate_kubernetes("kubernetes:core/v1:ServiceAccount", account)
    bindings = run.of_type(ROLE_BINDING) + run.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    subjects = [s for b in bindings for s in b.inputs.get("subjects") or []]
    assert not [s for s in subjects if s.get("name") == gitlab_runner.BUILD_SERVICE_ACCOUNT]
    assert run.named("ci-build", "kubernetes:core/v1:ServiceAccount").urn in run.named(
        "gitlab-runner-build", RELEASE).dependencies  # the runner checks the account exists before a job
    # The deploy runner keeps the deployer overwrite and its Secret.
    deploy = run.named("gitlab-runner", RELEASE).inputs["values"]
    assert deploy["runners"]["secret"] == gitlab_runner.TOKEN_SECRET
    assert runner_config(run, "gitlab-runner")["service_account_overwrite_allowed"] == "^deployer$"


def test_production_runs_no_build_runner(production):
    assert not [r for r in production.of_type(RELEASE) if r.name == "gitlab-runner-build"]
    assert not [r for r in production.resources if r.name == "ci-build"]


def test_a_hand_made_token_is_one_runner_and_keeps_a_single_release():
    settings = load("test", base_raw(platform={"gitlab": {"runner": {"enabled": True}}}), SECRET_KEYS).config.platform
    ctx = SimpleNamespace(environment="staging", settings=settings, secrets=SimpleNamespace(gitlab_runner_token=None))
    assert [spec.key for spec in gitlab_runner.own_runners(ctx)] == ["staging", "staging-build"]
    ctx.secrets.gitlab_runner_token = "glrt-by-hand"
    assert [spec.key for spec in gitlab_runner.own_runners(ctx)] == ["staging"]
    run = variants.production_variant()
    assert [r.name for r in run.of_type(RELEASE) if r.name.startswith("gitlab-runner")] == ["gitlab-runner"]


def test_staging_takes_its_token_from_productions_output(staging_registered):
    run = staging_registered
    # The StackReference is a read, which the mock monitor does not record: its output is what proves it.
    assert not bootstrap_objects(run)
    data = run.named(gitlab_runner.TOKEN_SECRET, SECRET).inputs["stringData"]
    assert isinstance(data, mockrun.Secret), "the token production exported stays a secret"
    assert data.value["runner-token"] == mockrun.OFFLINE_RUNNER_TOKENS["staging"]
    assert run.named("gitlab-runner", RELEASE).inputs["values"]["gitlabUrl"] == "https://gitlab.ads.example.com"


@pytest.mark.parametrize("stack", ["production/x", "a/b/c/d", "-lead", "has space", ""])
def test_a_registration_stack_must_be_a_stack_name(stack):
    raw = base_raw(platform={"gitlab": {"enabled": False, "runner": {
        "enabled": True, "url": "https://gitlab.other.example.com", "registration": {"stack": stack}}}})
    problems = config_problems(raw)
    assert any("platform.gitlab.runner.registration.stack" in p and "<organization>/<project>/<stack>" in p
               for p in problems), problems


@pytest.mark.parametrize("stack", ["production", "acme/adplatform/production", "my-org/ad.platform/prod_1"])
def test_a_registration_stack_replaces_the_token(stack):
    raw = base_raw(platform={"gitlab": {"enabled": False, "runner": {
        "enabled": True, "url": "https://gitlab.other.example.com", "registration": {"stack": stack}}}})
    runner = load("test", raw, SECRET_KEYS).config.platform.gitlab.runner
    assert runner.registration.stack == stack


def test_registration_and_a_token_together_are_refused():
    raw = base_raw(platform={"gitlab": {"enabled": False, "runner": {
        "enabled": True, "url": "https://gitlab.other.example.com", "registration": {"stack": "production"}}}},
        **{RUNNER_TOKEN: "glrt-by-hand"})
    problems = config_problems(raw, secrets=SECRET_KEYS | {RUNNER_TOKEN})
    assert any(p.startswith("adplatform:platform.gitlab.runner.registration.stack and the secret") for p in problems)


@pytest.mark.parametrize("downstream, gitlab_on, message", [
    (["qa"], True, "must be one of runner environments production, staging"),
    (["staging", "staging"], True, "lists an environment twice"),
    (["staging"], False, "creates runners in this stack's own GitLab"),
])
def test_downstream_errors_name_the_key(downstream, gitlab_on, message):
    runner = {"enabled": True, "downstream": downstream}
    if not gitlab_on:
        runner.update(url="https://gitlab.other.example.com", registration={"stack": "production"})
    raw = base_raw(platform={"gitlab": {"enabled": gitlab_on, "runner": runner}})
    problems = config_problems(raw)
    assert any("platform.gitlab.runner.downstream" in p and message in p for p in problems), problems
