"""Config of the cluster-services layer: TLS, gateway, upgrades, backups, secrets, mesh, teams.

Profiles (config/profiles.py) supply the environment defaults; cross-field rules (what must be set
when a feature is on) live in config/rules.py.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import urllib.parse
import zoneinfo
from typing import Annotated, ClassVar, Literal

from pydantic import StringConstraints, field_validator, model_validator

from config.cron import check_ranges
from config.model_base import (Model, check_dns_name, check_dns_subdomain, check_hostname_label, check_token, one_of,
                               optional)
from config.catalog import PROVIDERS
from config.quantity import Cpu, Memory

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")
_CRON_FIELD = r"(\*|\d+|\d+-\d+)(/\d+)?(,(\d+|\d+-\d+)(/\d+)?)*"
_CRON = re.compile(rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

ISSUERS = ("letsencrypt-production", "letsencrypt-staging")
DNS01_PROVIDERS = ("cloudflare", "route53", "rfc2136")
TSIG_ALGORITHMS = ("HMACMD5", "HMACSHA1", "HMACSHA256", "HMACSHA512")  # cert-manager's rfc2136 solver
# host[:port] or [IPv6][:port] (cert-manager's rfc2136 `nameserver`).
_NAMESERVER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(:\d{1,5})?")
# external-dns: the DNS-01 providers (built into external-dns) plus Hetzner DNS through its webhook provider.
DNS_PROVIDERS = (*DNS01_PROVIDERS, "hetzner")
DNS_POLICIES = ("sync", "upsert-only")
SECRETS_BACKENDS = ("openbao", "vault")
# How OpenBao unseals (components/services/secrets.py): `static`, a key in the cluster; `kms`, the cloud provider's
# key management service (providers/*.py install_seal); `transit`, the transit engine of an OpenBao or Vault outside
# the cluster (clusterServices.secrets.seal.transit, token adplatform:secretsSealToken). Unset: `kms` where the
# stack's provider offers one, else `static`.
SEAL_TYPES = ("static", "kms", "transit")
# Reboot window days, as kured's --reboot-days takes them (kubereboot/kured 1.23.0 pkg/timewindow/days.go).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
DAY_MINUTES = 24 * 60
UPGRADE_AFTER_REBOOTS_MINUTES = 60  # Reboots.upgrade_window
UPGRADE_BEFORE_REBOOTS_MINUTES = 120
MIN_UPGRADE_MINUTES = 60  # the least a day's upgrade window may last


def etcd_s3_retention(retention: int, servers: int) -> int:
    """K3s' etcd-s3-retention for `retention` snapshots per server: K3s counts the S3 folder's snapshots of all servers
    together (k3s-io/k3s#8099), its local retention per server."""
    return retention * servers


def _minutes(clock: str) -> int:
    """HH:MM -> minutes after midnight."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(minutes: int) -> str:
    """Minutes after midnight (any integer: taken modulo a day) -> HH:MM."""
    minutes %= DAY_MINUTES
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
# What writes backups to clusterServices.backups.s3, each with its own key pair (adplatform:backupCredentials):
# the K3s servers (etcd snapshots), Velero, the secret store's raft snapshots (components/services/secrets_backup.py)
# and each store's backup agent (Redpanda's: its export CronJob).
BACKUP_PURPOSES = ("etcd", "velero", "secrets", "postgres", "clickhouse", "scylladb", "redpanda")
# What only reads those backups, with a key pair that may list and get objects and nothing else
# (adplatform:backupCredentials.drills): the restore drills (components/data/drills.py). Never falls back to a
# writer's pair or the shared pair: a drill must not be able to change the backups it checks.
BACKUP_READERS = ("drills",)
SSE_MODES = ("AES256",)  # clusterServices.backups.s3.serverSideEncryption
MAX_LISTED_SNAPSHOTS = 1000  # keys one S3 ListObjectsV2 page returns


def check_cron(value: str) -> str:
    """The grammar here, then each field's range and that some day matches (config/cron.py check_ranges): a
    CronJob with hour 25 or a February 30 is accepted by the API server and never runs."""
    if not _CRON.match(value):
        raise ValueError("must be a 5-field cron expression such as '0 */6 * * *'")
    return check_ranges(value)


def check_s3_endpoint(value: str) -> str:
    if not re.fullmatch(r"https://[A-Za-z0-9.-]{1,253}(:\d{1,5})?/?", value):
        raise ValueError("must be an https:// S3 endpoint URL without a path, e.g. https://fsn1.your-objectstorage.com")
    return value.rstrip("/")


class Dns01(Model):
    """A DNS provider cert-manager can answer DNS-01 challenges with (needed for the wildcard)."""

    provider: str
    zone: str  # the DNS zone the challenges are written to (Route53: the hosted zone's domain)
    hosted_zone_id: str | None = None  # route53
    region: str | None = None  # route53
    access_key_id: str | None = None  # route53 (the secret key is adplatform:dnsApiToken)
    nameserver: str | None = None  # rfc2136: host:port
    tsig_key_name: str | None = None  # rfc2136
    tsig_algorithm: str = "HMACSHA512"  # rfc2136

    _v_provider = field_validator("provider")(
        staticmethod(one_of(DNS01_PROVIDERS, why="(cert-manager's built-in DNS-01 solvers)")))
    _v_zone = field_validator("zone")(check_dns_name)
    _v_tokens = field_validator("hosted_zone_id", "region", "access_key_id")(optional(check_token))
    _v_tsig_key = field_validator("tsig_key_name")(optional(lambda v: check_token(v, 253)))
    _v_tsig_algorithm = field_validator("tsig_algorithm")(staticmethod(one_of(TSIG_ALGORITHMS)))

    @field_validator("nameserver")
    @classmethod
    def _nameserver(cls, value: str | None) -> str | None:
        if value is not None and not _NAMESERVER.fullmatch(value):
            raise ValueError("must be host:port of the authoritative DNS server, e.g. ns1.example.com:53 or "
                             "[2001:db8::1]:53")
        return value


class Dns(Dns01):
    """Where external-dns writes the records of the gateway's hostnames (components/services/dns.py).

    Unset: the zone and credentials of `tls.dns01`, so a stack that has DNS-01 gets its records too.
    Set it for a provider cert-manager cannot answer challenges with (hetzner) or to turn records off.
    """

    enabled: bool = True
    # sync: a hostname removed from the platform loses its record (no name left pointing at a released
    # load-balancer address). The TXT registry limits both policies to records this stack created.
    policy: str = "sync"

    _v_provider = field_validator("provider")(
        staticmethod(one_of(DNS_PROVIDERS, why="(external-dns' built-in providers, hetzner through its webhook)")))
    _v_policy = field_validator("policy")(staticmethod(one_of(DNS_POLICIES)))


class Tls(Model):
    acme_email: str | None = None
    issuer: str = "letsencrypt-production"  # the ClusterIssuer the shared gateway's certificates use
    dns01: Dns01 | None = None

    @field_validator("acme_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("must be an e-mail address (Let's Encrypt sends expiry notices there)")
        return value

    _v_issuer = field_validator("issuer")(staticmethod(one_of(ISSUERS)))


class Gateway(Model):
    # Host labels under the stack's domain that get an HTTPS listener and certificate when no DNS-01
    # provider is configured (HTTP-01 cannot issue a wildcard). With DNS-01, one `*.<domain>` listener.
    hostnames: list[str] = []

    @field_validator("hostnames")
    @classmethod
    def _hostnames(cls, values: list[str]) -> list[str]:
        for value in values:
            check_hostname_label(value)
        if len(set(values)) != len(values):
            raise ValueError("must not repeat a hostname")
        return values


class Upgrades(Model):
    # Agents upgraded at once (each is cordoned and drained first); servers always one at a time.
    agent_concurrency: int = 1

    @field_validator("agent_concurrency")
    @classmethod
    def _concurrency(cls, value: int) -> int:
        if not 1 <= value <= 10:
            raise ValueError("must be between 1 and 10 agents upgraded at a time")
        return value


class Reboots(Model):
    """Kernel-update reboots by kured (components/services/reboots.py): a node whose updates need a reboot
    is drained and rebooted on `days` between `start` and `end` (local time of `time_zone`); a window with
    `start` after `end` runs over midnight. A reboot that has not started when the window closes waits
    for the next one."""

    enabled: bool = True
    days: list[str] = ["mon", "tue", "wed", "thu"]  # no Friday night: nobody wants a weekend incident
    start: str = "02:00"
    end: str = "05:00"
    time_zone: str = "UTC"

    @field_validator("days")
    @classmethod
    def _days(cls, values: list[str]) -> list[str]:
        if not values or any(v not in WEEKDAYS for v in values) or len(set(values)) != len(values):
            raise ValueError(f"must list days of {', '.join(WEEKDAYS)}, each once (at least one)")
        return values

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.fullmatch(value):
            raise ValueError("must be a time of day HH:MM (24 h), e.g. 02:00")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        # The same tz database names Go's time.LoadLocation reads in kured's image (it installs tzdata).
        if value != "UTC" and value not in zoneinfo.available_timezones():
            raise ValueError("must be an IANA time zone name such as UTC or Europe/Berlin")
        return value

    @model_validator(mode="after")
    def _window(self) -> "Reboots":
        if self.start == self.end:
            raise ValueError(f"start and end are both {self.start!r}: the window would be one minute long; "
                             "give end after start (or before it, for a window over midnight)")
        outside = (_minutes(self.start) - _minutes(self.end)) % DAY_MINUTES
        needed = UPGRADE_AFTER_REBOOTS_MINUTES + UPGRADE_BEFORE_REBOOTS_MINUTES + MIN_UPGRADE_MINUTES
        if self.enabled and outside < needed:
            raise ValueError(
                f"must leave K3s upgrades of the servers at least an hour a day: they start only from "
                f"{UPGRADE_AFTER_REBOOTS_MINUTES // 60} h after the window ends until "
                f"{UPGRADE_BEFORE_REBOOTS_MINUTES // 60} h before it starts (never a reboot and an upgrade together), "
                f"so the window may last at most {(DAY_MINUTES - needed) // 60} hours ({self.start}-{self.end} is longer)")
        return self

    @property
    def upgrade_window(self) -> tuple[str, str]:
        """(start, end), HH:MM in `time_zone`, of the daily window in which K3s upgrades of the servers start: a
        server upgraded while kured reboots another would take two etcd members down at once (kured's lock is
        kured's alone; the system-upgrade-controller never looks at it). From UPGRADE_AFTER_REBOOTS_MINUTES after
        the reboot window ends (a reboot begun in its last minute has its node back) until
        UPGRADE_BEFORE_REBOOTS_MINUTES before it starts: the controller checks its window only while no node is
        applying (v0.20.1 pkg/upgrade/handle_upgrade.go), so a started plan runs through every server, each Job
        ending within the controller's SYSTEM_UPGRADE_JOB_ACTIVE_DEADLINE_SECONDS (900 s): seven servers, the most a
        cluster has, within 105 minutes."""
        return (_clock(_minutes(self.end) + UPGRADE_AFTER_REBOOTS_MINUTES),
                _clock(_minutes(self.start) - UPGRADE_BEFORE_REBOOTS_MINUTES))


class S3Target(Model):
    """S3-compatible storage outside the cluster (it must survive the cluster)."""

    endpoint: str  # https://fsn1.your-objectstorage.com, https://s3.eu-central-1.amazonaws.com
    region: str
    bucket: str

    # purpose (BACKUP_PURPOSES) -> its own bucket, for providers whose keys reach every bucket of a project
    # (Hetzner): a bucket per purpose, each in its own project, is what separates them there.
    buckets: dict[str, str] = {}
    # Ask the store to encrypt every object it receives from Velero and the stores' backup agents (the S3
    # header x-amz-server-side-encryption): "AES256" (SSE-S3, the provider's keys). Only where the provider
    # supports it (AWS does; others may refuse the header): None leaves it to the bucket's default encryption.
    server_side_encryption: str | None = None

    _v_endpoint = field_validator("endpoint")(check_s3_endpoint)
    _v_sse = field_validator("server_side_encryption")(optional(one_of(SSE_MODES)))
    _v_region = field_validator("region")(check_token)

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        return check_bucket(value)

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: dict[str, str]) -> dict[str, str]:
        for purpose, bucket in value.items():
            if purpose not in BACKUP_PURPOSES:
                raise ValueError(f"must map backup purposes ({', '.join(BACKUP_PURPOSES)}) to buckets, got {purpose!r}")
            check_bucket(bucket)
        return value

    def bucket_for(self, purpose: str) -> str:
        return self.buckets.get(purpose, self.bucket)


def check_bucket(value: str) -> str:
    if not _BUCKET.match(value):
        raise ValueError("must be an S3 bucket name (3-63 characters of a-z, 0-9, '.', '-')")
    return value


class VeleroRestore(Model):
    """Set to restore cluster resources and volumes from a Velero backup (disaster recovery)."""

    backup: str  # the Velero backup name, e.g. daily-20261120020012
    include_namespaces: list[str] = ["*"]
    exclude_namespaces: list[str] = []

    _v_backup = field_validator("backup")(check_dns_subdomain)

    @field_validator("include_namespaces", "exclude_namespaces")
    @classmethod
    def _namespaces(cls, values: list[str]) -> list[str]:
        for value in values:
            if value != "*":
                check_hostname_label(value)
        return values

    def restores(self, namespace: str) -> bool:
        """Whether this restore includes `namespace`."""
        return ("*" in self.include_namespaces or namespace in self.include_namespaces) \
            and namespace not in self.exclude_namespaces


class Backups(Model):
    enabled: bool = True
    s3: S3Target | None = None
    etcd_schedule: str = "0 */6 * * *"
    # Snapshots kept per server: on its disk, and as many in S3 (K3s counts S3's over all servers together, so its
    # etcd-s3-retention is this times the servers: components/k3s/config.py etcd_snapshot_config)
    etcd_retention: int = 28
    velero_schedule: str = "0 2 * * *"
    velero_ttl: str = "720h"  # how long Velero keeps each backup
    # The secret store's raft snapshots (components/services/secrets_backup.py): consistent, unlike Velero's file copy
    # of its live raft volumes. Every 6 hours by default, a quarter hour after etcd's, and this many kept in S3.
    secrets_schedule: str = "15 */6 * * *"
    secrets_retention: int = 28
    restore: VeleroRestore | None = None

    _v_cron = field_validator("etcd_schedule", "velero_schedule", "secrets_schedule")(check_cron)

    @field_validator("secrets_retention")
    @classmethod
    def _secrets_retention(cls, value: int) -> int:
        # The upload prunes from one S3 listing page (1000 keys): the kept snapshots and the new one must fit in it.
        if not 1 <= value <= MAX_LISTED_SNAPSHOTS - 1:
            raise ValueError(f"must be between 1 and {MAX_LISTED_SNAPSHOTS - 1} snapshots")
        return value

    @field_validator("etcd_retention")
    @classmethod
    def _retention(cls, value: int) -> int:
        if not 1 <= value <= 1000:
            raise ValueError("must be between 1 and 1000 snapshots")
        return value

    @field_validator("velero_ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        if not value or not _DURATION.match(value):
            raise ValueError("must be a Go duration in hours/minutes/seconds such as 720h")
        return value


_PGP_ARMOR = re.compile(r"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(?:[^\r\n]*\r?\n)*?\r?\n"
                        r"(?P<body>[A-Za-z0-9+/=\r\n]+?)\r?\n(?:=[A-Za-z0-9+/]{4}\r?\n)?"
                        r"-----END PGP PUBLIC KEY BLOCK-----\s*")
PGP_KEY_MAX_LENGTH = 16384  # an armored RSA-4096 key with subkeys and signatures is a few KiB
PGP_PUBLIC_KEY_TAG = 6  # RFC 4880 4.3: the first packet of a transferable public key (RFC 4880 11.1)


def check_pgp_public_key(value: str) -> str:
    """An ASCII-armored OpenPGP public key (`gpg --armor --export <id>`): the armor, base64 and a first packet
    that is a public key. Anything else (a private key, a fingerprint, a file name) is refused here, not by gpg."""
    if "PRIVATE KEY BLOCK" in value:
        raise ValueError("is a PRIVATE key block: give the recipient's public key (gpg --armor --export <id>)")
    match = _PGP_ARMOR.fullmatch(value.strip() + "\n")
    if match is None:
        raise ValueError("must be an ASCII-armored OpenPGP public key (gpg --armor --export <id>), from "
                         "-----BEGIN PGP PUBLIC KEY BLOCK----- to -----END PGP PUBLIC KEY BLOCK-----")
    try:
        packets = base64.b64decode("".join(match["body"].split()), validate=True)
    except binascii.Error:
        raise ValueError("has a body that is not base64: copy the whole armored block") from None
    first = packets[0] if packets else 0
    # The packet tag: bits 5-0 of a new-format header (0b11xxxxxx), bits 5-2 of an old-format one (0b10xxxxxx).
    tag = first & 0x3F if first & 0xC0 == 0xC0 else (first & 0x3C) >> 2
    if not first & 0x80 or tag != PGP_PUBLIC_KEY_TAG:
        raise ValueError("does not start with a public-key packet: give the output of gpg --armor --export <id>")
    return value.strip() + "\n"


_CERTIFICATE_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n(?P<body>[A-Za-z0-9+/=\r\n]+?)\r?\n"
                              r"-----END CERTIFICATE-----")
CA_PEM_MAX_LENGTH = 16384  # a few CA certificates (a chain, or an old and a new root during a rotation)
# A path of the transit server's API (a mount, a namespace): segments of letters, digits, '.', '_', '-'.
_API_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,15}/?")


def check_https_address(value: str) -> str:
    """The base URL of an OpenBao/Vault API: https, a host name or IP address, an optional port, nothing else (no
    user, path, query or fragment: OpenBao appends /v1/... itself)."""
    how = "must be an https:// address of the transit server, e.g. https://bao.example.com:8200 (no path)"
    try:
        url = urllib.parse.urlsplit(value)
        port = url.port
    except ValueError:
        raise ValueError(how) from None
    host = url.hostname or ""
    if (url.scheme != "https" or url.username is not None or url.path not in ("", "/") or url.query or url.fragment
            or port == 0 or not host or not _is_host(host)):
        raise ValueError(how)
    return value.rstrip("/")


def _is_host(host: str) -> bool:
    """A DNS name (one label or more) or a unicast IPv4/IPv6 address another machine can have."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return len(host) <= 253 and re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}"
                                                r"[a-z0-9])?)*", host) is not None
    # Not the pod itself, nor link-local (where clouds serve instance metadata: no egress may open it).
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


def check_api_path(value: str) -> str:
    if not _API_PATH.fullmatch(value):
        raise ValueError("must be a path of the transit server such as transit or team/transit/: segments of "
                         "letters, digits, '.', '_' and '-' separated by '/'")
    return value


def check_certificate_pem(value: str) -> str:
    """One or more PEM CERTIFICATE blocks and nothing else, each body base64 of a DER SEQUENCE (a certificate)."""
    if "PRIVATE KEY" in value:
        raise ValueError("holds a PRIVATE key: give the CA's certificate (-----BEGIN CERTIFICATE-----) only")
    text = value.strip()
    blocks = list(_CERTIFICATE_PEM.finditer(text))
    rest = _CERTIFICATE_PEM.sub("", text)
    if not blocks or rest.strip():
        raise ValueError("must be the PEM certificate(s) of the CA that issued the transit server's certificate, "
                         "from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----, nothing else")
    for block in blocks:
        try:
            der = base64.b64decode("".join(block["body"].split()), validate=True)
        except binascii.Error:
            raise ValueError("has a certificate whose body is not base64: copy the whole PEM block") from None
        if len(der) < 64 or der[0] != 0x30:  # an X.509 certificate is a DER SEQUENCE (RFC 5280 4.1)
            raise ValueError("has a block that is not a DER certificate: give the CA's PEM certificate")
    return text + "\n"


class TransitSeal(Model):
    """clusterServices.secrets.seal.transit: the transit engine of an OpenBao/Vault outside the cluster that wraps
    OpenBao's root key (OpenBao 2.6 docs, configuration/seal/transit). Its token is adplatform:secretsSealToken (a
    secret): it needs update on <mountPath>/encrypt/<keyName> and <mountPath>/decrypt/<keyName> and nothing else
    (plus renewing itself, unless disableRenewal)."""

    address: str
    key_name: str
    mount_path: str = "transit"
    namespace: str | None = None  # an OpenBao/Vault Enterprise namespace holding the mount
    # Pinned: the servers' environment names the in-cluster CA (BAO_CACERT), which the seal's client would
    # otherwise trust alone; and a pinned issuer keeps any other CA from seeing the token.
    tls_ca: Annotated[str, StringConstraints(max_length=CA_PEM_MAX_LENGTH)]
    # The token's lifetime is managed elsewhere (not renewed by OpenBao): a non-periodic token then expires.
    disable_renewal: bool = False
    multiline_fields: ClassVar[frozenset[str]] = frozenset({"tls_ca"})

    _v_address = field_validator("address")(check_https_address)
    _v_key = field_validator("key_name")(lambda v: check_token(v, 128))
    _v_paths = field_validator("mount_path")(check_api_path)
    _v_namespace = field_validator("namespace")(optional(check_api_path))
    _v_ca = field_validator("tls_ca")(check_certificate_pem)

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.address).port or 443


