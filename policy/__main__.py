"""Entry point of the CrossGuard policy pack: `pulumi preview --policy-pack policy`.

The rules themselves live in `rules.py` (plain functions, unit-tested without the engine).
"""

from __future__ import annotations

from typing import Any

import pulumi_policy.policy as crossguard
from pulumi_policy import EnforcementLevel, PolicyPack

from rules import mark_secrets, policies  # the pack directory is on sys.path when the CLI runs it

_deserialize = crossguard.deserialize_properties


def _keep_secrets_marked(props: dict[str, Any], proxy_secrets: bool = False) -> dict[str, Any]:
    # pulumi-policy 1.21 unwraps secrets before validation, which would make every correctly secret
    # credential look like a plaintext one to `no-plaintext-secrets`. Validation (proxy_secrets=False)
    # gets them marked instead; remediation keeps the library's behaviour. The library passes our
    # Secret objects through untouched.
    if proxy_secrets:
        return _deserialize(props, proxy_secrets)
    return _deserialize(mark_secrets(props))


crossguard.deserialize_properties = _keep_secrets_marked

PolicyPack(
    name="adplatform",
    description="Security and operability rules of the adplatform program (see policy/rules.py).",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
