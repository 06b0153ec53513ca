"""The rules of the adplatform policy pack, as plain functions over one resource.

This module imports only the standard library, so the same rules run in three places:
CrossGuard (`pulumi preview --policy-pack policy`, through `policies()`), the offline plan
(`tools/plan`, through `evaluate()`) and the unit tests (directly). Inside the pack it is imported
as `rules`; from the repository as `policy.rules`.

A secret input is any object of a class named `Secret` with a `value` attribute: the offline plan
records secrets that way and the pack's entry point (`__main__.py`) keeps them marked the same way.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Only these ports may be reachable from the whole internet: the gateway's HTTP(S).
PUBLIC_PORTS = frozenset({80, 443})
# Ports that administer the platform: SSH, the Kubernetes API, etcd, the kubelet.
ADMIN_PORTS = {22: "SSH", 6443: "Kubernetes API", 2379: "etcd", 2380: "etcd peers", 10250: "kubelet"}
DATABASE_PORTS = {5432: "PostgreSQL", 6379: "Redis/DragonflyDB", 9042: "ScyllaDB CQL", 9092: "Kafka/Redpanda",
                  8123: "ClickHouse HTTP", 9000: "ClickHouse native", 8333: "S3 (SeaweedFS)", 27017: "MongoDB",
                  3306: "MySQL"}
# Private address space (cluster networks, VPCs): internal sources are not "the internet". Python's
# `is_private` also counts documentation ranges, which are public here, hence the explicit list.
INTERNAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in
                          ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))
INTERNAL_TAGS = frozenset({"virtualnetwork", "azureloadbalancer"})  # Azure service tags
# The cloud's own load-balancer health-check probers, per firewall type: a health check of the API
# server must reach 6443 from them (GCP "Health checks overview": probe IP ranges). They probe; they
# carry no client traffic.
PROBER_NETWORKS = {"gcp:compute/firewall:Firewall": tuple(ipaddress.ip_network(n) for n in (
    "35.191.0.0/16", "130.211.0.0/22",  # proxy and internal load balancers
    "209.85.152.0/22", "209.85.204.0/22"))}  # external passthrough load balancers (the public API one)
WORLD_SOURCES = frozenset({"0.0.0.0/0", "::/0", "*", "internet", "any"})

# Resource types whose loss loses data or the cluster; production must protect them.
STATEFUL_TYPES = frozenset({
    "hcloud:index/server:Server", "hcloud:index/volume:Volume", "hcloud:index/network:Network",
    "aws:ec2/instance:Instance", "aws:ebs/volume:Volume", "aws:ec2/vpc:Vpc",
    "gcp:compute/instance:Instance", "gcp:compute/disk:Disk", "gcp:compute/network:Network",
    "azure-native:compute:VirtualMachine", "azure-native:compute:Disk", "azure-native:network:VirtualNetwork",
})
# Kubernetes kinds (group, kind) holding data; the API version does not matter.
STATEFUL_KINDS = frozenset({
    ("core", "PersistentVolumeClaim"), ("core", "PersistentVolume"),
    ("scylla.scylladb.com", "ScyllaCluster"), ("cluster.redpanda.com", "Redpanda"),
    ("clickhouse.altinity.com", "ClickHouseInstallation"),
    ("clickhouse-keeper.altinity.com", "ClickHouseKeeperInstallation"),
    ("postgresql.cnpg.io", "Cluster"), ("dragonflydb.io", "Dragonfly"),
})
HELM_TYPES = frozenset({"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"})
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")

# Retired or withdrawn components (see the chart catalog's notes): never deploy them.
RETIRED_CHARTS = {"ingress-nginx": "ingress-nginx is retired; use the Gateway API",
                  "minio": "MinIO community edition is archived; use SeaweedFS or provider S3",
                  "minio-operator": "MinIO community edition is archived; use SeaweedFS or provider S3"}
RETIRED_SOURCES = {"bitnami": "Bitnami charts/images are withdrawn (bitnamilegacy gets no updates)",
                   "ingress-nginx": "ingress-nginx is retired; use the Gateway API",
                   "min.io": "MinIO community edition is archived; use SeaweedFS or provider S3",
                   "minio/": "MinIO community edition is archived; use SeaweedFS or provider S3"}

# Strings that are credentials whatever key they sit under.
SECRET_VALUE_PATTERNS = {
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a GitLab token": re.compile(r"\bgl(?:pat|rt|dt|ptt)-[0-9A-Za-z_-]{20,}"),
    "a GitHub token": re.compile(r"\b(?:ghp|gho|ghs|github_pat)_[0-9A-Za-z_]{20,}"),
    "a Slack token": re.compile(r"\bxox[abprs]-[0-9A-Za-z-]{10,}"),
}
# Any of them at all, in one pass over the text (most strings hold none; then the patterns are tried in order).
_ANY_SECRET_VALUE = re.compile("|".join(f"(?:{p.pattern})" for p in SECRET_VALUE_PATTERNS.values()))
# Text every match of each pattern holds (its literal start): a string holding none of them holds no finding, which a
# substring search tells far faster than the regex (the plan checks every input string: scripts, configs, dashboards).
SECRET_VALUE_NEEDLES = {"a private key": ("PRIVATE KEY-----",), "an AWS access key id": ("AKIA", "ASIA"),
                        "a GitLab token": ("gl",), "a GitHub token": ("gh", "github_pat"), "a Slack token": ("xox",)}
_NEEDLES = tuple(needle for needles in SECRET_VALUE_NEEDLES.values() for needle in needles)
# Keys whose value is a credential: the last word of the key (camelCase, snake_case or kebab-case).
SECRET_KEY_WORDS = frozenset({"password", "passwd", "secret", "token", "apikey", "privatekey", "accesskey",
                              "secretkey", "credentials", "passphrase"})
# ...unless the key names a reference to a secret kept elsewhere (a Kubernetes Secret's name, a file).
REFERENCE_PREFIXES = ("existing", "secretname", "secretref", "valuefrom", "from")


@dataclass(frozen=True)
class Subject:
    """What a rule sees of one resource."""

    urn: str
    type: str
    name: str
    props: Mapping[str, Any]
    protect: bool = False


@dataclass(frozen=True)
class Settings:
    """Policy configuration (CrossGuard policy config, or the stack config in the offline plan)."""

    admin_cidrs: tuple[str, ...] = ()  # empty: admin sources are only checked for world access
    production: bool | None = None     # None: decided by the stack name in the URN

    def is_production(self, urn: str) -> bool:
        if self.production is not None:
            return self.production
        return stack_of(urn).startswith("production")


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Callable[[Subject, Settings], Iterable[str]]
    config_schema: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    rule: str
    urn: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {name_of(self.urn)}: {self.message}"


# --- helpers -------------------------------------------------------------------------------------

# How the engine marks a secret in serialized properties (pulumi's resource/properties.go).
SIG_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


class Secret:
    """A secret value, kept marked so `no-plaintext-secrets` can tell it from a plain one."""

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return "[secret]"


def mark_secrets(value: Any) -> Any:
    """Serialized engine properties with every secret turned into a `Secret` (other signatures kept)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return Secret(mark_secrets(value.get("value")))
        if SIG_KEY in value:
            return value  # assets and archives
        return {k: mark_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mark_secrets(v) for v in value]
    return value


