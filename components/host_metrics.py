"""The ports on which Prometheus scrapes processes in the hosts' own network namespace.

One place for them: the monitoring layer opens its egress to them (components/platform/monitoring.py), and over
the public internet the peer firewalls admit them (providers/base.py CLUSTER_PORTS), because the traffic to and from
K3s servers on these ports is not WireGuard-encrypted there (Cilium opts control-plane nodes out of node
encryption), so it arrives on the port itself rather than inside WireGuard.
"""

from __future__ import annotations

NODE_EXPORTER_PORT = 9100  # prometheus-node-exporter's service.port (the chart's default), on the host's network
CILIUM_AGENT_PORT = 9962  # the Cilium chart's prometheus.port: container port `prometheus` of the cilium DaemonSet
CILIUM_OPERATOR_PORT = 9963  # operator.prometheus.port: container port `prometheus` of cilium-operator (hostNetwork)
HUBBLE_METRICS_PORT = 9965  # hubble.metrics.port (the chart's default): container port `hubble-metrics` of the agent
