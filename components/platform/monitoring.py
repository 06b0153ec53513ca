"""Monitoring: kube-prometheus-stack (Prometheus Operator, Prometheus, Alertmanager, Grafana, node-exporter,
kube-state-metrics) in namespace `monitoring`, Grafana on the shared gateway at grafana.<domain>.

What this module sets, and why:

- Prometheus: `ctx.replicas(2)` replicas (each scrapes everything: either one answers), a volume of
  `platform.monitoring.storageSize` each on the cluster's storage class, retention
  `platform.monitoring.retention` plus a size cap below the volume (85 %) so a full disk never stops ingestion,
  one replica per node (required anti-affinity in HA profiles), a PodDisruptionBudget with more than one.
  It selects ServiceMonitors, PodMonitors, Probes, ScrapeConfigs and PrometheusRules of every namespace
  whatever their labels: the data stores and the other platform modules create theirs without the chart's
  `release` label. Alerts carry `cluster: <stack>` so a notification says which stack fired it.
- Alertmanager: `ctx.replicas(3)` (gossip needs an odd count to settle), a small volume for silences and the
  notification log, a PodDisruptionBudget. Its configuration is built from `platform.monitoring.alerting` and
  delivered as our own Secret (`useExistingSecret` + `configSecret`): the receivers' URLs and keys
  (`alertingSecrets.<name>`) are secret Outputs and never reach the Helm values or state in plain text.
  User routes come first (a dead man's switch may route Watchdog); Watchdog and InfoInhibitor go to the
  "null" receiver, alerts group by namespace and alertname, and critical alerts inhibit warnings/infos of the
  same alert and namespace (the chart's default inhibit rules).
- Grafana (the chart's subchart): one replica with a 10Gi volume (its SQLite database holds users,
  preferences and UI-made dashboards; everything else is provisioned from here). Two replicas would need an
  external database (PostgreSQL) and a session store; Grafana is not on any serving path, so a restart of a
  few minutes after a node loss is acceptable. `Recreate` rollouts, because a ReadWriteOnce volume cannot be
  mounted by the old and new pod at once; the volume survives `helm uninstall` (resource-policy keep).
  Admin credentials are a generated password in the Secret `grafana-admin` (`admin.existingSecret`).
  With platform.sso on, people log in with GitLab only (`[auth.gitlab]`, gitlab_login); the admin password stays
  for the chart's sidecars and as the emergency access (docs/security.md).
  Datasources are provisioned: Prometheus (default) and Alertmanager at the operator's governing Services
  (context.py PROMETHEUS_URL / ALERTMANAGER_URL: `prometheus-operated`, `alertmanager-operated`), Loki when
  platform.logs is on, Tempo when platform.traces is on, linked both ways
  (trace ids in log lines open the trace; a span opens its logs; exemplars open traces). Provisioned
  datasources that are switched off are pruned. Dashboards: the chart's cluster/node dashboards plus our own
  per enabled data store (components/platform/dashboards), and every ConfigMap labelled DASHBOARD_LABEL in
  any namespace (the ad services ship theirs). The dashboard sidecars read ConfigMaps only, through our own
  ClusterRole: the chart's would let Grafana read every Secret of the cluster. Grafana reaches no internet
  (no update checks, no grafana.com dashboards) but, with platform.sso, GitLab's public address for the login.
- prometheus-adapter (metrics_adapter.py), in its own namespace: the HPAs' custom and external metrics from
  Prometheus (the ad services' request rate, Redpanda's consumer lag).
- node-exporter on every node, control plane and tainted database pools included (tolerates every taint).
  It needs hostNetwork, hostPID and hostPath mounts, which only the `privileged` Pod Security level admits:
  it runs alone in namespace `node-exporter`, so `monitoring` stays `restricted`.
- K3s: the API server, scheduler, controller-manager and embedded etcd run in one k3s process that binds
  the scheduler and controller-manager to 127.0.0.1 and keeps etcd's metrics on localhost; their separate
  ServiceMonitors would find no target and their "Down" alerts would fire forever, so they are off. Because
  the k3s process registers every component's metrics in one registry, the API server's /metrics (scraped on
  6443) carries the scheduler's and controller-manager's series too (k3s-io/k3s#3619, #12917); the same
  series on the kubelet endpoint of servers are dropped there. Cilium replaces kube-proxy: no kube-proxy
  scrape. CoreDNS (K3s' bundled one, k8s-app=kube-dns, metrics on 9153) is scraped.
- Network: every platform namespace is default-deny. `monitoring`'s egress is open to every namespace, but each
  target admits only Prometheus' pods on its metrics ports and Grafana's pods on its datasource ports (Loki,
  Tempo) (services/namespaces.py prometheus_peer, grafana_peer); the platform layer's client admissions leave
  `monitoring` out. It reaches the nodes on the kubelet (10250), node-exporter (9100) and Cilium (9962, 9963) ports, is
  reached by the gateway (Grafana), by the metrics adapter's pods on Prometheus' 9090 and by the API server on the
  operator's admission webhook port. Only two of its workloads reach the internet, each by its own pod-scoped
  policy (internet_egress): Alertmanager's pods on 443 when alert receivers are configured (Slack, PagerDuty,
  webhooks), Grafana's on 443 with platform.sso (GitLab's public address); a Slack or webhook URL that is not
  https on 443 is refused when the configuration is built (it could never be sent).
"""

