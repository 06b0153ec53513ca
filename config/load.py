"""Read the stack's `adplatform:*` config, merge the profile defaults, validate everything.

Nothing here creates a resource: a ConfigError is raised before the first one exists.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pydantic import ValidationError
from pulumi.runtime import config as runtime_config

from config.catalog import PROVIDERS
from config.errors import NAMESPACE, ConfigError, Problem, problem
from config.model import UNKNOWN_KEYS, StackConfig
from config.profiles import PROFILES, Profile
from config import rules
from config.services import BACKUP_PURPOSES, BACKUP_READERS
from config.ssh import private_key_problem

SSH_PRIVATE_KEY = "sshPrivateKey"
ALERTING = "alertingSecrets"
BACKUP_CREDENTIALS = "backupCredentials"
S3_KEY_FIELDS = ("accessKeyId", "secretAccessKey")
# Secrets some features need (config/rules.py says when); each must be set with --secret.
OPTIONAL_SECRETS = {
    "backupCredentials": "purpose -> accessKeyId/secretAccessKey: one S3 key pair per writer of "
                         "clusterServices.backups.s3 (set with --secret --path "
                         "'adplatform:backupCredentials.<purpose>.accessKeyId')",
    "backupAccessKeyId": "the S3 access key of clusterServices.backups.s3 shared by every purpose without its own "
                         "backupCredentials (not accepted in production)",
    "backupSecretAccessKey": "the S3 secret key of that shared pair",
    "objectStorageAccessKeyId": "the S3 access key of dataPlane.objectStorage.external",
    "objectStorageSecretAccessKey": "the S3 secret key of dataPlane.objectStorage.external",
    "gitlabRunnerToken": "the runner authentication token (glrt-...) of platform.gitlab.runner (instead of the "
                         "runner the program creates in its own GitLab)",
    "alertingSecrets": "receiver name -> the URL or key of platform.monitoring.alerting.receivers (set with "
                       "--secret --path 'adplatform:alertingSecrets.<name>')",
    "dnsApiToken": "the DNS provider credential of clusterServices.tls.dns01 and clusterServices.dns (Cloudflare "
                   "API token, Route53 secret access key, RFC2136 TSIG secret or Hetzner Cloud API token)",
    "adServicesRegistryToken": "the password or deploy token (read_registry) of adServices.registry",
    "secretsSealToken": "the token OpenBao's transit seal authenticates with to clusterServices.secrets.seal.transit "
                        "(allowed to encrypt and decrypt with that one key)",
}


@dataclass(frozen=True)
class S3Keys:
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]


@dataclass(frozen=True)
class StackSecrets:
    """Secret inputs, kept as secret Outputs so they never reach state or logs in plain text."""

    ssh_private_key: pulumi.Output[str]
    backup_access_key_id: pulumi.Output[str] | None = None
    backup_secret_access_key: pulumi.Output[str] | None = None
    dns_api_token: pulumi.Output[str] | None = None
    object_storage_access_key_id: pulumi.Output[str] | None = None
    object_storage_secret_access_key: pulumi.Output[str] | None = None
    gitlab_runner_token: pulumi.Output[str] | None = None
    alerting: dict[str, pulumi.Output[str]] = field(default_factory=dict)  # receiver name -> URL or key
    ad_services_registry_token: pulumi.Output[str] | None = None
    backup_credentials: dict[str, S3Keys] = field(default_factory=dict)  # purpose (BACKUP_PURPOSES) -> keys
    seal_token: pulumi.Output[str] | None = None  # the transit seal's token (clusterServices.secrets.seal.transit)

    def reader_keys(self, reader: str) -> S3Keys | None:
        """A reader's own read-only keys (BACKUP_READERS): never the shared pair, which can write."""
        return self.backup_credentials.get(reader)

    def backup_keys(self, purpose: str) -> S3Keys | None:
        """The purpose's own keys, else the shared pair (config/rules.py allows that outside production)."""
        if purpose in self.backup_credentials:
            return self.backup_credentials[purpose]
        if self.backup_access_key_id is None or self.backup_secret_access_key is None:
            return None
        return S3Keys(self.backup_access_key_id, self.backup_secret_access_key)


