"""What a result records about how it was made."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", *args], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
    )
    return result.stdout.strip()


def git_revision() -> str:
    """This checkout's commit, with ``-dirty`` if tracked code (anything outside ``results/``,
    which reports write while they run) differs from it; ``unknown`` outside git."""
    try:
        commit = _git("rev-parse", "--short=10", "HEAD")
        changed = _git("status", "--porcelain", "--untracked-files=no", "--", ":/", ":!/results")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if changed else commit