from __future__ import annotations

import re
from typing import Any, Sequence
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components import charts, yamltext
from components.data.context import OBJECT_STORE_NAMESPACE
from components.helm import release
from components.host_metrics import NODE_EXPORTER_PORT
from components.platform import dashboards, metrics_adapter, sso
from components.platform.context import (ALERTMANAGER_URL, DASHBOARD_LABEL, LAYER, LOKI_URL,
                                         PROMETHEUS_URL, SCRAPE_INTERVAL, TEMPO_URL, Installed, PlatformContext)
from components.services import cilium_metrics
from components.services.namespaces import (ALERTMANAGER_POD_LABELS, GRAFANA_POD_LABELS, RESTRICTED_CONTAINER_SECURITY,
                                           RESTRICTED_POD_SECURITY, Namespaces, NamespaceSpec, Peer, PodsEgress)
from config.catalog import MONITORING_NAMESPACE
from config.platform import AlertReceiver, Alerting

NAMESPACE = MONITORING_NAMESPACE
NODE_EXPORTER_NAMESPACE = "node-exporter"
RELEASE = "kube-prometheus-stack"  # also the chart's fullname: Prometheus CR kube-prometheus-stack-prometheus
HOST_LABEL = "grafana"
GRAFANA_SERVICE = "grafana"  # grafana.fullnameOverride: the Service the route points at
GRAFANA_PORT = 80  # the grafana chart's service.port (to the container's 3000)
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_SSO_SECRET = "grafana-sso"  # its GitLab OAuth client (components/platform/sso.py)
GRAFANA_STORAGE = "10Gi"
GRAFANA_CLUSTER_ROLE = "grafana-dashboard-reader"
ALERTMANAGER_CONFIG_SECRET = "alertmanager-config"
ALERTMANAGER_CONFIG_KEY = "alertmanager.yaml"  # the key the operator reads from configSecret
ALERTMANAGER_STORAGE = "1Gi"  # silences and notification log; providers with a larger minimum round it up
NULL_RECEIVER = "null"  # drops what it gets: Watchdog, InfoInhibitor, everything without a default receiver
KUBELET_PORT = 10250
WEBHOOK_PORT = 10250  # prometheusOperator.tls.internalPort: the operator serves its admission webhook there
RECEIVER_PORT = 443  # Slack, PagerDuty and webhook receivers outside the cluster
RETENTION_SIZE_SHARE = 0.85
FOLDER_ANNOTATION = "grafana_folder"  # a ConfigMap with it lands in that Grafana folder
# Datasource uids, so links between them survive renames.
UIDS = {"prometheus": dashboards.PROMETHEUS_UID, "alertmanager": "alertmanager", "loki": "loki",
        "tempo": "tempo"}
# K3s: components inside the k3s process with no scrapeable endpoint of their own (module docstring).
K3S_EMBEDDED = ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy")