def is_secret(value: Any) -> bool:
    return type(value).__name__ == "Secret" and hasattr(value, "value")


def stack_of(urn: str) -> str:
    return urn.split("::")[0].removeprefix("urn:pulumi:") if urn.startswith("urn:pulumi:") else ""


def name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any, bool]]:
    """Every leaf as (path, value, inside_a_secret)."""
    leaves: list[tuple[str, Any, bool]] = []
    _walk(value, path, False, leaves)
    return iter(leaves)


# Leaves by far the most values are: answered before the (slower) secret and abstract-collection checks.
_SCALARS = (str, int, float, bool, type(None))


def _walk(value: Any, path: str, secret: bool, leaves: list[tuple[str, Any, bool]]) -> None:
    """Appends the leaves under `value` to `leaves` (one list for the whole walk: the offline plan walks every input
    of every resource three times, and nested generators cost a frame per level and leaf)."""
    kind = type(value)
    if kind in _SCALARS:
        leaves.append((path, value, secret))
    elif kind is dict:  # a plain dict's items, as _items gives them (no value in it is unknown)
        for key, item in value.items():
            _walk(item, f"{path}.{key}" if path else str(key), secret, leaves)
    elif kind is list:
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", secret, leaves)
    elif is_secret(value):
        _walk(value.value, path, True, leaves)
    elif isinstance(value, Mapping):
        for key, item in _items(value):
            _walk(item, f"{path}.{key}" if path else str(key), secret, leaves)
    elif _is_list(value):
        for index, item in _items(value):
            _walk(item, f"{path}[{index}]", secret, leaves)
    else:
        leaves.append((path, value, secret))


def _items(container: Any) -> Iterator[tuple[Any, Any]]:
    """Items of a mapping or list; a value unknown during preview (CrossGuard raises on access) is None,
    so one computed input does not stop a rule from checking the rest of the resource."""
    keys = list(container) if isinstance(container, Mapping) else range(len(container))
    for key in keys:
        try:
            yield key, container[key]
        except Exception as exc:  # pulumi_policy's UnknownValueError, not importable here
            if type(exc).__name__ != "UnknownValueError":
                raise
            yield key, None


