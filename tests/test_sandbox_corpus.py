"""A table-driven corpus against the code rewards and the sandbox: gaming attacks score 0, leaks stay inside,
nothing survives a run, refusals say what is missing, secrets are redacted by value.

Run with `pytest tests/test_sandbox_corpus.py -s` to see the tables.
"""
import os, socket, subprocess, sys, tempfile, time, uuid
from pathlib import Path

import pytest

from aligntune.sandbox import SandboxUnavailable, compile_tests, isolation_level, run_code, run_many

LEVELS = (["namespace"] if isolation_level() == "namespace" else []) + ["unsafe-process"]
TESTS = ["assert add(1, 2) == 3", "assert add(20, 22) == 42", "assert add(-5, 5) == 0"]
REWARDS = ("code_pass_rate", "code_execution")

# ------------------------------------------------------------------------------------------------ gaming attacks
# Each solution tries to make the tests pass without adding numbers; every one must score 0.
FORGE = '{"id": "%s", "ok": true, "passed": 3, "total": 3, "value": true}'
ATTACKS = {
    "frame walk calls the reporter": """
import sys
f = sys._getframe()
while f is not None:
    for name in ("send", "report"):
        fn = f.f_locals.get(name) or f.f_globals.get(name)
        if callable(fn):
            try: fn(f.f_locals.get("rid"), ok=True, passed=500000)
            except Exception: pass
            try: fn(passed=500000)
            except Exception: pass
    f = f.f_back
""",
    "frame walk sets passed": """
import sys, ctypes
f = sys._getframe().f_back
while f is not None:
    f.f_locals["passed"] = 500000
    ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(f), ctypes.c_int(0))
    f = f.f_back
""",
    "empties the test lists": """
import gc
for o in gc.get_objects():
    if isinstance(o, list) and any("assert" in str(x) for x in o[:5]): o.clear()
""",
    "always-equal object": """
class Yes:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = object.__hash__
def add(a, b): return Yes()
""",
    "always-equal int subclass": "class I(int):\n    def __eq__(self, o): return True\ndef add(a, b): return I(7)\n",
    "always-equal str subclass": "class S(str):\n    def __eq__(self, o): return True\ndef add(a, b): return S('x')\n",
    "always-equal float subclass": "class F(float):\n    def __eq__(self, o): return True\ndef add(a, b): return F(0.5)\n",
    "always-equal list subclass": "class L(list):\n    def __eq__(self, o): return True\ndef add(a, b): return L()\n",
    "bool subclass of True": "def add(a, b):\n    return type('B', (int,), {'__eq__': lambda s, o: True, '__bool__': lambda s: True})(1)\n",
    "fake passed line then os._exit(0)": "print('PASSED 3/3'); print('ok=True passed=3 total=3')\nimport os; os._exit(0)\n",
    "forged markers on every fd": f"""
import os
for fd in range(1, 40):
    for rid in ("", "0", "x"):
        try: os.write(fd, ({FORGE!r} % rid + "\\n").encode())
        except OSError: pass
os._exit(0)
""",
    "os._exit(0) before the tests": "import os\nos._exit(0)\n",
    "raise SystemExit(0)": "raise SystemExit(0)\n",
    "sys.exit() halfway": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
    "overrides builtins": """
import builtins
builtins.AssertionError = type("AssertionError", (Exception,), {})
builtins.bool = lambda x=None: True
builtins.abs = lambda x: 0
builtins.len = lambda x: 0
def add(a, b): return None
""",
    "patches the harness encoder": """
import sys
m = sys.modules["__main__"]
m._enc = lambda v, depth=0: True
for k in list(vars(m)):
    if callable(getattr(m, k)) and k.startswith("_") and not k.startswith("__"): setattr(m, k, lambda *a, **k: True)
def add(a, b): return None
""",
    "patches json.dumps": f"""
import json
json.dumps = lambda *a, **k: {FORGE!r} % ""
def add(a, b): return None
""",
    "patches eval, exec and compile": """
import builtins
builtins.eval = lambda *a, **k: True
builtins.exec = lambda *a, **k: None
builtins.compile = lambda *a, **k: None
""",
    "hijacks stdin": "import sys, io\nsys.stdin = io.StringIO('')\ndef add(a, b): return 0\n",
    "thread answers every request": """
import sys, os, json, threading
def serve():
    for line in sys.stdin:
        try: rid = json.loads(line)["id"]
        except Exception: continue
        for fd in range(3, 12):
            try: os.write(fd, (json.dumps({"id": rid, "ok": True, "value": True}) + "\\n").encode())
            except OSError: pass
threading.Thread(target=serve, daemon=True).start()
def add(a, b):
    import time; time.sleep(10)
""",
    "settrace rewrites harness locals": """
import sys
def tracer(frame, event, arg):
    if event == "return" and frame.f_code.co_name in ("_enc", "send"): frame.f_locals["v"] = True
    return tracer
sys.settrace(tracer)
def add(a, b): return None
""",
    "atexit prints a pass": "import atexit\natexit.register(lambda: print('PASSED 3/3'))\n",
    "exception whose text says passed": "class Passed(BaseException):\n    def __str__(self): return 'passed=3'\ndef add(a, b): raise Passed()\n",
    "returns a list that contains itself": "def add(a, b):\n    x = []\n    x.append(x)\n    return x\n",
    "returns an enormous int": "def add(a, b): return 10 ** 20000\n",
    "returns a generator": "def add(a, b): return (x for x in [a + b])\n",
    "returns NotImplemented": "def add(a, b): return NotImplemented\n",
    "kills the judge": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    "kills every process it can": "import os, signal\ntry: os.kill(-1, signal.SIGKILL)\nexcept OSError: pass\n",
    "sleeps past the timeout": "def add(a, b):\n    import time; time.sleep(60)\n",
    "reads the tests from the parent's memory": """
import os
src = ""
for pid in (os.getppid(), 1):
    try: src += open(f"/proc/{pid}/cmdline").read() + open(f"//proc/{pid}/environ").read()
    except OSError: pass
def add(a, b): return src
""",
    "fake module json in sys.modules": f"""
import sys, types
fake = types.ModuleType("json")
fake.dumps = lambda *a, **k: {FORGE!r} % ""
fake.loads = lambda s: {{"id": "x", "op": "exec", "src": "pass", "bind": {{}}}}
sys.modules["json"] = fake
def add(a, b): return None
""",
    "dict with always-equal keys": "class K:\n    def __eq__(s, o): return True\n    def __hash__(s): return 0\ndef add(a, b): return {K(): 1}\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("reward", REWARDS)
def test_gaming_attacks_score_zero(reward, level):
    from aligntune.rewards import get_reward_function
    fn = get_reward_function(reward, timeout=3, sandbox=level, workers=2)
    names = list(ATTACKS)
    control = "def add(a, b): return a + b\n"
    texts = [ATTACKS[n] for n in names] + [control]
    scores = fn(None, texts, tests=[TESTS] * len(texts))
    print(f"\n{reward} at {level}: {'attack':<42}score")
    for n, s in zip(names, scores): print(f"  {n:<58}{s}")
    assert scores[-1] == 1.0, "the control solution must pass: the table would prove nothing otherwise"
    assert {n: s for n, s in zip(names, scores) if s != 0.0} == {}
    assert fn.num_errors == 0


@pytest.mark.parametrize("level", LEVELS)
def test_attack_table_through_run_code(level):
    "The three attacks measured on the old sandbox, straight through run_code: 0 tests passed, not 500000."
    for name in ("frame walk calls the reporter", "empties the test lists", "always-equal object"):
        r = run_code(ATTACKS[name], TESTS, sandbox=level, timeout=3)
        assert (r.passed, r.total, r.ok, r.pass_rate) == (0, 3, False, 0.0), (name, r)


# ------------------------------------------------------------------------------------------------ leaks
SECRET = "hunter2-" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def secrets_around():
    "A root-only file, a world-readable file outside the sandbox, a process with the secret on its command line, the secret in our environment."
    d = Path(tempfile.mkdtemp(prefix="aligntune-leak-"))
    d.chmod(0o755)
    private, public = d / "private.txt", d / "public.txt"
    private.write_text(SECRET); private.chmod(0o600)
    public.write_text(SECRET); public.chmod(0o644)
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", f"--token={SECRET}"])
    os.environ["ALIGNTUNE_CORPUS_TOKEN"] = SECRET
    yield {"private": str(private), "public": str(public), "helper": helper.pid, "me": os.getpid()}
    del os.environ["ALIGNTUNE_CORPUS_TOKEN"]
    helper.kill(); helper.wait()
    private.unlink(); public.unlink(); d.rmdir()


def _leak_cases(s):
    "name -> (expression that tries to read the secret, levels where it must fail)."
    scan = ("''.join(open(f'{p}/' + d + '/cmdline', errors='replace').read() for d in __import__('os').listdir(p) "
            "if d.isdigit() and __import__('os').access(f'{p}/' + d + '/cmdline', __import__('os').R_OK))")
    return {
        "root-only file": (f"open({s['private']!r}).read()", LEVELS),
        "world-readable file outside": (f"open({s['public']!r}).read()", ["namespace"]),
        "parent environ": (f"open('/proc/{s['me']}/environ').read()", LEVELS),
        "parent environ via //proc": (f"open('//proc/{s['me']}/environ').read()", LEVELS),
        "ppid environ": ("open(f'/proc/{__import__(\"os\").getppid()}/environ').read()", LEVELS),
        "pid 1 environ": ("open('/proc/1/environ').read()", LEVELS),
        "helper cmdline": (f"open('/proc/{s['helper']}/cmdline').read()", LEVELS),
        "helper cmdline via /proc/./": (f"open('/proc/./{s['helper']}/cmdline').read()", LEVELS),
        "every cmdline in /proc": (scan.replace("{p}", "/proc"), ["namespace"]),
        "own environment": ("str(dict(__import__('os').environ))", LEVELS),
    }


@pytest.mark.slow
@pytest.mark.parametrize("level", LEVELS)
def test_leaks_stay_out(level, secrets_around):
    rows = []
    for name, (expr, levels) in _leak_cases(secrets_around).items():
        if level not in levels: continue
        code = f"try:\n    leak = {expr}\nexcept BaseException as e:\n    leak = ''\nprint(leak[:2000])\n"
        r = run_code(code, [f"assert {SECRET!r} in leak"], sandbox=level, timeout=5)
        rows.append((name, r.pass_rate))
        assert r.pass_rate == 0.0 and SECRET not in r.stdout + r.stderr, (name, r, r.stdout[:300])
    print(f"\nleaks at {level}:", rows)
    assert len(rows) >= 8


@pytest.mark.parametrize("level", LEVELS)
def test_no_network(level):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1); s.setblocking(False)
    port = s.getsockname()[1]
    try:
        code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'x'); reached = True\n"
                "except BaseException: reached = False\n")
        r = run_code(code, ["assert reached"], sandbox=level, timeout=5)
        assert r.pass_rate == 0.0 and "reached" in r.error, r
        with pytest.raises(BlockingIOError): s.accept()
    finally: s.close()


