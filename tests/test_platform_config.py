"""The platform layer's config: per-environment switches, what each component needs (refused before any
resource when switched off), the runner token and alerting secrets, and the `platform` stack output."""

from __future__ import annotations

import pytest

from config import load
from config.platform import COMPONENTS, NEEDS
from tests.conftest import SECRET_KEYS, base_raw
from tests.stores import config_problems

HEAVY = ("gitlab", "airflow", "spark", "jupyterhub", "mlflow", "kubeflow")


def _platform(**settings) -> dict:
    return base_raw(platform=settings)


def test_production_runs_every_component_and_staging_only_observability():
    prod = load("test", base_raw(), SECRET_KEYS).config.platform
    assert prod.enabled() == list(COMPONENTS)
    staging = load("test", base_raw(profile="staging", clusterServices={"tls": {"acmeEmail": "ops@example.com"}}),
                   SECRET_KEYS).config.platform
    assert staging.enabled() == ["monitoring", "logs", "traces"]
    assert staging.monitoring.retention == "3d" and prod.monitoring.retention == "15d"


def test_the_platform_output_says_what_runs_and_where(production, staging):
    prod, stag = production.outputs["platform"], staging.outputs["platform"]
    assert set(prod) == {*COMPONENTS, "runner"}
    assert {n for n, info in prod.items() if info["enabled"]} == {*COMPONENTS, "runner"}  # GitLab brings its runner
    assert [n for n in HEAVY if stag[n]["enabled"]] == []
    domain = production.config["adplatform:domain"]
    # The published URLs, exactly: one per routed host (NEEDS hostnames), none for the unrouted components.
    assert {n: info["urls"] for n, info in prod.items() if info["urls"]} == {
        "monitoring": {"grafana": f"https://grafana.{domain}"},
        "gitlab": {"gitlab": f"https://gitlab.{domain}", "registry": f"https://registry.{domain}"},
        "airflow": {"airflow": f"https://airflow.{domain}"},
        "jupyterhub": {"jupyter": f"https://jupyter.{domain}"},
        "mlflow": {"mlflow": f"https://mlflow.{domain}"},
        "kubeflow": {"kubeflow": f"https://kubeflow.{domain}"}}  # behind the single sign-on's proxy
    assert {host for n in COMPONENTS for host in NEEDS[n].hostnames} == {
        host for info in prod.values() for host in info["urls"]}
    assert {n: info["urls"] for n, info in stag.items() if info["urls"]} == {
        "monitoring": {"grafana": f"https://grafana.{staging.config['adplatform:domain']}"}}
    assert "platform" not in production.secret_outputs, "URLs only: nothing secret in this output"


def test_a_component_whose_store_is_off_is_refused_naming_both_keys():
    raw = base_raw(dataPlane={"dragonfly": {"enabled": False}}, layers={"adServices": False})
    assert config_problems(raw) == [
        "adplatform:platform.gitlab.enabled needs dataPlane.dragonfly.enabled (platform.gitlab keeps its data there); "
        "enable the store or set platform.gitlab.enabled: false, got True"]
    load("test", base_raw(dataPlane={"dragonfly": {"enabled": False}}, platform={"gitlab": {"enabled": False}},
                          layers={"adServices": False}), SECRET_KEYS)


def test_every_database_a_component_keeps_must_be_configured():
    raw = base_raw(dataPlane={"postgres": {"databases": ["gitlab", "airflow", "jupyterhub"]}})
    [msg] = config_problems(raw)
    assert msg.startswith("adplatform:dataPlane.postgres.databases must include 'mlflow': platform.mlflow")
    needed = sorted({n.database for n in NEEDS.values() if n.database})
    load("test", base_raw(dataPlane={"postgres": {"databases": needed}}), SECRET_KEYS)


