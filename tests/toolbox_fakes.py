"""Running a toolbox Job's script (components/platform/toolbox_job.py: toolbox.sh, then the Job's part) with bash
against a fake kubectl, as the runner bootstrap and SSO tests do."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

# What toolbox.sh reads to find GitLab's migrations Job and toolbox pod (the fakes answer for these names).
MIGRATIONS_JOB = "gitlab-migrations-0123456789"
TOOLBOX_ENV = {"GITLAB_NAMESPACE": "gitlab", "MIGRATIONS_JOB": MIGRATIONS_JOB, "MIGRATIONS_WAIT_SECONDS": "0",
               "TOOLBOX_SELECTOR": "app=toolbox,release=gitlab", "TOOLBOX_CONTAINER": "toolbox", "WAIT_SECONDS": "0"}
# Put before a fake kubectl's own answers: `get job <MIGRATIONS_JOB>` prints the Job's true conditions, read from
# $STATE/migrations (one line per call, the last line repeating; a complete Job when the file is missing), and
# nothing for another Job (as --ignore-not-found does). Every call is logged to $STATE/calls by the fake itself.
MIGRATIONS_FAKE = r"""
if [ "$1 $2" = "get job" ]; then
  echo "$*" >> "$STATE/calls"
  [ "$5" = "$MIGRATIONS_JOB" ] || exit 0
  if [ ! -f "$STATE/migrations" ]; then printf 'SuccessCriteriaMet Complete'; exit 0; fi
  n=$(grep -c '^get job' "$STATE/calls"); last=$(wc -l < "$STATE/migrations")
  [ "$n" -le "$last" ] || n=$last
  sed -n "${n}p" "$STATE/migrations" | tr -d '\n'; exit 0
fi
"""


def run_toolbox_script(tmp_path: Path, fake_kubectl: str, script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`script` run by bash with `fake_kubectl` first on PATH; the fake keeps its state under STATE (tmp_path)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    shebang, _, answers = fake_kubectl.partition("\n")
    kubectl.write_text(f"{shebang}\n{MIGRATIONS_FAKE}{answers}")
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    path = tmp_path / "job.sh"
    path.write_text(script)
    full = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STATE": str(tmp_path), **TOOLBOX_ENV, **env}
    return subprocess.run(["bash", str(path)], env=full, capture_output=True, text=True, check=False)
