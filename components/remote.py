"""Run a rendered script on a node over SSH, re-running it exactly when its content changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pulumi
import pulumi_command as command

if TYPE_CHECKING:  # providers use run_script too (bare metal, Azure): no import cycle at runtime
    from providers.base import Node


def shell_command(user: str | None) -> str:
    """The remote command that runs a script fed on stdin: as root directly, as another user through sudo."""
    return "bash -s" if user in (None, "root") else "sudo -n bash -s"


def run_script(name: str, node: Node, script: pulumi.Input[str], trigger: str, *,
               parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource] = (),
               secret: bool = False) -> command.remote.Command:
    """Run `script` with bash on `node`, fed over stdin so it never shows in the process list.

    `trigger` is a content hash that excludes secrets: a new hash replaces the command, which runs
    the (idempotent) script again. A script carrying secrets is stored as a secret and its stdout
    is neither logged nor kept in plain text.
    """
    return command.remote.Command(
        name,
        connection=node.connection,
        create=shell_command(node.connection.user),
        stdin=pulumi.Output.secret(script) if secret else script,
        triggers=[trigger],
        logging=command.remote.Logging.STDERR if secret else command.remote.Logging.STDOUT_AND_STDERR,
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[node.server, *depends_on],
            additional_secret_outputs=["stdout"] if secret else None,
        ),
    )
