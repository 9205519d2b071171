"""The production workspace: the code server command documented in the file serves what the file points at."""

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_production_workspace_reaches_the_documented_code_server(tmp_path):
    text = (REPO / "workspace.production.yaml").read_text()
    command = shlex.split(re.search(r"^#\s+\.venv/bin/(skuvid code-server .*)$", text, re.MULTILINE).group(1))
    server = yaml.safe_load(text)["load_from"][0]["grpc_server"]
    assert server["host"] == "127.0.0.1" and command[command.index("--host") + 1] == "127.0.0.1"
    assert str(server["port"]) == command[command.index("--port") + 1]

    port = free_port()  # the documented port may be taken on this machine
    command[command.index("--port") + 1] = str(port)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {**server, "port": port}}]}))
    process = subprocess.Popen([str(BIN / command[0]), *command[1:]], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            listed = subprocess.run([str(BIN / "dagster"), "job", "list", "-w", str(workspace)], cwd=REPO,
                                    capture_output=True, text=True)
            if listed.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert "sku_video_job" in listed.stdout and "catalog_job" in listed.stdout
    finally:
        process.terminate()
        process.wait(30)
