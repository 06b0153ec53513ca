"""kubectl as a subprocess: JSON in, nothing written to the cluster."""

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

    def _run(self, *args: str) -> str:
        done = subprocess.run([self.binary, "--kubeconfig", self.kubeconfig, *args], capture_output=True,
                              text=True, timeout=self.timeout, check=False)
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

    def raw(self, path: str) -> Any:
        """GET an API path (e.g. a Service proxy: the Alertmanager API without a port-forward)."""
        return json.loads(self._run("get", "--raw", path))
