"""Kubernetes resource quantities, parsed in one place: CPU in millicores, memory in bytes.

Every config field holding a CPU or a memory is typed `Cpu` or `Memory`; their validators refuse what
Kubernetes refuses or what cannot be meant as a resource (a CPU of 1.5m is finer than the millicore
Kubernetes schedules by; a memory of 500m is half a byte), so the code reading the values later
(sizing, quotas, chart values) never meets a form it cannot parse.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

MAX_LENGTH = 24  # longer than any quantity a person writes; keeps a pasted blob out of error messages
# Kubernetes' quantity suffixes (apimachinery resource.Quantity): binary, decimal SI, and milli.
_FACTORS = {"Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
            "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60, "m": Decimal("0.001"), "": Decimal(1),
            "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
            "P": Decimal(10) ** 15, "E": Decimal(10) ** 18}
_QUANTITY = re.compile(r"^(?P<number>\d+(\.\d+)?|\.\d+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
MIB = 2 ** 20


def quantity(value: Any) -> Decimal:
    """A quantity (500m, 4, 1.5, 8Gi, 8G) as a number of base units (cores, bytes, or the metric's unit)."""
    text = str(value)
    match = _QUANTITY.match(text) if len(text) <= MAX_LENGTH else None
    if not match:
        raise ValueError("must be a Kubernetes quantity such as 500m, 4 or 8Gi")
    try:
        return Decimal(match["number"]) * _FACTORS[match["suffix"] or ""]
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        raise ValueError("must be a Kubernetes quantity such as 500m, 4 or 8Gi") from None


_VOLUME_SIZE = re.compile(r"^[1-9]\d*(Gi|Ti)$")


def check_volume_size(value: Any) -> str:
    """A PersistentVolumeClaim size as the config writes it: whole Gi or Ti, at least 1Gi (a 0Gi claim is refused
    by the provisioners and the stores' sizing divides by it)."""
    if not _VOLUME_SIZE.match(str(value)):
        raise ValueError("must be a volume size in Gi or Ti of at least 1Gi, such as 100Gi or 2Ti")
    return value


def cpu_millis(value: Any) -> int:
    """A CPU quantity in millicores; whole millicores of at least 1m (Kubernetes' CPU resolution)."""
    try:
        millis = quantity(value) * 1000
    except ValueError:
        millis = None
    if millis is None or millis < 1 or millis != millis.to_integral_value():
        raise ValueError("must be a CPU quantity of whole millicores, at least 1m, such as 250m, 2 or 1.5")
    return int(millis)


def memory_bytes(value: Any) -> int:
    """A memory quantity in bytes: whole bytes (no milli suffix), at least 1Mi (less is a forgotten unit)."""
    try:
        amount = quantity(value)
    except ValueError:
        amount = None
    if amount is None or str(value).endswith("m") or amount < MIB or amount != amount.to_integral_value():
        raise ValueError("must be a memory quantity of at least 1Mi with a unit, such as 512Mi, 8Gi or 8G "
                         "(m means thousandths: 500m is half a byte)")
    return int(amount)


def memory_mib(value: Any) -> int:
    """A memory quantity in MiB, rounded down."""
    return memory_bytes(value) // MIB


def whole_cores(value: Any) -> int:
    """A CPU quantity that must be whole cores (stores pinning CPUs), as a number of cores."""
    millis = cpu_millis(value)
    if millis % 1000:
        raise ValueError("must be a whole number of CPUs such as 4")
    return millis // 1000


def _text(value: Any) -> Any:
    """Numbers given in YAML (cpu: 4) are quantities too; booleans are not."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _checked(parse):
    def check(value: str) -> str:
        parse(value)
        return value
    return check


Cpu = Annotated[str, BeforeValidator(_text), AfterValidator(_checked(cpu_millis))]
Memory = Annotated[str, BeforeValidator(_text), AfterValidator(_checked(memory_bytes))]
Quantity = Annotated[str, BeforeValidator(_text), AfterValidator(_checked(quantity))]

__all__ = ["Cpu", "MIB", "Memory", "Quantity", "check_volume_size", "cpu_millis", "memory_bytes", "memory_mib", "quantity", "whole_cores"]
