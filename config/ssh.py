"""SSH keys: a public key line is decoded and its body read, so a pasted-wrong key is refused at validation.

An OpenSSH public key line is `<type> <base64 body> [comment]`; the body is the key in SSH wire format
(RFC 4253 section 6.6, RFC 5656 section 3.1, OpenSSH PROTOCOL.u2f): a sequence of length-prefixed
strings, the first of which repeats the type. A line whose type does not match its body (an RSA body
labelled ssh-ed25519), a truncated body, or trailing bytes all mean a copy-paste accident that would
otherwise only show when the servers refuse the deployer's SSH connections.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

# type -> the fields its body holds after the type string: "ed25519" (32 bytes), "mpint", "curve"
# (the curve name the type names), "point" (an uncompressed point of that curve), "string" (the
# security key's application).
_FIELDS = {
    "ssh-ed25519": ("ed25519",),
    "ssh-rsa": ("mpint", "mpint"),
    "ecdsa-sha2-nistp256": ("curve", "point"),
    "ecdsa-sha2-nistp384": ("curve", "point"),
    "ecdsa-sha2-nistp521": ("curve", "point"),
    "sk-ssh-ed25519@openssh.com": ("ed25519", "string"),
    "sk-ecdsa-sha2-nistp256@openssh.com": ("curve", "point", "string"),
}
# Uncompressed point sizes: 0x04 followed by two coordinates.
_POINT_BYTES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}
MAX_PUBLIC_KEY = 8192  # an RSA 16384-bit key line is about 2.8k characters
_LINE = re.compile(r"(?P<type>\S+) (?P<body>[A-Za-z0-9+/]+={0,2})(?: (?P<comment>[^\r\n]*))?")
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:OPENSSH |RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----\r?\n"
                          r"[\s\S]+\r?\n-----END (?:OPENSSH |RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----\s*")
ACCEPTED = ", ".join(_FIELDS)


def _strings(body: bytes) -> list[bytes]:
    """The body's length-prefixed strings; ValueError if one is cut short."""
    found, offset = [], 0
    while offset < len(body):
        if offset + 4 > len(body):
            raise ValueError("ends in the middle of a length")
        (length,) = struct.unpack(">I", body[offset:offset + 4])
        offset += 4
        if offset + length > len(body):
            raise ValueError("is truncated")
        found.append(body[offset:offset + length])
        offset += length
    return found


def _check_body(key_type: str, body: bytes) -> None:
    try:
        strings = _strings(body)
    except ValueError as exc:
        raise ValueError(f"must be a whole OpenSSH public key: its base64 body {exc} (copy the whole line of "
                         "the .pub file)") from None
    embedded = strings[0].decode("ascii", "replace") if strings else ""
    if embedded != key_type:
        raise ValueError(f"must be an OpenSSH public key whose type matches its body: the line says {key_type!r}, "
                         f"the body is {embedded!r} (copy the whole line of the .pub file)")
    fields = _FIELDS[key_type]
    if len(strings) - 1 != len(fields):
        raise ValueError(f"must be a whole OpenSSH public key: a {key_type} body holds {len(fields)} fields after "
                         f"its type, this one {len(strings) - 1} (truncated or padded)")
    named = re.search(r"nistp\d+", key_type)
    curve = named.group() if named else None
    for kind, value in zip(fields, strings[1:]):
        wrong = {"ed25519": len(value) != 32, "curve": value != (curve or "").encode(), "string": False,
                 "point": len(value) != _POINT_BYTES.get(curve or "", -1), "mpint": not value}[kind]
        if wrong:
            raise ValueError(f"must be a whole OpenSSH public key: its {kind} field does not fit a {key_type} key "
                             "(truncated or altered)")


def check_public_key(line: str) -> str:
    """One OpenSSH public key line; its body decoded and checked against its type."""
    line = line.strip()
    if _PRIVATE_KEY.match(line) or "PRIVATE KEY" in line:
        raise ValueError("must be a public key (the .pub file), not a private key; keep the private key in the "
                         "secret sshPrivateKey")
    match = _LINE.fullmatch(line) if len(line) <= MAX_PUBLIC_KEY else None
    if not match:
        raise ValueError("must be an OpenSSH public key line (ssh-ed25519 AAAA... comment)")
    if match["type"] not in _FIELDS:
        raise ValueError(f"must be an OpenSSH public key of a type the servers accept ({ACCEPTED})")
    try:
        body = base64.b64decode(match["body"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be an OpenSSH public key: its body is not valid base64 (truncated?)") from None
    _check_body(match["type"], body)
    return line


def private_key_problem(value: str) -> str | None:
    """Why `value` is not a PEM/OpenSSH private key (None: it is one)."""
    text = value.strip()
    if text.startswith(tuple(f"{t} " for t in _FIELDS)) or "PUBLIC KEY" in text:
        return ("must be the private key (-----BEGIN OPENSSH PRIVATE KEY----- ...), not the public key: the public "
                "key belongs in sshPublicKeys")
    if not _PRIVATE_KEY.fullmatch(text + "\n"):
        return ("must be a private key in OpenSSH or PEM format, from its -----BEGIN ... PRIVATE KEY----- line to "
                "its -----END ... PRIVATE KEY----- line")
    return None


__all__ = ["ACCEPTED", "MAX_PUBLIC_KEY", "check_public_key", "private_key_problem"]
