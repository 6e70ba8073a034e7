"""fastcnn.saving as it was in fastcnn 0.1: saving and loading models and
checkpoints, and atomic_write. Their homes now: nn/saving.py, nn/model.py,
io/files.py."""
from __future__ import annotations

from ..io.files import atomic_write
from ..nn.model import load_checkpoint, load_model
from ..nn.saving import save_checkpoint, save_model

__all__ = ["save_model", "load_model", "save_checkpoint", "load_checkpoint", "atomic_write"]