def _resources(cpu: str, memory: str, limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": limit}}


# Requests and memory limits per container: (production-grade, others).
SIZES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "prometheus": (_resources("1", "4Gi", "8Gi"), _resources("250m", "1Gi", "2Gi")),
    "alertmanager": (_resources("50m", "128Mi", "256Mi"), _resources("20m", "64Mi", "128Mi")),
    "operator": (_resources("100m", "256Mi", "512Mi"), _resources("50m", "128Mi", "256Mi")),
    "config-reloader": (_resources("10m", "32Mi", "64Mi"), _resources("10m", "32Mi", "64Mi")),
    "webhook-jobs": (_resources("10m", "32Mi", "64Mi"), _resources("10m", "32Mi", "64Mi")),
    "kube-state-metrics": (_resources("50m", "128Mi", "512Mi"), _resources("20m", "64Mi", "256Mi")),
    "node-exporter": (_resources("50m", "64Mi", "128Mi"), _resources("20m", "32Mi", "128Mi")),
    "grafana": (_resources("100m", "256Mi", "1Gi"), _resources("50m", "192Mi", "512Mi")),
    "grafana-sidecar": (_resources("20m", "96Mi", "256Mi"), _resources("10m", "64Mi", "192Mi")),
}


def size(ctx: PlatformContext, container: str) -> dict[str, Any]:
    production, other = SIZES[container]
    return production if ctx.ha else other


# --- namespaces -----------------------------------------------------------------------------------------

def internet_egress(ctx: PlatformContext) -> tuple[PodsEgress, ...]:
    """Only the pods that must leave the cluster may: Alertmanager to its receivers (Slack, PagerDuty, webhooks), and
    with platform.sso Grafana to GitLab's public address (its server exchanges the login's code for a token and
    reads the user there: [auth.gitlab] token_url, api_url). Prometheus, the operator and kube-state-metrics never."""
    receivers = ctx.settings.monitoring.alerting.receivers
    sso = ctx.sso_egress_world("grafana")
    return (*((PodsEgress("alertmanager", dict(ALERTMANAGER_POD_LABELS), (RECEIVER_PORT,)),) if receivers else ()),
            *((PodsEgress("grafana", dict(GRAFANA_POD_LABELS), sso),) if sso else ()))


def namespaces(ctx: PlatformContext) -> list[NamespaceSpec]:
    return [
        NamespaceSpec(
            name=NAMESPACE, pss="restricted", layer=LAYER, gateway=True,
            why="Prometheus, Alertmanager, Grafana, kube-state-metrics and the operator run non-root with no "
                "capabilities and the RuntimeDefault seccomp profile; node-exporter, which needs the host, "
                f"runs in {NODE_EXPORTER_NAMESPACE}",
            webhooks=(WEBHOOK_PORT,),
            # The metrics adapter queries Prometheus (metrics_adapter.py); nothing else outside reaches in.
            ingress_from=(metrics_adapter.prometheus_client_peer(),),
            egress_to=(Peer("all-namespaces", all_namespaces=True),),
            # Cilium's agents (Hubble too) and operator serve metrics on the hosts (services/cilium_metrics.py).
            egress_nodes=(KUBELET_PORT, NODE_EXPORTER_PORT, *cilium_metrics.PORTS),
            egress_world_pods=internet_egress(ctx)),
        NamespaceSpec(
            name=NODE_EXPORTER_NAMESPACE, pss="privileged", layer=LAYER,
            why="node-exporter only: it reads the node's own /proc, /sys and root filesystem through hostPath "
                "mounts and runs in the host's network and PID namespaces, which no other Pod Security level "
                "admits; keeping it alone here lets monitoring stay restricted",
            # Prometheus scrapes it on the node's address (hostNetwork): this policy only matters if that
            # ever changes, and says who may.
            ingress_from=(ctx.monitoring((NODE_EXPORTER_PORT,)),)),
        metrics_adapter.namespace_spec(),
    ]


# --- Prometheus --------------------------------------------------------------------------------------------

def retention_size(storage_size: str) -> str:
    """A TSDB size cap below the volume: Prometheus deletes the oldest blocks instead of running out of disk."""
    number, unit = re.match(r"^(\d+)(Gi|Ti)$", storage_size).groups()
    gib = int(number) * (1024 if unit == "Ti" else 1)
    return f"{int(gib * RETENTION_SIZE_SHARE)}GiB"


