"""Validators over every artifact the program renders, for every stack; each validator also proves
it rejects a bad input (a validator that accepts everything would be a test that cannot fail)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests import validators
from tests.conftest import stack_run
from tools import mockrun

STACKS = mockrun.stacks()


@pytest.mark.parametrize("stack", STACKS)
def test_kubernetes_objects_match_the_cluster_schema(stack):
    objects = validators.kubernetes_objects(stack_run(stack))
    assert objects, "the hcloud Secret at least"
    for obj in objects:
        validators.validate_kubernetes(obj.type, obj.inputs)


def test_kubernetes_validator_targets_the_pinned_cluster_version():
    assert validators.KUBERNETES_VERSION == "1.36.0"


def test_kubernetes_validator_rejects_unknown_fields_and_wrong_types():
    good = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "stringData": {"a": "b"}}
    validators.validate_kubernetes("kubernetes:core/v1:Secret", good)
    with pytest.raises(Exception, match="spec|additional"):
        validators.validate_kubernetes("kubernetes:core/v1:Secret", {**good, "spec": {}})
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                  "spec": {"replicas": "two", "selector": {}, "template": {}}}
    with pytest.raises(Exception, match="two"):
        validators.validate_kubernetes("kubernetes:apps/v1:Deployment", deployment)


def test_custom_resources_need_a_documented_schema(tmp_path, monkeypatch):
    cr = {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
    with pytest.raises(AssertionError, match="no documented schema"):
        validators.validate_kubernetes("kubernetes:example.io/v1:Widget", cr)
    monkeypatch.setattr(validators, "CRD_SCHEMAS", tmp_path)
    (tmp_path / "example.io_Widget.yaml").write_text(
        "type: object\nrequired: [spec]\nproperties:\n  spec:\n    type: object\n    additionalProperties: false\n"
        "    properties:\n      size: {type: integer, minimum: 1}\n")
    validators.validate_kubernetes("kubernetes:example.io/v1:Widget", cr)
    with pytest.raises(Exception, match="colour"):
        validators.validate_kubernetes("kubernetes:example.io/v1:Widget", {**cr, "spec": {"size": 3, "colour": "red"}})


@pytest.mark.parametrize("stack", STACKS)
def test_every_remote_script_passes_shellcheck(stack):
    scripts = validators.scripts(stack_run(stack))
    assert any(name.startswith("tune-") for name in scripts) and any(name.startswith("k3s-") for name in scripts)
    assert validators.shellcheck(scripts) == ""


def test_shellcheck_sees_every_script_body_whatever_its_parameter_values(tmp_path):
    """Scripts are checked with their parameters' values replaced (validators.without_values): the renders of one
    template for different nodes are then one text, checked once. The values are the renderer's shlex-quoted data;
    everything else of the script, and so any problem shellcheck finds there, stays."""
    from components.shell import render
    template = tmp_path / "t.sh"
    template.write_text("#!/usr/bin/env bash\nset -euo pipefail\n# @params\nsource lib.sh\necho \"$NAME $CONFIG\"\n")
    texts = [render(template, {"NAME": name, "CONFIG": config, "COUNT": count})
             for name, config, count in (("n-1", "a: 1\nb: 'x'\n", 3), ("n 2", "zq's\n\nc: [\"y\"]", 10),
                                         ("", "", 0))]
    assert len(set(texts)) == 3 and len({validators.without_values(t) for t in texts}) == 1
    normalised = validators.without_values(texts[1])
    assert "n 2" not in normalised and "zq" not in normalised and 'echo "$NAME $CONFIG"' in normalised
    dollar = validators.without_values(render(template, {"NAME": "n", "CONFIG": "$HOME", "COUNT": 1}))
    assert "HOME" not in dollar and "# shellcheck disable=SC2016" in dollar, "the renderer's own lines stay"
    assert [line for line in normalised.splitlines() if line.startswith("readonly ")] == [
        "readonly NAME='value'", "readonly CONFIG='value'", "readonly COUNT='value'"]
    body = 'readonly WHEN=$(date)\nreadonly ARG="$1"\necho "$WHEN $ARG"'
    assert body in validators.without_values(f"readonly X='v'\n{body}\n"), "a body's own readonly lines are judged"
    template.write_text(template.read_text().replace('echo "$NAME $CONFIG"', "rm -rf $NAME/*"))
    assert "SC2115" in validators.shellcheck({"bad": render(template, {"NAME": "n-1"})})
    # A body's own single-quoted constant is the body's: shellcheck still reads it (a tilde that never expands).
    template.write_text(template.read_text().replace("rm -rf $NAME/*", "readonly KUBE='~/.kube'\nls \"$KUBE\""))
    assert "SC2088" in validators.shellcheck({"tilde": render(template, {"NAME": "n-1"})})


def test_shellcheck_catches_a_bad_script():
    report = validators.shellcheck({"bad": "#!/usr/bin/env bash\nrm -rf $DIR/*\n"})
    assert "SC2115" in report or "SC2086" in report


def test_shellcheck_skips_only_scripts_it_found_clean(tmp_path, monkeypatch):
    """A script found clean is not checked again (this session or the next); a bad one is, with the same report
    as without the record."""
    good, bad = "#!/usr/bin/env bash\necho ok\n", "#!/usr/bin/env bash\nrm -rf $DIR/*\n"
    unrecorded = validators.shellcheck({"good": good, "bad": bad})
    monkeypatch.setattr(validators, "shellcheck_clean", tmp_path)
    checked, run = [], subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: checked.append(sorted(Path(a).name for a in args[3:]))
                        or run(args, **kw))
    assert validators.shellcheck({"good": good}) == validators.shellcheck({"same text": good}) == ""
    reports = [validators.shellcheck({"good": good, "bad": bad}) for _ in range(2)]
    assert checked == [["good.sh"], ["bad.sh"], ["bad.sh"]]
    assert {re.sub(r"\S*/bad\.sh", "bad.sh", r) for r in reports} == {re.sub(r"\S*/bad\.sh", "bad.sh", unrecorded)}
    monkeypatch.setattr(validators, "shellcheck_clean", tmp_path / "other")  # another shellcheck or record: checked
    (tmp_path / "other").mkdir()
    assert validators.shellcheck({"good": good}) == "" and checked[-1] == ["good.sh"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_cloud_init_document_is_valid(stack):
    documents = validators.cloud_init_documents(stack_run(stack))
    if not documents:
        pytest.skip(f"{stack} renders no cloud-init document (servers are configured over SSH)")
    for name, document in documents.items():
        assert validators.cloud_init_problems(document) == [], name


@pytest.mark.parametrize("document, problem", [
    ("#cloud-config\npackages: [nftables]\n", None),
    ("packages: [nftables]\n", "header"),
    ("#cloud-config\npackages: [nftables\n", "not YAML"),
    ("#cloud-config\n- a\n", "mapping"),
    # cloud-init's own schema (tools/ci/cloud_init_schema.py):
    ("#cloud-config\nwrite_files:\n- {path: /etc/x, content: eA==, encoding: base32}\n",
     "write_files.0.encoding: 'base32' is not one of"),
    ("#cloud-config\nbootcmd: systemctl start x\n", "bootcmd: 'systemctl start x' is not of type 'array'"),
    ("#cloud-config\nwrite_files:\n- {content: x}\n", "'path' is a required property"),
    ("#cloud-config\nssh_authorized_keys: ssh-ed25519 AAAA\n", "is not of type 'array'"),
])
def test_cloud_init_validator(document, problem):
    found = validators.cloud_init_problems(document)
    assert (found == []) if problem is None else (problem in found[0]), found


def test_cloud_init_schema_tests_skip_saying_why_but_fail_where_ci_requires_them(monkeypatch, tmp_path):
    monkeypatch.setattr(validators.cloud_init_schema, "SCHEMA", tmp_path / "absent.json")
    monkeypatch.delenv(validators.REQUIRE_NODE_TOOLS, raising=False)
    with pytest.raises(pytest.skip.Exception, match="`make test` extracts it"):
        validators.cloud_init_problems("#cloud-config\nruncmd: []\n")
    monkeypatch.setenv(validators.REQUIRE_NODE_TOOLS, "1")
    with pytest.raises(pytest.fail.Exception, match="the schema check must run here"):
        validators.cloud_init_problems("#cloud-config\nruncmd: []\n")


def test_cloud_init_schema_comes_from_the_pinned_package_by_checksum(monkeypatch, tmp_path):
    from tests.test_pipelines import _make
    from tools.ci import cloud_init_schema as fetch

    assert re.fullmatch(r"[0-9a-f]{64}", fetch.SHA256) and fetch.VERSION.replace("+", "%2b") in fetch.URL
    monkeypatch.setattr(fetch, "DIRECTORY", tmp_path)
    monkeypatch.setattr(fetch, "SCHEMA", tmp_path / "schema.json")
    monkeypatch.setattr(fetch, "STAMP", tmp_path / "VERSION")
    monkeypatch.setattr(fetch, "download", lambda: b"!<arch>\nnot the package")
    assert fetch.main() == 1 and not (tmp_path / "schema.json").exists(), "a checksum mismatch installs nothing"
    assert "tools/ci/cloud-init/" in (mockrun.ROOT / ".gitignore").read_text().splitlines(), "nothing fetched is committed"
    assert "tools.ci.cloud_init_schema" in _make("-n", "test").stdout, "make test installs it before the tests"


def test_ci_entry_script_passes_shellcheck():
    assert validators.shellcheck({"ci-run": (validators.ROOT / ".ci" / "run").read_text()}) == ""


def test_pipeline_validator_works_offline_and_rejects_bad_files(tmp_path):
    """Several files to one check (a process per schema) and each file's own word back."""
    gitlab, github = validators.PIPELINE_SCHEMAS[".gitlab-ci.yml"], validators.PIPELINE_SCHEMAS[".github/workflows"]
    files = {".gitlab-ci.yml": ("test:\n  image: python:3.12\n  script: [make test]\n", gitlab),
             "bad.gitlab-ci.yml": ("test:\n  script: 42\n  when: sometimes\n", gitlab),
             "unparsable.gitlab-ci.yml": ("test: [\n", gitlab),
             "wf.yml": ("on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps: [{run: make test}]\n", github),
             "bad-wf.yml": ("on: push\njobs:\n  t:\n    steps: 3\n", github)}
    for name, (text, _schema) in files.items():
        (tmp_path / name).write_text(text)
    problems = {path.name: found for path, found in
                validators.pipeline_problems({tmp_path / name: schema for name, (_text, schema) in files.items()}).items()}
    assert problems[".gitlab-ci.yml"] == problems["wf.yml"] == [], "a good file in a batch with bad ones stays good"
    assert [p.split(":")[0] for p in problems["bad.gitlab-ci.yml"]] == ["$.test.script", "$.test.when"]
    assert problems["unparsable.gitlab-ci.yml"][0].startswith("not parsed") and problems["bad-wf.yml"]
    with pytest.raises(AssertionError, match="check-jsonschema failed"):  # a file it cannot read is no pass
        validators.pipeline_problems({tmp_path / "absent.yml": gitlab})


