"""kubectl as a subprocess: JSON in. The only writes are the store probes' own short-lived pods (stores.py),
created from JSON on stdin and deleted again."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any


class KubectlError(RuntimeError):
    pass


@dataclass(frozen=True)
class Kubectl:
    kubeconfig: str
    binary: str = "kubectl"
    timeout: int = 60

    def _run(self, *args: str, stdin: str | None = None) -> str:
        try:
            done = subprocess.run([self.binary, "--kubeconfig", self.kubeconfig, *args], capture_output=True,
                                  text=True, timeout=self.timeout, check=False, input=stdin)
        except subprocess.TimeoutExpired:  # a KubectlError fails this section only; the other sections still run
            raise KubectlError(f"kubectl {' '.join(args)}: no answer within {self.timeout}s") from None
        if done.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: {done.stderr.strip() or done.returncode}")
        return done.stdout

    def list(self, resource: str) -> list[dict[str, Any]] | None:
        """Every object of `resource` in all namespaces; None when the cluster has no such type (CRD absent)."""
        try:
            return json.loads(self._run("get", resource, "--all-namespaces", "-o", "json"))["items"]
        except KubectlError as err:
            if "the server doesn't have a resource type" in str(err):
                return None
            raise

    def helm_releases(self) -> list[dict[str, Any]]:
        """Helm's release Secrets (label owner=helm), only their type, namespace, name and the name/status/version
        labels: a release's data is its rendered values, credentials included, which verify never reads."""
        fields = ("type", "metadata.namespace", "metadata.name", "metadata.labels.name", "metadata.labels.status",
                  "metadata.labels.version")
        template = "{range .items[*]}" + '{"\\t"}'.join(f"{{.{f}}}" for f in fields) + '{"\\n"}{end}'
        found = []
        for line in self._run("get", "secrets", "--all-namespaces", "--selector", "owner=helm",
                              "-o", f"jsonpath={template}").splitlines():
            kind, namespace, name, release, status, version = (line.split("\t") + [""] * 6)[:6]
            found.append({"type": kind, "metadata": {"namespace": namespace, "name": name, "labels": {
                "name": release, "status": status, "version": version or "0"}}})
        return found

    def raw(self, path: str) -> Any:
        """GET an API path (e.g. a Service proxy: the Alertmanager API without a port-forward)."""
        return json.loads(self._run("get", "--raw", path))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object; None when it does not exist."""
        try:
            return json.loads(self._run("get", kind, name, "--namespace", namespace, "-o", "json"))
        except KubectlError as err:
            if "NotFound" in str(err):
                return None
            raise

    def create(self, manifest: dict[str, Any]) -> None:
        """Create an object from its JSON on stdin (nothing of it on a command line)."""
        self._run("create", "-f", "-", stdin=json.dumps(manifest))

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self._run("delete", kind, name, "--namespace", namespace, "--ignore-not-found", "--wait=false")

    def logs(self, namespace: str, name: str) -> str:
        return self._run("logs", name, "--namespace", namespace)
