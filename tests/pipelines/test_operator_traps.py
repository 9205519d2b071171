"""Operator traps refused up front: a busy code-server port, a SQLite ledger beside a PostgreSQL instance."""

import os
import socket

import pytest
from rich.console import Console

from pipelines import code_server_cli
from pipelines.cli import main
from pipelines.settings import LedgerNotConfigured, ledger_url
from tests.servers import free_port


def test_code_server_refuses_a_port_in_use(capsys, monkeypatch):
    monkeypatch.setattr(code_server_cli.os, "execv", lambda *args: pytest.fail(f"started a server: {args}"))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert main(["code-server", "--port", str(port)]) == 1
    assert f"127.0.0.1:{port} is already in use" in capsys.readouterr().out


def test_a_second_code_server_on_the_same_port_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(code_server_cli.tempfile, "gettempdir", lambda: str(tmp_path))
    port = free_port()
    first = code_server_cli.claim_port("127.0.0.1", port)
    try:
        with pytest.raises(code_server_cli.PortInUse, match="another `skuvid code-server`"):
            code_server_cli.claim_port("127.0.0.1", port)
    finally:
        os.close(first)
    os.close(code_server_cli.claim_port("127.0.0.1", port))  # free again once the first is gone


def test_the_ledger_follows_a_postgres_instance(tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text("storage:\n  postgres:\n    postgres_url:\n      env: DAGSTER_PG_URL\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.delenv("SKUVID_LEDGER_URL")
    with pytest.raises(LedgerNotConfigured, match="SKUVID_LEDGER_URL is unset"):
        ledger_url()
    monkeypatch.setattr(code_server_cli.os, "execv", lambda *args: pytest.fail("started a server"))
    with open(os.devnull, "w") as quiet:  # the code server refuses too, before it starts
        assert code_server_cli.run_code_server(
            code_server_cli.argparse.Namespace(host="127.0.0.1", port=free_port()), Console(file=quiet)) == 1
    monkeypatch.setenv("SKUVID_LEDGER_URL", "postgresql+psycopg2://skuvid@db:5432/dagster")
    assert ledger_url() == "postgresql+psycopg2://skuvid@db:5432/dagster"
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.delenv("SKUVID_LEDGER_URL")
    assert ledger_url() is None  # a SQLite instance keeps the local ledger