def prometheus_values(ctx: PlatformContext) -> dict[str, Any]:
    settings = ctx.settings.monitoring
    replicas = ctx.replicas(2)
    spec: dict[str, Any] = {
        "replicas": replicas,
        "retention": settings.retention,
        "retentionSize": retention_size(settings.storage_size),
        "storageSpec": {"volumeClaimTemplate": {"spec": {
            "storageClassName": ctx.storage_class, "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": settings.storage_size}}}}},
        "resources": size(ctx, "prometheus"),
        "podAntiAffinity": "hard" if ctx.ha else "soft",
        "scrapeInterval": SCRAPE_INTERVAL,
        "evaluationInterval": SCRAPE_INTERVAL,
        "externalLabels": {"cluster": ctx.stack},
    }
    if trace_backend(ctx):
        # Scraped exemplars (trace ids) are kept only with this flag (Prometheus 3 feature flags): without it
        # Grafana's exemplar-to-trace link (datasource_sidecar) never has anything to open.
        spec["enableFeatures"] = ["exemplar-storage"]
    # Every namespace (empty namespace selectors), whatever the labels (no `release` label required).
    for kind in ("serviceMonitor", "podMonitor", "probe", "scrapeConfig", "rule"):
        spec[f"{kind}SelectorNilUsesHelmValues"] = False
        spec[f"{kind}Selector"] = {}
        spec[f"{kind}NamespaceSelector"] = {}
    return {
        "prometheusSpec": spec,
        # The chart's PDB selects the Prometheus pods (templates/prometheus/podDisruptionBudget.yaml).
        "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": max(1, replicas - 1)},
    }


# --- Alertmanager ------------------------------------------------------------------------------------------

# The chart's default inhibit rules (values.yaml alertmanager.config.inhibit_rules at 88.5.3).
INHIBIT_RULES = [
    {"source_matchers": ['severity = "critical"'], "target_matchers": ['severity =~ "warning|info"'],
     "equal": ["namespace", "alertname"]},
    {"source_matchers": ['severity = "warning"'], "target_matchers": ['severity = "info"'],
     "equal": ["namespace", "alertname"]},
    {"source_matchers": ['alertname = "InfoInhibitor"'], "target_matchers": ['severity = "info"'],
     "equal": ["namespace"]},
    {"target_matchers": ['alertname = "InfoInhibitor"']},
]


def receiver_url(spec: AlertReceiver, url: str) -> str:
    """A slack or webhook URL Alertmanager can reach: `monitoring` may leave the cluster on HTTPS (443) only,
    so anything else would fail silently at send time. The message names the key, never the secret URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme != "https" or not parts.hostname or port not in (None, RECEIVER_PORT):
        raise ValueError(f"alertingSecrets.{spec.name} must be an https:// URL on port {RECEIVER_PORT} (the "
                         f"{spec.type} receiver {spec.name!r}): Alertmanager may reach only that outside the cluster")
    return url


def receiver(spec: AlertReceiver, secret: str) -> dict[str, Any]:
    """One receiver; `secret` is its URL (slack, webhook) or Events API v2 routing key (pagerduty)."""
    if spec.type in ("slack", "webhook"):
        secret = receiver_url(spec, secret)
    if spec.type == "slack":
        slack: dict[str, Any] = {"api_url": secret, "send_resolved": True}
        if spec.channel:
            slack["channel"] = spec.channel
        return {"name": spec.name, "slack_configs": [slack]}
    if spec.type == "webhook":
        return {"name": spec.name, "webhook_configs": [{"url": secret, "send_resolved": True}]}
    return {"name": spec.name, "pagerduty_configs": [{"routing_key": secret, "send_resolved": True}]}


def alertmanager_config(alerting: Alerting, secrets: dict[str, str]) -> dict[str, Any]:
    """Alertmanager's configuration; `secrets`: receiver name -> its URL or key."""
    routes: list[dict[str, Any]] = []
    for route in alerting.routes:
        entry: dict[str, Any] = {"receiver": route.receiver, "matchers": list(route.matchers)}
        if route.continue_:
            entry["continue"] = True
        routes.append(entry)
    routes += [{"receiver": NULL_RECEIVER, "matchers": [f'alertname = "{name}"']}
               for name in ("Watchdog", "InfoInhibitor")]
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {"receiver": alerting.default_receiver or NULL_RECEIVER, "group_by": ["namespace", "alertname"],
                  "group_wait": "30s", "group_interval": "5m", "repeat_interval": "12h", "routes": routes},
        "inhibit_rules": INHIBIT_RULES,
        "receivers": [{"name": NULL_RECEIVER}, *(receiver(r, secrets[r.name]) for r in alerting.receivers)],
    }