def _plain(value: Any) -> Any:
    """The value with secret markers removed (for rules that look at structure, not secrecy)."""
    if is_secret(value):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in _items(value)}
    if _is_list(value):
        return [_plain(v) for _, v in _items(value)]
    return value


def _is_list(value: Any) -> bool:
    # CrossGuard hands lists over as read-only Sequence proxies.
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def kubernetes_kind(type_: str) -> tuple[str, str] | None:
    """('apps', 'Deployment') for 'kubernetes:apps/v1:Deployment'; None for non-objects."""
    if not type_.startswith("kubernetes:") or type_ in HELM_TYPES or type_.count(":") != 2:
        return None
    group_version, kind = type_.split(":")[1:]
    if group_version.startswith(("helm.sh/", "kustomize", "yaml")):
        return None
    return group_version.rsplit("/", 1)[0], kind


# --- firewall rules, normalised across providers ------------------------------------------------

@dataclass(frozen=True)
class Ingress:
    protocol: str
    ports: tuple[int, int] | None  # None: the protocol has no ports (icmp, ...)
    sources: tuple[str, ...]
    where: str
    peers: bool = False  # the rule's description declares it a cluster-peers rule (PEER_MARK)


# A hybrid cluster over the internet (providers/hybrid.py) admits every node's public address, one host each, on
# the ports cluster members talk on: the providers write this at the start of those rules' descriptions, and
# admin-ports-from-admin-cidrs admits single hosts (never a range, never SSH) in such rules.
PEER_MARK = "cluster peers: "
PEER_PORTS_NEVER = (22,)  # SSH is never a peer port: nodes do not log in to each other


def _peers(rule: Mapping[str, Any]) -> bool:
    return str(rule.get("description") or "").startswith(PEER_MARK)


NO_PORT_PROTOCOLS = ("icmp", "icmpv6", "58", "1", "gre", "esp")


def _port_range(spec: Any, protocol: str) -> tuple[int, int] | None:
    """(low, high) from "22", "80-85", "any", "*" (strings as Hetzner, GCP and Azure write them)."""
    if str(protocol).lower() in NO_PORT_PROTOCOLS:
        return None
    text = str(spec).strip().lower() if spec is not None else "any"
    if text in ("any", "*", "", "-1", "all"):
        return (0, 65535)
    low, _, high = text.partition("-")
    return (int(float(low)), int(float(high or low)))


def _number_range(low: Any, high: Any, protocol: str) -> tuple[int, int] | None:
    """AWS from/to ports: numbers (floats once they crossed the engine); -1 means all ports."""
    if str(protocol).lower() in NO_PORT_PROTOCOLS:
        return None
    low_n, high_n = int(float(0 if low is None else low)), int(float(65535 if high is None else high))
    return (0, 65535) if low_n < 0 or high_n < 0 else (low_n, high_n)


def _all_protocols(protocol: str) -> bool:
    return str(protocol).lower() in ("-1", "all", "*")


def _hcloud(props: Mapping[str, Any]) -> Iterator[Ingress]:
    for i, rule in enumerate(props.get("rules") or []):
        if rule.get("direction", "in") == "in":
            proto = rule.get("protocol", "tcp")
            yield Ingress(proto, _port_range(rule.get("port"), proto), tuple(rule.get("sourceIps") or ()),
                          f"rules[{i}]", _peers(rule))


def _aws_group(props: Mapping[str, Any]) -> Iterator[Ingress]:
    for i, rule in enumerate(props.get("ingress") or []):
        yield from _aws_rule(rule, f"ingress[{i}]", rule.get("protocol", "tcp"),
                             [*(rule.get("cidrBlocks") or ()), *(rule.get("ipv6CidrBlocks") or ())])


def _aws_rule(rule: Mapping[str, Any], where: str, proto: str, sources: Sequence[str]) -> Iterator[Ingress]:
    if _all_protocols(proto):
        yield Ingress("all", (0, 65535), tuple(sources), where, _peers(rule))
    else:
        yield Ingress(proto, _number_range(rule.get("fromPort"), rule.get("toPort"), proto), tuple(sources), where,
                      _peers(rule))


def _aws_ingress_rule(props: Mapping[str, Any]) -> Iterator[Ingress]:
    sources = [s for s in (props.get("cidrIpv4"), props.get("cidrIpv6")) if s]
    yield from _aws_rule(props, "rule", props.get("ipProtocol", "tcp"), sources)


def _aws_group_rule(props: Mapping[str, Any]) -> Iterator[Ingress]:
    if props.get("type") == "ingress":
        yield from _aws_rule(props, "rule", props.get("protocol", "tcp"),
                             [*(props.get("cidrBlocks") or ()), *(props.get("ipv6CidrBlocks") or ())])


