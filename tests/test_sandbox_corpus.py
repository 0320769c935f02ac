"""A table-driven corpus against the code rewards and the sandbox: gaming attacks score 0, leaks stay inside,
nothing survives a run, refusals say what is missing, secrets are redacted by value.

Run with `pytest tests/test_sandbox_corpus.py -s` to see the tables.
"""
import os, shutil, socket, subprocess, sys, tempfile, time, uuid
from pathlib import Path

import pytest

from aligntune.sandbox import SandboxUnavailable, _binds, compile_tests, isolation_level, run_code, run_many

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
    "inspects its caller for the expected value": """
import sys
def add(a, b):
    f, seen = sys._getframe(1), []
    while f is not None:
        seen += [v for v in list(f.f_locals.values()) + list(f.f_globals.values()) if type(v) is int and v not in (a, b)]
        f = f.f_back
    return seen[-1] if seen else None
""",
    "reads the tests from disk": f"""
import os, re
found = {{}}
for top in ({str(Path(__file__).parent)!r}, {str(Path(__file__).parent.parent)!r}):
    try: names = os.listdir(top)
    except OSError: continue
    for n in names:
        try: text = open(os.path.join(top, n), errors="ignore").read()
        except OSError: continue
        for a, b, want in re.findall(r"add\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)", text): found[(int(a), int(b))] = int(want)
def add(a, b): return found.get((a, b))
""",
    "deeply nested answer": "def add(a, b):\n    x = 0\n    for _ in range(5000): x = [x]\n    return x\n",
    "answer larger than the result cap": "def add(a, b): return 'x' * (64 << 20)\n",
}


def test_disk_attack_works_outside_the_sandbox():
    "The 'reads the tests from disk' attack is real: run in this process it passes every test."
    ns = {}
    exec(ATTACKS["reads the tests from disk"], ns)
    assert [ns["add"](1, 2), ns["add"](20, 22), ns["add"](-5, 5)] == [3, 42, 0]


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
        "world-readable file outside": (f"open({s['public']!r}).read()", LEVELS),
        "parent environ": (f"open('/proc/{s['me']}/environ').read()", LEVELS),
        "parent environ via //proc": (f"open('//proc/{s['me']}/environ').read()", LEVELS),
        "ppid environ": ("open(f'/proc/{__import__(\"os\").getppid()}/environ').read()", LEVELS),
        "pid 1 environ": ("open('/proc/1/environ').read()", LEVELS),
        "helper cmdline": (f"open('/proc/{s['helper']}/cmdline').read()", LEVELS),
        "helper cmdline via /proc/./": (f"open('/proc/./{s['helper']}/cmdline').read()", LEVELS),
        "every cmdline in /proc": (scan.replace("{p}", "/proc"), LEVELS),
        "every cmdline via //proc": (scan.replace("{p}", "//proc"), LEVELS),
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
    # The root holds the system folders, /dev, /proc and /tmp, and the top folder of each path bound for Python
    # (a virtual environment under /check/... shows /check); nothing else of the host.
    allowed = {"dev", "proc", "tmp"} | {Path(p).parts[1] for p in _binds()}
    r = run_code(code, ["assert uid >= 200000", "assert pids == ['1']", "assert ro", "assert tmp == ['mine']",
                        "assert cwd == '/tmp'", f"assert set(top) <= {allowed!r}, set(top) - {allowed!r}"])
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
    "run_code and run_many raise SandboxUnavailable; a code reward, a RewardError (a config error) naming itself."
    from aligntune.rewards import RewardError
    monkeypatch.setenv("ALIGNTUNE_SANDBOX_NAMESPACES", "off")
    assert isolation_level() == "unavailable"
    cls = RewardError if "reward" in case else SandboxUnavailable
    with pytest.raises(cls) as e: REFUSALS[case]()
    _needs_name(str(e.value))
    if "reward" in case: assert str(e.value).startswith(case.split()[0] + ": refusing to run untrusted code")


