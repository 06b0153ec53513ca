"""What must hold before a control-plane move may make its provider the stack's (the "flip", docs/providers.md "Not
supported yet: the last original member and the provider flip", items 2 and 7): the K3s layer names the initialising
server by identity, and Cilium's MTU and OpenBao's seal do not follow whichever provider's part comes first."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from providers import hybrid
from config import load
from config.errors import ConfigError
from config.model import LOCATION_LABEL
from tests.conftest import SECRET_KEYS, k3s_config, lower_layers, node_labels
from tests.runs import script_param
from tests.test_hybrid import (CP_MOVE_STACK, _agent_installs_chain, _agents_in_config_order,  # noqa: F401
                               _internet_problems, _moved, aws_primary, control_plane_migration, internet,
                               internet_config)
from tools import mockrun

COMMAND = "command:remote:Command"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _secondaries_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The combined Infrastructure with the other provider's nodes before the stack provider's, as a flip would put
    them (the new stack provider's part first)."""
    combine = hybrid.combine

    def reordered(primary, secondaries, *args):
        infra = combine(primary, secondaries, *args)
        ours = {n.name for n in primary.nodes}
        return dataclasses.replace(infra, nodes=[*(n for n in infra.nodes if n.name not in ours),
                                                 *(n for n in infra.nodes if n.name in ours)])
    monkeypatch.setattr(hybrid, "combine", reordered)


def _uncached(values: dict) -> mockrun.Run:
    # Never through the run cache: a monkeypatched program must not be recorded under the config's key.
    return mockrun.execute(*internet_config(values), CP_MOVE_STACK)


def _servers(run: mockrun.Run) -> list[str]:
    return sorted(r.name.removeprefix("k3s-") for r in run.of_type(COMMAND)
                  if r.name.startswith("k3s-control-plane-"))


def _probe(run: mockrun.Run, node: str) -> bool:
    """Whether `node`'s install checks for a running cluster before starting one (only the initialiser's does)."""
    return script_param(run.named(f"k3s-{node}", COMMAND).inputs["stdin"].value, "EXISTING_CLUSTER_PROBE") != ""


def test_control_plane_1_initialises_the_cluster_whichever_part_comes_first(monkeypatch):
    _secondaries_first(monkeypatch)
    [(_, values)] = [s for s in control_plane_migration() if s[0] == "control-plane-4 added on aws"]
    run = _uncached(values)
    assert [n for n in _servers(run) if "server" not in k3s_config(run, n)] == ["control-plane-1"]
    assert _probe(run, "control-plane-1") and not _probe(run, "control-plane-4")
    # The kubeconfig is read where the cluster was initialised, after its install.
    host = run.named("kubeconfig", COMMAND).inputs["connection"].value["host"]
    assert host == run.named("k3s-control-plane-1", COMMAND).inputs["connection"].value["host"]


def test_the_agents_restart_chain_keeps_its_order_whichever_part_comes_first(monkeypatch):
    # Item 4: the chain of agents' installs follows the config's pools, not the parts' order the flip reverses (a new
    # order would restart the pools in another order than the docs and the previous steps had them).
    _secondaries_first(monkeypatch)
    assert _agent_installs_chain(_uncached(control_plane_migration()[-1][1])) == _agents_in_config_order()


def test_once_control_plane_1_is_gone_every_server_joins(monkeypatch):
    # Every original member removed (refused today: the stack's balancer fronts only its own servers; the flip lifts
    # that): no remaining server may be rendered as one that starts a cluster.
    _secondaries_first(monkeypatch)
    monkeypatch.setattr(hybrid, "control_plane_move_problems", lambda cfg: [])
    values = copy.deepcopy(control_plane_migration()[0][1])
    values["cluster"]["controlPlane"] = {"move": _moved(3, 3)}
    run = _uncached(values)
    assert _servers(run) == ["control-plane-4", "control-plane-5", "control-plane-6"]
    assert all("server" in k3s_config(run, n) and not _probe(run, n) for n in _servers(run))


def test_cilium_has_one_mtu_whichever_provider_is_the_stacks(internet, aws_primary):
    # Hetzner with an AWS pool, and AWS with a Hetzner pool: the smallest of every part's network and link
    # (hybrid.parts_mtu), not the stack provider's (AWS alone would be the internet's 1500).
    mtus = {run.named("cilium", RELEASE).inputs["values"]["MTU"] for run in (internet, aws_primary)}
    assert mtus == {1450}


@pytest.mark.parametrize("provider, zones, seal, refused", [
    ("aws", ["eu-central-1a"], None, True),  # static on hetzner, awskms on aws
    ("gcp", ["europe-west3-a"], None, True),
    ("aws", ["eu-central-1a"], "static", False),  # stated: the flip keeps it
    ("azure", ["1"], None, False)])  # no key service on either: static both ways