@dataclass(frozen=True)
class LoadedConfig:
    stack: str
    config: StackConfig
    profile: Profile
    secrets: StackSecrets


def read_raw() -> tuple[dict[str, Any], set[str]]:
    """All `adplatform:*` values of the running stack, structured values decoded, plus secret keys."""
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    for full_key, value in values.items():
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE:
            continue
        raw[key] = _decode(value)
        if is_secret(full_key):
            secret.add(key)
    return raw, secret


def is_secret(full_key: str) -> bool:
    """Whether the stack holds config `namespace:key` as a secret (set with --secret)."""
    return runtime_config.is_config_secret(full_key) or full_key in runtime_config.get_config_secret_keys_env()


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def load(stack: str, raw: dict[str, Any], secret_keys: set[str]) -> LoadedConfig:
    raw = dict(raw)
    problems: list[Problem] = []
    private_key = raw.pop(SSH_PRIVATE_KEY, None)
    if not private_key:
        problems.append(problem(SSH_PRIVATE_KEY, "must be set: the private key for remote commands "
                                "(pulumi config set --secret adplatform:sshPrivateKey < ~/.ssh/id_ed25519)"))
    elif SSH_PRIVATE_KEY not in secret_keys:
        problems.append(problem(SSH_PRIVATE_KEY, "must be stored as a secret (pulumi config set --secret ...), "
                                "it is in plain text in the stack file"))
    elif private_key_problem(str(private_key)):  # the value is a secret: the message never repeats it
        problems.append(problem(SSH_PRIVATE_KEY, private_key_problem(str(private_key))))

    optional = {key: raw.pop(key) for key in OPTIONAL_SECRETS if raw.get(key) is not None}
    for key in optional:
        if key not in secret_keys:
            problems.append(problem(key, f"must be stored as a secret (pulumi config set --secret {NAMESPACE}:{key} ...), "
                                    "it is in plain text in the stack file"))

    provider = raw.get("provider")
    if provider not in PROVIDERS:
        problems.append(problem("provider", f"must be one of {', '.join(PROVIDERS)}", provider))
    profile_name = raw.get("profile")
    profile = PROFILES.get(profile_name) if isinstance(profile_name, str) else None
    if profile is None:
        problems.append(problem("profile", f"must be one of {', '.join(PROFILES)}", profile_name))
        profile = PROFILES["production"]  # keep validating the rest against the strictest defaults

    merged = merge(profile.defaults, raw)
    try:
        cfg = StackConfig.model_validate(merged)
    except ValidationError as exc:
        problems.extend(_from_pydantic(exc, merged))
        raise ConfigError(_dedupe(problems)) from None
    alerting = optional.pop(ALERTING, None)
    if alerting is not None and not isinstance(alerting, dict):
        problems.append(problem(ALERTING, "must be an object of receiver name -> URL or key, set with "
                                f"--secret --path '{NAMESPACE}:{ALERTING}.<name>'", "a plain value"))
        alerting = None
    alerting = alerting or {}
    backup_keys, found = _backup_credentials(optional.pop(BACKUP_CREDENTIALS, None))
    problems += found
    present = {*optional, *(f"{ALERTING}.{name}" for name in alerting),
               *(f"{BACKUP_CREDENTIALS}.{purpose}" for purpose in backup_keys)}
    problems.extend(rules.check(cfg, profile, present))
    if problems:
        raise ConfigError(_dedupe(problems))
    shared = rules.shared_backup_purposes(cfg, present) if cfg.cluster_services.backups.enabled else []
    if shared:  # rules.check refuses this in production
        pulumi.log.warn(f"{NAMESPACE}:{BACKUP_CREDENTIALS} has no key pair for {', '.join(shared)}: they share "
                        "backupAccessKeyId/backupSecretAccessKey, so each can read and delete the others' backups")
    extra = {key: pulumi.Output.secret(str(value)) for key, value in optional.items()}
    return LoadedConfig(stack, cfg, profile, StackSecrets(
        pulumi.Output.secret(private_key), backup_access_key_id=extra.get("backupAccessKeyId"),
        backup_secret_access_key=extra.get("backupSecretAccessKey"), dns_api_token=extra.get("dnsApiToken"),
        object_storage_access_key_id=extra.get("objectStorageAccessKeyId"),
        object_storage_secret_access_key=extra.get("objectStorageSecretAccessKey"),
        gitlab_runner_token=extra.get("gitlabRunnerToken"),
        alerting={name: pulumi.Output.secret(str(value)) for name, value in alerting.items()},
        ad_services_registry_token=extra.get("adServicesRegistryToken"), seal_token=extra.get("secretsSealToken"),
        backup_credentials={purpose: S3Keys(*(pulumi.Output.secret(str(keys[f])) for f in S3_KEY_FIELDS))
                            for purpose, keys in backup_keys.items()}))


