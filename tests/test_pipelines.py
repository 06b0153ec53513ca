"""The repository's pipelines: schema-valid, every stack previewed, production manual and serialized,
no secret echoed; the helpers they run (touched stacks, merge-request notes); the make guards."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from tests import validators
from tests.conftest import ROOT
from tools import mockrun
from tools.ci import mr_note, touched

GITLAB = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
WORKFLOWS = {p.name: yaml.safe_load(p.read_text()) for p in (ROOT / ".github" / "workflows").glob("*.yml")}


def triggers(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
SENSITIVE = ("PASSPHRASE", "TOKEN", "SECRET", "ACCESS_KEY", "PASSWORD")


def test_pipeline_files_exist_and_match_their_schemas():
    files = validators.pipeline_files()
    assert {p.relative_to(ROOT).as_posix() for p in files} == {
        ".gitlab-ci.yml", ".github/workflows/pull-request.yml", ".github/workflows/deploy.yml",
        ".github/workflows/drift.yml"}
    assert validators.pipeline_problems(files) == {path: [] for path in files}


# --- GitLab ---------------------------------------------------------------------------------------

def _jobs() -> dict[str, dict]:
    return {name: job for name, job in GITLAB.items() if isinstance(job, dict) and not name.startswith(".")
            and name not in ("workflow", "variables", "default", "stages")}


def test_every_stack_file_has_a_preview_job_triggered_by_its_file_and_the_code():
    previews = {job["variables"]["STACK"]: job for job in _jobs().values() if job.get("extends") == ".preview"}
    assert set(previews) == set(mockrun.stacks()), "add a preview-<stack> job for each Pulumi.<stack>.yaml"
    for stack, job in previews.items():
        changes = [rule.get("changes") for rule in job["rules"]]
        assert [f"Pulumi.{stack}.yaml"] in changes
        assert list(touched.CODE_PATHS) in changes, "a code change must preview every stack"
        assert all("merge_request_event" in rule["if"] and "$PULUMI_BACKEND_URL" in rule["if"] for rule in job["rules"])


def test_gitlab_code_paths_equal_the_touched_stacks_rule():
    assert GITLAB[".code-paths"] == list(touched.CODE_PATHS)


def test_merge_requests_run_tests_policy_plan_diff_and_post_notes():
    jobs = _jobs()
    assert jobs["test"]["script"] == ["make test"] and jobs["policy"]["script"] == ["make policy"]
    plan_diff = jobs["plan-diff"]
    assert any("make plan-diff BASE=\"$CI_MERGE_REQUEST_DIFF_BASE_SHA\"" in line for line in plan_diff["script"])
    assert any("tools.ci.mr_note plan-diff" in line for line in plan_diff["script"])
    assert plan_diff["variables"]["GIT_DEPTH"] == 0
    preview = GITLAB[".preview"]
    assert any("make preview" in line and "tee" in line for line in preview["script"])
    assert "set -o pipefail" in preview["script"], "a failed preview must fail the job despite tee"
    assert any("tools.ci.mr_note" in line for line in preview["after_script"])


def test_production_deploy_is_manual_serialized_and_after_staging():
    jobs = _jobs()
    staging, production = jobs["deploy-staging"], jobs["deploy-production"]
    assert staging["environment"]["name"] == "staging" and staging["resource_group"] == "pulumi-staging"
    scheduled = {"if": '$CI_PIPELINE_SOURCE == "schedule"', "when": "never"}
    assert staging["rules"][0] == production["rules"][0] == scheduled, "a drift schedule never deploys"
    assert all(rule.get("when") in (None, "on_success") for rule in staging["rules"][1:]), "staging deploys automatically"
    assert production["environment"]["name"] == "production"
    assert production["resource_group"] == "pulumi-production"
    assert [rule.get("when") for rule in production["rules"][1:]] == ["manual"]
    assert production["needs"] == ["deploy-staging"]
    assert GITLAB[".deploy"]["interruptible"] is False
    assert all("CI_DEFAULT_BRANCH" in rule["if"] for job in (staging, production) for rule in job["rules"][1:])


def test_every_deployment_is_verified_live_after_pulumi_up():
    script = GITLAB[".deploy"]["script"]
    up = next(i for i, line in enumerate(script) if line.startswith("make up"))
    assert any(line.startswith("PATH=") and 'make verify STACK="$STACK"' in line for line in script[up + 1:])
    jobs = WORKFLOWS["deploy.yml"]["jobs"]
    for stack in ("staging", "production"):
        steps = jobs[stack]["steps"]
        up = next(i for i, s in enumerate(steps) if s.get("with", {}).get("command") == "up")
        assert steps[up + 1]["run"].startswith(f"make verify STACK={stack}")


def test_drift_is_checked_on_a_schedule_for_every_deployed_stack():
    deployed = {job["variables"]["STACK"] for name, job in _jobs().items() if name.startswith("deploy-")}
    drift = _jobs()["drift"]
    assert set(drift["parallel"]["matrix"][0]["STACK"]) == deployed
    assert drift["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule" && $PULUMI_BACKEND_URL'}]
    assert drift["script"] == ['make drift STACK="$STACK" PULUMI_ARGS="$PULUMI_CI_ARGS"']
    assert drift["resource_group"] == "pulumi-$STACK", "never alongside a deployment of the same stack"
    github = WORKFLOWS["drift.yml"]
    assert triggers(github)["schedule"][0]["cron"]
    job = github["jobs"]["drift"]
    assert set(job["strategy"]["matrix"]["stack"]) == deployed
    assert job["concurrency"]["group"] == "pulumi-${{ matrix.stack }}"
    step = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert step["with"]["command"] == "preview"
    assert step["with"]["refresh"] is True and step["with"]["expect-no-changes"] is True


def test_make_drift_previews_with_refresh_and_expects_no_changes():
    result = _make("drift", "STACK=staging", "PULUMI=echo")
    assert result.returncode == 0, result.stderr
    assert "preview --stack staging --refresh --expect-no-changes" in result.stdout


def test_official_pinned_pulumi_image_and_plugin_cache():
    image = GITLAB["variables"]["PULUMI_IMAGE"]
    assert re.fullmatch(r"pulumi/pulumi-python(-3\.\d+)?:\d+\.\d+\.\d+", image)
    sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert image.endswith(f":{sdk}"), "the CLI image must match the pinned SDK"
    assert ".pulumi-home/plugins/" in [p for c in GITLAB["default"]["cache"] for p in c["paths"]]
    assert GITLAB["variables"]["PULUMI_HOME"] == "$CI_PROJECT_DIR/.pulumi-home"
    # The official image carries no make; every job runs make targets.
    assert any("apt-get install" in line and "make" in line for line in GITLAB["default"]["before_script"])


def _all_commands() -> list[str]:
    lines = []
    for job in [*GITLAB.values()]:
        if isinstance(job, dict):
            lines += [*job.get("script", []), *job.get("after_script", []), *job.get("before_script", [])]
    for workflow in WORKFLOWS.values():
        lines += [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    return [line for line in lines if isinstance(line, str)]


def test_every_gitlab_script_line_is_a_string():
    # A plain YAML line containing ": " turns into a mapping and GitLab rejects or misruns it.
    for name, job in GITLAB.items():
        if isinstance(job, dict):
            for key in ("script", "after_script", "before_script"):
                assert all(isinstance(line, str) for line in job.get(key, [])), f"{name}.{key}"


def test_no_secret_is_ever_echoed():
    for line in _all_commands():
        assert "set -x" not in line and "printenv" not in line and not re.search(r"\benv\s*$", line)
        for echoed in re.findall(r"(?:echo|printf)[^|>]*\$\{?(\w+)", line):
            assert not any(word in echoed.upper() for word in SENSITIVE), line


# --- GitLab's parser (gitlab-ci-local) --------------------------------------------------------------

MERGE_REQUEST = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_BRANCH": None}
DEFAULT_BRANCH = {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main"}
BACKEND = {"PULUMI_BACKEND_URL": "s3://state?region=eu-central-1"}


def _parse(tmp_path, text: str, variables: dict) -> validators.ParsedPipeline:
    validators.require_gitlab_ci_local()
    project = tmp_path / "project"
    project.mkdir()
    (project / ".gitlab-ci.yml").write_text(text)
    return validators.parse_gitlab_pipeline(project, variables)


SCHEDULE = {"CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main"}


def _expected_when(previews: str, plan_diff: str, staging: str, production: str,
                   drift: str = "never") -> dict[str, str]:
    expected = {name: previews for name in _jobs() if name.startswith("preview-")}
    return {**expected, "test": "on_success", "policy": "on_success", "plan-diff": plan_diff,
            "deploy-staging": staging, "deploy-production": production,
            "drift: [staging]": drift, "drift: [production]": drift}


@pytest.mark.parametrize("variables, expected", [
    ({**MERGE_REQUEST, **BACKEND}, _expected_when("on_success", "on_success", "never", "never")),
    (MERGE_REQUEST, _expected_when("never", "on_success", "never", "never")),  # a fork: no state backend
    ({**DEFAULT_BRANCH, **BACKEND}, _expected_when("never", "never", "on_success", "manual")),
    (DEFAULT_BRANCH, _expected_when("never", "never", "never", "never")),
    # A pipeline schedule looks for drift in every deployed stack and never deploys.
    ({**SCHEDULE, **BACKEND}, _expected_when("never", "never", "never", "never", drift="on_success")),
], ids=["merge-request", "merge-request-without-backend", "default-branch", "default-branch-without-backend",
        "schedule"])
def test_gitlab_builds_the_pipeline_and_its_rules_pick_the_jobs(tmp_path, variables, expected):
    parsed = _parse(tmp_path, (ROOT / ".gitlab-ci.yml").read_text(), variables)
    assert parsed.ok, parsed.output
    assert {name: job["when"] for name, job in parsed.jobs.items()} == expected


def test_gitlab_parser_refuses_a_cache_keyed_on_three_files(tmp_path):
    # GitLab's limit is two (the `.gitlab-ci.yml` reference, cache:key:files); the JSON schema allows ten.
    text = (ROOT / ".gitlab-ci.yml").read_text().replace(
        "files: [requirements.txt, requirements-dev.txt]",
        "files: [requirements.txt, requirements-dev.txt, policy/requirements.txt]")
    bad = tmp_path / "bad.gitlab-ci.yml"
    bad.write_text(text)
    assert validators.pipeline_problems({bad: "vendor.gitlab-ci"}) == {bad: []}, "the schema misses it"
    parsed = _parse(tmp_path, text, {**MERGE_REQUEST, **BACKEND})
    assert not parsed.ok and "cache:key:files" in parsed.output


def test_gitlab_parser_refuses_a_job_needing_a_missing_job(tmp_path):
    text = (ROOT / ".gitlab-ci.yml").read_text().replace("needs: [deploy-staging]", "needs: [deploy-stage]")
    parsed = _parse(tmp_path, text, {**DEFAULT_BRANCH, **BACKEND})
    assert not parsed.ok and "deploy-stage" in parsed.output


def test_gitlab_cache_keys_are_keys_gitlab_accepts():
    assert validators.gitlab_cache_key_problems(GITLAB) == []
    # The plugin cache was once keyed on the image name, whose `/` GitLab refuses in a key.
    old = {**GITLAB, "default": {**GITLAB["default"], "cache": [{"key": "pulumi-plugins-$PULUMI_IMAGE"}]}}
    assert validators.gitlab_cache_key_problems(old) == [
        "default: cache key 'pulumi-plugins-$PULUMI_IMAGE' is "
        f"'pulumi-plugins-{GITLAB['variables']['PULUMI_IMAGE']}', which GitLab refuses"]
    assert validators.gitlab_cache_key_problems({"job": {"cache": {"key": {"prefix": ".."}}}})


def test_parser_tests_skip_saying_why_but_fail_where_ci_requires_them(monkeypatch, tmp_path):
    monkeypatch.setattr(validators, "GITLAB_CI_LOCAL", tmp_path / "not-installed.js")
    monkeypatch.delenv(validators.REQUIRE_NODE_TOOLS, raising=False)
    with pytest.raises(pytest.skip.Exception, match="`make test` installs it"):
        validators.require_gitlab_ci_local()
    monkeypatch.setenv(validators.REQUIRE_NODE_TOOLS, "1")
    with pytest.raises(pytest.fail.Exception, match="the parser must run here"):
        validators.require_gitlab_ci_local()
    assert validators.REQUIRE_NODE_TOOLS in (ROOT / ".ci" / "run").read_text()


def test_the_parser_is_pinned_exactly_and_make_test_installs_it_first():
    package = json.loads((validators.NODE_TOOLS / "package.json").read_text())
    lock = json.loads((validators.NODE_TOOLS / "package-lock.json").read_text())
    for name, version in package["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} must be pinned to one version"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert all("integrity" in entry for path, entry in lock["packages"].items() if path), "every package hashed"
    assert "tools/ci/node/node_modules/.installed" in _make("-n", "test").stdout
    install = _make("-n", "-B", "tools/ci/node/node_modules/.installed").stdout
    assert "npm ci --prefix tools/ci/node --ignore-scripts" in install, "the lock file, no install scripts"


# --- GitHub ---------------------------------------------------------------------------------------

def test_github_previews_touched_stacks_and_comments_on_the_pull_request():
    pr = WORKFLOWS["pull-request.yml"]
    assert "pull_request" in triggers(pr)
    preview = pr["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.touched) }}"
    step = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert step["with"]["command"] == "preview" and step["with"]["comment-on-pr"] is True
    assert step["with"]["edit-pr-comment"] is True and step["with"]["policyPacks"] == "policy"
    assert any("tools.ci.touched" in s.get("run", "") for s in pr["jobs"]["stacks"]["steps"])
    assert any("make plan-diff" in s.get("run", "") for s in pr["jobs"]["plan-diff"]["steps"])


def test_github_production_waits_for_staging_and_its_reviewers_one_at_a_time():
    jobs = WORKFLOWS["deploy.yml"]["jobs"]
    assert triggers(WORKFLOWS["deploy.yml"])["push"]["branches"] == ["main"]
    for stack in ("staging", "production"):
        assert jobs[stack]["environment"] == stack
        assert jobs[stack]["concurrency"] == {"group": f"pulumi-{stack}", "cancel-in-progress": False}
        step = next(s for s in jobs[stack]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
        assert step["with"]["command"] == "up" and step["with"]["stack-name"] == stack
    assert jobs["production"]["needs"] == "staging" and jobs["staging"]["needs"] == "test"


# --- helpers the pipelines run ---------------------------------------------------------------------

@pytest.mark.parametrize("changed, expected", [
    (["components/k3s/scripts/install.sh"], ["production", "staging"]),
    (["Pulumi.staging.yaml"], ["staging"]),
    (["policy/rules.py"], ["production", "staging"]),
    (["README.md", "tests/test_plan.py"], []),
    (["Pulumi.staging.yaml", "Pulumi.production.yaml"], ["production", "staging"]),
])
def test_touched_stacks(changed, expected):
    assert touched.touched(changed, ["production", "staging"]) == expected


def test_touched_against_head_is_empty_for_a_clean_tree(capsys):
    assert touched.main(["HEAD", "--json"]) == 0
    assert capsys.readouterr().out.strip() in ("[]", '["production", "staging"]')


class FakeGitLab:
    def __init__(self, notes):
        self.notes, self.calls = notes, []

    def __call__(self, method, path, payload):
        self.calls.append((method, path, payload))
        if method == "GET":
            return self.notes
        if method == "POST":
            self.notes.append({"id": 99, "body": payload["body"]})
        return {}


def test_merge_request_note_is_created_once_then_edited_in_place(tmp_path, capsys):
    text = tmp_path / "preview.txt"
    text.write_text("Resources:\n    + 3 to create\n")
    env = {"CI_MERGE_REQUEST_IID": "7", "CI_PROJECT_ID": "group/adplatform", "CI_API_V4_URL": "https://x/api/v4"}
    api = FakeGitLab([{"id": 1, "body": "someone else"}])
    assert mr_note.main(["preview-staging", "preview: staging", str(text)], env, api) == 0
    assert api.calls[-1][0] == "POST" and api.calls[-1][1] == "/projects/group%2Fadplatform/merge_requests/7/notes"
    assert mr_note.main(["preview-staging", "preview: staging", str(text)], env, api) == 0
    assert api.calls[-1][:2] == ("PUT", "/projects/group%2Fadplatform/merge_requests/7/notes/99")
    assert "+ 3 to create" in api.calls[-1][2]["body"] and len(api.notes) == 2
    assert "updated the preview-staging note" in capsys.readouterr().out


def test_merge_request_note_is_skipped_without_token_and_truncated_when_long(tmp_path, capsys):
    text = tmp_path / "out.txt"
    text.write_text("x")
    assert mr_note.main(["plan-diff", "t", str(text)], {"CI_MERGE_REQUEST_IID": "7"}) == 0
    assert "not posting plan-diff" in capsys.readouterr().out
    long = mr_note.body("k", "t", "a" * (mr_note.LIMIT + 500))
    assert len(long) < mr_note.LIMIT + 500 and "characters cut" in long


# --- make guards ----------------------------------------------------------------------------------

def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(ROOT), "-o", ".venv/bin/.installed", *args],
                          capture_output=True, text=True, check=False)


def test_destroying_production_needs_confirmation():
    refused = _make("destroy", "STACK=production", "PULUMI=echo")
    assert refused.returncode != 0 and "CONFIRM=production" in refused.stderr
    confirmed = _make("destroy", "STACK=production", "CONFIRM=production", "PULUMI=echo")
    assert confirmed.returncode == 0 and "destroy --stack production" in confirmed.stdout
    staging = _make("destroy", "STACK=staging", "ORG=acme", "PULUMI=echo")
    assert staging.returncode == 0 and "destroy --stack acme/staging" in staging.stdout


@pytest.mark.parametrize("target", ["preview", "up", "refresh", "destroy", "verify", "drift"])
def test_real_path_targets_say_when_the_cli_is_missing(target):
    result = _make(target, "STACK=staging", "PULUMI=/nonexistent/pulumi")
    assert result.returncode != 0 and "the Pulumi CLI is not installed" in result.stderr


def test_plan_diff_note_links_the_html_reports_kept_as_artifacts(tmp_path):
    text = tmp_path / "diff.md"
    text.write_text("## Offline plan diff\n")
    env = {"CI_MERGE_REQUEST_IID": "7", "CI_PROJECT_ID": "1", "CI_API_V4_URL": "https://x/api/v4",
           "CI_JOB_URL": "https://gitlab.example.com/g/p/-/jobs/42"}
    api = FakeGitLab([])
    assert mr_note.main(["plan-diff", "t", str(text), "build/plan/production.html"], env, api) == 0
    note = api.calls[-1][2]["body"]
    assert "[production.html](https://gitlab.example.com/g/p/-/jobs/42/artifacts/file/build/plan/production.html)" in note
    assert note.index("production.html") < note.index("````text"), "the link is outside the text block"
    plan_diff = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())["plan-diff"]
    assert any("build/plan/*.html" in line for line in plan_diff["script"])
    assert plan_diff["artifacts"]["paths"] == ["build/plan/"]
