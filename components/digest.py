"""Plain digests of secret contents, for pod-template annotations that restart a workload when a secret it reads
only at start changes (as Helm charts' checksum/secret annotations do).

Why this shape: left secret, the annotation would make the whole release's values (or the Job's spec) secret and
hide every change of them from previews, so the digest is unsecret. That is safe only because it is
domain-separated (`adplatform/<purpose>:` before the text: never the bare SHA-256 some stores accept as a password's
hash) and taken over text holding generated secrets of 32 or more random characters, so it reveals nothing of them.
"""

from __future__ import annotations

import hashlib
import json

import pulumi


def mapping_text(values: dict) -> str:
    """A mapping as one text, the same for the same contents whatever their order (what a marker is taken over)."""
    return json.dumps(values, sort_keys=True)


def marker(purpose: str, text: str) -> str:
    """The SHA-256 (hex) of `text`, separated by `purpose` from every other digest of the program."""
    return hashlib.sha256(f"adplatform/{purpose}:".encode() + text.encode()).hexdigest()


def plain_marker(purpose: str, text: pulumi.Input[str]) -> pulumi.Output[str]:
    """`marker` of a (usually secret) Output, as a plain Output: changes with it, reveals nothing of it."""
    return pulumi.Output.unsecret(pulumi.Output.from_input(text).apply(lambda value: marker(purpose, value)))


__all__ = ["mapping_text", "marker", "plain_marker"]