class Seal(Model):
    """clusterServices.secrets.seal: where OpenBao's unseal key lives (docs/security.md, "Unsealing")."""

    type: str | None = None  # None: `kms` on a provider with a KMS (AWS, GCP), else `static`
    # Keep the earlier static seal (disabled) and its in-cluster key next to the KMS or transit seal, for OpenBao's
    # seal migration (`bao operator unseal -migrate`); turned off again once every server has migrated.
    migrate_from_static: bool = False
    transit: TransitSeal | None = None  # with type transit

    _v_type = field_validator("type")(staticmethod(optional(one_of(SEAL_TYPES))))


# components/services/scripts/secrets-snapshot.sh names every snapshot by its UTC time (<name>.snap in S3)
_SNAPSHOT_NAME = re.compile(r"\d{8}T\d{6}Z")
LATEST_SNAPSHOT = "latest"


class SecretsRestore(Model):
    """clusterServices.secrets.restore: install the raft snapshot `snapshot` (a name of the snapshot CronJob's, or
    `latest`: the newest in S3) into the running, unsealed OpenBao (components/services/secrets_restore.py). `force`
    skips OpenBao's check that the snapshot was sealed by the running seal (docs/disaster-recovery.md: only while a
    seal migration keeps the snapshot's seal configured)."""

    snapshot: str
    force: bool = False

    @field_validator("snapshot")
    @classmethod
    def _snapshot(cls, value: str) -> str:
        if value != LATEST_SNAPSHOT and not _SNAPSHOT_NAME.fullmatch(value):
            raise ValueError(f"must be {LATEST_SNAPSHOT!r} or a snapshot name of the secret store's snapshot CronJob "
                             "(<yyyymmddThhmmss>Z, such as 20261120T061500Z)")
        return value


