"""fastcnn.plot -- pictures of a model and its training, as PNG files (see
figures.py). Needs the optional extra: pip install "fastcnn[plot]" (matplotlib)."""
from __future__ import annotations

from .figures import (confusion_matrix, confusion_matrix_plot, feature_maps, filters,
                      layer_outputs, learning_curves, misclassified, plot_model, read_history)

__all__ = ["learning_curves", "confusion_matrix", "confusion_matrix_plot", "misclassified",
           "filters", "feature_maps", "layer_outputs", "plot_model", "read_history"]
