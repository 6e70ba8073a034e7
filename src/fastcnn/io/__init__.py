"""fastcnn.io -- files: atomic writes, the limits and the one error of reading a
file fastcnn did not write (files.py), the checked .npz archive of model files
(archive.py), and the ONNX graph writer (onnx.py). It knows nothing of models
beyond what a model describes of itself."""
from __future__ import annotations

from .files import FileFormatError, atomic_write

__all__ = ["FileFormatError", "atomic_write"]
