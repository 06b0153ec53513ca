"""Logic the providers that create servers share (AWS, GCP, Azure; Hetzner for SSH keys): zones,
firewall rules, disks, SSH, settings.

Everything here is provider-neutral and derived from the validated config and providers/base.py
(PORTS, the location checks): each cloud module turns these values into its own resources. Stable API:

- SSH_USER, CloudFile, cloud_config(), key_digest()          who logs in, with which keys; first boot
- provider_id_command()                                      the kubelet's provider ID from instance data
- public_address_command(), literal_address()               a 1:1-NATed public address where the kubelet finds it
- zone_of(), spread()                                        where unpinned nodes go on a zonal cloud
- IngressRule, ingress_rules(), port_range(), cidr_slug()    the PORTS firewall, one rule per source
- FamilyRule, family_rules()                                 the PORTS firewall, one rule per address family
- ROOT_DISK_GB, root_disk_gb()                               root disk size per size class
- provider_setting()                                         the provider's own config (aws:region, ...)
- check_network()                                            pod/service ranges off the cloud network
- NodeTemplate, node_template(), autoscaling_groups()
                                                             autoscaled node groups (docs/autoscaling.md)
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import shlex
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import pulumi

from components import yamltext
from config.errors import Problem, problem
from config.model import LOCATION_LABEL, Cluster, taint_parts
from providers.base import PORTS, NodeGroupRequest, NodeSpec, PortRule, rule_sources

# Canonical's cloud images (AWS, GCP, Azure) come with this sudo-capable default user; Azure creates
# it as the admin user. Remote commands run as it through `sudo -n` (components/remote.py).
SSH_USER = "ubuntu"


def key_digest(public_key: str) -> str:
    """Names a key resource by content, so adding or re-ordering keys touches no existing key."""
    return hashlib.sha256(public_key.split()[1].encode()).hexdigest()[:10]


@dataclass(frozen=True)
class CloudFile:
    """A file cloud-init writes at first boot."""

    path: str
    content: str
    permissions: str = "0644"
    # cloud-init's write_files encoding of `content`, e.g. "gz+b64" where user data must stay small (AWS takes
    # 16 KiB, Hetzner 32 KiB); None: plain text.
    encoding: str | None = None


def cloud_config(public_keys: Sequence[str], files: Sequence[CloudFile] = (),
                 boot_commands: Sequence[str] = (), run_commands: Sequence[Sequence[str]] = ()) -> str:
    """cloud-init user data: every admin key for the default user, first-boot files, boot commands.

    `boot_commands` run as `sh -c` at every boot, early (bootcmd, before SSH answers): for what only
    the instance knows, e.g. `cloud-init query v1.instance_id`. They must be idempotent.
    `run_commands` (argv lists, no shell) run once, at the end of the first boot (runcmd).
    """
    doc: dict = {"users": ["default"], "ssh_authorized_keys": list(public_keys), "ssh_pwauth": False,
                 "disable_root": True}
    if boot_commands:
        doc["bootcmd"] = [["sh", "-c", command] for command in boot_commands]
    if files:
        doc["write_files"] = [{"path": f.path, "content": f.content, "permissions": f.permissions,
                               "owner": "root:root", **({"encoding": f.encoding} if f.encoding else {})}
                              for f in files]
    if run_commands:
        doc["runcmd"] = [list(argv) for argv in run_commands]
    return "#cloud-config\n" + yamltext.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


# K3s merges drop-ins from config.yaml.d after config.yaml; `kubelet-arg+` appends to the list the install script
# writes. The kubelet registers its Node with this provider ID, which the CCM (or, without one, nothing else) keeps.
PROVIDER_ID_DROPIN = "/etc/rancher/k3s/config.yaml.d/10-{provider}-provider-id.yaml"


def provider_id_command(provider: str, id_format: str, values: Sequence[str]) -> str:
    """A boot command (cloud_config's `boot_commands`) writing the kubelet's provider ID into a K3s drop-in:
    printf fills each %s of `id_format` with a shell expression of `values` (what only the machine knows)."""
    dropin = PROVIDER_ID_DROPIN.format(provider=provider)
    arguments = " ".join(f'"{value}"' for value in values)
    return (f"mkdir -p {dropin.rsplit('/', 1)[0]} && umask 077 && "
            f"printf 'kubelet-arg+:\\n  - provider-id={id_format}\\n' {arguments} > {dropin}")


# A node of a cluster over the public internet (providers/hybrid.py) registers with its public address. AWS, GCP
# and Azure translate that address 1:1 at their edge and never put it on the instance, while the kubelet accepts a
# node IP only if it is one of the host's: so the address goes on the loopback device (incoming packets arrive for
# the private address; replies leave from it and are translated back).
LOOPBACK_ADDRESS = 'ip address replace "$address/32" dev lo'


def public_address_command(address: str) -> str:
    """A boot command (cloud_config's `boot_commands`) putting the public address on `lo` at every boot.

    `address`: one shell word that expands to the address: a double-quoted command substitution querying the
    instance metadata (which fails the command, through curl -f, when the metadata has none), or
    literal_address()."""
    return f"address={address} && {LOOPBACK_ADDRESS}"


def literal_address(address: str) -> str:
    """A known IPv4 address as public_address_command's shell word: parsed first (it reaches a shell), then
    quoted."""
    return shlex.quote(str(ipaddress.IPv4Address(address)))


# --- location: a zone of the provider's region (checked by providers.base.check_locations) ----------

def zone_of(spec: NodeSpec, zones: Sequence[str]) -> str:
    """A pinned node's own zone; otherwise its pool's members go round-robin over `zones` by index,
    so a pool of 3 lands in 3 zones and the placement never moves when other pools change."""
    return spec.location if spec.location else zones[spec.index % len(zones)]


def spread(zones: Iterable[str], count: int = 3) -> list[str]:
    """The zones unpinned nodes spread over: the first `count` of the region's zones, by name."""
    return sorted(zones)[:count]


# --- firewall ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IngressRule:
    """One PORTS rule for one source CIDR (clouds take one CIDR, or one address family, per rule)."""

    protocol: Literal["tcp", "udp", "icmp"]
    ports: tuple[int, int] | None  # None for icmp
    cidr: str
    source: Literal["world", "admin"]
    description: str

    @property
    def ipv6(self) -> bool:
        return ipaddress.ip_network(self.cidr).version == 6

    @property
    def name(self) -> str:
        """Stable resource name part: protocol, ports and source (no index, so order never matters)."""
        ports = "" if self.ports is None else f"-{self.ports[0]}" + (f"-{self.ports[1]}" if self.ports[1] != self.ports[0] else "")
        return f"{self.protocol}{ports}-{cidr_slug(self.cidr)}"


def cidr_slug(cidr: str) -> str:
    """A CIDR as a resource-name part: 203-0-113-0-24, v6-2001-db8-32, v6-0 for ::/0."""
    net = ipaddress.ip_network(cidr)
    slug = re.sub(r"[^0-9a-f]+", "-", str(net).lower()).strip("-")
    return f"v6-{slug}" if net.version == 6 else slug


def port_range(rule: PortRule) -> tuple[int, int] | None:
    if rule.port is None:
        return None
    low, _, high = rule.port.partition("-")
    return int(low), int(high or low)


def ingress_rules(admin_cidrs: Sequence[str]) -> list[IngressRule]:
    """PORTS expanded per source: 80/443 from the world, SSH, 6443 and ICMP from the admin CIDRs only."""
    return [IngressRule(rule.protocol, port_range(rule), cidr, rule.source, rule.description)
            for rule in PORTS for cidr in rule_sources(rule, admin_cidrs)]


@dataclass(frozen=True)
class FamilyRule:
    """One PORTS rule for one address family with all its sources (GCP and Azure rules take one family)."""

    index: int  # the rule's place in PORTS: a stable position (Azure priorities)
    rule: PortRule
    ipv6: bool
    sources: tuple[str, ...]

    @property
    def span(self) -> str | None:
        """The ports as GCP and Azure write them: 443, 2379-2380; None for ICMP."""
        ports = port_range(self.rule)
        if ports is None:
            return None
        return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


def family_rules(admin_cidrs: Sequence[str]) -> list[FamilyRule]:
    """PORTS per address family that has sources: world rules twice (0.0.0.0/0, ::/0), admin rules once per
    family present in adminCidrs."""
    found = []
    for index, rule in enumerate(PORTS):
        for ipv6 in (False, True):
            sources = tuple(c for c in rule_sources(rule, admin_cidrs) if ipaddress.ip_network(c).version == (6 if ipv6 else 4))
            if sources:
                found.append(FamilyRule(index, rule, ipv6, sources))
    return found


# --- disks ------------------------------------------------------------------------------------------

# Root (OS) disk per size class, GB. It holds the OS, container images, logs and emptyDir volumes,
# which grow with the pods a node can hold; database data lives on CSI volumes, not here.
ROOT_DISK_GB = {
    "small": 40,
    "medium": 60,
    "dedicated-medium": 80,
    "dedicated-large": 100,
    "dedicated-xlarge": 150,
    "dedicated-2xlarge": 200,
}
DEFAULT_ROOT_DISK_GB = 100  # a pool with an explicit serverType and no size class


def root_disk_gb(spec: NodeSpec) -> int:
    return ROOT_DISK_GB[spec.size] if spec.size else DEFAULT_ROOT_DISK_GB


# --- provider settings ------------------------------------------------------------------------------

def provider_setting(namespace: str, key: str, env: Sequence[str] = ()) -> str | None:
    """A setting of the provider's own config (`aws:region`), or the environment variable its SDK reads."""
    value = pulumi.Config(namespace).get(key)
    if value:
        return value
    return next((os.environ[name] for name in env if os.environ.get(name)), None)


# --- network ----------------------------------------------------------------------------------------

def check_network(cluster: Cluster, network: str, provider: str) -> list[Problem]:
    """Pods and services ride a tunnel (or overlay) on the clouds: their ranges must not overlap the
    provider network, or the node routes packets for pods into the VPC instead of the tunnel."""
    net = ipaddress.ip_network(network)
    found = []
    for key, cidr in (("cluster.podCidr", cluster.pod_cidr), ("cluster.serviceCidr", cluster.service_cidr)):
        if ipaddress.ip_network(cidr).overlaps(net):
            found.append(problem(key, f"must not overlap the {provider} network {network} (pods and services are "
                                 "not addresses of the cloud network; derived from cluster.networkCidr/subnetCidr)",
                                 cidr))
    return found


# --- autoscaled node groups -------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeTemplate:
    """What the autoscaler must know of a group's nodes before one exists (scale from zero): the labels and
    taints their K3s config gives them, so it only starts a node the pending pods can run on."""

    labels: dict[str, str]
    taints: tuple[tuple[str, str, str], ...]  # (key, value, effect); value "" for a taint without one


def node_template(request: NodeGroupRequest) -> NodeTemplate:
    """The labels and taints the group's nodes register with (the request's, from their K3s config)."""
    return NodeTemplate(dict(request.node_labels), tuple(taint_parts(t) for t in request.node_taints))


def autoscaling_groups(sizes: Sequence[tuple[str, int]]) -> list[dict]:
    """The chart's `autoscalingGroups` (one `--nodes=min:max:name` each): every group from 0, the floor being
    Pulumi-managed nodes."""
    return [{"name": name, "minSize": 0, "maxSize": max_size} for name, max_size in sizes]


__all__ = ["SSH_USER", "CloudFile", "PROVIDER_ID_DROPIN", "provider_id_command", "LOOPBACK_ADDRESS",
           "public_address_command", "literal_address",
           "FamilyRule", "IngressRule", "ROOT_DISK_GB", "check_network", "cidr_slug",
           "cloud_config", "family_rules", "ingress_rules", "key_digest", "port_range", "provider_setting",
           "root_disk_gb", "spread", "zone_of", "NodeTemplate", "node_template", "autoscaling_groups"]
