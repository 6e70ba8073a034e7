"""fastcnn.presets as it was in fastcnn 0.1: the presets and train(). Their homes
now: runs/presets.py and runs/training_run.py."""
from __future__ import annotations

from ..runs.presets import BOOK, KERAS, PRESETS, build, keras_layers  # noqa: F401
from ..runs.training_run import CHECKPOINT_KIND, train  # noqa: F401
from ..runs.training_run import _Checkpoint, _Resume  # noqa: F401  (used by tests)

__all__ = ["BOOK", "KERAS", "PRESETS", "build", "train", "keras_layers"]
