"""The ``cnnstat`` command: a click group whose commands load lazily, one module each."""

from __future__ import annotations

import errno
import importlib
import os
import sys

import click

from cnnstat import __version__

COMMANDS = {
    "params": "cnnstat.cli.params",
    "flops": "cnnstat.cli.flops",
    "summary": "cnnstat.cli.summary",
    "rf": "cnnstat.cli.rf",
    "list": "cnnstat.cli.list_",
    "memory": "cnnstat.cli.memory",
    "compare": "cnnstat.cli.compare",
    "devices": "cnnstat.cli.devices",
    "check": "cnnstat.cli.check",
    "snapshot": "cnnstat.cli.snapshot",
    "verify": "cnnstat.cli.verify",
    "explain": "cnnstat.cli.explain",
    "plot": "cnnstat.cli.plot",
    "report": "cnnstat.cli.report",
    "bench": "cnnstat.cli.bench",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module(COMMANDS[name]).command

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            from cnnstat.errors import did_you_mean

            if args and args[0] not in COMMANDS:
                exc.message += did_you_mean(args[0], COMMANDS)
            raise

    def invoke(self, ctx):
        from cnnstat.errors import CnnstatError

        try:
            return super().invoke(ctx)
        except CnnstatError as exc:
            from cnnstat.cli.common import abort

            abort(exc)
        except RecursionError:
            from cnnstat.cli.common import abort

            abort("the input is nested too deeply to analyze (YAML or blocks nested thousands deep)")
        except BrokenPipeError:  # the reader left (cnnstat list | head -1): nothing to say
            _quiet_exit(0)
        except MemoryError:
            from cnnstat.cli.common import abort

            abort("out of memory: the input is too large to analyze")


def _debug(ctx, param, value):
    if value:
        os.environ["CNNSTAT_DEBUG"] = "1"
    return value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnnstat")
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_debug,
    help="Show the traceback of an internal error (also CNNSTAT_DEBUG=1).",
)
def cli():
    """Parameters, MACs, memory and receptive fields of CNNs, computed from the architecture.

    MODEL is a zoo name (see 'cnnstat list'), a path to a spec file, or a PyTorch model as
    module:attr (torchvision:resnet50). Conventions: 1 MAC = one multiply-accumulate (bias adds
    are not MACs); MB = 10^6 bytes unless --binary.
    """


def _debugging() -> bool:
    return os.environ.get("CNNSTAT_DEBUG", "") not in ("", "0") or "--debug" in sys.argv[1:2]


def _quiet_exit(code: int):
    """stdout is gone (closed, or a pipe whose reader left: ``cnnstat list | head -1``): point
    it at /dev/null so that the interpreter's final flush does not complain, and leave."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    os._exit(code)


def main():
    """Exit codes CI can trust: 0 pass, 1 a budget exceeded, 2 bad input, 3 an internal error
    (one line on stderr; the traceback with --debug or CNNSTAT_DEBUG=1). A closed stdout or a
    pipe whose reader left ends quietly."""
    if sys.stdout is None:  # started with stdout closed: nothing shown, nothing to complain of
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    try:
        rv = cli(prog_name="cnnstat", standalone_mode=False)
        code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            click.echo(str(exc.code), err=True)
            code = 2
    except BrokenPipeError:
        _quiet_exit(0)
    except Exception as exc:  # noqa: BLE001 - the one place where a bug becomes exit 3
        if isinstance(exc, (OSError, ValueError)) and _stdout_gone():
            _quiet_exit(0)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno in _FULL:  # stdout on /dev/full
            click.echo(f"error: cannot write standard output: {exc.strerror}", err=True)
            _quiet_exit(2)
        if _debugging():
            import traceback

            traceback.print_exc()
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        detail = " ".join(detail.split()).encode("ascii", "backslashreplace").decode("ascii")
        if len(detail) > 200:
            detail = detail[:199] + "\u2026"
        click.echo(f"internal error: {detail}; rerun with --debug for the traceback", err=True)
        code = 3
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        _quiet_exit(code)
    sys.exit(code)


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)  # the output's device cannot take more


def _stdout_gone() -> bool:
    try:
        sys.stdout.flush()
        return sys.stdout.closed
    except (OSError, ValueError, AttributeError):
        return True
