"""A checked .npz archive with a JSON header: how fastcnn's model files are stored.

Layout (a plain numpy .npz):
  header   uint8 bytes of a UTF-8 JSON object; its "sha256" entry maps every
           other array's name to the SHA-256 of its bytes
  digest   uint8 bytes: the SHA-256 (64 hex digits) of the header's bytes, so the
           header, and through its table every array, is covered
  <name>   the arrays

write() stores such an archive atomically. read() refuses any damaged, edited or
foreign file with one FileFormatError naming the file, reading it itself (never
np.load, never pickle) in the order that keeps every step bounded: the zip
directory's size, the header (at most MAX_HEADER_BYTES, its checksum, then parsed
with limits), the caller's plan of the arrays the header describes (names,
shapes, dtypes: allocating nothing), every member's declared size against that
plan, then each array read (stopping at its planned size) and checked against
its SHA-256. What the header means is the caller's business (nn/saving.py).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
import zlib

import numpy as np

from .files import (MAX_HEADER_BYTES, MAX_MEMBERS, FileFormatError, atomic_write, parse_json,
                    read_bounded, refuse)


def digest(a: np.ndarray) -> str:
    """SHA-256 (hex) of an array's bytes in C order."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def write(path, header: dict, arrays: dict) -> None:
    """Store header (a JSON-able dict; its "sha256" table is added here) and the
    named arrays at path, atomically."""
    header = dict(header, sha256={k: digest(a) for k, a in arrays.items()})
    text = json.dumps(header).encode("utf-8")
    if len(text) > MAX_HEADER_BYTES:
        raise ValueError(f"the model's header would be {len(text)} bytes; load accepts at "
                         f"most {MAX_HEADER_BYTES} (a checkpoint state too large?)")
    blob = np.frombuffer(text, dtype=np.uint8)
    sha = np.frombuffer(hashlib.sha256(text).hexdigest().encode("ascii"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, header=blob, digest=sha, **arrays))


def read(path, plan):
    """(header, plan result, {name: array}) of the archive at path.

    plan(header, path, has_digest) checks the parsed header and returns
    (result, {array name: (shape, dtype)}): the arrays the file must hold, each
    listed in the header's "sha256" table. A missing file raises
    FileNotFoundError; anything else wrong FileFormatError."""
    path = os.fspath(path)
    with open(path, "rb") as f:   # a missing file: FileNotFoundError, as for any open
        try:
            return _read(f, path, plan)
        except FileFormatError:
            raise
        except Exception as e:   # whatever else a damaged or hostile file provokes
            raise refuse(path, f"its contents are malformed ({type(e).__name__}: {e})") from None


def _read(f, path, plan):
    _check_directory_size(f, path)
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        raise refuse(path, f"not a readable .npz (zip) archive (truncated or damaged?): {e}") \
            from None
    with zf:
        members = _members(zf, path)
        if "header" not in members:
            raise refuse(path, "it has no fastcnn header; it was not written by fastcnn's save")
        text = _read_npy(zf, members.pop("header"), path, "header", np.uint8, None,
                         MAX_HEADER_BYTES).tobytes()
        sha = members.pop("digest", None)
        if sha is not None:
            want = _read_npy(zf, sha, path, "digest", np.uint8, (64,), 64).tobytes()
            if hashlib.sha256(text).hexdigest().encode("ascii") != want:
                raise refuse(path, "its header does not match its checksum (the file was "
                                   "modified or damaged)")
        header = parse_json(text, path)
        result, planned = plan(header, path, sha is not None)
        sums = header["sha256"]
        _match_members(members, planned, sums, path)
        arrays = {}
        for name, (shape, dtype) in planned.items():
            a = _read_npy(zf, members[name], path, name, dtype, shape, None)
            if digest(a) != sums[name]:
                raise refuse(path, f"array {name!r} does not match its checksum (the file was "
                                   "modified or damaged)")
            arrays[name] = a
    return header, result, arrays


# End of central directory record: signature, then at offset 10 the number of
# entries (2 bytes) and at 12 the directory's size (4 bytes), little-endian; it
# sits in the last 22 + 65535 (the longest comment) bytes of the file.
_EOCD, _EOCD_SEARCH = b"PK\x05\x06", 22 + 0xFFFF
_DIRECTORY_ENTRY_MAX = 1024   # a fixed 46 bytes plus a short member name


