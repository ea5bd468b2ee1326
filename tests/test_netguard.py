"""The guard itself must be able to fail, or the offline test proves nothing."""

import socket
import subprocess
import sys

import pytest

from conftest import guarded_env, netguard


def test_guard_blocks_and_logs_remote_connections(network_guard):
    before = network_guard.read_text() if network_guard.exists() else ""
    with pytest.raises(OSError, match="network guard"):
        socket.create_connection(("203.0.113.7", 443), timeout=1)
    logged = network_guard.read_text()[len(before):]
    assert "203.0.113.7" in logged
    # This attempt was deliberate: take it back out so the session check stays meaningful.
    network_guard.write_text(before)


def test_guard_allows_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=1)
    client.close()
    server.close()


def test_guard_reaches_child_processes(tmp_path):
    log = tmp_path / "child.log"
    code = "import socket\ntry:\n    socket.getaddrinfo('example.org', 443)\nexcept OSError as e:\n    print(e)"
    out = subprocess.run([sys.executable, "-c", code], env=guarded_env(log), capture_output=True, text=True)
    assert "network guard" in out.stdout
    assert "example.org" in log.read_text()


def test_local_hosts():
    assert netguard._is_local("127.0.0.1") and netguard._is_local("::1") and netguard._is_local("localhost")
    assert not netguard._is_local("10.0.0.1") and not netguard._is_local("models.example.org")
