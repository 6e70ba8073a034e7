"""The version of fastcnn: that of the installed distribution (one source, the
`version` in pyproject.toml, which the build writes into the package metadata)."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("fastcnn")
except PackageNotFoundError:   # a source tree on sys.path, never installed
    VERSION = "0+unknown"

__all__ = ["VERSION"]