def _check_directory_size(f, path):
    """Refuse an archive whose central directory is too large before zipfile
    reads it (it would build an object per entry): at most MAX_MEMBERS entries
    and MAX_MEMBERS * _DIRECTORY_ENTRY_MAX bytes. A zip64 directory (for
    archives over 2 GiB or 65535 members, beyond the limits) is refused too."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - _EOCD_SEARCH))
    tail = f.read()
    at = tail.rfind(_EOCD)
    f.seek(0)
    if at < 0 or len(tail) - at < 22:
        raise refuse(path, "not a readable .npz (zip) archive (truncated or damaged?): "
                           "no end-of-directory record")
    entries = int.from_bytes(tail[at + 10:at + 12], "little")
    dir_size = int.from_bytes(tail[at + 12:at + 16], "little")
    if entries > MAX_MEMBERS or dir_size > MAX_MEMBERS * _DIRECTORY_ENTRY_MAX:
        raise refuse(path, f"its archive directory declares {entries} members in {dir_size} "
                           f"bytes (at most {MAX_MEMBERS} members)")


def _members(zf, path):
    """{name without .npy: ZipInfo}, after checking the directory: a bounded
    number of members, each stored or deflated (as numpy writes them), none
    encrypted, none twice."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise refuse(path, f"its archive has {len(infos)} members (at most {MAX_MEMBERS})")
    members = {}
    for info in infos:
        name = info.filename
        if info.flag_bits & 0x1:
            raise refuse(path, f"member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise refuse(path, f"member {name!r} uses compression method {info.compress_type} "
                               "(numpy writes only stored or deflated members)")
        if not name.endswith(".npy") or name[:-4] in members:
            raise refuse(path, f"member {name!r} is not one array of a fastcnn model")
        members[name[:-4]] = info
    return members


def _read_npy(zf, info, path, name, dtype, shape, max_bytes):
    """One .npy member as an array, reading no more than its planned size: its
    npy header must declare exactly `dtype` and `shape` (or, with shape None, a
    1-D array of at most max_bytes) before any data is read."""
    try:
        return _read_npy_stream(zf, info, path, name, dtype, shape, max_bytes)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:   # CRC, inflate or local header
        raise refuse(path, f"array {name!r} is damaged ({e})") from None


def _read_npy_stream(zf, info, path, name, dtype, shape, max_bytes):
    with zf.open(info) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                got, fortran, dt = np.lib.format.read_array_header_1_0(stream)
            elif version in ((2, 0), (3, 0)):
                got, fortran, dt = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"npy format version {version}")
        except ValueError as e:
            raise refuse(path, f"array {name!r} is not a readable .npy array ({e})") from None
        if dt != np.dtype(dtype) or dt.hasobject:
            raise refuse(path, f"array {name!r} has dtype {dt}, expected {np.dtype(dtype)}")
        if shape is None:
            if len(got) != 1 or got[0] > max_bytes:
                raise refuse(path, f"array {name!r} has shape {got}; expected at most "
                                   f"{max_bytes} bytes in one dimension")
            shape = got
        elif tuple(got) != tuple(shape):
            raise refuse(path, f"array {name!r} has shape {tuple(got)}, the model its header "
                               f"describes needs {tuple(shape)}")
        count = math.prod(shape)
        data = read_bounded(stream, count * dt.itemsize, path, f"array {name!r}")
    return np.frombuffer(data, dtype=dt).reshape(shape, order="F" if fortran else "C")


def _match_members(members, planned, sums, path):
    """The file holds exactly the planned arrays, each listed in the checksum
    table and declaring (in the zip directory) no more than its planned size."""
    want, have = set(planned), set(members)
    if want != have or set(sums) != have:
        missing = sorted(want - have)[:4]
        extra = sorted((have - want) | (set(sums) ^ have))[:4]
        raise refuse(path, f"the arrays in the file do not match its header (missing "
                           f"{missing}, unexpected or unlisted {extra})")
    for name, (shape, dtype) in planned.items():
        limit = math.prod(shape) * dtype.itemsize + _NPY_HEADER_MAX
        if members[name].file_size > limit:
            raise refuse(path, f"array {name!r} declares {members[name].file_size} bytes; its "
                               f"shape {shape} needs at most {limit}")
        if not isinstance(sums[name], str) or len(sums[name]) != 64:
            raise refuse(path, f"the checksum of array {name!r} is malformed")


# An npy header (magic, version, length, the dict padded to 64 bytes) is far
# shorter than this for any array of at most 4 dimensions.
_NPY_HEADER_MAX = 4096


__all__ = ["write", "read", "digest"]