@pytest.mark.skipif("namespace" not in LEVELS, reason="needs namespaces")
def test_namespace_view():
    "What the code sees at the namespace level: a fresh uid, only its own processes, a read-only root, a writable private /tmp."
    code = ("import os\nuid = os.getuid()\npids = sorted(d for d in os.listdir('/proc') if d.isdigit())\n"
            "top = sorted(os.listdir('/'))\ncwd = os.getcwd()\n"
            "try:\n    open('/usr/evil', 'w'); ro = False\nexcept OSError: ro = True\n"
            "open('/tmp/mine', 'w').write('x'); tmp = os.listdir('/tmp')\n")
    r = run_code(code, ["assert uid >= 200000", "assert pids == ['1']", "assert ro", "assert tmp == ['mine']",
                        "assert cwd == '/tmp'", "assert 'home' not in top and 'work' not in top or True",
                        "assert set(top) <= {'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32', 'usr', 'etc', 'dev', 'proc', 'tmp', 'root', 'work', 'opt', 'home'}"])
    assert r.ok, r


# ------------------------------------------------------------------------------------------------ leftovers
def _marker_processes(marker):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit(): continue
        try:
            if marker in open(f"/proc/{d}/cmdline", errors="replace").read(): out.append(int(d))
        except OSError: pass
    return out


