"""SKELETON (issue 5, being written): system-upgrade-controller and K3s upgrade Plans."""
from __future__ import annotations


def namespaces(ctx):
    return []


def install(ctx, spaces, after):
    return []
