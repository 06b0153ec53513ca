"""The base of every config model: camelCase keys, frozen, unknown keys named with the accepted ones."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

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


def one_of(options: Iterable[str], what: str = "", why: str = "") -> Callable[[str], str]:
    """A validator accepting exactly `options`; the error lists them (`what` names them, `why` explains)."""
    accepted = tuple(options)

    def check(value: str) -> str:
        if value not in accepted:
            raise ValueError(f"must be one of {what + ' ' if what else ''}{', '.join(accepted)}{' ' + why if why else ''}")
        return value
    return check


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