def _gcp(props: Mapping[str, Any]) -> Iterator[Ingress]:
    if str(props.get("direction") or "INGRESS").upper() != "INGRESS" or props.get("disabled"):
        return
    sources = tuple(props.get("sourceRanges") or ())
    for i, allow in enumerate(props.get("allows") or []):
        proto = allow.get("protocol", "all")
        for spec in allow.get("ports") or ["any"]:
            ports = (0, 65535) if _all_protocols(proto) else _port_range(spec, proto)
            yield Ingress(proto, ports, sources, f"allows[{i}]", _peers(props))


def _azure_rule(rule: Mapping[str, Any], where: str) -> Iterator[Ingress]:
    if str(rule.get("direction", "")).lower() != "inbound" or str(rule.get("access", "")).lower() != "allow":
        return
    sources = tuple(s for s in [rule.get("sourceAddressPrefix"), *(rule.get("sourceAddressPrefixes") or [])] if s)
    proto = str(rule.get("protocol", "*"))  # "*" is any protocol; the port range still applies
    for spec in [rule.get("destinationPortRange"), *(rule.get("destinationPortRanges") or [])]:
        if spec is not None:
            yield Ingress(proto, _port_range(spec, proto), sources, where, _peers(rule))


def _azure_group(props: Mapping[str, Any]) -> Iterator[Ingress]:
    for i, rule in enumerate(props.get("securityRules") or []):
        yield from _azure_rule(rule, f"securityRules[{i}]")


FIREWALL_READERS: dict[str, Callable[[Mapping[str, Any]], Iterator[Ingress]]] = {
    "hcloud:index/firewall:Firewall": _hcloud,
    "aws:ec2/securityGroup:SecurityGroup": _aws_group,
    "aws:ec2/securityGroupRule:SecurityGroupRule": _aws_group_rule,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _aws_ingress_rule,
    "gcp:compute/firewall:Firewall": _gcp,
    "azure-native:network:NetworkSecurityGroup": _azure_group,
    "azure-native:network:SecurityRule": lambda props: _azure_rule(props, "rule"),
}


def ingress_rules(subject: Subject) -> list[Ingress]:
    reader = FIREWALL_READERS.get(subject.type)
    return list(reader(_plain(subject.props))) if reader else []


def _is_world(source: str) -> bool:
    if source.strip().lower() in WORLD_SOURCES:
        return True
    try:
        return ipaddress.ip_network(source, strict=False).prefixlen == 0
    except ValueError:
        return False


def world_covered(sources: Iterable[str]) -> list[str]:
    """The address families (IPv4, IPv6) whose whole internet `sources` admit together: their union, with the
    private ranges (INTERNAL_NETWORKS, which reach nothing public) added, is the whole address space. Catches
    what a /0 test misses: two /1 halves, or every public block listed one by one. Unparsable sources are
    ignored here (the rules report them). Shared with config/rules.py (adminCidrs); stdlib only, so the pack
    stays importable on its own."""
    networks = []
    for source in sources:
        if str(source).strip().lower() in WORLD_SOURCES - {"0.0.0.0/0", "::/0"}:
            return ["IPv4", "IPv6"]
        try:
            networks.append(ipaddress.ip_network(str(source).strip(), strict=False))
        except ValueError:
            continue
    covered = []
    for version, everything in ((4, ipaddress.ip_network("0.0.0.0/0")), (6, ipaddress.ip_network("::/0"))):
        family = [n for n in networks if n.version == version]
        if family and list(ipaddress.collapse_addresses(
                [*family, *(n for n in INTERNAL_NETWORKS if n.version == version)])) == [everything]:
            covered.append(f"IPv{version}")
    return covered


def _covered(ports: tuple[int, int], known: Mapping[int, str]) -> list[str]:
    return [f"{port} ({what})" for port, what in known.items() if ports[0] <= port <= ports[1]]


# --- the rules -----------------------------------------------------------------------------------

def no_world_open_ports(subject: Subject, _settings: Settings) -> Iterator[str]:
    found = ingress_rules(subject)
    for rule in found:
        if rule.ports is None or not world_covered(_sources_reaching(rule, found)):
            continue
        if rule.ports[0] in PUBLIC_PORTS and rule.ports[0] == rule.ports[1]:
            continue
        named = _covered(rule.ports, ADMIN_PORTS) + _covered(rule.ports, DATABASE_PORTS)
        span = f"{rule.ports[0]}" if rule.ports[0] == rule.ports[1] else f"{rule.ports[0]}-{rule.ports[1]}"
        yield (f"{rule.where} opens {rule.protocol}/{span} to the world"
               + (f", including {', '.join(named)}" if named else "") + "; only 80 and 443 may be public")


