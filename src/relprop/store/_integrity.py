"""What keeps a store's file whole where HDF5 does not check it.

* **Length.** HDF5's superblock records where the file ends. A reader in SWMR mode skips the check that the
  file really is that long, so a store cut short (a copy that stopped, a full disk) would read its lost
  rows as zeros, or retry its damaged metadata for minutes. :func:`check_length` makes the check before any
  store is opened.
* **One writer.** :func:`lock` takes an exclusive lock beside the real file (symbolic links resolved), so
  that two spellings of one store cannot have two writers. The lock file is never deleted: another process
  may have opened it and be about to lock it, and would then hold a lock on a file no later writer sees.
* **Atomic replacement.** :func:`replaced_atomically` has a new version of a file written beside it and
  renamed over it only once complete; a failure deletes the new version and leaves the file as it was.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["check_length", "lock", "real_path", "recorded_length", "replaced_atomically"]

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SUPERBLOCK_BYTES = 64  # enough for the fixed part of every superblock version, with 8-byte addresses


def real_path(path: str | Path) -> Path:
    """``path`` with every symbolic link resolved, also when the file itself does not exist (yet)."""
    return Path(os.path.realpath(path))


def recorded_length(path: Path) -> int | None:
    """The length the file's HDF5 superblock records, or ``None`` if the file has no HDF5 superblock.

    HDF5 looks for the superblock at byte 0, 512, 1024, 2048, ... (after a user block); its end-of-file
    address counts the user block too.

    Raises
    ------
    ValueError
        If the file ends inside its superblock.
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        offset = 0
        while offset + len(_SIGNATURE) <= size:
            file.seek(offset)
            head = file.read(_SUPERBLOCK_BYTES)
            if head.startswith(_SIGNATURE):
                try:
                    return _end_address(head)
                except EOFError:
                    raise ValueError(
                        f"{path} is truncated: it ends inside its HDF5 superblock, at byte {size}"
                    ) from None
            offset = 512 if offset == 0 else 2 * offset
    return None


def _end_address(head: bytes) -> int | None:
    """The end-of-file address in the superblock that starts ``head`` (``EOFError`` if it is cut).

    Versions 2 and 3: signature, version, size of offsets, size of lengths, flags, then the base, extension
    and end-of-file addresses. Versions 0 and 1: signature, 5 version bytes, size of offsets at byte 13,
    size of lengths, reserved, two group constants (and in version 1 two more bytes), flags, then the
    base, free-space and end-of-file addresses.
    """
    if len(head) < 14:
        raise EOFError
    version = head[8]
    offsets = head[9] if version >= 2 else head[13]
    start = 12 if version >= 2 else 24 + (4 if version == 1 else 0)
    if offsets not in (2, 4, 8):
        return None  # not a superblock HDF5 wrote: HDF5 itself refuses the file
    if len(head) < start + 3 * offsets:
        raise EOFError
    return struct.unpack_from({2: "<H", 4: "<I", 8: "<Q"}[offsets], head, start + 2 * offsets)[0]


def check_length(path: Path) -> None:
    """Refuse an HDF5 file shorter than its superblock records (see the module docstring).

    A longer file is fine (HDF5 reads nothing past the end it records), and a file that is not HDF5 is
    left for HDF5 to refuse.

    Raises
    ------
    ValueError
        If the file is cut short: it names the file and both lengths.
    """
    recorded = recorded_length(path)
    size = path.stat().st_size
    if recorded is not None and size < recorded:
        raise ValueError(
            f"{path} is truncated: it has {size} of the {recorded} bytes HDF5 recorded, so its last rows "
            "are lost; it cannot be read or resumed: restore a complete copy, or delete it and compute it "
            "again"
        )


def lock(path: Path) -> IO[str]:
    """Take the exclusive lock of the store ``path``; closing the returned file releases it.

    Raises
    ------
    ValueError
        If another process holds it.
    """
    import fcntl

    target = real_path(path)
    handle = target.with_name(target.name + ".lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        handle.close()
        raise ValueError(f"{path} is being written by another process") from error
    return handle


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A fresh name beside the real file of ``path`` for the block to write a new version of it to.

    When the block ends normally, the new version replaces the file in one rename; when it raises, the new
    version is deleted and the file is untouched. Each call gets its own name, so two processes writing the
    same file do not write into each other's.
    """
    target = real_path(path)
    aside = target.with_name(f"{target.name}.{secrets.token_hex(4)}.new")
    try:
        yield aside
        os.replace(aside, target)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise
