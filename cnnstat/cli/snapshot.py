"""``cnnstat snapshot [PATH] -o FILE``: record today's figures as a baseline for check."""

from __future__ import annotations

import click


@click.command("snapshot", short_help="Record the budget models' figures as a baseline for check.")
@click.argument("path", required=False)
@click.option(
    "-o",
    "--output",
    default="cnnstat-baseline.json",
    show_default=True,
    metavar="FILE",
    help="Where to write the baseline (JSON).",
)
def command(path, output):
    """Measure every model of the budget file and write the figures to FILE.

    \b
    Example:
      cnnstat snapshot -o cnnstat-baseline.json
      cnnstat check --baseline cnnstat-baseline.json --max-growth 1
    """
    import json

    from cnnstat import __version__
    from cnnstat import budget as B

    budgets = B.load(path)
    models = {}
    for b in budgets:
        models[b.name] = {**B.measure(b), "settings": b.settings()}
    doc = {"cnnstat_baseline": 1, "cnnstat_version": __version__, "models": models}
    from cnnstat.render import finite_json

    text = json.dumps(finite_json(doc), indent=2, allow_nan=False) + "\n"  # strict JSON
    write_atomic(output, text.encode("utf-8"), "baseline")
    from cnnstat.cli.common import warn

    warn(f"wrote {len(models)} model(s) to {output}")


def write_atomic(target: str, data: bytes, what: str = "file") -> None:
    """Write ``data`` to ``target`` so that it is, at any moment, the old file or the new one,
    whole: a temporary file in the same directory, written, fsynced, then ``os.replace``d over
    the target (and the directory fsynced). Concurrent writers each replace the file whole.
    Only a regular file (or a new name) is written: a device such as /dev/full, a FIFO or a
    directory is refused, as is a directory that does not exist (exit 2, one message)."""
    import os
    import stat
    import tempfile

    from cnnstat.errors import CnnstatError, brief

    shown = brief(target)
    real = os.path.realpath(target)  # a symlinked baseline is updated where it lies
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise CnnstatError(f"cannot write {what} {shown}: {exc.strerror or exc}") from None
    if mode is not None and not stat.S_ISREG(mode):
        from cnnstat.files import _kind

        raise CnnstatError(
            f"cannot write {what} {shown}: it is {_kind(mode)}; only regular files are written"
        )
    folder = os.path.dirname(real) or "."
    if not os.path.isdir(folder):
        raise CnnstatError(f"cannot write {what} {shown}: no such directory {brief(os.path.dirname(target))}")
    _remove_stale(folder, f".{os.path.basename(real)}.")
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(real)}.", suffix=".tmp")
    except OSError as exc:
        raise CnnstatError(f"cannot write {what} {shown}: {exc.strerror or exc}") from None
    try:
        try:
            view = memoryview(data)
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
    except OSError as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise CnnstatError(f"cannot write {what} {shown}: {exc.strerror or exc}") from None
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
    import os
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
