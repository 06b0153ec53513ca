"""The planner's YAML reads (stack files, price tables): yaml.safe_load's data, parsed by libyaml when PyYAML has it.

The planner's own (components/ has none): `make plan-diff` runs this planner against older trees (tools/plan/diff.py
export_tree copies tools/ and policy/ over them), so it needs nothing of the program that those trees may lack."""

from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """yaml.safe_load(text): the same data (SafeLoader's constructor and resolver), parsed by libyaml."""
    return yaml.load(text, Loader=_LOADER)
