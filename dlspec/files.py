"""Reading and writing files so that no input blocks or exhausts memory and no output is left half-written.

Reading: every file dlspec reads (specs, weights, state dicts, data, ONNX models, input arrays) must be a
regular file. It is opened without blocking and checked before a byte is read, so a FIFO, a device such
as ``/dev/zero`` or a directory is refused at once instead of blocking forever or being read until memory
runs out. Spec files also have a size limit (``loader.MAX_SPEC_BYTES``).

Writing: every output goes to a temporary file in the target's directory, named
``.<name>.<pid>-<random>.dlspec-part[<suffix>]``, and is renamed over the target only when complete.
A killed process can leave such a partial behind; the next write into that directory removes the
partials whose process is gone (and the unmarked ``.<name>.XXXXXXXX`` partials of earlier dlspec
versions for the file being written). Before anything is written, each target is checked: its
directory must be a directory (or creatable), the target must not be a directory, and the name must
fit the file system. Problems are :class:`DataError` s of one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from pathlib import Path

from .errors import DataError

WRITTEN: list[Path] = []  # every file this process has written, in order (the Ctrl-C message lists them)
PART = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)-[a-z0-9_]{8}\.dlspec-part(\.[A-Za-z0-9]{1,12})?")
PENDING: set[str] = set()  # temporary files of this process not yet renamed or removed
_NAME_IN_PART = 40  # characters of the target's name kept in a partial's name (names are limited to 255 bytes)


class Unreadable(Exception):
    """A file that dlspec will not read; ``str(err)`` says why, in a few words."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_regular(path: str | os.PathLike) -> int:
    """The size of ``path``, a regular file (symbolic links followed); :class:`Unreadable` otherwise."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise Unreadable(err.strerror or str(err)) from None
    if not stat.S_ISREG(info.st_mode):
        raise Unreadable(f"it is {_kind(info.st_mode)}, not a regular file")
    return info.st_size


def read_bytes(path: str | os.PathLike, limit: int | None = None, unit: str = "bytes") -> bytes:
    """The content of a regular file of at most ``limit`` bytes. The file is opened without blocking and
    checked with fstat before reading, so a FIFO or a device never blocks or floods memory."""
    check_regular(path)  # a socket cannot even be opened: say what it is first
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise Unreadable(err.strerror or str(err)) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced between the two checks
            raise Unreadable(f"it is {_kind(info.st_mode)}, not a regular file")
        if limit is not None and info.st_size > limit:
            raise Unreadable(f"it is {info.st_size:,} bytes; the limit is {limit:,} {unit}")
        try:
            data = file.read() if limit is None else file.read(limit + 1)
        except MemoryError:
            raise Unreadable(f"it is {info.st_size:,} bytes, more than fits in memory") from None
        except OSError as err:
            raise Unreadable(err.strerror or str(err)) from None
    if limit is not None and len(data) > limit:
        raise Unreadable(f"it is over {limit:,} bytes (the limit)")
    return data


def check_target(path: str | os.PathLike) -> Path:
    """Raise :class:`DataError` unless ``path`` can be written: its nearest existing ancestor is a writable
    directory, the path is not a directory, and its name fits the file system."""
    path = Path(path)
    probe = path.parent
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        what = "a file" if probe.is_file() else _kind(os.stat(probe).st_mode) if probe.exists() else \
            "a broken symbolic link"
        raise DataError(f"cannot write {path}: {probe} is {what}, not a directory")
    if path.is_dir():
        raise DataError(f"cannot write {path}: it is a directory")
    if path.exists() and not path.is_file():  # a rename would replace /dev/null itself
        raise DataError(f"cannot write {path}: it is {_kind(os.stat(path).st_mode)}; dlspec replaces only regular "
                        "files")
    try:
        new = path.relative_to(probe).parts  # the directories to make and the file's name
    except ValueError:
        new = (path.name,)
    for part in new:
        size, most = len(os.fsencode(part)), _name_max(probe)
        if size > most:
            raise DataError(f"cannot write {path}: the name {part[:24]}... is {size} bytes long; the file system "
                            f"allows {most}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DataError(f"cannot write {path}: permission denied in {probe}")
    return path


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True


def remove_stale(directory: Path, name: str | None = None) -> list[Path]:
    """Remove partial files of killed dlspec runs from ``directory``: marked partials whose process is gone,
    and, for the target ``name``, unmarked ``.<name>.XXXXXXXX`` partials of earlier dlspec versions."""
    legacy = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}") if name else None
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        match = PART.fullmatch(entry.name)
        stale = (match is not None and not _alive(int(match["pid"]))) or \
            (legacy is not None and legacy.fullmatch(entry.name) is not None)
        try:
            if stale and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass  # best effort: another process may have removed it first
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """A temporary path beside ``path`` (same suffix, for writers that check it) that becomes ``path``, by
    rename, when the block ends without an exception; on any exception it is removed."""
    path = check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path.parent, path.name)
        suffix = path.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,12}", path.suffix) else ""
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:_NAME_IN_PART]}.{os.getpid()}-",
                                   suffix=f".dlspec-part{suffix}", dir=path.parent)
        PENDING.add(tmp)
        os.close(fd)
    except OSError as err:
        raise DataError(f"cannot write {path}: {_lower(err.strerror or str(err))}") from None
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        PENDING.discard(tmp)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        PENDING.discard(tmp)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT,
                                                      errno.EISDIR, errno.EPERM, errno.EIO):
            raise DataError(f"cannot write {path}: {_lower(err.strerror)}") from None
        raise
    _record(path)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write a file via a temporary file and a rename, so readers never see half of it."""
    raw = data.encode() if isinstance(data, str) else data
    with atomic_path(path) as tmp, open(tmp, "wb") as file:  # no fsync: safe against kills, not power loss
        file.write(raw)
    return Path(path)


