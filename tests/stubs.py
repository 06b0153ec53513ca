"""Running a rendered node script under bash with stub commands (k3s, systemctl) that record each call: the one
harness of the drain, resize and departure script tests."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path


def run_with_stubs(tmp_path: Path, script: str, stubs: dict[str, str], stdout: list[str] | None = None,
                   **env: str) -> tuple[int, list[str], str]:
    """Run `script` with each stub (name -> body; a body without a shebang gets bash's) first on PATH and $CALLS
    naming the file the stubs append their calls to; returns the exit code, the recorded calls and stderr (and
    appends the script's stdout lines to `stdout`, where given)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in stubs.items():
        path = bin_dir / name
        path.write_text(body if body.startswith("#!") else "#!/usr/bin/env bash\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls"
    calls.touch()
    result = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, timeout=60,
                            env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), **env})
    if stdout is not None:
        stdout.extend(result.stdout.splitlines())
    return result.returncode, calls.read_text().splitlines(), result.stderr


def kubectl_calls(calls: list[str]) -> list[str]:
    """The recorded `k3s kubectl` calls without the flags every call carries."""
    return [c.split(" --request-timeout=20s ", 1)[-1] for c in calls]


# A fake clock for a script's waits: its `sleep` (a function, so it runs in the script's own shell) moves bash's
# SECONDS on by `seconds`, what one pass of a wait loop costs: its pause and a read that took its request timeout.
def with_fake_clock(script: str, seconds: int) -> str:
    shebang, rest = script.split("\n", 1)
    return f"{shebang}\nsleep() {{ SECONDS=$((SECONDS + {seconds})); }}\n{rest}"
