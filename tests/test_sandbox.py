"""A hostile corpus against the code sandbox: every case must be contained (reward 0), the host left intact.

Run with `pytest tests/test_sandbox.py -s` to see the case-by-case table.
"""
import os, socket, tempfile, time
from pathlib import Path

import pytest

from aligntune.sandbox import run_code, isolation_level, _uid_processes

SECRET = "ALIGNTUNE_TEST_SECRET"


def _levels():
    levels = ["unsafe-process"]
    if isolation_level() == "namespace": levels.insert(0, "namespace")
    return levels


def _sandbox_processes():
    "Pids of live processes that run inside a sandbox directory."
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit(): continue
        try:
            if "aligntune-sbx-" in os.readlink(f"/proc/{d}/cwd"): pids.append(int(d))
        except OSError: pass
    return pids


@pytest.fixture
def canary():
    d = Path(tempfile.mkdtemp(prefix="aligntune-canary-"))
    d.chmod(0o755)  # readable by everyone, like an ordinary home or project folder
    f = d / "canary.txt"
    f.write_text("alive")
    f.chmod(0o644)
    yield f
    f.unlink(missing_ok=True); d.rmdir()


@pytest.fixture
def listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0)); s.listen(5); s.setblocking(False)
    yield s
    s.close()


def _corpus(canary: Path, port: int):
    "name -> (code, extra check on the result)."
    return {
        "fork bomb": ("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass\n", None),
        "infinite loop": ("while True: pass\n", None),
        "memory bomb": ("chunks = []\nwhile True: chunks.append(bytearray(64 * 1024 * 1024))\n", None),
        "delete canary": (f"import os, shutil\nos.remove({str(canary)!r})\n", None),
        "overwrite canary": (f"open({str(canary)!r}, 'w').write('pwned')\n", None),
        "rmtree canary dir": (f"import shutil\nshutil.rmtree({str(canary.parent)!r})\n", None),
        "network connect": (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'pwned')\n", None),
        "env secret": (f"import os\nprint(os.environ[{SECRET!r}])\n", None),
        "parent environ": ("import os\nprint(open(f'/proc/{os.getppid()}/environ').read())\nprint(open('/proc/1/environ').read())\n", None),
        "print gigabytes": ("import sys\nwhile True: sys.stdout.write('x' * 1_000_000)\n", None),
    }


@pytest.mark.slow
@pytest.mark.parametrize("isolation", _levels())
def test_hostile_corpus(isolation, canary, listener, monkeypatch):
    monkeypatch.setenv(SECRET, "hunter2-do-not-leak")
    port = listener.getsockname()[1]
    rows = []
    for name, (code, _) in _corpus(canary, port).items():
        t0 = time.monotonic()
        # every snippet ends with a flag the test checks: a contained snippet never gets there
        r = run_code(code + "\nFINISHED = True\n", tests=["assert FINISHED"], timeout=2, memory_mb=256,
                     max_output=1 << 16, sandbox=isolation)
        reward = r.pass_rate
        rows.append((name, reward, r.error or "", r.timed_out, round(time.monotonic() - t0, 1)))
        assert reward == 0.0, (name, r, r.stdout[:200], r.stderr[-500:])
        assert "hunter2" not in r.stdout and "hunter2" not in r.stderr, name
        assert len(r.stdout.encode()) <= 1 << 16 and len(r.stderr.encode()) <= 1 << 16, name
        assert canary.exists() and canary.read_text() == "alive", f"{name} damaged the canary"
        with pytest.raises(BlockingIOError):  # nothing ever connected to our listener
            listener.accept()
    print(f"\nhostile corpus, isolation={isolation}")
    print(f"{'case':<20}{'reward':>7}  {'timed_out':<10}{'secs':>5}  error")
    for name, reward, err, to, secs in rows:
        print(f"{name:<20}{reward:>7.1f}  {str(to):<10}{secs:>5}  {err[:70]}")
    # the host is still usable: no sandbox process left, a trivial run works
    assert _sandbox_processes() == []
    r = run_code("print(6 * 7)", tests=["assert 6 * 7 == 42"], sandbox=isolation)
    assert r.ok and r.stdout == "42\n", r


@pytest.mark.slow  # checks what the corpus above left behind, so it runs with it
def test_no_processes_of_sandbox_uids_left():
    "After the corpus no process runs as a sandbox uid (the namespace level uses uids 200000-899999)."
    left = []
    for d in os.listdir("/proc"):
        if not d.isdigit(): continue
        try:
            uid = int(next(l for l in open(f"/proc/{d}/status") if l.startswith("Uid:")).split()[1])
        except (OSError, StopIteration): continue
        if 200_000 <= uid < 900_000: left.append((d, uid))
    assert left == []


def test_legitimate_code_still_works():
    "The limits do not get in the way of ordinary code: files in its own folder, imports, moderate memory."
    code = ("import json, math, collections\nopen('data.json', 'w').write(json.dumps([1, 2, 3]))\n"
            "xs = json.load(open('data.json'))\nbig = list(range(1_000_000))\n"
            "def area(r): return math.pi * r * r\n")
    r = run_code(code, tests=["assert xs == [1, 2, 3]", "assert abs(area(1) - 3.14159) < 1e-4", "assert area(0) == 1"])
    assert (r.passed, r.total, r.ok) == (2, 3, False), r
    assert "test 2 failed" in r.error