def write_all(files: dict) -> list[Path]:
    """Write several files ({path: content}), each atomically, after checking that every one can be written."""
    for path in files:
        check_target(path)
    return [write_atomic(path, content) for path, content in files.items()]


class FileSet:
    """The files of one run in one directory (training: weights, best weights, history, the framework's model).

    The targets are checked when the set is made, before any work. The first write removes the files of
    ``names`` that a previous run left, so the directory never mixes two runs; ``written`` lists what this
    run wrote, in order."""

    def __init__(self, directory: str | os.PathLike, names: tuple[str, ...]):
        self.directory, self.names, self.written, self.started = Path(directory), names, [], False
        for name in names:
            check_target(self.directory / name)

    def _start(self) -> None:
        if self.started:
            return
        for name in self.names:
            old = self.directory / name
            try:
                if old.is_file() or old.is_symlink():
                    old.unlink()
            except OSError as err:
                raise DataError(f"cannot remove {old} of an earlier run: {err.strerror}") from None
        self.started = True

    def _note(self, path: Path) -> Path:
        if path not in self.written:
            self.written.append(path)
        return path

    def write(self, name: str, data: bytes | str) -> Path:
        """Write one file of the set atomically."""
        self._start()
        return self._note(write_atomic(self.directory / name, data))

    @contextlib.contextmanager
    def path(self, name: str):
        """A temporary path for a writer that takes a file name; it becomes ``name`` when the block ends."""
        self._start()
        with atomic_path(self.directory / name) as tmp:
            yield tmp
        self._note(self.directory / name)


def _record(path: Path) -> None:
    if path not in WRITTEN:
        WRITTEN.append(path)


def remove_pending() -> None:
    """Remove this process's partial files. A Ctrl-C can land where no ``except`` sees it (between the temporary
    file's creation and the ``try``, or while a ``with`` statement is being entered), so the interrupt handler
    calls this before it reports."""
    for tmp in list(PENDING):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        PENDING.discard(tmp)


def interrupted_message() -> str:
    """The one line printed on Ctrl-C: what was written before it, if anything."""
    if not WRITTEN:
        return "interrupted; nothing was written"
    names = [str(p) for p in WRITTEN]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"interrupted; kept {listed} (written before the interrupt)"


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
