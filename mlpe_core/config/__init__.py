"""Default configuration shipped with the package: the instrument table, compliance rules, crew settings
and alert rules.

Each file is data with its sources written beside the values. A team overrides one by pointing
``MLPE_CONFIG_DIR`` at a folder holding a file of the same name (files it lacks come from here).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

FILES = ("instruments.yaml", "compliance.yaml", "dispatch.yaml", "alerts.yaml")


def config_path(name: str) -> Path:
    """The file ``name`` from ``MLPE_CONFIG_DIR`` when it is there, else the packaged default."""
    if name not in FILES:
        raise ValueError(f"unknown configuration file '{name}' (one of {', '.join(FILES)})")
    override = os.environ.get("MLPE_CONFIG_DIR")
    if override:
        p = Path(override).expanduser() / name
        if p.is_file():
            return p
    return Path(str(resources.files(__package__) / name))