def test_a_move_states_the_seal_where_the_providers_defaults_differ(provider, zones, seal, refused):
    values = copy.deepcopy(control_plane_migration()[0][1])
    values["cluster"]["controlPlane"] = {"move": {"provider": provider, "locations": zones, "added": 1}}
    values["clusterServices"]["secrets"] = {"seal": {"type": seal}} if seal else {}
    found = [str(p) for p in hybrid.move_seal_problems(load("test", lower_layers(values), SECRET_KEYS).config)]
    assert bool(found) == refused, found
    if refused:  # through the whole program too: refused before any resource
        assert any(p.startswith(found[0]) for p in _internet_problems(values))
        assert found[0].startswith("adplatform:clusterServices.secrets.seal.type must be set while the control plane "
                                   f"moves to {provider}")
        assert "set the seal in effect, static" in found[0]


# Each provider's own default location and image (cluster.providers): the Hetzner pool and the AWS pool and members
# name no location of their own, so every server is placed by its provider's entry.
OWN_DEFAULTS = {"hetzner": {"location": "nbg1", "image": "ubuntu-22.04"},
                "aws": {"location": "eu-central-1b", "image": "ami-0123456789abcdef0"}}


def _flip(provider: str) -> dict:
    """The flip's last member step, with `provider` the stack's: every original member gone, three on AWS (refused
    today: control_plane_move_problems), the edge pool on AWS and every other pool on Hetzner whichever is the stack's,
    none with locations of its own."""
    values = copy.deepcopy(control_plane_migration()[-1][1])  # prepared: no cluster.location (defaults_problems)
    cluster = values["cluster"]
    cluster.update(providers=copy.deepcopy(OWN_DEFAULTS), controlPlane={"move": {
        "provider": "aws", "added": 3, "removed": 3, "prepareFlip": True}})
    # Every pool, the profile's too (merged by name), named with its provider and no locations of its own.
    given = {pool["name"]: pool for pool in cluster["pools"]}
    pools = load("test", lower_layers(values), SECRET_KEYS).config.cluster.pools
    cluster["pools"] = [{**{k: v for k, v in given.get(pool.name, {}).items() if k != "locations"}, "name": pool.name,
                         "provider": "aws" if pool.name == "edge" else "hetzner"} for pool in pools]
    values["provider"] = provider
    return values


def _placed(run: mockrun.Run) -> dict[str, tuple]:
    """server -> where and from what it runs: a Hetzner server's location and image, an AWS instance's subnet (one
    per zone) and AMI."""
    hetzner = {r.name: (r.inputs["location"], r.inputs["image"]) for r in run.of_type("hcloud:index/server:Server")}
    aws = {r.name: (r.inputs["subnetId"], r.inputs["ami"]) for r in run.of_type("aws:ec2/instance:Instance")}
    return {**hetzner, **aws}


def test_a_flip_keeps_every_servers_location_and_image(monkeypatch):
    monkeypatch.setattr(hybrid, "control_plane_move_problems", lambda cfg: [])
    runs = {provider: _uncached(_flip(provider)) for provider in ("hetzner", "aws")}
    before, after = (_placed(run) for run in runs.values())
    assert before == after
    assert {"control-plane-4", "control-plane-5", "control-plane-6", "edge-1", "general-1"} <= before.keys()
    # Each in its provider's own default location, from its own image.
    located = {node: node_labels(runs["aws"], node)[LOCATION_LABEL] for node in before}
    assert located == {node: OWN_DEFAULTS["hetzner" if image.startswith("ubuntu") else "aws"]["location"]
                       for node, (_, image) in before.items()}
    assert {image for _, image in before.values()} == {"ubuntu-22.04", "ami-0123456789abcdef0"}


def _defaults_problems(values: dict) -> list[str]:
    try:
        loaded = load("test", lower_layers(values), SECRET_KEYS)
    except ConfigError as refused:
        return [str(p) for p in refused.problems]
    return [str(p) for p in hybrid.validate(loaded)]


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c.update(providers={"gcp": {"location": "europe-west3-a"}}),
     "adplatform:cluster.providers.gcp must name a provider this stack's nodes run on (hetzner, aws)"),
    (lambda c: c.update(location="fsn1"),  # beside the prepared step's cluster.providers.hetzner.location
     "adplatform:cluster.providers.hetzner.location must not be set together with cluster.location"),
    (lambda c: c.update(providers={}, location="fsn1"),
     "adplatform:cluster.location must not be set while cluster.controlPlane.move.prepareFlip is set"),
    (lambda c: c.update(providers={"aws": {"image": "ami 1"}}),
     "adplatform:cluster.providers.aws.image must be the provider's image name"),
    # The part's own check (Hetzner's locations), under the entry's key.
    (lambda c: c.update(providers={"hetzner": {"location": "xyz9"}}), "adplatform:cluster.providers.hetzner.location "
     "must be"),
])
def test_each_providers_own_defaults_are_checked_naming_the_key(edit, expected):
    values = copy.deepcopy(control_plane_migration()[-1][1])  # the flip prepared
    edit(values["cluster"])
    found = _defaults_problems(values)
    assert any(p.startswith(expected) for p in found), found


def test_the_prepared_flips_own_location_renders_as_cluster_location_did():
    # The prepared step states Hetzner's location as its own; the step before it as cluster.location: the same place.
    *_, (_, before), (_, prepared) = control_plane_migration()
    assert prepared["cluster"]["providers"] == {"hetzner": {"location": before["cluster"]["location"]}}
    assert "location" not in prepared["cluster"] and not _defaults_problems(prepared)
