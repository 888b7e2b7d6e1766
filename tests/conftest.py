import pytest
from click.testing import CliRunner

from cnnstat.cli import cli


@pytest.fixture
def run():
    """Run the CLI in-process; returns click's Result (stdout, stderr, exit_code)."""
    runner = CliRunner()

    def _run(*args):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return _run