def test_unsafe_process_by_name_runs_without_namespaces(monkeypatch):
    monkeypatch.setenv("ALIGNTUNE_SANDBOX_NAMESPACES", "off")
    r = run_code("def add(a, b): return a + b", TESTS, sandbox="unsafe-process")
    assert (r.ok, r.passed, r.isolation) == (True, 3, "unsafe-process"), r
    from aligntune.rewards import get_reward_function
    fn = get_reward_function("code_pass_rate", sandbox="unsafe-process")
    assert fn(None, ["def add(a, b): return a + b", "def add(a, b): return a + b if a < 10 else 0"], tests=[TESTS, TESTS]) == [1.0, 2 / 3]
    from aligntune.config import make_config
    from aligntune.rewards import RewardError, resolve_reward_functions
    cfg = make_config(algorithm="grpo", model_name="m", dataset_name="d.jsonl",
                      rewards=[{"name": "code_execution", "params": {"sandbox": "unsafe-process"}}])  # the config route
    (fn,), _ = resolve_reward_functions(cfg.rewards)
    assert fn(None, ["def add(a, b): return a + b"], tests=[TESTS]) == [1.0]
    with pytest.raises(RewardError, match="refusing to run untrusted code"):
        resolve_reward_functions(make_config(algorithm="grpo", model_name="m", dataset_name="d.jsonl", rewards=["code_execution"]).rewards)


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
    "assert inside a function": (["def check(f):\n    assert f(1, 1) == 2\ncheck(add, 2)"], ValueError, "inside a functiondef statement"),
    "HumanEval check with a loop": (["def check(c):\n    for i in range(3): assert c(i, 0) == i\ncheck(add)"], ValueError, "inside a for statement"),
    "raise inside an if": (["if add(1, 1) != 2: raise AssertionError"], ValueError, "`raise` inside a if statement"),
    "no assert at all": (["add(1, 2)"], ValueError, "no top-level assert"),
    "not Python": (["assert add(1, 2) =="], ValueError, "is not valid Python"),
    "a test that is not a string": ([42], TypeError, "test 0 must be a string"),
    "tests given as one string": ("assert add(1, 2) == 3", TypeError, "tests must be a list of strings"),
    "dunder attribute in the check": (["assert add(1, 2) == (3).__class__"], ValueError, "attribute '__class__'"),
    "format-string attribute walk": (["assert '{0.__class__}'.format(add(1, 2)) == ''"], ValueError, "attribute 'format'"),
    "generator frame walk": (["assert add(1, 2) == 3 and (x for x in [1]).gi_frame.f_globals"], ValueError, "attribute 'f_globals' cannot be used in a check"),
    "module internals": (["import math\nassert add(1, 2) == 3 and math.floor.__self__"], ValueError, "attribute '__self__'"),
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
    "module inside a solution call": "import math\nassert add(math.floor(1.5), 1) == 2 and round(add(math.pi, 0), 2) == 3.14",
    "methods of plain answers": "assert str(add(1, 2)).zfill(3) == '003' and [add(1, 1)].count(2) == 1",
    "nested comprehension": "assert [add(a, b) for a in range(2) for b in range(a + 1)] == [0, 1, 2]",
    "HumanEval check(candidate)": 'def check(candidate):\n    """Sums."""\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n\ncheck(add)',
}


@pytest.mark.parametrize("level", LEVELS)
def test_good_test_forms_pass_and_fail_honestly(level):
    tests = list(GOOD_TESTS.values())
    good = run_code("def add(a, b): return a + b", tests, sandbox=level)
    assert (good.passed, good.ok) == (len(tests), True), good
    bad = run_code("def add(a, b): return a * b if a != b else 2 * a", tests, sandbox=level)
    assert bad.passed < len(tests), bad  # a wrong solution does not pass them all