def _backup_credentials(value: Any) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """adplatform:backupCredentials: purpose -> {accessKeyId, secretAccessKey}; the complete entries and the
    problems of the rest (the messages never repeat a value: they are secrets)."""
    if value is None:
        return {}, []
    how = f"set with --secret --path '{NAMESPACE}:{BACKUP_CREDENTIALS}.<purpose>.accessKeyId' (and .secretAccessKey)"
    if not isinstance(value, dict):
        return {}, [problem(BACKUP_CREDENTIALS, f"must be an object of purpose -> key pair, {how}", "a plain value")]
    found, complete = [], {}
    for purpose, keys in value.items():
        if purpose not in (*BACKUP_PURPOSES, *BACKUP_READERS):
            found.append(problem(f"{BACKUP_CREDENTIALS}.{purpose}", "is not a backup purpose; accepted: "
                                 f"{', '.join((*BACKUP_PURPOSES, *BACKUP_READERS))}"))
            continue
        missing = [f for f in S3_KEY_FIELDS if not isinstance(keys, dict) or not keys.get(f)]
        if missing:
            found.append(problem(f"{BACKUP_CREDENTIALS}.{purpose}", f"must set {' and '.join(missing)} ({how})"))
            continue
        complete[purpose] = keys
    return complete, found


def merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge overrides onto defaults; lists of pools merge by name."""
    result = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if key == "pools" and isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_pools(result[key], value)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_pools(defaults: list[Any], overrides: list[Any]) -> list[Any]:
    pools = [copy.deepcopy(p) for p in defaults]
    by_name = {p.get("name"): p for p in pools if isinstance(p, dict)}
    for override in overrides:
        name = override.get("name") if isinstance(override, dict) else None
        if name in by_name and isinstance(override, dict):
            if "autoscaling" in override and "count" not in override:
                # A stack autoscaling a profile pool: its floor is autoscaling.min, not the profile's count.
                by_name[name].pop("count", None)
            if "count" in override and "autoscaling" not in override:
                # A stack giving an (autoscaled) profile pool a count: exactly that many nodes, as before autoscaling.
                by_name[name].pop("autoscaling", None)
            by_name[name].update(copy.deepcopy(override))
        else:
            pools.append(copy.deepcopy(override))
    return pools


def _from_pydantic(exc: ValidationError, merged: dict[str, Any]) -> list[Problem]:
    found = []
    for err in exc.errors():
        loc = list(err["loc"])
        path = _path(loc, merged)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] != "value_error":
            msg = f"is invalid: {msg[:1].lower()}{msg[1:]}"
        if msg.startswith(UNKNOWN_KEYS):
            found.append(problem(path, msg))
        elif err["type"] == "missing":
            found.append(problem(path, "must be set"))
        else:
            found.append(problem(path, msg, err.get("input")))
    return found


def _path(loc: list[Any], merged: dict[str, Any]) -> str:
    """pydantic loc -> key path; pool indexes become pool names so the user finds the entry."""
    parts: list[str] = []
    node: Any = merged
    for item in loc:
        if isinstance(item, int):
            name = node[item].get("name") if isinstance(node, list) and isinstance(node[item], dict) else None
            parts[-1] += f"[{name}]" if name else f"[{item}]"
            node = node[item] if isinstance(node, list) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or NAMESPACE


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, unique = set(), []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            unique.append(p)
    return unique


def load_from_pulumi() -> LoadedConfig:
    raw, secret = read_raw()
    return load(pulumi.get_stack(), raw, secret)
