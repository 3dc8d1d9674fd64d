"""Where shipped checkpoints live (kept apart from :mod:`fer_core.models.checkpoint` so that
architectures loading public backbone weights, :mod:`fer_core.models.facex`, can find them without
an import cycle)."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the checkpoints folder (overrides the lookup in :func:`checkpoint_dir`).
CHECKPOINTS_ENV = "FER_CHECKPOINTS"


def checkpoint_dir() -> Path:
    """The folder of shipped checkpoints: ``$FER_CHECKPOINTS``, else ``checkpoints/`` beside the ``fer_core``
    package (a source checkout), else (an installed package, in site-packages) the working directory's
    ``checkpoints/``."""
    env = os.environ.get(CHECKPOINTS_ENV)
    if env:
        return Path(env).expanduser().resolve()
    beside = Path(__file__).resolve().parents[2] / "checkpoints"
    return beside if beside.is_dir() else Path.cwd().resolve() / "checkpoints"
