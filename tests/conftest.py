import socket

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


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """No test reaches the network: an internet connection attempt fails at once (local
    sockets still work)."""
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(what):
        def guard(sock, address, *args):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                raise OSError(f"tests run offline: {what} to {address} refused")
            return (connect if what == "connect" else connect_ex)(sock, address, *args)

        return guard

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
