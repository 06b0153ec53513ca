"""`python -m tools.ci.cloud_init_schema`: cloud-init's own JSON schema of #cloud-config, for the tests.

cloud-init is not on PyPI, so its schema comes from Debian's package of it: the pinned .deb is downloaded from
deb.debian.org, checked against its SHA-256 (from the archive's signed package index), and only the schema file
is extracted into SCHEMA (git-ignored; nothing fetched is committed). tests/validators.py validates every rendered
user data document against it with `jsonschema`. `make test` runs this; it is idempotent.

Without the network it warns and leaves the tests to skip, unless ADPLATFORM_REQUIRE_NODE_TOOLS is set (CI):
then it fails, as the tests would. A checksum mismatch always fails.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

# Debian 12 (bookworm) cloud-init 22.4.2-1+deb12u4 (apt-cache show cloud-init: Filename, SHA256). Its schema covers
# every module our user data uses (write_files, bootcmd, runcmd, ssh_authorized_keys); newer cloud-init keeps them.
VERSION = "22.4.2-1+deb12u4"
URL = "https://deb.debian.org/debian/pool/main/c/cloud-init/cloud-init_22.4.2-1%2bdeb12u4_all.deb"
SHA256 = "c18c9b1a999268413f215371ae6382f8705a437b2b24c049d6dbafcc111a1d09"
MEMBER = "./usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json"

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY = ROOT / "tools" / "ci" / "cloud-init"
SCHEMA = DIRECTORY / "schema-cloud-config-v1.json"
STAMP = DIRECTORY / "VERSION"
STRICT = "ADPLATFORM_REQUIRE_NODE_TOOLS"  # tests/validators.py REQUIRE_NODE_TOOLS: set where the tools must run


def installed() -> bool:
    return SCHEMA.is_file() and STAMP.is_file() and STAMP.read_text().strip() == VERSION


def ar_member(archive: bytes, prefix: str) -> bytes:
    """The first member of a Debian package (an `ar` archive) whose name starts with `prefix`."""
    if not archive.startswith(b"!<arch>\n"):
        raise ValueError("not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(archive):
        header = archive[offset:offset + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        start = offset + 60
        if name.startswith(prefix):
            return archive[start:start + size]
        offset = start + size + (size % 2)  # members are 2-byte aligned
    raise ValueError(f"no {prefix}* member in the package")


def schema_from_deb(package: bytes) -> bytes:
    data = ar_member(package, "data.tar")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise ValueError(f"{MEMBER} is not a file in the package")
        return member.read()


def download() -> bytes:
    with urllib.request.urlopen(URL, timeout=60) as response:  # noqa: S310 (a fixed https URL)
        return response.read()


def main() -> int:
    if installed():
        return 0
    try:
        package = download()
    except OSError as exc:
        message = f"cloud-init schema not installed: cannot download {URL}: {exc}"
        print(message, file=sys.stderr)
        return 1 if os.environ.get(STRICT) else 0
    digest = hashlib.sha256(package).hexdigest()
    if digest != SHA256:
        print(f"cloud-init package checksum mismatch: {digest}, expected {SHA256} ({URL})", file=sys.stderr)
        return 1
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    SCHEMA.write_bytes(schema_from_deb(package))
    STAMP.write_text(VERSION + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
