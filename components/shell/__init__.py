"""Render the real `.sh` templates into the scripts remote commands run.

A template has a line `# @params` where the renderer writes `readonly NAME='value'` lines
(shell-quoted), then a line `source lib.sh` that the renderer replaces by components/shell/lib.sh.
Everything after that line becomes the body of `main`, called with stdin from /dev/null: the
script reaches the node on bash's stdin, and a function is parsed whole before it runs, so no
command inside can swallow the rest of the script. Each rendered script is one self-contained
file that shellcheck lints as-is.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Mapping, Sequence

LIB = Path(__file__).with_name("lib.sh")
PARAMS_MARKER = "# @params"
SOURCE_LIB = "source lib.sh"


def render(template: Path, params: Mapping[str, str | int | bool], libs: Sequence[Path] = ()) -> str:
    """`libs`: further helper files (a layer's own, e.g. components/k3s/scripts/k3s-lib.sh), inlined after lib.sh."""
    text = template.read_text()
    if PARAMS_MARKER not in text or SOURCE_LIB not in text:
        raise ValueError(f"{template} must contain the lines {PARAMS_MARKER!r} and {SOURCE_LIB!r}")
    lines = []
    for name, value in params.items():
        if not name.isupper():
            raise ValueError(f"script parameter {name!r} must be UPPER_CASE")
        if isinstance(value, bool):
            value = "true" if value else "false"
        if "$" in str(value):  # single-quoted on purpose: a parameter is data, never expanded (e.g. apt's ${distro_id})
            lines.append("# shellcheck disable=SC2016")
        lines.append(f"readonly {name}={shlex.quote(str(value))}")
    lib = "\n\n".join("\n".join(line for line in path.read_text().splitlines()
                                 if not line.startswith("#!") and line not in ("set -euo pipefail",
                                                                              "shopt -s inherit_errexit")).strip()
                       for path in (LIB, *libs))
    head, body = text.replace(PARAMS_MARKER, "\n".join(lines), 1).split(SOURCE_LIB + "\n", 1)
    return f"{head}{lib.strip()}\n\nmain() {{\n{body.rstrip()}\n}}\n\nmain </dev/null\n"


def content_hash(*parts: str) -> str:
    """Trigger for re-running a remote command exactly when what it would do changes."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()