def _sources_reaching(rule: Ingress, rules: Sequence[Ingress]) -> list[str]:
    """Every source of the subject's rules that admit all of `rule`'s ports: one rule per half of the
    internet opens the port to the world as surely as one rule with a /0."""
    assert rule.ports is not None
    return [source for other in rules if other.protocol == rule.protocol and other.ports is not None
            and other.ports[0] <= rule.ports[0] and rule.ports[1] <= other.ports[1] for source in other.sources]


def admin_ports_from_admin_cidrs(subject: Subject, settings: Settings) -> Iterator[str]:
    if not settings.admin_cidrs:
        return
    admin_rules = [rule for rule in ingress_rules(subject) if rule.ports is not None and _covered(rule.ports, ADMIN_PORTS)]
    if not admin_rules:  # most resources: no need to read the admin CIDRs (world_covered is costly per resource)
        return
    allowed = [ipaddress.ip_network(c, strict=False) for c in settings.admin_cidrs]
    inside = f"inside adminCidrs ({', '.join(settings.admin_cidrs)}) or the private network"
    spanned = world_covered(settings.admin_cidrs)
    if spanned:  # adminCidrs that together span the internet vouch for no one: only the private network
        allowed = []
        inside = (f"in the private network (adminCidrs {', '.join(settings.admin_cidrs)} together cover the whole "
                  f"{' and '.join(spanned)} internet)")
    for rule in admin_rules:
        assert rule.ports is not None
        for source in rule.sources:
            if _is_world(source) or str(source).lower() in INTERNAL_TAGS:
                continue  # world: reported by no-world-open-ports; tags: the virtual network itself
            try:
                net = ipaddress.ip_network(source, strict=False)
            except ValueError:
                yield f"{rule.where}: admin source {source!r} is not a CIDR"
                continue
            trusted = [*allowed, *INTERNAL_NETWORKS, *PROBER_NETWORKS.get(subject.type, ())]
            if _a_peer(rule, net) or any(net.version == a.version and net.subnet_of(a) for a in trusted):
                continue
            yield (f"{rule.where} lets {source} reach {', '.join(_covered(rule.ports, ADMIN_PORTS))}; "
                   f"admin sources must be {inside}, or single cluster nodes in a rule marked {PEER_MARK!r}")