def alertmanager_config_text(ctx: PlatformContext) -> pulumi.Output[str]:
    """The configuration as YAML, a secret Output: it holds the receivers' URLs and keys."""
    alerting = ctx.settings.monitoring.alerting
    names = [r.name for r in alerting.receivers]
    missing = [n for n in names if n not in ctx.secrets.alerting]
    if missing:  # config/rules.py refuses this first; kept so a direct caller fails with the key, not a KeyError
        raise ValueError(f"alertingSecrets.{missing[0]} is not set")
    values = pulumi.Output.all(*(ctx.secrets.alerting[n] for n in names))
    text = values.apply(lambda got: yamltext.safe_dump(alertmanager_config(alerting, dict(zip(names, got))),
                                                   sort_keys=False))
    return pulumi.Output.secret(text)


def alertmanager_values(ctx: PlatformContext) -> dict[str, Any]:
    replicas = ctx.replicas(3)
    return {
        "alertmanagerSpec": {
            "replicas": replicas,
            # Our Secret, not the chart's: its content is a secret Output (alertmanager_config_text).
            "useExistingSecret": True,
            "configSecret": ALERTMANAGER_CONFIG_SECRET,
            "storage": {"volumeClaimTemplate": {"spec": {
                "storageClassName": ctx.storage_class, "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": ALERTMANAGER_STORAGE}}}}},
            "resources": size(ctx, "alertmanager"),
            "podAntiAffinity": "hard" if ctx.ha else "soft",
        },
        "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": max(1, replicas - 1)},
    }


# --- Grafana ---------------------------------------------------------------------------------------------

def trace_backend(ctx: PlatformContext) -> str | None:
    traces = ctx.settings.traces
    return traces.backend if traces.enabled else None


def _traces_to_logs() -> dict[str, Any]:
    """From a span to its logs: Loki's OTLP ingestion turns `service.name` into the label service_name."""
    return {"datasourceUid": UIDS["loki"], "spanStartTimeShift": "-5m", "spanEndTimeShift": "5m",
            "filterByTraceID": True, "filterBySpanID": False,
            "tags": [{"key": "service.name", "value": "service_name"}]}


def additional_datasources(ctx: PlatformContext) -> list[dict[str, Any]]:
    """Loki and the trace backend, when switched on, linked to each other when both are.

    Grafana expands $VAR in provisioning files; `$$` keeps a literal `$` (Grafana provisioning docs).
    """
    logs, backend = ctx.settings.logs.enabled, trace_backend(ctx)
    found: list[dict[str, Any]] = []
    if logs:
        loki: dict[str, Any] = {"maxLines": 1000}
        if backend:
            link = {"datasourceUid": UIDS[backend], "url": "$${__value.raw}", "urlDisplayLabel": "Open trace"}
            loki["derivedFields"] = [
                # OTLP logs: the trace id is structured metadata `trace_id`.
                {"name": "trace_id", "matcherType": "label", "matcherRegex": "trace_id", **link},
                # logfmt / JSON lines that print it.
                {"name": "TraceID", "matcherRegex": "(?:trace_?id|traceID)[\"=: ]+\"?(\\w+)", **link},
            ]
        found.append({"name": "Loki", "type": "loki", "uid": UIDS["loki"], "access": "proxy", "url": LOKI_URL,
                      "editable": False, "jsonData": loki})
    if backend:
        data: dict[str, Any] = {"nodeGraph": {"enabled": True}}
        if logs:
            data["tracesToLogsV2"] = _traces_to_logs()
        if logs:
            data["lokiSearch"] = {"datasourceUid": UIDS["loki"]}
        # Tempo is the one trace store (config/platform.py TRACE_BACKENDS).
        found.append({"name": "Tempo", "type": "tempo", "uid": UIDS["tempo"], "access": "proxy", "url": TEMPO_URL,
                      "editable": False, "jsonData": data})
    return found


