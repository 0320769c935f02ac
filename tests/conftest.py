import os, sys, shutil, pytest
os.environ.setdefault("ALIGNTUNE_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One thread per process (this one and the CLI/launcher subprocesses it starts), read when torch is first imported:
# the models are tiny, and on shared cores threads fight. Measured at load 4 on 2 cores, the fast tier of
# test_backends.py + test_eval.py: 31-34 s with one thread, 110-142 s with two. Set OMP_NUM_THREADS to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

@pytest.fixture(scope="session")
def tiny_model():
    from aligntune.models import tiny_model_path
    return tiny_model_path()

@pytest.fixture
def one_torch_thread():
    "Tiny models: one thread is as fast as two, far faster on shared cores, and the same float sums in every process."
    import torch
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def aligntune_cmd():
    "The installed `aligntune` console script (next to this Python, or on PATH)."
    here = os.path.join(os.path.dirname(sys.executable), "aligntune")
    return [here] if os.path.exists(here) else [shutil.which("aligntune") or "aligntune"]


# --- No test reaches the network -----------------------------------------------------------------------------------
# While a test that is not marked `network` runs (its fixtures included), connecting a socket to an address off this
# machine, or looking up a host name other than this machine's, raises NetworkRefused, and the test fails even if the
# code under test catches the error. Loopback (JupyterLab, the sandbox's listener) and Unix sockets are allowed.
# This guards the pytest process; subprocesses get HF_HUB_OFFLINE/HF_DATASETS_OFFLINE instead.
import ipaddress, socket

class NetworkRefused(ConnectionRefusedError):
    "A connection off this machine from a test not marked `network`."

_LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", socket.gethostname()}

def _is_local(host) -> bool:
    if isinstance(host, bytes): host = host.decode(errors="replace")
    if host is None or str(host).lower() in _LOCAL_NAMES: return True
    try: ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError: return False
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return ip.is_loopback or ip.is_unspecified

def _is_address(host) -> bool:
    try: ipaddress.ip_address(str(host).split("%")[0]); return True
    except ValueError: return False

class _NetworkGuard:
    def __init__(self): self.attempts, self.saved = [], None

    def _refuse(self, what):
        self.attempts.append(what)
        raise NetworkRefused(f"tests must not reach the network ({what}); mark the test @pytest.mark.network if it must")

    def install(self):
        guard, real_connect, real_connect_ex, real_getaddrinfo = self, socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
        self.saved = real_getaddrinfo
        def _check(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and not _is_local(address[0]):
                guard._refuse(f"connect to {address[0]}:{address[1]}")
        def connect(sock, address): _check(sock, address); return real_connect(sock, address)
        def connect_ex(sock, address): _check(sock, address); return real_connect_ex(sock, address)
        def getaddrinfo(host, *a, **k):   # an address is checked when connecting; a name is looked up over the network
            if not _is_local(host) and not _is_address(host): guard._refuse(f"look up {host}")
            return real_getaddrinfo(host, *a, **k)
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo

    def uninstall(self):
        del socket.socket.connect, socket.socket.connect_ex   # back to the methods socket.socket inherits from _socket
        socket.getaddrinfo = self.saved

_guard = _NetworkGuard()

@pytest.fixture
def network_attempts():
    "The connections the guard refused in this test so far (a test of the guard itself clears it)."
    return _guard.attempts

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if item.get_closest_marker("network"): yield; return
    _guard.attempts.clear(); _guard.install()
    try: yield
    finally: _guard.uninstall()

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    rep = (yield).get_result()
    if _guard.attempts and rep.passed and rep.when in ("setup", "call") and not item.get_closest_marker("network"):
        rep.outcome = "failed"
        rep.longrepr = "reached for the network (refused by tests/conftest.py): " + "; ".join(dict.fromkeys(_guard.attempts))