class Secrets(Model):
    backend: str = "openbao"  # OpenBao (MPL-2.0) or HashiCorp Vault (BSL): the same API
    seal: Seal = Seal()
    replicas: int = 3
    # OpenBao's unseal key is exported encrypted to each of these (stack output secretsRecovery); without
    # them it is exported as a plain secret output (readable with `pulumi stack output --show-secrets`).
    recovery_pgp_keys: list[Annotated[str, StringConstraints(max_length=PGP_KEY_MAX_LENGTH)]] = []
    restore: SecretsRestore | None = None  # disaster recovery from a raft snapshot (docs/disaster-recovery.md)
    multiline_fields: ClassVar[frozenset[str]] = frozenset({"recovery_pgp_keys"})

    @field_validator("recovery_pgp_keys")
    @classmethod
    def _pgp_keys(cls, values: list[str]) -> list[str]:
        return [check_pgp_public_key(value) for value in values]

    _v_backend = field_validator("backend")(staticmethod(one_of(SECRETS_BACKENDS)))

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: int) -> int:
        if value not in (1, 3, 5):
            raise ValueError("must be 1, 3 or 5 (raft needs an odd number of voters)")
        return value


class Mesh(Model):
    linkerd: bool = False  # mTLS between application pods; Cilium WireGuard already encrypts node to node
    namespaces: list[str] = ["ads"]  # namespaces whose pods get the Linkerd proxy

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, values: list[str]) -> list[str]:
        return [check_hostname_label(value) for value in values]


