"""The base of every config model: camelCase keys, frozen, unknown keys named with the accepted ones."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

UNKNOWN_KEYS = "has unknown key(s)"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_hostname_label(value: str) -> str:
    """One DNS label (also a valid Kubernetes namespace name)."""
    if not _DNS_LABEL.match(value):
        raise ValueError(f"{value!r} must be a DNS label: 1-63 characters of a-z, 0-9 and '-', "
                         "starting and ending with a letter or digit")
    return value


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            accepted = {f.alias or n for n, f in cls.model_fields.items()}
            unknown = sorted(set(data) - accepted - set(cls.model_fields))
            if unknown:
                raise ValueError(f"{UNKNOWN_KEYS} {', '.join(map(repr, unknown))} "
                                 f"(accepted: {', '.join(sorted(accepted))})")
        return data
