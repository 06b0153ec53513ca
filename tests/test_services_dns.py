"""external-dns: records for every public hostname, only records this stack owns (issue 21, DNS)."""

from __future__ import annotations

from functools import lru_cache

import pytest

from components.charts import EXTERNAL_DNS, HETZNER_DNS_WEBHOOK_IMAGE
from components.services import dns
from config import ConfigError, load
from tests.conftest import SECRET_KEYS, UP_TO_SERVICES, base_raw, run_raw
from tools.mockrun import Run, Secret

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DOMAIN = "ads.example.com"


def raw_with(**services) -> dict:
    raw = base_raw()
    raw["clusterServices"] = {**raw["clusterServices"], **services}
    raw["dnsApiToken"] = "dns-test-token"
    return raw


def up_to_services(raw: dict) -> Run:
    """The run of `raw` without the layers above the cluster services (no test here reads them)."""
    return run_raw({**raw, "layers": UP_TO_SERVICES})


@lru_cache(maxsize=None)
def cloudflare_dns01() -> Run:
    """Only tls.dns01 configured: external-dns follows it (test_services_gateway's cloudflare run: the same config)."""
    return up_to_services(raw_with(tls={"acmeEmail": "ops@example.com",
                                        "dns01": {"provider": "cloudflare", "zone": "example.com"}}))


@lru_cache(maxsize=None)
def hetzner_records() -> Run:
    """Hetzner DNS for records (no DNS-01 solver for it): per-host certificates over HTTP-01."""
    return up_to_services(raw_with(dns={"provider": "hetzner", "zone": "example.com", "policy": "upsert-only"}))


def release_values(run: Run) -> dict:
    return run.named("external-dns", RELEASE).inputs["values"]


def test_records_follow_the_dns01_provider_owned_by_this_stack_only():
    run = cloudflare_dns01()
    chart = run.named("external-dns", RELEASE).inputs
    assert (chart["chart"], chart["version"], chart["repositoryOpts"]["repo"]) == (
        "external-dns", EXTERNAL_DNS.version, EXTERNAL_DNS.repo)
    values = release_values(run)
    assert values["provider"] == {"name": "cloudflare"}
    assert values["sources"] == ["gateway-httproute", "gateway-grpcroute"], "the gateway's routes, no Services"
    assert values["registry"] == "txt" and values["txtOwnerId"] == "adplatform-test"
    assert values["policy"] == "sync", "a removed hostname's record goes too (only records this stack owns)"
    assert values["domainFilters"] == [DOMAIN]
    assert "%{record_type}" in values["txtPrefix"], "ownership TXT must not share a CNAME's name"
    assert values["env"] == [{"name": "CF_API_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": dns.SECRET, "key": "api-token"}}}], "the token comes from the Secret, never from values"
    assert "dns-test-token" not in repr(values)


def test_credentials_are_a_secret_of_its_own_namespace():
    run = cloudflare_dns01()
    secret = run.named("external-dns-credentials", SECRET)
    assert secret.inputs["metadata"]["namespace"] == "external-dns"
    assert isinstance(secret.inputs["stringData"], Secret)
    assert secret.inputs["stringData"].value == {"api-token": "dns-test-token"}
    release = run.named("external-dns", RELEASE)
    needs = {run.by_urn(u).name for u in release.dependencies}
    assert {"external-dns-credentials", "gateway-shared", "netpol-external-dns-default-deny"} <= needs


def test_namespace_reaches_only_https_outside_the_cluster():
    run = cloudflare_dns01()
    internet = run.named("netpol-external-dns-allow-egress-internet", NETPOL).inputs["spec"]
    assert [p["port"] for p in internet["egress"][0]["ports"]] == [443]
    labels = run.named("ns-external-dns", "kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_hetzner_runs_the_pinned_webhook_with_the_token_from_the_secret():
    run = hetzner_records()
    values = release_values(run)
    repository, tag = HETZNER_DNS_WEBHOOK_IMAGE
    webhook = values["provider"]["webhook"]
    assert values["provider"]["name"] == "webhook"
    assert webhook["image"] == {"repository": repository, "tag": tag}
    assert webhook["env"] == [{"name": "HETZNER_API_KEY", "valueFrom": {"secretKeyRef": {
        "name": dns.SECRET, "key": "api-token"}}}]
    assert values["policy"] == "upsert-only"
    assert run.outputs["dns"]["managedBy"].startswith("external-dns (hetzner")


def test_rfc2136_flags_and_tsig_secret_from_the_environment():
    dns_cfg = load("test", raw_with(dns={"provider": "rfc2136", "zone": "example.com",
                                         "nameserver": "[2001:db8::53]:5353", "tsigKeyName": "ext"}),
                   SECRET_KEYS).config.cluster_services.dns_records()
    found = dns.provider_values(dns_cfg)
    assert found["extraArgs"]["rfc2136-host"] == "2001:db8::53"
    assert found["extraArgs"]["rfc2136-port"] == "5353"
    assert found["extraArgs"]["rfc2136-tsig-secret-alg"] == "hmac-sha512"
    assert found["env"] == [{"name": "EXTERNAL_DNS_RFC2136_TSIG_SECRET", "valueFrom": {"secretKeyRef": {
        "name": dns.SECRET, "key": "tsig-secret"}}}]
    assert dns.egress_ports(dns_cfg) == (443, 5353)


@pytest.mark.parametrize("nameserver, host", [("ns1.example.net", "ns1.example.net"),
                                              ("ns1.example.net:53", "ns1.example.net"),
                                              ("[2001:db8::1]:53", "2001:db8::1")])
def test_rfc2136_host(nameserver, host):
    assert dns.rfc2136_host(nameserver) == host


def test_without_a_provider_nothing_is_installed_and_the_records_are_listed(staging):
    assert not [r for r in staging.resources if r.name == "external-dns"]
    records = staging.outputs["dns"]
    assert records["managedBy"].startswith("you: create these records")
    assert records["records"], "the hostnames to point at the gateway"
    assert all(name.endswith(records["domain"]) for name in records["records"])


def test_dns_config_errors_name_the_key():
    raw = raw_with(dns={"provider": "route53", "zone": "example.com"})
    with pytest.raises(ConfigError) as err:
        load("test", raw, SECRET_KEYS)
    assert any(str(p).startswith("adplatform:clusterServices.dns.hostedZoneId must be set for the route53")
               for p in err.value.problems)
    raw = raw_with(dns={"provider": "gandi", "zone": "example.com"})
    with pytest.raises(ConfigError) as err:
        load("test", raw, SECRET_KEYS)
    assert "clusterServices.dns.provider must be one of cloudflare, route53, rfc2136, hetzner" in str(err.value)
    raw = raw_with(dns={"provider": "hetzner", "zone": "example.com"})
    del raw["dnsApiToken"]
    with pytest.raises(ConfigError) as err:
        load("test", raw, SECRET_KEYS)
    assert "adplatform:dnsApiToken must be set with --secret for the hetzner external-dns provider" in str(err.value)


def test_dns_can_be_turned_off_while_dns01_stays():
    raw = raw_with(tls={"acmeEmail": "ops@example.com", "dns01": {"provider": "cloudflare", "zone": "example.com"}},
                   dns={"provider": "cloudflare", "zone": "example.com", "enabled": False})
    assert load("test", raw, SECRET_KEYS).config.cluster_services.dns_records() is None
