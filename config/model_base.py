"""The base of every config model: camelCase keys, frozen, unknown keys named with the accepted ones."""

from __future__ import annotations

import base64
import ipaddress
import re
import struct
from typing import Any, Callable, ClassVar, Iterable

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

UNKNOWN_KEYS = "has unknown key(s)"
# Every config string is at most this long (pydantic str_max_length), unless its type says otherwise (SSH
# public keys): config values become labels, names, file lines and script parameters, none of them unbounded.
MAX_STRING = 1024
# Newlines, tabs, NUL, escape...: no config value may carry them. A newline in a region or a bucket name would
# start a new line in a rendered config file (s3cmd, K3s) or runbook; Python's `$` matches before a trailing
# newline, so a pattern check alone does not keep one out.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_NEWLINES = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")  # text blocks (armored keys)
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")
# A single word of a cloud's vocabulary (regions, zones, locations, ids): no spaces, quotes or shell syntax.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")


def check_hostname_label(value: str) -> str:
    """One DNS label (also a valid Kubernetes namespace name)."""
    if not _DNS_LABEL.fullmatch(value):
        raise ValueError(f"{value!r} must be a DNS label: 1-63 characters of a-z, 0-9 and '-', "
                         "starting and ending with a letter or digit")
    return value


def check_dns_subdomain(value: str) -> str:
    """A Kubernetes object name (DNS-1123 subdomain): Velero backups and restores, ConfigMaps, ..."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError("must be a Kubernetes name: at most 253 characters of a-z, 0-9, '-' and '.', dot-separated "
                         "labels of at most 63 that start and end with a letter or digit")
    return value


def check_dns_name(value: str) -> str:
    """A DNS name of two or more labels (ads.example.com): labels of 1-63, the whole at most 253 characters."""
    if len(value) > 253 or "." not in value or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError("must be a lower-case DNS name such as ads.example.com (labels of 1-63 characters of a-z, "
                         "0-9 and '-', at most 253 characters in all)")
    return value


def check_token(value: str, max_length: int = 63) -> str:
    """One word of a provider's vocabulary: a region, zone, location or id (it reaches files and scripts)."""
    if len(value) > max_length or not _TOKEN.fullmatch(value):
        raise ValueError(f"must be a single word of 1-{max_length} characters of A-Z, a-z, 0-9, '.', '_' and '-', "
                         "starting with a letter or digit (no spaces, quotes or shell syntax)")
    return value


def check_label_value(value: str) -> str:
    """A non-empty Kubernetes label value (a node's region or zone: it reaches the K3s config and the Node)."""
    if not _LABEL_VALUE.fullmatch(value):
        raise ValueError("must be a Kubernetes label value: 1-63 characters of A-Z, a-z, 0-9, '.', '_' and '-', "
                         "starting and ending with a letter or digit")
    return value


def check_cidr(value: str) -> str:
    """A network in CIDR notation, prefix length written: ip_network reads a bare address as its /32 (or /128), but
    the firewalls it reaches (Hetzner's source_ips, AWS's cidr_ipv4, Cilium's IP pools) take only CIDR blocks."""
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"must be a network in CIDR notation with no host bits set, e.g. 203.0.113.0/24 ({exc})") from None
    if "/" not in str(value):
        raise ValueError(f"must be a network in CIDR notation with its prefix length, e.g. {network} for this one "
                         "address")
    return value


# An SSH host key as pulumi-command's connection.hostKey takes it: one authorized_keys line, parsed by
# ssh.ParseAuthorizedKey (pulumi-command provider/pkg/provider/remote/connection.go, v1.2.1). We pin ed25519 only:
# every supported image generates one, and its wire form is fixed (type string, then a 32-byte key).
HOST_KEY_TYPE = "ssh-ed25519"
_HOST_KEY = re.compile(r"(ssh-ed25519) ([A-Za-z0-9+/]{68})(?: [^\x00-\x1f\x7f]*)?")


def check_host_key(value: str) -> str:
    """`ssh-ed25519 <base64>` (a trailing comment is dropped): the key type, then the base64 of the key in SSH
    wire form, whose embedded type must be the same ed25519 (what `ssh-keyscan -t ed25519 <host>` prints)."""
    match = _HOST_KEY.fullmatch(str(value).strip())
    blob = b""
    if match:
        try:
            blob = base64.b64decode(match.group(2), validate=True)
        except ValueError:
            blob = b""
    kind = HOST_KEY_TYPE.encode()
    wire = struct.pack(">I", len(kind)) + kind + struct.pack(">I", 32)
    if len(blob) != len(wire) + 32 or not blob.startswith(wire):
        raise ValueError(f"must be the host's ed25519 public key, '{HOST_KEY_TYPE} AAAAC3NzaC1lZDI1NTE5AAAAI...' "
                         "(the first two fields of /etc/ssh/ssh_host_ed25519_key.pub, or of "
                         "`ssh-keyscan -t ed25519 <host>` after the host name)")
    return f"{HOST_KEY_TYPE} {match.group(2)}"


def optional(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    """`check` for a field that may be unset."""
    return lambda value: None if value is None else check(value)


def _no_control_characters(value: Any, multiline: bool = False) -> Any:
    """Every string in a field (lists and maps included; nested models check their own fields). `multiline`:
    a field of text blocks (Model.multiline_fields), where line breaks are the format and nothing else is."""
    if isinstance(value, str):
        if (_CONTROL_BUT_NEWLINES if multiline else _CONTROL).search(value):
            raise ValueError("must not contain control characters (tabs, ...)" if multiline else
                             "must not contain control characters (newlines, tabs, ...)")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _no_control_characters(item, multiline)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_control_characters(key, multiline)
            _no_control_characters(item, multiline)
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
    # defer_build: each model's validator is built when first used, not at import. A nested model's schema is part
    # of the stack config's validator anyway, so building every model's own at import was done twice (about 0.1 s
    # of every plan and test process; errors and their wording are the same).
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid",
                              str_max_length=MAX_STRING, defer_build=True)

    multiline_fields: ClassVar[frozenset[str]] = frozenset()  # fields of text blocks: line breaks allowed

    @field_validator("*")
    @classmethod
    def _v_control(cls, value: Any, info: ValidationInfo) -> Any:
        return _no_control_characters(value, info.field_name in cls.multiline_fields)

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