def _a_peer(rule: Ingress, source: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """One cluster node's address in a rule declared as the cluster peers' (PEER_MARK), on no SSH port."""
    assert rule.ports is not None
    return (rule.peers and source.num_addresses == 1
            and not any(rule.ports[0] <= port <= rule.ports[1] for port in PEER_PORTS_NEVER))


def helm_charts_pinned(subject: Subject, _settings: Settings) -> Iterator[str]:
    if subject.type not in HELM_TYPES:
        return
    version = str(_plain(subject.props.get("version")) or "")
    chart = str(_plain(subject.props.get("chart")) or "")
    repo = (_plain(subject.props.get("repositoryOpts")) or {}).get("repo")
    if not version and not repo and chart.startswith((".", "/", "file://")):
        return  # a chart in this repository: its Chart.yaml is the version, reviewed with the code
    if not EXACT_VERSION.match(version):
        yield f"chart {chart} must be pinned to an exact version, got {version or 'none'!r}"


def _image_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag"
    if last.rsplit(":", 1)[1] == "latest":
        return "uses the 'latest' tag"
    return None


def _images(subject: Subject) -> Iterator[tuple[str, str]]:
    """(path, image reference) of every image a resource names, including Helm values."""
    if subject.type not in HELM_TYPES and kubernetes_kind(subject.type) is None:
        return
    for path, value, _ in walk(subject.props):
        if not path.endswith("image"):  # its last key is not `image` (split only the few that may be)
            continue
        key = re.split(r"[.\[]", path)[-1]
        if key == "image" and isinstance(value, str) and value:
            yield path, value
    if subject.type in HELM_TYPES:
        yield from _helm_image_dicts(_plain(subject.props.get("values") or {}), "values")


def _helm_image_dicts(values: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(values, Mapping):
        for key, item in values.items():
            here = f"{path}.{key}"
            if key == "image" and isinstance(item, Mapping) and item.get("repository"):
                repo = "/".join(str(p) for p in (item.get("registry"), item["repository"]) if p)
                tag, digest = item.get("tag"), item.get("digest")
                if digest:
                    yield here, f"{repo}@{digest}"
                elif tag:  # no tag: the chart's own pinned appVersion applies
                    yield here, f"{repo}:{tag}"
            else:
                yield from _helm_image_dicts(item, here)
    elif _is_list(values):
        for index, item in enumerate(values):
            yield from _helm_image_dicts(item, f"{path}[{index}]")


def images_pinned(subject: Subject, _settings: Settings) -> Iterator[str]:
    for path, image in _images(subject):
        problem = _image_problem(image)
        if problem:
            yield f"{path}: image {image} {problem}; pin a version tag or digest"


WORKLOAD_POD_SPECS = {"Pod": ("spec",), "Deployment": ("spec", "template", "spec"),
                      "StatefulSet": ("spec", "template", "spec"), "DaemonSet": ("spec", "template", "spec"),
                      "ReplicaSet": ("spec", "template", "spec"), "Job": ("spec", "template", "spec"),
                      "CronJob": ("spec", "jobTemplate", "spec", "template", "spec")}


def workloads_have_resources(subject: Subject, _settings: Settings) -> Iterator[str]:
    kind = kubernetes_kind(subject.type)
    if kind is None or kind[1] not in WORKLOAD_POD_SPECS:
        return
    spec: Any = _plain(subject.props)
    for step in WORKLOAD_POD_SPECS[kind[1]]:
        spec = (spec or {}).get(step) or {}
    for field_name in ("initContainers", "containers"):
        for container in spec.get(field_name) or []:
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            # A limit without a request makes Kubernetes request the limit.
            missing = [f"requests.{r}" for r in ("cpu", "memory") if r not in requests and r not in limits]
            missing += ["limits.memory"] if "memory" not in limits else []
            if missing:
                yield f"container {container.get('name')!r} has no {', '.join(missing)}"


def production_stateful_protected(subject: Subject, settings: Settings) -> Iterator[str]:
    kind = kubernetes_kind(subject.type)
    stateful = subject.type in STATEFUL_TYPES or (kind is not None and kind in STATEFUL_KINDS)
    if stateful and not subject.protect and settings.is_production(subject.urn):
        yield f"{subject.type} holds state in production and must be created with protect=True"


def _key_words(path: str) -> str:
    return re.split(r"[.\[]", path)[-1].rstrip("]")


DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _credential_key(key: str, value: str) -> bool:
    """Whether `key: value` reads as a credential (rather than the name of a Secret kept elsewhere)."""
    word = re.sub(r"[^a-z0-9]", "", key.lower())
    if word.startswith(REFERENCE_PREFIXES) or len(value) < 8:
        return False
    if word.endswith(("secret", "secretkey")) and DNS_NAME.match(value):
        return False  # caSecret: my-ca, passwordSecretKey: postgres-password: names, not values
    return any(word.endswith(w) for w in SECRET_KEY_WORDS)


def _named_values(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every {name: ..., value: ...} pair (container env, Helm extraEnv) as (path, name, value)."""
    pairs: list[tuple[str, str, Any]] = []
    _collect_named_values(value, path, pairs)
    return iter(pairs)


def _collect_named_values(value: Any, path: str, pairs: list[tuple[str, str, Any]]) -> None:
    kind = type(value)
    if kind in _SCALARS or is_secret(value):  # a scalar holds no pair (the checks below, answered at once)
        return
    if isinstance(value, Mapping):
        entries = value if kind is dict else dict(_items(value))
        if isinstance(entries.get("name"), str) and "value" in entries:
            pairs.append((f"{path}.value", entries["name"], entries["value"]))
        for key, item in entries.items():
            if type(item) not in _SCALARS:
                _collect_named_values(item, f"{path}.{key}" if path else str(key), pairs)
    elif _is_list(value):
        for index, item in (enumerate(value) if kind is list else _items(value)):
            if type(item) not in _SCALARS:
                _collect_named_values(item, f"{path}[{index}]", pairs)


def _secret_value(value: str) -> str | None:
    """What the first of SECRET_VALUE_PATTERNS that `value` holds finds, if any."""
    if not any(needle in value for needle in _NEEDLES) or not _ANY_SECRET_VALUE.search(value):
        return None
    return next(what for what, pattern in SECRET_VALUE_PATTERNS.items() if pattern.search(value))


def no_plaintext_secrets(subject: Subject, _settings: Settings) -> Iterator[str]:
    kind = kubernetes_kind(subject.type)
    secret_object = kind == ("core", "Secret")
    for path, value, secret in walk(subject.props):
        if secret or not isinstance(value, str) or not value:
            continue
        if secret_object and path.startswith(("data.", "stringData.")):
            yield f"{path} of a Kubernetes Secret is not marked secret (use pulumi.Output.secret)"
            continue
        what = _secret_value(value)
        if what:
            yield f"{path} holds {what} in plain text"
        elif len(value) >= 8 and _credential_key(_key_words(path), value):  # shorter: never a credential
            yield f"{path} looks like a credential and is not marked secret"
    for path, name, value in _named_values(subject.props):
        if isinstance(value, str) and not _secret_value(value) and _credential_key(name, value):
            yield f"{path} ({name}) looks like a credential and is not marked secret"


def no_retired_components(subject: Subject, _settings: Settings) -> Iterator[str]:
    if subject.type in HELM_TYPES:
        chart = str(_plain(subject.props.get("chart")) or "")
        repo = str((_plain(subject.props.get("repositoryOpts")) or {}).get("repo") or "")
        short = chart.rstrip("/").rsplit("/", 1)[-1]
        if short in RETIRED_CHARTS:
            yield f"chart {chart}: {RETIRED_CHARTS[short]}"
        else:
            for marker, why in RETIRED_SOURCES.items():
                if marker in f"{repo} {chart}".lower():
                    yield f"chart {chart} from {repo or chart}: {why}"
                    break
    for path, image in _images(subject):
        for marker, why in RETIRED_SOURCES.items():
            if marker in image.lower():
                yield f"{path}: image {image}: {why}"
                break


# --- capacity: HPA-scaled workloads at their max against the pools they run on (a stack rule) -------------

POOL_LABEL = "adplatform.io/pool"  # the pool label every node carries (config/model.py POOL_LABEL)
UNPINNED = "(untainted pools)"  # where a workload without a pool selector runs
DEFAULT_SURGE = 0.25  # a Deployment's default maxSurge
# Kubernetes quantities. The pack imports nothing of the program (it runs on its own in `pulumi preview`), so it
# keeps this small reader of its own; the program's is config/quantity.py.
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)(Ki|Mi|Gi|Ti|m|k|M|G|T)?$")
_FACTOR = {None: 1, "m": 0.001, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30,
           "Ti": 2 ** 40}


def quantity(value: Any) -> float:
    """A Kubernetes quantity as a number (0 for anything else: a value that is not a quantity requests nothing)."""
    match = _QUANTITY.match(str(value).strip())
    return float(match.group(1)) * _FACTOR[match.group(2)] if match else 0.0


@dataclass(frozen=True)
class Scaled:
    """A Deployment its HorizontalPodAutoscaler may grow: at maxReplicas plus a rollout's surge."""

    name: str  # namespace/name
    pool: str  # the pool its nodeSelector names, or UNPINNED
    pods: int
    cpu_millis: float  # per pod
    memory_mib: float


def _surge(strategy: Mapping[str, Any], replicas: int) -> int:
    surge = ((strategy or {}).get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(surge, str) and surge.endswith("%"):
        return -(-replicas * int(surge[:-1]) // 100)  # Kubernetes rounds a percentage of surge up
    return int(surge) if str(surge).isdigit() else -(-replicas * 25 // 100)


def scaled_workloads(subjects: Iterable[Subject]) -> list[Scaled]:
    """Every HPA-targeted Deployment, with its pods' requests and the pool it is pinned to."""
    subjects = list(subjects)
    deployments = {}
    for s in subjects:
        if s.type == "kubernetes:apps/v1:Deployment":
            meta = s.props.get("metadata") or {}
            deployments[(meta.get("namespace"), meta.get("name"))] = s.props
    found = []
    for s in subjects:
        if not s.type.startswith("kubernetes:autoscaling/") or not s.type.endswith(":HorizontalPodAutoscaler"):
            continue
        spec, meta = s.props.get("spec") or {}, s.props.get("metadata") or {}
        target = spec.get("scaleTargetRef") or {}
        deployment = deployments.get((meta.get("namespace"), target.get("name")))
        if target.get("kind") != "Deployment" or deployment is None:
            continue
        pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        requests = [((c.get("resources") or {}).get("requests") or {}) for c in pod.get("containers") or []]
        replicas = int(spec.get("maxReplicas") or 1)
        found.append(Scaled(f"{meta.get('namespace')}/{target.get('name')}",
                            (pod.get("nodeSelector") or {}).get(POOL_LABEL, UNPINNED),
                            replicas + _surge((deployment.get("spec") or {}).get("strategy"), replicas),
                            sum(quantity(r.get("cpu", 0)) for r in requests) * 1000,
                            sum(quantity(r.get("memory", 0)) for r in requests) / 2 ** 20))
    return found


def capacity_problems(scaled: Sequence[Scaled], capacity: Mapping[str, Any]) -> list[str]:
    """`capacity`: where the scaled workloads can run (the plan computes it from the config: tools/plan/capacity.py)
    -> {pools, maxNodes, cpuMillis, memoryMiB (all nodes at their max), otherCpuMillis, otherMemoryMiB (what else
    is scheduled there)}. A group whose max cannot hold its scaled workloads at their peak is a problem."""
    found = []
    for key, group in (capacity or {}).items():
        mine = [w for w in scaled if w.pool == key]
        if not mine:
            continue
        cpu = sum(w.pods * w.cpu_millis for w in mine)
        memory = sum(w.pods * w.memory_mib for w in mine)
        short = [f"{what} {need / unit:,.2f} {name} needed, {have / unit:,.2f} there"
                 for what, need, have, unit, name in (
                     ("CPU", cpu + group["otherCpuMillis"], group["cpuMillis"], 1000, "vCPUs"),
                     ("memory", memory + group["otherMemoryMiB"], group["memoryMiB"], 1024, "GiB"))
                 if need > have]
        if short:
            found.append(f"pools {', '.join(group['pools'])} at their max ({group['maxNodes']} nodes) cannot hold "
                         f"{', '.join(w.name for w in mine)} at maxReplicas plus a rollout's surge ({cpu / 1000:,.2f} "
                         f"vCPUs, {memory / 1024:,.2f} GiB) with the other workloads scheduled there "
                         f"({group['otherCpuMillis'] / 1000:,.2f} vCPUs, {group['otherMemoryMiB'] / 1024:,.2f} GiB): "
                         f"{'; '.join(short)}. Raise the pools' autoscaling.max (or count), give the services a pool "
                         "of their own, or lower maxReplicas")
    return found


RULES: tuple[Rule, ...] = (
    Rule("no-world-open-ports", "Only 80 and 443 may be open to the whole internet; never a database or "
         "admin port.", no_world_open_ports),
    Rule("admin-ports-from-admin-cidrs", "SSH, the Kubernetes API, etcd and the kubelet are reachable only from "
         "the configured admin CIDRs or the private network (and, in a hybrid cluster over the internet, the API, "
         "etcd and the kubelet from single cluster nodes in the rules marked as the cluster peers').",
         admin_ports_from_admin_cidrs,
         {"adminCidrs": {"type": "array", "items": {"type": "string"}}}),
    Rule("helm-charts-pinned", "Every Helm chart is pinned to an exact version.", helm_charts_pinned),
    Rule("images-pinned", "No container image without a tag or with 'latest'.", images_pinned),
    Rule("workloads-have-resources", "Every container has CPU and memory requests and a memory limit.",
         workloads_have_resources),
    Rule("production-stateful-protected", "Servers, volumes, networks and database clusters of production "
         "stacks are protected from deletion.", production_stateful_protected,
         {"production": {"type": "boolean"}}),
    Rule("no-plaintext-secrets", "No secret-looking value in plain (unencrypted) inputs.", no_plaintext_secrets),
    Rule("no-retired-components", "No retired components: ingress-nginx, MinIO, Bitnami charts or images.",
         no_retired_components),
)


CAPACITY_RULE = "scaled-workloads-fit-pools"
CAPACITY_DESCRIPTION = ("The pools HPA-scaled workloads run on hold them at maxReplicas plus a rollout's surge, with "
                        "what else runs there, once every autoscaled pool is at its max.")


def check(subject: Subject, settings: Settings = Settings(), rules: Sequence[Rule] = RULES) -> list[Violation]:
    return [Violation(rule.name, subject.urn, message) for rule in rules for message in rule.check(subject, settings)]


def evaluate(subjects: Iterable[Subject], settings: Settings = Settings()) -> list[Violation]:
    return [violation for subject in subjects for violation in check(subject, settings)]


def policies() -> list[Any]:
    """The rules as CrossGuard resource policies (imports pulumi_policy only when the pack runs)."""
    from pulumi_policy import (EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy,
                               StackValidationPolicy)

    def adapter(rule: Rule) -> Callable[..., None]:
        def validate(args: Any, report_violation: Callable[[str], None]) -> None:
            config = args.get_config() or {}
            settings = Settings(admin_cidrs=tuple(config.get("adminCidrs") or ()),
                                production=config.get("production"))
            subject = Subject(args.urn, args.resource_type, args.name, args.props,
                              bool(getattr(args.opts, "protect", False)))
            for message in rule.check(subject, settings):
                report_violation(message)
        return validate

    def capacity(args: Any, report_violation: Callable[[str], None]) -> None:
        groups = (args.get_config() or {}).get("capacity")
        if not groups:
            args.not_applicable("no capacity in the policy config: run the offline plan (make plan) first")
            return
        subjects = [Subject(r.urn, r.resource_type, r.name, r.props) for r in args.resources]
        for message in capacity_problems(scaled_workloads(subjects), groups):
            report_violation(message)

    return [ResourceValidationPolicy(
        name=rule.name, description=rule.description, validate=adapter(rule),
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties=dict(rule.config_schema)) if rule.config_schema else None,
    ) for rule in RULES] + [StackValidationPolicy(
        name=CAPACITY_RULE, description=CAPACITY_DESCRIPTION, validate=capacity,
        # A warning: capacity is an estimate (requests read from the plan), not a safety property.
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=PolicyConfigSchema(properties={"capacity": {"type": "object"}}))]
