"""What a result records about how it was made."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_revision() -> str:
    """This checkout's commit (``-dirty`` if modified), or ``unknown`` outside git."""
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=10"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return result.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
