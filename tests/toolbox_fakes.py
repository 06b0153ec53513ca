"""Running a toolbox Job's script (components/platform/toolbox_job.py: toolbox.sh, then the Job's part) with bash
against a fake kubectl, as the runner bootstrap and SSO tests do."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

# What toolbox.sh reads to find GitLab's toolbox pod (the fakes answer for this namespace and selector).
TOOLBOX_ENV = {"GITLAB_NAMESPACE": "gitlab", "TOOLBOX_SELECTOR": "app=toolbox,release=gitlab",
               "TOOLBOX_CONTAINER": "toolbox", "WAIT_SECONDS": "0"}


def run_toolbox_script(tmp_path: Path, fake_kubectl: str, script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`script` run by bash with `fake_kubectl` first on PATH; the fake keeps its state under STATE (tmp_path)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(fake_kubectl)
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    path = tmp_path / "job.sh"
    path.write_text(script)
    full = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STATE": str(tmp_path), **TOOLBOX_ENV, **env}
    return subprocess.run(["bash", str(path)], env=full, capture_output=True, text=True, check=False)
