"""The ``cnnstat`` command: a click group whose commands load lazily, one module each."""

from __future__ import annotations

import importlib

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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnnstat")
def cli():
    """Parameters, MACs, memory and receptive fields of CNNs, computed from the architecture.

    MODEL is a zoo name (see 'cnnstat list'), a path to a spec file, or a PyTorch model as
    module:attr (torchvision:resnet50). Conventions: 1 MAC = one multiply-accumulate (bias adds
    are not MACs); MB = 10^6 bytes unless --binary.
    """


def main():
    cli(prog_name="cnnstat")
