"No test reaches the network: the guard in conftest.py refuses connections off this machine and lets loopback through."
import shutil, socket, subprocess, sys, textwrap, urllib.request
from pathlib import Path
import pytest
from conftest import NetworkRefused


def test_connections_off_this_machine_are_refused(network_attempts):
    with pytest.raises(NetworkRefused, match=r"connect to 192\.0\.2\.1:443\); mark the test @pytest.mark.network"):
        socket.socket().connect(("192.0.2.1", 443))          # TEST-NET-1: refused before any packet leaves
    with pytest.raises(OSError, match="look up huggingface.co"):
        urllib.request.urlopen("https://huggingface.co", timeout=1)
    assert network_attempts == ["connect to 192.0.2.1:443", "look up huggingface.co"]
    network_attempts.clear()                                 # else the guard fails this test for having tried


def test_loopback_is_allowed(network_attempts):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0)); server.listen(2)
        port = server.getsockname()[1]
        for host in ("127.0.0.1", "localhost"):
            socket.create_connection((host, port), timeout=2).close()
    assert network_attempts == []


def test_an_attempt_fails_the_test_even_when_the_code_swallows_it(tmp_path):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    network: may reach the network\n")
    (tmp_path / "test_x.py").write_text(textwrap.dedent('''
        import socket, pytest
        def test_swallows():
            try: socket.create_connection(("192.0.2.1", 80), timeout=1)
            except OSError: pass                             # "offline? carry on"
        @pytest.mark.network
        def test_marked():
            assert "connect" not in socket.socket.__dict__       # no guard around a test marked network
    '''))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert "1 failed, 1 passed" in r.stdout, r.stdout + r.stderr
    assert "reached for the network (refused by tests/conftest.py): connect to 192.0.2.1:80" in r.stdout