def test_routed_components_need_their_gateway_hostnames_unless_a_wildcard_is_issued():
    services = {"tls": {"acmeEmail": "ops@example.com"}, "gateway": {"hostnames": ["gitlab", "grafana"]}}
    raw = base_raw(clusterServices={**base_raw()["clusterServices"], **services})
    found = config_problems(raw)
    assert any(m.startswith("adplatform:clusterServices.gateway.hostnames must include ['registry'] for "
                            "platform.gitlab") for m in found), found
    dns01 = {"dns01": {"provider": "cloudflare", "zone": "ads.example.com"}, "acmeEmail": "ops@example.com"}
    raw["clusterServices"]["tls"] = dns01
    raw["dnsApiToken"] = "cloudflare-token"
    load("test", raw, SECRET_KEYS)


def test_the_runner_needs_its_token_and_a_gitlab_to_register_with():
    raw = _platform(gitlab={"runner": {"enabled": True, "url": "https://gitlab.other.example.com"}})
    [msg] = config_problems(raw)
    assert msg.startswith("adplatform:gitlabRunnerToken must be set with --secret when platform.gitlab.runner "
                          "registers with another stack's GitLab")
    raw["gitlabRunnerToken"] = "glrt-test"
    load("test", raw, SECRET_KEYS | {"gitlabRunnerToken"})
    raw["platform"] = {"gitlab": {"enabled": False, "runner": {"enabled": True}}}
    assert config_problems(raw, SECRET_KEYS | {"gitlabRunnerToken"}) == [
        "adplatform:platform.gitlab.runner.url must name the GitLab to register with (https://...) when this stack "
        "runs no GitLab (platform.gitlab.enabled: false)"]
    raw["platform"]["gitlab"]["runner"]["url"] = "https://gitlab.ads.example.com/"
    cfg = load("test", raw, SECRET_KEYS | {"gitlabRunnerToken"}).config
    assert cfg.platform.gitlab.runner.url == "https://gitlab.ads.example.com"


def test_a_runner_token_in_plain_text_is_refused():
    raw = _platform(gitlab={"runner": {"enabled": True}})
    raw["gitlabRunnerToken"] = "glrt-test"
    assert config_problems(raw) == [
        "adplatform:gitlabRunnerToken must be stored as a secret (pulumi config set --secret "
        "adplatform:gitlabRunnerToken ...), it is in plain text in the stack file"]


def _alerting(**alerting) -> dict:
    return _platform(monitoring={"alerting": alerting})


def test_alert_routes_name_configured_receivers_whose_urls_are_secrets():
    raw = _alerting(receivers=[{"name": "oncall", "type": "pagerduty"}],
                    routes=[{"receiver": "team-ads", "matchers": ['severity="critical"']}], defaultReceiver="oncall")
    found = config_problems(raw)
    assert "adplatform:platform.monitoring.alerting.routes[0].receiver must name one of the receivers (oncall), " \
           "got 'team-ads'" in found
    assert any(m.startswith("adplatform:alertingSecrets.oncall must be set with --secret") for m in found), found
    raw["platform"]["monitoring"]["alerting"]["routes"][0]["receiver"] = "oncall"
    raw["alertingSecrets"] = {"oncall": "pd-routing-key"}
    loaded = load("test", raw, SECRET_KEYS | {"alertingSecrets"})
    assert set(loaded.secrets.alerting) == {"oncall"}


def test_alerting_secrets_must_be_an_object_of_receivers():
    raw = _alerting()
    raw["alertingSecrets"] = "https://hooks.example.com/x"
    assert config_problems(raw, SECRET_KEYS | {"alertingSecrets"}) == [
        "adplatform:alertingSecrets must be an object of receiver name -> URL or key, set with --secret --path "
        "'adplatform:alertingSecrets.<name>', got 'a plain value'"]


@pytest.mark.parametrize("value, message", [
    ({"retention": "15"}, "must be a duration in hours, days or weeks"),
    ({"alerting": {"routes": [{"receiver": "x", "matchers": ["severity critical"]}]}}, "must be label=value"),
    ({"alerting": {"receivers": [{"name": "oncall", "type": "email"}]}}, "must be one of slack, webhook, pagerduty"),
])
def test_bad_monitoring_values_name_the_key(value, message):
    [msg] = config_problems(_platform(monitoring=value))
    assert msg.startswith("adplatform:platform.monitoring.") and message in msg, msg