def datasource_sidecar(ctx: PlatformContext) -> dict[str, Any]:
    """kube-prometheus-stack's own datasource ConfigMap (templates/grafana/configmaps-datasources.yaml)."""
    sidecar: dict[str, Any] = {
        "enabled": True, "resource": "configmap",
        "defaultDatasourceEnabled": True, "isDefaultDatasource": True, "name": "Prometheus",
        "uid": UIDS["prometheus"], "url": PROMETHEUS_URL,
        "alertmanager": {"enabled": True, "name": "Alertmanager", "uid": UIDS["alertmanager"],
                         "url": ALERTMANAGER_URL, "implementation": "prometheus",
                         "handleGrafanaManagedAlerts": False},
    }
    backend = trace_backend(ctx)
    if backend:
        # Exemplars carrying trace_id open the trace.
        sidecar["exemplarTraceIdDestinations"] = {"datasourceUid": UIDS[backend], "traceIdLabelName": "trace_id",
                                                  "urlDisplayLabel": "Open trace"}
    return sidecar


def grafana_ini(ctx: PlatformContext) -> dict[str, Any]:
    return {
        "server": {"root_url": ctx.url(HOST_LABEL), "domain": ctx.gateway.hostname(HOST_LABEL)},
        "security": {"cookie_secure": True, "disable_gravatar": True},  # served over HTTPS only (the gateway)
        "users": {"allow_sign_up": False},
        # No internet from monitoring: nothing to check or report.
        "analytics": {"reporting_enabled": False, "check_for_updates": False, "check_for_plugin_updates": False},
        "news": {"news_feed_enabled": False},
        **gitlab_login(ctx),
    }


def role_attribute_path(admins: Sequence[str]) -> str:
    """Grafana's JMESPath over the user's GitLab groups (full paths, from GitLab's userinfo): Admin for the
    platform admins, Viewer for everyone else let in. Group paths are validated (config/platform.py
    check_group_path: no quote can occur), so they sit safely in JMESPath's single-quoted literals."""
    checks = " || ".join(f"contains(groups[*], '{group}')" for group in admins)
    return f"({checks}) && 'Admin' || 'Viewer'" if admins else "'Viewer'"


def gitlab_login(ctx: PlatformContext) -> dict[str, Any]:
    """Grafana's native GitLab login (`[auth.gitlab]`, Grafana 13: pkg/login/social/connectors/gitlab_oauth.go
    reads the ID token and GitLab's userinfo groups). The client secret is not here: GF_AUTH_GITLAB_CLIENT_SECRET
    from the Secret `grafana-sso` (grafana_values envValueFrom). The login form is off (everyone uses GitLab); basic
    auth stays on because the chart's sidecars reload dashboards and datasources through the HTTP API as the
    admin (REQ_USERNAME/REQ_PASSWORD from `grafana-admin`), which is also the emergency access (docs/security.md)."""
    client = ctx.sso.get("grafana")
    if client is None:
        return {}
    return {
        "auth": {"disable_login_form": True},
        "auth.gitlab": {
            "enabled": True, "allow_sign_up": True, "use_pkce": True,
            "client_id": client.client_id,
            "scopes": "openid email profile",
            "auth_url": f"{client.issuer}/oauth/authorize", "token_url": f"{client.issuer}/oauth/token",
            "api_url": f"{client.issuer}/api/v4",
            "allowed_groups": " ".join(client.allowed_groups()),  # nobody outside these groups gets in
            "role_attribute_path": role_attribute_path(client.admins),
        },
    }