# ------------------------------------------------------------------------------------------------ secrets redacted by value
HF = "hf_" + "Qm7RtY2uW9pLk3Vx8ZbN4cJd6Fg"
SECRET_TEXTS = {  # text -> what redact_text must make of it
    "bearer header": ("Authorization: Bearer eyAbc123.def456-ghi789", "Authorization: Bearer <redacted>"),
    "bearer lower case": ("authorization: bearer 0123456789abcdefXYZ", "authorization: bearer <redacted>"),
    "basic auth header": ("Authorization: Basic dXNlcjpwYXNzd29yZDEyMw==", "Authorization: Basic <redacted>"),
    "hugging face token": (f"token is {HF}", "token is <redacted>"),
    "openai key": ("OPENAI_API_KEY sk-proj-" + "Ab12Cd34Ef56Gh78Ij90Kl", "OPENAI_API_KEY <redacted>"),
    "anthropic key": ("key sk-ant-api03-" + "Xy12Zw34Uv56Ts78Rq90Po", "key <redacted>"),
    "github token": ("ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "<redacted>"),
    "github fine-grained token": ("github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnop", "<redacted>"),
    "aws access key id": ("aws AKIAIOSFODNN7EXAMPLE here", "aws <redacted> here"),
    "aws secret in text": ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key=<redacted>"),
    "slack token": ("xoxb-" + "123456789012-abcdefghijkl", "<redacted>"),
    "jwt": ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "<redacted>"),
    "password in url": ("https://user:p4ssw0rd@example.com/v1", "https://user:<redacted>@example.com/v1"),
    "token in url query": ("https://api.example.com/v1?token=abc123def456&x=1", "https://api.example.com/v1?token=<redacted>&x=1"),
    "api_key in url query": ("http://h/?q=1&api_key=XYZ987654", "http://h/?q=1&api_key=<redacted>"),
    "access_token in url query": ("wss://h/s?access_token=0a1b2c3d4e", "wss://h/s?access_token=<redacted>"),
    "x-api-key header line": ("x-api-key: 8f7a6b5c4d3e2f1a0b9c8d7e", "x-api-key: <redacted>"),
    "password= in a command": ("--password=hunter2hunter2 --port 80", "--password=<redacted> --port 80"),
    "private key block": ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "<redacted>"),
}
ORDINARY_TEXTS = [  # left exactly as they are
    "Qwen/Qwen2.5-0.5B-Instruct", "meta-llama/Llama-3.2-1B", "HuggingFaceTB/SmolLM2-135M-Instruct",
    "/work/runs/exp-2026-11-30/checkpoint-500", "data/train.jsonl", "How many tokens does this sentence have?",
    "The password is a secret word.", "max_new_tokens=64", "https://huggingface.co/datasets/trl-lib/tldr",
    "def add(a, b): return a + b",
    "Bearer of bad news", "ask-me-anything", "token", "https://example.com/path?page=2&sort=asc",
]


@pytest.mark.parametrize("case", list(SECRET_TEXTS))
def test_secret_text_redacted(case):
    from aligntune.runs import redact, redact_text
    text, want = SECRET_TEXTS[case]
    assert redact_text(text) == want
    assert redact({"any_key": [text]}) == {"any_key": [want]}


@pytest.mark.parametrize("text", ORDINARY_TEXTS)
def test_ordinary_text_kept(text):
    from aligntune.runs import redact, redact_text
    assert redact_text(text) == text
    assert redact({"model": text, "headers": {"Accept": text}}) == {"model": text, "headers": {"Accept": text}}


SECRET_KEYS = ["token", "hf_token", "HF_TOKEN", "hfToken", "api_key", "apiKey", "X-Api-Key", "Authorization", "password",
               "aws_secret_access_key", "aws_access_key_id", "client_secret", "Cookie", "auth_token", "credentials"]
ORDINARY_KEYS = ["pad_token", "eos_token", "max_tokens", "max_new_tokens", "tokenizer", "tokenizer_name", "keywords",
                 "importance_sampling_level", "name_or_path", "chat_template", "key_column"]