# A secret expanded into a command line (`--password "$X"`, `--password=$(X)`) is readable in /proc by anything
# sharing the node's PID namespace while the process runs. Known exception, written down: sctool takes CQL
# credentials only as flags (scylla-manager pkg/command/cluster/clusterupdate/cmd.go has no file or environment
# form), in a short-lived Job of its own namespace.
SECRET_ON_COMMAND_LINE = re.compile(r"--(password|passwd|token|secret)[= ]+\"?\$")
SECRET_FLAG_EXCEPTIONS = {"scylla-manager-credentials"}


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_no_secret_is_expanded_into_a_command_line(stack):
    found = []
    for resource in stack_run(stack).resources:
        text = json.dumps(resource.inputs, default=str).replace('\\"', '"')  # JSON-escaped quotes as written
        if SECRET_ON_COMMAND_LINE.search(text) and not any(e in resource.name for e in SECRET_FLAG_EXCEPTIONS):
            found.append(resource.name)
    assert not found


def test_the_command_line_check_catches_a_password_flag():
    assert SECRET_ON_COMMAND_LINE.search('airflow users create --password "${AIRFLOW_ADMIN_PASSWORD}"')
    assert SECRET_ON_COMMAND_LINE.search("tool --password=$(DB_PASSWORD)")
    assert not SECRET_ON_COMMAND_LINE.search("printf '%s' \"$PW\" | tool --password-stdin")