def grafana_values(ctx: PlatformContext) -> dict[str, Any]:
    label, value = DASHBOARD_LABEL
    return {
        "enabled": True,
        "fullnameOverride": GRAFANA_SERVICE,
        "replicas": 1,
        "deploymentStrategy": {"type": "Recreate"},
        "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
        "envValueFrom": ({"GF_AUTH_GITLAB_CLIENT_SECRET": {"secretKeyRef": {"name": GRAFANA_SSO_SECRET,
                                                                            "key": "client-secret"}}}
                         if "grafana" in ctx.sso else {}),
        "persistence": {"enabled": True, "type": "pvc", "storageClassName": ctx.storage_class,
                        "accessModes": ["ReadWriteOnce"], "size": GRAFANA_STORAGE,
                        "annotations": {"helm.sh/resource-policy": "keep"}},
        # The chown init container runs as root with CHOWN/DAC_OVERRIDE: fsGroup gives Grafana its volume.
        "initChownData": {"enabled": False},
        "testFramework": {"enabled": False},
        "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": 472, "runAsGroup": 472, "fsGroup": 472},
        "containerSecurityContext": RESTRICTED_CONTAINER_SECURITY,
        "resources": size(ctx, "grafana"),
        "grafana.ini": grafana_ini(ctx),
        "rbac": {"useExistingClusterRole": GRAFANA_CLUSTER_ROLE},
        "sidecar": {
            "resources": size(ctx, "grafana-sidecar"),
            "securityContext": RESTRICTED_CONTAINER_SECURITY,
            "dashboards": {"enabled": True, "label": label, "labelValue": value, "searchNamespace": "ALL",
                           "resource": "configmap", "folderAnnotation": FOLDER_ANNOTATION,
                           "provider": {"foldersFromFilesStructure": True, "allowUiUpdates": False}},
            "datasources": datasource_sidecar(ctx),
        },
        "additionalDataSources": additional_datasources(ctx),
        "prune": True,  # a datasource switched off (logs, traces) leaves Grafana too
        "defaultDashboardsEnabled": True,
        "defaultDashboardsTimezone": "utc",
        "serviceMonitor": {"enabled": True},
    }


def grafana_cluster_role(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> k8s.rbac.v1.ClusterRole:
    """What the dashboard sidecar needs across namespaces: ConfigMaps, not Secrets."""
    return k8s.rbac.v1.ClusterRole(
        "grafana-dashboard-reader",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=GRAFANA_CLUSTER_ROLE, labels=ctx.labels("grafana", "rbac")),
        rules=[k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["configmaps"],
                                          verbs=["get", "watch", "list"])],
        opts=ctx.opts(after))


# --- exporters and K3s ----------------------------------------------------------------------------------

def node_exporter_values(ctx: PlatformContext) -> dict[str, Any]:
    return {
        "namespaceOverride": NODE_EXPORTER_NAMESPACE,
        # Every node, whatever its taints: the control plane (CriticalAddonsOnly) and the database pools.
        "tolerations": [{"operator": "Exists"}],
        "resources": size(ctx, "node-exporter"),
        # Bound to the node's own (private) address, not every interface: never on the public one.
        "service": {"listenOnAllInterfaces": False},
    }


def kubelet_values() -> dict[str, Any]:
    # A list replaces the chart's: its default drop (values.yaml kubelet.serviceMonitor.metricRelabelings)
    # is repeated, then the API server's and etcd client's series that k3s servers repeat on the kubelet
    # endpoint (k3s-io/k3s#12917); they are scraped once, from the API server.
    return {"serviceMonitor": {"metricRelabelings": [
        {"action": "drop", "sourceLabels": ["__name__", "le"],
         "regex": "(csi_operations|storage_operation_duration)_seconds_bucket;(0.25|2.5|15|25|120|600)(\\.0)?"},
        {"action": "drop", "sourceLabels": ["__name__"], "regex": "(apiserver|etcd)_.+"},
    ]}}


def values(ctx: PlatformContext) -> dict[str, Any]:
    return {
        "crds": {"enabled": False},  # the services layer owns them (components/services/monitoring_crds.py)
        "defaultRules": {"create": True},
        "prometheus": prometheus_values(ctx),
        "alertmanager": alertmanager_values(ctx),
        "grafana": grafana_values(ctx),
        "prometheusOperator": {
            "resources": size(ctx, "operator"),
            "prometheusConfigReloader": {"resources": size(ctx, "config-reloader")},
            # The webhook certificate jobs (kube-webhook-certgen, pinned by the chart).
            "admissionWebhooks": {"patch": {"resources": size(ctx, "webhook-jobs")}},
        },
        "kubeStateMetrics": {"enabled": True},
        "kube-state-metrics": {"resources": size(ctx, "kube-state-metrics")},
        "nodeExporter": {"enabled": True,
                         "operatingSystems": {"linux": {"enabled": True}, "aix": {"enabled": False},
                                              "darwin": {"enabled": False}}},
        "prometheus-node-exporter": node_exporter_values(ctx),
        "kubeApiServer": {"enabled": True},
        "kubelet": kubelet_values(),
        "coreDns": {"enabled": True},
        **{component: {"enabled": False} for component in K3S_EMBEDDED},
    }


