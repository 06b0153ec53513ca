"""The cloud-init user data of a node the cluster autoscaler creates (docs/autoscaling.md).

Pulumi-managed nodes are tuned and joined over SSH (components/host, components/k3s). A node the autoscaler
creates is in no Pulumi state, so it configures itself at first boot from the very same scripts: the host
tuning script of its pool (`tuning_script`) and the K3s install (`install_script`) with the K3s config of
its pool (`node_config`), rendered by the same functions; nothing here is a second copy of either. What only
the machine knows (its name and private address) is written at boot as a K3s config drop-in by
scripts/node-facts.sh; the provider's own boot commands (ClusterProfile.node_boot_commands) run first.

The scripts run from a oneshot systemd unit started at the end of cloud-init: they wait for first boot to
finish (components/shell/lib.sh wait_for_boot), which they could not do from inside cloud-init. Order:
node facts, host tuning, K3s agent install, so the kubelet starts on a tuned host and takes no pod before.
"""

from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pulumi

from components.host import tuning_script
from components.k3s import install_script
from components.k3s.config import API_PORT, dump, node_config, server_url
from components.shell import render
from config.model import Pool
from providers.base import ClusterProfile, NodeSpec, group_spec
from providers.cloud import CloudFile, cloud_config

FACTS_TEMPLATE = Path(__file__).parent / "scripts" / "node-facts.sh"
# K3s reads /etc/rancher/k3s/config.yaml, then the drop-ins of config.yaml.d in name order (a later file's
# value wins): a provider's boot command may override the node facts with a later file (e.g. 20-provider.yaml).
NODE_FACTS_DROP_IN = "/etc/rancher/k3s/config.yaml.d/10-node.yaml"
SETUP_DIR = "/var/lib/adplatform/node-setup"  # root only: the install script holds the agent token
SETUP_UNIT = "adplatform-node-setup.service"
# The steps the unit runs, in order (file names under SETUP_DIR).
STEPS = ("node-facts.sh", "tune.sh", "k3s-install.sh")
# The scripts compressed one by one where the provider sends the document as it is (Hetzner 32 KiB); as text where it
# gzips the whole document itself (AWS 16 KiB: ClusterProfile.compresses_user_data), which compresses them better.
ENCODING = "gz+b64"


@dataclass(frozen=True)
class JoinSettings:
    """What every autoscaled node of the cluster joins with."""

    k3s_version: str
    api_endpoint: pulumi.Input[str]  # the API's private endpoint (Infrastructure.api_private_endpoint)
    agent_token: pulumi.Input[str]  # secret: K3sCluster.agent_token (never the server token)
    profile: ClusterProfile
    pod_cidr: str
    service_cidr: str
    admin_keys: tuple[str, ...]  # SSH public keys of the image's default user
    provider: str  # the stack's provider (the node's adplatform.io/provider label): autoscaled pools run only there
    k3s_installer_sha256: str | None = None  # cluster.k3sInstallerSha256: checked before the installer runs


def agent_config(spec: NodeSpec, join: JoinSettings, token: str, endpoint: str) -> dict:
    """The K3s config of an autoscaled node: its pool's agent config without the node facts (node_config)."""
    return node_config(spec, None, None, token_key="token", token=token, join_endpoint=endpoint, tls_sans=[],
                       pod_cidr=join.pod_cidr, service_cidr=join.service_cidr, profile=join.profile)


def facts_script(endpoint: str) -> str:
    return render(FACTS_TEMPLATE, {"API_ENDPOINT": endpoint, "API_PORT": API_PORT, "DROP_IN": NODE_FACTS_DROP_IN})


def setup_scripts(spec: NodeSpec, join: JoinSettings, token: str, endpoint: str) -> dict[str, str]:
    """STEPS' scripts (pure: tests compare them with the SSH path's and shellcheck them)."""
    config_yaml = dump(agent_config(spec, join, token, endpoint))
    return {"node-facts.sh": facts_script(endpoint),
            "tune.sh": tuning_script(spec.pool, spec.workload_role),
            "k3s-install.sh": install_script(spec, f"{spec.name} (autoscaled)", join.k3s_version, config_yaml,
                                             installer_sha256=join.k3s_installer_sha256, join_url=server_url(endpoint),
                                             agent_token=token)}


def setup_unit() -> str:
    starts = "\n".join(f"ExecStart=/bin/bash {SETUP_DIR}/{step}" for step in STEPS)
    return ("[Unit]\n"
            "Description=adplatform: tune this autoscaled node and join it to the K3s cluster\n"
            # After cloud-init's last stage: the scripts wait for first boot to finish (wait_for_boot).
            "After=cloud-final.service network-online.target\n"
            "Wants=network-online.target\n\n"
            "[Service]\n"
            "Type=oneshot\n"
            "RemainAfterExit=yes\n"
            f"{starts}\n")


def render_user_data(spec: NodeSpec, join: JoinSettings, token: str, endpoint: str) -> str:
    """The #cloud-config document (pure); `token` is the agent token."""
    scripts = setup_scripts(spec, join, token, endpoint).items()
    files = ([CloudFile(f"{SETUP_DIR}/{name}", script, "0700") for name, script in scripts]
             if join.profile.compresses_user_data else
             [CloudFile(f"{SETUP_DIR}/{name}", _packed(script), "0700", ENCODING) for name, script in scripts])
    files.append(CloudFile(f"/etc/systemd/system/{SETUP_UNIT}", setup_unit()))
    # --no-block: the unit is ordered after cloud-final, which runs this; it starts once cloud-init is done.
    return cloud_config(join.admin_keys, files, boot_commands=join.profile.node_boot_commands,
                        run_commands=[["systemctl", "daemon-reload"], ["systemctl", "start", "--no-block", SETUP_UNIT]])


def user_data(spec: NodeSpec, join: JoinSettings) -> pulumi.Output[str]:
    """The user data as a secret Output: it carries the agent join token."""
    return pulumi.Output.secret(pulumi.Output.all(join.agent_token, join.api_endpoint).apply(
        lambda values: render_user_data(spec, join, *values)))


def unpacked(content: str) -> str:
    """A file's text back from ENCODING (tests, docs)."""
    return gzip.decompress(base64.b64decode(content)).decode()


def _packed(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()


__all__ = ["JoinSettings", "NODE_FACTS_DROP_IN", "SETUP_UNIT", "STEPS", "agent_config", "group_spec",
           "render_user_data", "setup_scripts", "unpacked", "user_data"]
