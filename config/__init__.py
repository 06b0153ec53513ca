"""Typed, validated stack configuration (see config/load.py for the entry points)."""

from config.errors import ConfigError, Problem
from config.load import LoadedConfig, StackSecrets, load, load_from_pulumi
from config.model import StackConfig

__all__ = ["ConfigError", "LoadedConfig", "Problem", "StackConfig", "StackSecrets", "load", "load_from_pulumi"]