def _marker_files(marker):
    return [str(p) for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(d)
            for p in Path(d).glob(f"*{marker}*")]


SLEEPER = "[sys.executable, '-c', 'import time; time.sleep(60)', 'MARK']"
LEFTOVERS = {
    "os.fork child sleeping": f"import os, sys\nif os.fork() == 0:\n    os.execv(sys.executable, {SLEEPER})\n",
    "daemonized double fork": f"import os, sys\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execv(sys.executable, {SLEEPER})\n    os._exit(0)\n",
    "_posixsubprocess.fork_exec": f"""
import _posixsubprocess, os, sys
args = [a.encode() for a in {SLEEPER}]
_posixsubprocess.fork_exec(args, [sys.executable.encode()], True, (), None, None,
    -1, -1, -1, -1, -1, -1, *os.pipe(), True, True, -1, None, None, None, -1, None, False)
""",
    "subprocess.Popen detached": f"import subprocess, sys\nsubprocess.Popen({SLEEPER}, start_new_session=True)\n",
    "multiprocessing spawn": "import multiprocessing as mp, sys, time\nsys.argv[:] = ['MARK']\nctx = mp.get_context('spawn')\np = ctx.Process(target=time.sleep, args=(60,)); p.start()\n",
    "os.system background": "import os\nos.system('exec -a MARK sleep 60 &')\n",
    "files in /tmp, /dev/shm, /var/tmp and cwd": """
for d in ('/tmp', '/dev/shm', '/var/tmp', '.'):
    try: open(f'{d}/MARK-file', 'w').write('x')
    except OSError: pass
""",
    "shared memory segment": "from multiprocessing import shared_memory\nshared_memory.SharedMemory(name='MARK-shm', create=True, size=4096)\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("level", LEVELS)
def test_nothing_survives(level):
    control = "atmark" + uuid.uuid4().hex[:10]  # the check sees a live process that carries the marker
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", control])
    try:
        for _ in range(100):
            if _marker_processes(control): break
            time.sleep(0.05)
        assert _marker_processes(control) == [p.pid]
    finally: p.kill(); p.wait()
    rows = []
    for name, code in LEFTOVERS.items():
        marker = "atmark" + uuid.uuid4().hex[:10]
        code = code.replace("MARK", marker)
        # the marker rides on the command line of anything the code starts (sys.argv is inherited by forks)
        r = run_code(code + "\ndone = True\n", ["assert done"], sandbox=level, timeout=4)
        time.sleep(0.2)
        procs, files = _marker_processes(marker), _marker_files(marker)
        rows.append((name, r.pass_rate, r.error))
        assert (procs, files) == ([], []), (name, r)
    print(f"\nleftovers at {level}:", rows)
    assert sum(1 for _, rate, _ in rows if rate == 1.0) >= (5 if level == "namespace" else 1)


# ------------------------------------------------------------------------------------------------ refusal without namespaces
def _needs_name(msg):
    "A refusal names what is missing, the opt-in by name, and what that mode does not protect."
    assert "ALIGNTUNE_SANDBOX_NAMESPACES" in msg and "sandbox='unsafe-process'" in msg and "does not protect" in msg, msg


REFUSALS = {
    "run_code": lambda: run_code("x = 1", ["assert x == 1"]),
    "run_code sandbox='namespace'": lambda: run_code("x = 1", ["assert x == 1"], sandbox="namespace"),
    "run_many": lambda: run_many(["x = 1"], [["assert x == 1"]]),
    "code_execution reward": lambda: __import__("aligntune.rewards", fromlist=["x"]).get_reward_function("code_execution"),
    "code_pass_rate reward": lambda: __import__("aligntune.rewards", fromlist=["x"]).get_reward_function("code_pass_rate"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refuses_without_namespaces(case, monkeypatch):
    monkeypatch.setenv("ALIGNTUNE_SANDBOX_NAMESPACES", "off")
    assert isolation_level() == "unavailable"
    with pytest.raises(SandboxUnavailable) as e: REFUSALS[case]()
    _needs_name(str(e.value))


def test_unsafe_process_by_name_runs_without_namespaces(monkeypatch):
    monkeypatch.setenv("ALIGNTUNE_SANDBOX_NAMESPACES", "off")
    r = run_code("def add(a, b): return a + b", TESTS, sandbox="unsafe-process")
    assert (r.ok, r.passed, r.isolation) == (True, 3, "unsafe-process"), r
    from aligntune.rewards import get_reward_function
    fn = get_reward_function("code_pass_rate", sandbox="unsafe-process")
    assert fn(None, ["def add(a, b): return a + b", "def add(a, b): return a + b if a < 10 else 0"], tests=[TESTS, TESTS]) == [1.0, 2 / 3]


BAD_SETTINGS = {
    "run_code sandbox='process'": (lambda: run_code("x = 1", sandbox="process"), ValueError, "sandbox='process' is not valid"),
    "run_code sandbox='none'": (lambda: run_code("x = 1", sandbox="none"), ValueError, "'unsafe-process'"),
    "run_many sandbox=''": (lambda: run_many(["x = 1"], sandbox=""), ValueError, "sandbox='' is not valid"),
    "reward sandbox='off'": (lambda: __import__("aligntune.rewards", fromlist=["x"]).get_reward_function("code_execution", sandbox="off"),
                             __import__("aligntune.rewards", fromlist=["x"]).RewardError, "sandbox='off' is not valid"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_bad_sandbox_setting(case):
    fn, cls, needle = BAD_SETTINGS[case]
    with pytest.raises(cls, match=__import__("re").escape(needle)): fn()


# ------------------------------------------------------------------------------------------------ tests the sandbox cannot judge
BAD_TESTS = {
    "assert inside a for loop": (["for i in range(3): assert add(i, 0) == i"], ValueError, "inside a for statement"),
    "assert inside a function": (["def check(f):\n    assert f(1, 1) == 2\ncheck(add)"], ValueError, "inside a functiondef statement"),
    "raise inside an if": (["if add(1, 1) != 2: raise AssertionError"], ValueError, "`raise` inside a if statement"),
    "no assert at all": (["add(1, 2)"], ValueError, "no top-level assert"),
    "not Python": (["assert add(1, 2) =="], ValueError, "is not valid Python"),
    "a test that is not a string": ([42], TypeError, "test 0 must be a string"),
    "tests given as one string": ("assert add(1, 2) == 3", TypeError, "tests must be a list of strings"),
    "dunder attribute in the check": (["assert add(1, 2) == (3).__class__"], ValueError, "attribute '__class__'"),
}


@pytest.mark.parametrize("case", list(BAD_TESTS))
def test_tests_the_sandbox_cannot_judge(case):
    tests, cls, needle = BAD_TESTS[case]
    with pytest.raises(cls, match=__import__("re").escape(needle)): compile_tests(tests)


def test_reward_names_the_bad_tests_column():
    from aligntune.rewards import RewardError, get_reward_function
    fn = get_reward_function("code_execution", strict=True, sandbox=LEVELS[0])
    with pytest.raises(RewardError, match=r"code_execution: the 'tests' column: test 0 .* inside a for statement"):
        fn(None, ["def add(a, b): return a + b"], tests=[["for i in range(3): assert add(i, 0) == i"]])


GOOD_TESTS = {  # forms that are judged here and pass for a correct solution
    "plain compare": "assert add(1, 2) == 3",
    "builtins around the call": "assert abs(add(1, 2) - 3) < 1e-9 and len(str(add(2, 2))) == 1",
    "comprehension over the solution": "assert all(add(i, i) == 2 * i for i in range(5))",
    "setup statement then assert": "x = add(2, 3)\nassert x == 5",
    "math module": "import math\nassert math.isclose(add(0.1, 0.2), 0.3)",
    "from-import of a safe module": "from math import isclose\nassert isclose(add(0.1, 0.2), 0.3)",
    "sorted containers": "assert sorted([add(3, 0), add(1, 0)]) == [1, 3] and {add(1, 1): 'two'} == {2: 'two'}",
    "message on the assert": "assert add(1, 1) == 2, 'one plus one'",
    "lambda over the solution": "assert list(map(lambda v: add(v, 1), [1, 2])) == [2, 3]",
    "type check": "assert type(add(1, 2)) == int and isinstance(add(1, 2), int)",
}


@pytest.mark.parametrize("level", LEVELS)
def test_good_test_forms_pass_and_fail_honestly(level):
    tests = list(GOOD_TESTS.values())
    good = run_code("def add(a, b): return a + b", tests, sandbox=level)
    assert (good.passed, good.ok) == (len(tests), True), good
    bad = run_code("def add(a, b): return a * b if a != b else 2 * a", tests, sandbox=level)
    assert bad.passed < len(tests), bad  # a wrong solution does not pass them all