class Team(Model):
    """A namespace a team deploys into, with a quota and per-container defaults."""

    name: str
    requests_cpu: Cpu = "16"
    requests_memory: Memory = "32Gi"
    limits_memory: Memory = "48Gi"
    pods: int = 200

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_hostname_label(value)


class Autoscaler(Model):
    """Scale-down of the cluster autoscaler (docs/autoscaling.md); read only when a pool has `autoscaling`."""

    scale_down_delay_after_add: str = "10m"  # no scale-down this long after a scale-up
    scale_down_unneeded_time: str = "10m"  # a node is removed after being unneeded this long
    # A node is unneeded when its pods request less than this share of its CPU and memory (and they fit elsewhere).
    scale_down_utilization_threshold: float = 0.5

    @field_validator("scale_down_delay_after_add", "scale_down_unneeded_time")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not value or not _DURATION.match(value) or not any(c.isdigit() and c != "0" for c in value):
            raise ValueError("must be a positive Go duration in hours/minutes/seconds such as 10m or 1h30m")
        return value

    @field_validator("scale_down_utilization_threshold")
    @classmethod
    def _threshold(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError("must be a share of a node's allocatable resources above 0 and at most 1, such as 0.5")
        return value


class ClusterServices(Model):
    autoscaler: Autoscaler = Autoscaler()
    tls: Tls = Tls()
    dns: Dns | None = None
    gateway: Gateway = Gateway()
    upgrades: Upgrades = Upgrades()
    reboots: Reboots = Reboots()
    backups: Backups = Backups()
    secrets: Secrets = Secrets()
    mesh: Mesh = Mesh()
    teams: list[Team] = []
    # Whose block storage is the cluster's default StorageClass (claims naming no class, the platform's charts'
    # volumes): the stack provider's when unset. A hybrid cluster may name a secondary provider with volumes of its
    # own; a control-plane move states it before its flip, which would otherwise move the default with the stack
    # provider (providers/hybrid.py default_storage_problems, docs/providers.md "Not supported yet", item 6).
    default_storage_provider: str | None = None

    _v_default_storage = field_validator("default_storage_provider")(
        optional(one_of(PROVIDERS, what="the providers")))

    def dns_records(self) -> Dns | None:
        """What external-dns manages: `dns`, else the DNS-01 zone and credentials; None: records by hand."""
        if self.dns is not None:
            return self.dns if self.dns.enabled else None
        return None if self.tls.dns01 is None else Dns(**self.tls.dns01.model_dump())
