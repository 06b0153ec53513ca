"""Run the program in-process under Pulumi mocks and record every resource it registers.

Shared by the tests and the offline plan: no Pulumi CLI, no network, no credentials. Each resource
is recorded with its type, name, parent, dependencies, provider, protect flag and inputs (secret
inputs kept as `Secret` so tests can assert that they stayed secret).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "adplatform"
# Secrets a stack needs but a repository never holds; offline they are placeholders, shown as [secret].
OFFLINE_SECRETS = {
    "adplatform:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\noffline-placeholder\n-----END OPENSSH PRIVATE KEY-----",
    "hcloud:token": "offline-placeholder-hcloud-token-0000000000000000000000000000000000",
}
# Secrets only stacks using a feature need (so an older tree, planned by plan-diff, is not handed
# keys it does not know): stack file key path -> placeholders.
FEATURE_SECRETS = {
    ("adplatform:clusterServices", "backups", "s3"): {
        "adplatform:backupAccessKeyId": "offline-placeholder-access-key",
        "adplatform:backupSecretAccessKey": "offline-placeholder-secret-key",
    },
    ("adplatform:clusterServices", "tls", "dns01"): {"adplatform:dnsApiToken": "offline-placeholder-dns-token"},
}
FAKE_KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: b2ZmbGluZQ==
    server: https://127.0.0.1:6443
  name: default
contexts:
- context: {cluster: default, user: default}
  name: default
current-context: default
kind: Config
users:
- name: default
  user: {client-certificate-data: b2ZmbGluZQ==, client-key-data: b2ZmbGluZQ==}
"""


@dataclass(frozen=True)
class Secret:
    """An input that reached the engine marked secret (Pulumi encrypts it in state)."""

    value: Any

    def __repr__(self) -> str:
        return "[secret]"


@dataclass
class Resource:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    dependencies: list[str]
    provider: str
    protect: bool
    inputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    config: dict[str, Any] = field(default_factory=dict)  # the stack config it ran with; secrets as Secret

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str, type_: str | None = None) -> Resource:
        found = [r for r in self.resources if r.name == name and (type_ is None or r.type == type_)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r} (type {type_})")
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)


def _unwrap(value: Any) -> Any:
    if rpc.is_rpc_secret(value):
        return Secret(_unwrap(rpc.unwrap_rpc_secret(value)))
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.recorded: list[Resource] = []

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            pulumi_mocks._ensure_event_loop()
            self.recorded.append(Resource(
                urn=response.urn, type=request.type, name=request.name, custom=request.custom,
                parent=request.parent, dependencies=list(request.dependencies), provider=request.provider,
                protect=bool(request.protect), inputs=_unwrap(rpc.deserialize_properties(request.object)),
                options={"ignoreChanges": list(request.ignoreChanges),
                         "additionalSecretOutputs": list(request.additionalSecretOutputs),
                         "deleteBeforeReplace": request.deleteBeforeReplace}))
        return response


def _fake_id(name: str) -> str:
    return str(int(hashlib.sha256(name.encode()).hexdigest()[:7], 16))


def _fake_ip(name: str, network: str) -> str:
    net = ipaddress.ip_network(network)
    offset = int(hashlib.sha256(name.encode()).hexdigest()[:6], 16) % (net.num_addresses - 4) + 2
    return str(net.network_address + offset)


class OfflineMocks(pulumi.runtime.Mocks):
    """Plausible provider outputs: numeric ids, documentation-range public IPs, private IPs."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        rid = _fake_id(args.name)
        if args.typ == "hcloud:index/server:Server":
            outputs["ipv4Address"] = _fake_ip(args.name, "198.51.100.0/24")
            outputs["ipv6Address"] = "2001:db8::" + rid[-4:]
            outputs["networks"] = [dict(n, ip=_fake_ip(args.name, "10.0.1.0/24"))
                                   for n in args.inputs.get("networks", [])]
        elif args.typ == "hcloud:index/loadBalancer:LoadBalancer":
            outputs["ipv4"] = _fake_ip(args.name, "203.0.113.0/24")
        elif args.typ == "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork":
            outputs["ip"] = "10.0.1.254"
        elif args.typ == "random:index/randomPassword:RandomPassword":
            seed = f"offline-{args.name}-"
            outputs["result"] = (seed + "x" * 64)[:int(args.inputs.get("length", 16))]
        elif args.typ == "command:remote:Command":
            create = args.inputs.get("create", "")
            outputs["stdout"] = FAKE_KUBECONFIG if "k3s.yaml" in str(create) else ""
            outputs["stderr"] = ""
        return f"{rid}", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def stack_config(stack: str) -> tuple[dict[str, Any], set[str]]:
    """Config of a stack file, with secure values and missing secrets replaced by placeholders."""
    path = ROOT / f"Pulumi.{stack}.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    values: dict[str, Any] = {}
    secret: set[str] = set()
    for key, value in (data.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[key] = OFFLINE_SECRETS.get(key, "offline-placeholder")  # feature secrets: any placeholder
            secret.add(key)
        else:
            values[key] = value
    provider = values.get("adplatform:provider")
    for key, placeholder in OFFLINE_SECRETS.items():
        namespace = key.split(":")[0]
        if key not in values and (namespace == PROJECT or namespace == {"hetzner": "hcloud"}.get(provider)):
            values[key] = placeholder
            secret.add(key)
    for path, placeholders in FEATURE_SECRETS.items():
        node: Any = values
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        for key, placeholder in placeholders.items():
            if node is not None and key not in values:
                values[key] = placeholder
                secret.add(key)
    return values, secret


def stacks() -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))


# The monitor of the latest run, so a test can see what was registered before an exception.
last_monitor: RecordingMonitor | None = None


def run(values: dict[str, Any], secret_keys: set[str], stack: str = "test") -> Run:
    """Run program.main() with exactly this config; raises what the program raises."""
    global last_monitor
    import program  # imported late: the program reads config when main() runs, not on import

    mocks = OfflineMocks()
    monitor = last_monitor = RecordingMonitor(mocks)
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    runtime_config.set_all_config(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}, list(secret_keys))
    _sync_await(run_pulumi_func(program.main))

    root = settings.get_root_resource()
    outputs, secret_outputs = {}, set()
    for key, value in (getattr(root, "outputs", None) or {}).items():
        out = pulumi.Output.from_input(value)
        outputs[key] = _sync_await(out.future())
        if _sync_await(out.is_secret()):
            secret_outputs.add(key)
    config = {k: Secret(v) if k in secret_keys else v for k, v in values.items()}
    return Run(stack, monitor.recorded, outputs, secret_outputs, config)


def run_stack(stack: str, overrides: dict[str, Any] | None = None) -> Run:
    values, secret = stack_config(stack)
    values.update({(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in (overrides or {}).items()})
    return run(values, secret, stack)
