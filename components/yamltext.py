"""YAML text the program writes into resources (K3s config files, kubeconfigs, config files of charts).

yaml.safe_dump emits through PyYAML's pure-Python emitter: a production run dumps about 90 documents, which was
about a twentieth of the run. libyaml's emitter (PyYAML's C extension, CSafeDumper) writes the same text from the
same representer, several times faster; tests/test_mockrun.py checks that both give the same text for every
document a run dumps. Without the extension PyYAML's own emitter is used. The planner reads YAML the same way
(tools/yamlread.py)."""

from __future__ import annotations

from typing import Any

import yaml

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def safe_dump(data: Any, **options: Any) -> str:
    """yaml.safe_dump(data, **options) as text (the same options, the same output)."""
    return yaml.dump(data, Dumper=_DUMPER, **options)

