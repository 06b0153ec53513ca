"""Config of existing servers (provider `baremetal`): the hosts, and the addresses `LoadBalancer`
Services get.

Nothing is provisioned: every host already runs Ubuntu 24.04 LTS and accepts `sshPrivateKey` for its
`sshUser` (root, or a user with password-less sudo). Field validators check one value; the checks
that need the cluster config (hosts per pool, private addresses inside `cluster.subnetCidr`) are in
providers/baremetal.py, run before any resource exists.
"""

from __future__ import annotations

import ipaddress
import re

from typing import Annotated

from pydantic import AfterValidator, field_validator

from config.model_base import Model, check_cidr, check_host_key, check_label_value, optional

_SSH_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def check_address(value: str) -> str:
    """A single unicast IP address (v4 or v6), not a network."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be an IP address such as 203.0.113.10 (no prefix length, no host name)") from None
    if address.is_multicast or address.is_unspecified or address.is_loopback:
        raise ValueError("must be a unicast address of the host (not multicast, loopback or 0.0.0.0)")
    return str(address)


def check_address_block(value: str) -> str:
    """An IPv4 block for LB IPAM: a CIDR (192.0.2.240/28) or a range (192.0.2.240-192.0.2.250)."""
    text = str(value).strip()
    try:
        if "-" in text:
            start, stop = (ipaddress.ip_address(part.strip()) for part in text.split("-", 1))
            if start.version != 4 or stop.version != 4:
                raise ValueError
            if int(stop) < int(start):
                raise ValueError
        elif ipaddress.ip_network(text, strict=True).version != 4:
            raise ValueError
    except ValueError:
        raise ValueError("must be an IPv4 CIDR (192.0.2.240/28) or range (192.0.2.240-192.0.2.250), start <= stop: "
                         "L2 announcements answer ARP only, there is no IPv6 (NDP) support") from None
    if "-" not in text and "/" not in text:  # Cilium's IP pool takes a block's `cidr` with its prefix length only
        raise ValueError(f"must be an IPv4 CIDR with its prefix length or a range, e.g. {text}/32 for this one address")
    return text


def block_addresses(block: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """(first, last) address of a validated block."""
    if "-" in block:
        start, stop = (ipaddress.IPv4Address(part.strip()) for part in block.split("-", 1))
        return start, stop
    network = ipaddress.IPv4Network(block)
    return network[0], network[-1]


Address = Annotated[str, AfterValidator(check_address)]
AddressBlock = Annotated[str, AfterValidator(check_address_block)]


class Host(Model):
    """One existing server. Hosts fill their pool's slots in the order listed (`<pool>-1`, `<pool>-2`,
    ...), which names the Kubernetes node: append new hosts at the end of their pool."""

    public_address: Address  # where SSH and the deployer reach it; the gateway's world-facing side
    private_address: Address  # the cluster network (node-ip): inside cluster.subnetCidr
    ssh_user: str = "root"
    pool: str  # a cluster pool name, or "control-plane" for the K3s servers
    # What the host costs per month (rent, colocation, power), in the currency of the bare-metal price
    # table (tools/plan/prices/baremetal.yaml): the offline plan's cost. Unset: the host is listed unpriced.
    monthly_price: float | None = None
    # The host's failure domain (topology.kubernetes.io/zone: the stores spread replicas over zones): a rack, room
    # or site; for a Hetzner dedicated server its Robot datacenter in lowercase (fsn1-dc14), as Hetzner's CCM names
    # it. Required in production-grade profiles (providers/baremetal.py); elsewhere the region's name.
    zone: str | None = None
    # The host's ed25519 SSH host key (`ssh-ed25519 AAAA...`, e.g. from `ssh-keyscan -t ed25519 <address>` checked
    # out of band): verified from the first connection. Unset: trusted on first use (providers/base.py ssh_connection).
    host_key: str | None = None

    _v_zone = field_validator("zone")(optional(check_label_value))
    _v_host_key = field_validator("host_key")(optional(check_host_key))

    @field_validator("monthly_price", mode="before")
    @classmethod
    def _price(cls, price: object) -> object:
        # bool is an int to Python: `monthlyPrice: true` is a mistake, not a price of 1.
        if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0
                                  or price != price or price == float("inf")):
            raise ValueError("must be a non-negative number (the host's monthly cost, e.g. 89.00), or left out")
        return price

    @field_validator("ssh_user")
    @classmethod
    def _ssh_user(cls, user: str) -> str:
        if not _SSH_USER.match(user):
            raise ValueError("must be a Linux user name (root, or a user with password-less sudo)")
        return user


class VSwitch(Model):
    """A Hetzner Robot vSwitch the hosts are on, coupled to the stack's Hetzner Cloud network (a hybrid cluster:
    providers/hybrid.py): cloud servers and dedicated servers then talk over private addresses."""

    id: int  # the vSwitch's id in Hetzner Robot (robot.hetzner.com, Servers -> vSwitches)

    @field_validator("id")
    @classmethod
    def _id(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be the vSwitch's id in Hetzner Robot (a positive number)")
        return value


class BareMetal(Model):
    hosts: list[Host]
    # Addresses Cilium LB IPAM hands to `LoadBalancer` Services (the gateway), announced by ARP from
    # one node at a time: free addresses on the same L2 segment as the announcing interfaces. Required when
    # the stack's provider is baremetal (providers/baremetal.py); pools on bare metal in a cluster of another
    # provider use that provider's load balancers.
    load_balancer_addresses: list[AddressBlock] = []
    # Pools on bare metal in a hybrid cluster (providers/hybrid.py): the hosts' private network (their
    # privateAddress lie in it). With `vswitch`, a subnet of cluster.networkCidr the cloud network routes to.
    subnet_cidr: str | None = None
    vswitch: VSwitch | None = None
    # Regular expressions (Go syntax) of the interfaces to announce on; empty: every interface Cilium uses.
    load_balancer_interfaces: list[str] = []
    # Where the hosts are (topology.kubernetes.io/region): a site or city; for Hetzner dedicated servers the Robot
    # location in lowercase (fsn1), as Hetzner's CCM names it. Required in production-grade profiles
    # (providers/baremetal.py); elsewhere `baremetal` (providers/baremetal.py DEFAULT_REGION).
    region: str | None = None
    # The hosts' disks are local NVMe/SSD: stores that want local storage (ScyllaDB) use it directly.
    local_nvme: bool = True

    @field_validator("hosts")
    @classmethod
    def _some_hosts(cls, hosts: list[Host]) -> list[Host]:
        if not hosts:
            raise ValueError("must list the servers of the cluster (publicAddress, privateAddress, sshUser, pool)")
        return hosts

    _v_region = field_validator("region")(optional(check_label_value))

    _v_subnet = field_validator("subnet_cidr")(optional(check_cidr))

    @field_validator("load_balancer_addresses")
    @classmethod
    def _some_blocks(cls, blocks: list[str]) -> list[str]:
        if not blocks:
            raise ValueError("must list at least one IPv4 block for LoadBalancer Services (the gateway needs one)")
        return blocks

    @field_validator("load_balancer_interfaces")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} must be a regular expression such as ^eth[0-9]+$ ({exc})") from None
        return patterns