def test_secret_keys():
    from aligntune.runs import is_secret_key, redact
    assert [k for k in SECRET_KEYS if not is_secret_key(k)] == []
    assert [k for k in ORDINARY_KEYS if is_secret_key(k)] == []
    d = {k: "plain-value" for k in SECRET_KEYS + ORDINARY_KEYS}
    out = redact(d)
    assert {k for k, v in out.items() if v == "<redacted>"} == set(SECRET_KEYS)


def test_random_header_value_redacted():
    from aligntune.runs import redact
    p = {"headers": {"X-Session": "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1", "Accept": "application/json", "X-Trace": "abc"},
         "revision": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"}  # a commit hash outside headers is kept
    assert redact(p) == {"headers": {"X-Session": "<redacted>", "Accept": "application/json", "X-Trace": "abc"},
                         "revision": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"}


BEARER = "Bearer " + "tk-" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
URL = "https://judge:" + "pw-" + uuid.uuid4().hex[:16] + "@judge.example/v1?api_key=" + "ak-" + uuid.uuid4().hex[:16]
NEEDLES = [BEARER.split()[1], URL.split(":")[2].split("@")[0], URL.rsplit("=", 1)[1]]


def _files_holding(folder, needles):
    hits = []
    for p in Path(folder).rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            hits += [f"{p.name}: {n[:6]}…" for n in needles if n.encode() in data]
    return hits


def test_runwriter_config_has_no_secret(tmp_path):
    from aligntune.runs import RunWriter
    w = RunWriter(tmp_path / "run")
    w.write_config({"model": {"name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"},
                    "rewards": [{"name": "judge", "weight": 1.0, "params": {"headers": {"Authorization": BEARER}, "url": URL,
                                                                            "note": f"call with {BEARER}"}}]})
    w.close()
    text = (tmp_path / "run" / "config.yaml").read_text()
    assert _files_holding(tmp_path / "run", NEEDLES) == [], text
    assert "Qwen/Qwen2.5-0.5B-Instruct" in text and "judge.example/v1" in text and "Bearer <redacted>" in text


@pytest.mark.slow
def test_real_run_keeps_reward_secrets_out_of_its_folder(tiny_model, tmp_path):
    "A reward whose params carry an Authorization header and a URL with a password: none of it lands in the run folder."
    from aligntune.rewards import RewardFunction, RewardRegistry, register_reward
    from aligntune import create_rl_trainer

    @register_reward("corpus_remote_judge", description="scores length; its params carry credentials")  # taken out again below
    class RemoteJudge(RewardFunction):
        def __init__(self, headers=None, url=None, **kw):
            super().__init__(**kw); self.headers, self.url = headers, url
        def compute(self, text, **ctx): return min(len(text), 20) / 20

    try:
        rows = [{"prompt": f"Say something about {w}."} for w in ("cats", "dogs", "owls", "bees")]
        t = create_rl_trainer(tiny_model, rows, algorithm="grpo",
                              reward_functions=[{"name": "corpus_remote_judge", "params": {"headers": {"Authorization": BEARER}, "url": URL}}],
                              output_dir=str(tmp_path / "run"), max_steps=1, batch_size=4, num_generations=2)
        t.train()
    finally: RewardRegistry._entries.pop("corpus_remote_judge", None)
    assert (tmp_path / "run" / "config.yaml").exists()
    text = (tmp_path / "run" / "config.yaml").read_text()
    assert "corpus_remote_judge" in text and "Authorization: <redacted>" in text and "judge.example/v1" in text, text  # recorded, redacted
    assert _files_holding(tmp_path / "run", NEEDLES) == []


STALLS = {  # answers that would make the judge build an enormous value: refused, the test fails
    "power with a huge exponent": ("def add(a, b): return 10 ** 9", "assert 10 ** add(1, 2) == 1000"),
    "repeat a string 10**12 times": ("def add(a, b): return 10 ** 12", "assert 'ab' * add(1, 2) == 'ababab'"),
    "repeat a list 10**12 times": ("def add(a, b): return 10 ** 12", "assert [0] * add(1, 2) == [0, 0, 0]"),
    "shift by 10**12": ("def add(a, b): return 10 ** 12", "assert 1 << add(1, 2) == 8"),
}


@pytest.mark.parametrize("case", list(STALLS))
def test_answers_cannot_stall_the_judge(case):
    code, test = STALLS[case]
    r = run_code(code, [test], sandbox=LEVELS[0])
    assert (r.passed, r.ok) == (0, False) and "too large to check" in r.error, r
    assert run_code("def add(a, b): return a + b", [test], sandbox=LEVELS[0]).ok  # the same check passes for a right answer


# ------------------------------------------------------------------------------------------------ an unprivileged trainer
_AS_NOBODY = r'''
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("sbx", sys.argv[1]); sbx = importlib.util.module_from_spec(spec)
sys.modules["sbx"] = sbx; spec.loader.exec_module(sbx)
tests = ["assert add(1, 2) == 3", "assert add(20, 22) == 42", "assert add(-5, 5) == 0"]
out = {"level": sbx.isolation_level(), "uid": os.getuid()}
out["good"] = sbx.run_code("def add(a, b): return a + b", tests).passed
out["attacks"] = [sbx.run_code(c, tests, timeout=3).passed for c in json.loads(sys.argv[2])]
probe = ("import os\ncaps = [l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm', 'CapBnd'))]\n"
         "top = sorted(os.listdir('/'))\npids = sorted(os.listdir('/proc'))\n")
r = sbx.run_code(probe, ["assert set(caps) == {'0000000000000000'}", "assert 'home' not in top and 'root' not in top",
                         "assert pids == ['1', 'self', 'thread-self']"])
out["probe"] = [r.passed, r.error]
out["fork bomb"] = sbx.run_code("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass\n", timeout=2).timed_out
print(json.dumps(out))
'''


@pytest.mark.slow
@pytest.mark.skipif(not (os.geteuid() == 0 and shutil.which("setpriv") and os.path.exists("/usr/bin/python3")),
                    reason="needs root (to become another user), setpriv and a system Python")
def test_unprivileged_user_gets_the_namespace_level_through_a_user_namespace():
    "A trainer that is not root gets the same isolation through a user namespace, all capabilities dropped."
    import aligntune.sandbox as mod, json
    d = Path(tempfile.mkdtemp(prefix="aligntune-nobody-")); d.chmod(0o755)
    try:
        (d / "sbx.py").write_text(Path(mod.__file__).read_text()); (d / "sbx.py").chmod(0o644)
        (d / "run.py").write_text(_AS_NOBODY); (d / "run.py").chmod(0o644)
        attacks = [ATTACKS[n] for n in ("always-equal object", "forged markers on every fd", "empties the test lists", "frame walk calls the reporter")]
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "-i", "PATH=/usr/bin:/bin",
                            "HOME=/nonexistent", "/usr/bin/python3", str(d / "run.py"), str(d / "sbx.py"), json.dumps(attacks)],
                           capture_output=True, text=True, timeout=300, cwd="/")
        if "Operation not permitted" in p.stdout + p.stderr and '"level": "unavailable"' in p.stdout:
            pytest.skip("unprivileged user namespaces are disabled on this machine")
        out = json.loads(p.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(d)
    assert out["uid"] == 65534 and out["level"] == "namespace", out
    assert out["good"] == 3 and out["attacks"] == [0, 0, 0, 0], out
    assert out["probe"] == [3, None] and out["fork bomb"] is True, out
    assert subprocess.run(["pgrep", "-u", "65534"], capture_output=True).stdout == b""  # nothing of that user survives
