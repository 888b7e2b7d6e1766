"""Reading the files users name (specs, includes, budgets, baselines, device files), and
writing the ones cnnstat writes (baselines, reports, plots, device files) atomically.

Only regular files are read, and never more than a limit: ``st_size`` is 0 for a device
(``/dev/zero`` would be read for ever) and a FIFO blocks its reader until a writer comes.
So the type is checked with :func:`os.stat` before opening, the file is opened with
``O_NONBLOCK`` (a FIFO swapped in after the check cannot block the open) and checked again on
the open descriptor, and at most ``limit + 1`` bytes are read: the limit counts the bytes
actually read, whatever the size the file system reports.
"""

from __future__ import annotations

import os
import stat

from cnnstat.errors import CnnstatError

MAX_TEXT_BYTES = 4_000_000  # the largest spec, include, budget or baseline file read

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path, what: str = "file", shown: str | None = None, buffering: int = -1):
    """The regular file ``path`` opened for binary reading (a file object to close), checked
    as the module docstring says: its type before the open and again on the open descriptor.

    For readers that need a file handle rather than bytes (the ONNX reader skims its file).
    Raises :class:`CnnstatError` (exit 2) with one clear line: ``no such {what}: {shown}``,
    ``{what} {shown} is a directory|a FIFO (named pipe)|a device ...: only regular files are
    read``, or ``cannot read ...``.
    """
    shown = str(path) if shown is None else shown
    if "\x00" in str(path):  # os.stat would raise ValueError
        raise CnnstatError(f"no such {what}: {shown} (a file name holds no NUL character)")
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise CnnstatError(f"{what} {shown} is {_kind(mode)}: only regular files are read")
        fd = os.open(path, _OPEN_FLAGS)
        try:
            mode = os.fstat(fd).st_mode  # the file opened may not be the one checked
            if not stat.S_ISREG(mode):
                raise CnnstatError(f"{what} {shown} is {_kind(mode)}: only regular files are read")
            return os.fdopen(fd, "rb", buffering=buffering)
        except BaseException:
            os.close(fd)
            raise
    except FileNotFoundError:
        raise CnnstatError(f"no such {what}: {shown}") from None
    except OSError as exc:
        raise CnnstatError(f"cannot read {what} {shown}: {exc.strerror or exc}") from None


def read_bytes(path, what: str = "file", shown: str | None = None, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of the regular file ``path`` (opened by :func:`open_regular`, whose errors
    it raises), at most ``limit`` of them.

    Raises :class:`CnnstatError` (exit 2) with one clear line: those of :func:`open_regular`,
    ``{what} {shown} is larger than the limit of N bytes``, or ``cannot read ...``.
    """
    shown = str(path) if shown is None else shown
    with open_regular(path, what, shown, buffering=0) as f:
        try:
            chunks, total = [], 0
            while total <= limit:
                chunk = f.read(min(limit + 1 - total, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        except OSError as exc:
            raise CnnstatError(f"cannot read {what} {shown}: {exc.strerror or exc}") from None
    if total > limit:
        raise CnnstatError(f"{what} {shown} is larger than the limit of {limit:,} bytes")
    return b"".join(chunks)


def read_text(path, what: str = "file", shown: str | None = None, limit: int = MAX_TEXT_BYTES) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a byte-order mark is kept, as ``open`` does);
    line ends as written (YAML, TOML and JSON parsers read ``\\r\\n`` themselves)."""
    data = read_bytes(path, what, shown, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = str(path) if shown is None else shown
        raise CnnstatError(f"{what} {shown} is not UTF-8 text (byte {exc.start:,} is not valid)") from None


def check_writable(target: str, what: str = "file") -> tuple[str, int | None]:
    """(the real path ``target`` names, its mode or None if it does not exist yet), or
    :class:`CnnstatError` (exit 2, one message) where it cannot be written: onto a directory,
    a device or a FIFO, or into a directory that does not exist. :func:`write_atomic` checks
    this; commands call it before any work so that a bad ``-o`` fails at once."""
    from cnnstat.errors import brief

    shown = brief(target)
    real = os.path.realpath(target)  # a symlinked baseline is updated where it lies
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise CnnstatError(f"cannot write {what} {shown}: {exc.strerror or exc}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise CnnstatError(
            f"cannot write {what} {shown}: it is {_kind(mode)}; only regular files are written"
        )
    if not os.path.isdir(os.path.dirname(real) or "."):
        raise CnnstatError(f"cannot write {what} {shown}: no such directory {brief(os.path.dirname(target))}")
    return real, mode


def write_atomic(target: str, data, what: str = "file") -> None:
    """Write ``data`` (bytes, or an iterable of bytes written as they are made) to ``target`` so
    that it is, at any moment, the old file or the new one, whole: a temporary file in the
    same directory, written, fsynced, then ``os.replace``d over the target (and the directory
    fsynced); an error while the chunks are made removes the temporary file. Concurrent
    writers each replace the file whole. Only a regular file (or a new name) is written: a
    device such as /dev/full, a FIFO or a directory is refused, as is a directory that does
    not exist (exit 2, one message)."""
    import tempfile

    from cnnstat.errors import brief

    shown = brief(target)
    real, mode = check_writable(target, what)
    folder = os.path.dirname(real) or "."
    _remove_stale(folder, f".{os.path.basename(real)}.")
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(real)}.", suffix=".tmp")
    except OSError as exc:
        raise CnnstatError(f"cannot write {what} {shown}: {exc.strerror or exc}") from None
    try:
        try:
            for chunk in (data,) if isinstance(data, (bytes, bytearray)) else data:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
            if mode is not None:
                os.fchmod(fd, stat.S_IMODE(mode))
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(fd, 0o666 & ~umask)
        finally:
            os.close(fd)
        os.replace(temp, real)
    except BaseException as exc:  # an OSError, or an error (or ^C) while the chunks were made
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise CnnstatError(f"cannot write {what} {shown}: {exc.strerror or exc}") from None
        raise
    try:  # the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


STALE_SECONDS = 3600  # a temporary file older than this was left by a writer that was killed


def _remove_stale(folder: str, prefix: str) -> None:
    """Remove the temporary files (``.NAME.xxxxxxxx.tmp``) that writers killed before their
    ``os.replace`` left beside the target, once they are an hour old: a writer still at work
    is never that slow. Errors are ignored (another writer may remove the same file); a huge
    folder is looked through only in part (the first 10,000 entries)."""
    import re
    import time

    pattern = re.compile(re.escape(prefix) + r"[A-Za-z0-9_]{8}\.tmp")
    now = time.time()
    try:
        with os.scandir(folder) as entries:
            for seen, entry in enumerate(entries):
                if seen >= 10_000:
                    break
                if not pattern.fullmatch(entry.name):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                    if entry.is_file(follow_symlinks=False) and now - info.st_mtime > STALE_SECONDS:
                        os.unlink(entry.path)
                except OSError:
                    pass
    except OSError:
        pass
