"""Files on disk: writing them atomically, and reading those fastcnn did not write
itself with one error type and bounded sizes.

atomic_write(path, write) is how every file fastcnn saves is written (models,
checkpoints, results, pictures, ONNX graphs): a reader sees the old file or the
whole new one, never a half-written one.

Model files (nn/saving.py) and data files (fastcnn.data) come from disk,
the network, other people: any byte may be damaged or chosen by someone hostile.
Both loaders refuse every such file with one exception, FileFormatError (a
ValueError), whose message names the file and says what is wrong; and both
check every size a file declares against the limits below before allocating
or decompressing anything, so a damaged or hostile file costs at most about
the memory its honest contents would.

Limits (one place; the loaders and their tests import them):
  MAX_HEADER_BYTES  the JSON header of a model file (a checkpoint's history included)
  MAX_JSON_DEPTH    nesting of arrays/objects in that header
  MAX_INT_DIGITS    digits of an integer in it (sizes, seeds, step counts)
  MAX_MEMBERS       members of a model file's zip archive
  MAX_MODEL_BYTES   all arrays of a model file together, decompressed
  MAX_DATA_BYTES    one decompressed IDX data file (images of one split)
and fastcnn.common.limits.MAX_SIZE bounds every dimension and element count.
"""
from __future__ import annotations

import json
import os
import secrets

MAX_HEADER_BYTES = 16 << 20
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 64   # a Generator's 128-bit state has 39
MAX_MEMBERS = 4096
MAX_MODEL_BYTES = 1 << 30   # the book's largest net: 7 MB
MAX_DATA_BYTES = 2 << 30    # EMNIST's largest split: 547 MB


class FileFormatError(ValueError):
    """A model or data file that fastcnn refuses to read: damaged, truncated,
    edited, of another format, or declaring sizes beyond the limits. The
    message names the file."""


def refuse(path, why) -> FileFormatError:
    """The error for file `path`: 'cannot load <path>: <why>'."""
    return FileFormatError(f"cannot load {str(path)!r}: {why}")


def parse_json(text: bytes, path):
    """The JSON value of `text` (UTF-8), refusing what would not fit the limits:
    nesting deeper than MAX_JSON_DEPTH and integers of more than MAX_INT_DIGITS
    digits. NaN and Infinity are read (a diverged run's history holds them);
    whoever takes a value checks its range."""
    def whole(s):
        if len(s.lstrip("-")) > MAX_INT_DIGITS:
            raise ValueError(f"an integer of {len(s)} digits (at most {MAX_INT_DIGITS})")
        return int(s)

    try:
        value = json.loads(text.decode("utf-8"), parse_int=whole)
    except UnicodeDecodeError as e:
        raise refuse(path, f"its header is not valid UTF-8 JSON: {e}") from None
    except RecursionError:
        raise refuse(path, f"its header nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:   # json.JSONDecodeError and the hooks above
        raise refuse(path, f"its header is not valid JSON: {e}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise refuse(path, f"its header nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth(value) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_JSON_DEPTH:
            break
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def read_bounded(stream, n: int, path, what: str) -> bytes:
    """Exactly n bytes of `stream` followed by its end; refused (without reading
    further) when it holds fewer or more, so a stream that would decompress to
    far more than it should costs at most n + 1 bytes."""
    data = stream.read(n)
    if len(data) != n:
        raise refuse(path, f"{what} is truncated: {len(data)} bytes where {n} were expected")
    if stream.read(1):
        raise refuse(path, f"{what} holds more than the {n} bytes its header declares")
    return data


# ------------------------------------------------------------------ writing --

def atomic_write(path, write) -> None:
    """Call write(binary file) on a temporary file beside `path`, flush it to disk
    and rename it over `path`: readers see the old file or the whole new one, never
    a half-written one. On any failure the temporary file is removed."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".fastcnn-{os.getpid()}-{secrets.token_hex(8)}.tmp")
    # created like any new file (mode 0o666 less the umask; mkstemp would make it 0o600),
    # O_EXCL: never an existing file
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
    except OSError as e:   # name the user's file, not the temporary one
        why = ("its directory does not exist" if isinstance(e, FileNotFoundError)
               else f"cannot create a file in {directory!r}: {e.strerror}")
        raise type(e)(e.errno, f"cannot write {os.fspath(path)!r}: {why}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_directory(directory)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fsync_directory(directory) -> None:
    """Flush the directory entry of a rename to disk, so that after a power loss the
    new file, not the old one, is there (POSIX; skipped where directories cannot be
    opened, e.g. on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["atomic_write", "FileFormatError", "MAX_HEADER_BYTES", "MAX_JSON_DEPTH", "MAX_INT_DIGITS",
           "MAX_MEMBERS", "MAX_MODEL_BYTES", "MAX_DATA_BYTES"]