# --- dashboards ------------------------------------------------------------------------------------------

def store_namespaces(ctx: PlatformContext) -> dict[str, str]:
    """Enabled store (DataEndpoints attribute) -> the namespace of its pods; external object storage has none."""
    found = {}
    for store in dashboards.STORES:
        endpoint = getattr(ctx.data, store)
        if endpoint is None:
            continue
        if store == "object_storage":
            if endpoint.in_cluster:
                found[store] = OBJECT_STORE_NAMESPACE
            continue
        found[store] = endpoint.namespace
    return found


def dashboard_config_maps(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[k8s.core.v1.ConfigMap]:
    maps = [_dashboard(ctx, f"dashboard-{store.replace('_', '-')}", f"{store}.json",
                       dashboards.render(store, namespace), after)
            for store, namespace in store_namespaces(ctx).items()]
    drills = ctx.data.drills  # the restore drills' results and the backups' age (components/data/drills.py)
    if drills is not None:
        maps.append(_dashboard(ctx, "dashboard-restore-drills", "restore-drills.json",
                               dashboards.render_drills(drills.namespace, dict(drills.backup_age)), after))
    return maps


def _dashboard(ctx: PlatformContext, name: str, filename: str, text: str,
               after: Sequence[pulumi.Resource]) -> k8s.core.v1.ConfigMap:
    """A dashboard ConfigMap Grafana's sidecar loads into the data stores' folder."""
    label, value = DASHBOARD_LABEL
    return k8s.core.v1.ConfigMap(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=name, namespace=NAMESPACE, labels={**ctx.labels("grafana", "dashboard"), label: value},
            annotations={FOLDER_ANNOTATION: dashboards.FOLDER}),
        data={filename: text}, opts=ctx.opts(after))


# --- install ---------------------------------------------------------------------------------------------

def install(ctx: PlatformContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> Installed:
    password = ctx.password("grafana-admin-password")
    _, admin = ctx.credentials("grafana-admin", GRAFANA_ADMIN_SECRET, NAMESPACE,
                               {"admin-user": "admin", "admin-password": password.result}, after,
                               labels=ctx.labels("grafana", "credentials"))
    _, am_config = ctx.credentials("alertmanager-config", ALERTMANAGER_CONFIG_SECRET, NAMESPACE,
                                   {ALERTMANAGER_CONFIG_KEY: alertmanager_config_text(ctx)}, after,
                                   labels=ctx.labels("alertmanager", "config"))
    role = grafana_cluster_role(ctx, after)
    login = [sso.client_secret(ctx, "grafana", GRAFANA_SSO_SECRET, NAMESPACE, after)] if "grafana" in ctx.sso else []
    # Protected in production: removing the release would take Grafana's database and the TSDB with it.
    stack = release(RELEASE, charts.KUBE_PROMETHEUS_STACK, values(ctx),
                    ctx.opts([*after, admin, am_config, role, *login], protect=True), namespace=NAMESPACE,
                    create_namespace=False)
    route = ctx.route("grafana-route", HOST_LABEL, NAMESPACE, GRAFANA_SERVICE, GRAFANA_PORT, depends_on=[stack])
    boards = dashboard_config_maps(ctx, after)
    # The HPAs' custom and external metrics: queries Prometheus, so it follows the stack.
    adapter = metrics_adapter.install(ctx, [*after, stack])
    return Installed(urls={HOST_LABEL: ctx.url(HOST_LABEL)},
                     ready=[admin, am_config, role, *login, stack, route, *boards, *adapter])


__all__ = ["install", "namespaces"]
