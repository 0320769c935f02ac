"""Every benchmark in one command, on the tested stack and (with --newest) the newest one, sized for about 30 minutes
on two quiet CPU cores; writes one summary, results.md, with each ratio per stack, next to the scaling table and PNG.

    python bench/run_all.py --newest /tmp/newest/bin/python           # everything (about 30 min quiet)
    python bench/run_all.py --newest /tmp/newest/bin/python --check   # tiny settings: checks that all of it runs
    python bench/run_all.py --only overhead,panel                     # a part (names: see --help); results.md keeps the others' latest

The tested stack is the Python running this script; --newest is another environment's Python (`.ci/newest.txt`; the
bench README says how to make it). Each benchmark runs on one stack and then on the other, back to back, so that a
drift in machine load falls on both. PPO is compared with TRL 1.12 in an environment of its own (made once by
bench/ppo_vs_trl.py, --venv; make it before the quiet window, e.g. with `--only ppo --check`). The scaling grid
runs on the tested stack only. Every script is run as it would be by hand, with --json for its figures; their
output goes to OUT/<stack>-<part>.log. The CPU time other processes took while each part ran is recorded: a part
that shared the machine is flagged in the summary, and its figures are not for quoting.
"""
import argparse, datetime, json, os, platform, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name: (script, arguments for the window, arguments for --check, stacks, estimated quiet seconds per stack for the window)
PARTS = {
    "overhead": ("overhead.py", ["--repeats", "5", "--steps", "200"], ["--repeats", "1", "--steps", "3"], ("pinned", "newest"), 300),
    "panel": ("panel_overhead.py", ["--repeats", "3", "--steps", "200"], ["--repeats", "1", "--steps", "4"], ("pinned", "newest"), 60),
    "ppo": ("ppo_vs_trl.py", ["--repeats", "2", "--updates", "12"], ["--repeats", "1", "--updates", "2", "--modes", "full"],
            ("pinned", "newest"), 90),
    "grpo_defaults": ("grpo_defaults.py", ["--repeats", "1", "--target", "0.6", "--budget", "120"],
                      ["--repeats", "1", "--target", "0.6", "--budget", "5", "--prep-steps", "3,2"], ("pinned", "newest"), 170),
    "long_run": ("long_run.py", ["--steps", "5000"], ["--steps", "300", "--window", "50"], ("pinned", "newest"), 20),
    "scaling": ("scaling.py", ["--grid", "window"], ["--grid", "quick"], ("pinned",), 600),
}
GOALS = {"overhead": "<= 1.03, losses identical", "panel": "<= 1.02", "panel drawing": "the cause of any overhead above 1.00",
         "ppo": "<= 0.8, >= 1", "long_run": "about 1 (no growth with the run's length)", "grpo_defaults": "> 1 (our defaults sooner)", "grpo_defaults reward": "-"}

QUIET_LINES = ("WARNING", "warnings.warn", "  warnings.warn", "{'")  # kept in the log, not echoed: TRL's per-step dicts, warnings

def versions(py):
    code = "import torch, trl, transformers, datasets; print(torch.__version__, trl.__version__, transformers.__version__, datasets.__version__)"
    out = subprocess.run([py, "-c", code], capture_output=True, text=True)
    if out.returncode: raise SystemExit(f"{py} cannot import torch, trl, transformers and datasets:\n{out.stderr[-2000:]}")
    return dict(zip(("torch", "trl", "transformers", "datasets"), out.stdout.split()))

def busy_cpu_seconds() -> float:
    "CPU seconds the whole machine has spent busy since boot (/proc/stat), to compare with what the benchmark itself used."
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait

def run_part(name, stack, py, check, out, extra):
    script, window, tiny, _, _ = PARTS[name]
    args = (tiny if check else window) + extra.get(name, [])
    if name == "scaling": args += ["--out", str(out / "scaling")]
    else: args += ["--json", str(out / f"{stack}-{name}.json")]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    busy0, own0 = busy_cpu_seconds(), sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
    print(f"\n== {name} on the {stack} stack: {script} {' '.join(args)}  (load average {load0:.2f})", flush=True)
    log = out / f"{stack}-{name}.log"
    with open(log, "w") as f:
        p = subprocess.Popen([py, str(HERE / script), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        for line in p.stdout:
            f.write(line)
            if not line.startswith(QUIET_LINES) and "Writing model shards" not in line: print("   " + line, end="", flush=True)
        rc = p.wait()
    secs = time.perf_counter() - t0
    own = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - own0
    # other processes' share of one core while this part ran (the load average would count the benchmark's own threads)
    others = max(busy_cpu_seconds() - busy0 - own, 0.0) / secs
    rec = dict(part=name, stack=stack, started=f"{datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=secs):%Y-%m-%d %H:%M}", rc=rc, seconds=secs, load_before=load0, load_after=os.getloadavg()[0], others=others, log=log.name)
    if rc: print(f"   FAILED (exit {rc}); see {log}", flush=True)
    return rec

def fmt(x, nd=3): return "-" if x is None else f"{x:.{nd}f}"

def spread(xs): return f" ({min(xs):.2f}-{max(xs):.2f})" if xs and len(xs) > 1 else ""

def figures(name, data):
    "[(figure, value text)] from one part's JSON."
    if name == "overhead":
        return [(f"{a.upper()} time ratio ours / TRL (median of {data['repeats']} x {data['steps']} steps; range of pairs); losses",
                 f"{fmt(r['ratio'])}{spread(r['pair_ratios'])}; {'identical' if r['max_loss_diff'] < 1e-4 else 'DIFFER by %.1e' % r['max_loss_diff']}")
                for a, r in data["algos"].items()]
    if name == "panel":
        return [(f"ratio with / without the panel (median of {data['repeats']} x {data['steps']} GRPO steps; range)",
                 f"{fmt(data['ratio'])}{spread(data['pair_ratios'])}"), ("panel drawing, share of training time (measured inside the panel)", f"{data['draw_share']:.2%}")]
    if name == "ppo":
        return [(f"PPO {mode}: time per update ours / TRL 1.12 ({data['repeats']} x {data['updates']} updates); final reward ours / TRL 1.12",
                 f"{fmt(m['time_ratio'], 2)}; {fmt(m['reward_ratio'], 2)}") for mode, m in data["modes"].items()]
    if name == "grpo_defaults":
        s = data["seconds"]
        v = "neither side reached it" if data["ratio"] is None else f"{fmt(data['ratio'], 2)} (aligntune {s['aligntune']:.0f} s, TRL {s['trl']:.0f} s)"
        last = "; ".join(f"{k} {statistics.median(x['last'] for x in v):.2f} after {statistics.median(x['steps'] for x in v):.0f} steps"
                         for k, v in data["runs"].items())
        return [(f"GRPO defaults: time to mean reward {data['target']} ratio TRL / aligntune (budget {data['budget']:.0f} s)",
                 v + (f"; {data['bound']}" if data["bound"] and data["ratio"] is not None else "")),
                ("GRPO defaults: mean reward of the last 20 steps when each side stopped", last)]
    if name == "long_run":
        return [(f"listeners' time per logged step, last / first {data.get('window', 200)} of {data['steps']} GRPO steps (median ms)",
                 f"{fmt(data['ratio'], 2)} ({data['early_ms']:.2f} -> {data['late_ms']:.2f} ms)")]
    return []

def summary(recs, stacks, check, out, started):
    busy = lambda r: (r.get("others") or 0) > 0.10  # other processes took more than a tenth of a core
    lines = [f"# Benchmarks: one run of each, the latest of each part (this summary written {started:%Y-%m-%d %H:%M} UTC)", ""]
    if len({r.get("started", "")[:10] for r in recs}) > 1 or any(r.get("kept") for r in recs):
        lines += ["Parts come from more than one run of `run_all.py` (`--only` reruns a part and keeps the others); "
                  "each part's start time (UTC) is in the last table.", ""]
    if check: lines += ["**Check run (`--check`): tiny settings, only to show that everything runs. These figures are noise, not results.**", ""]
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), None) \
        if Path("/proc/cpuinfo").exists() else None
    lines += [f"Machine: {os.cpu_count()} CPUs ({cpu or platform.machine()}), Python {platform.python_version()}.", ""]
    lines += ["| stack | torch | trl | transformers | datasets |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {v['torch']} | {v['trl']} | {v['transformers']} | {v['datasets']} |" for s, (_, v) in stacks.items()]
    lines += ["", "| benchmark | figure | goal | " + " | ".join(stacks) + " |", "|---|---|---|" + "---|" * len(stacks)]
    for name in PARTS:
        if name == "scaling": continue
        per = {}
        for s in stacks:
            rec = next((r for r in recs if r["part"] == name and r["stack"] == s), None)
            if rec is None: continue
            js = out / f"{s}-{name}.json"
            per[s] = dict(figures(name, json.loads(js.read_text()))) if rec["rc"] == 0 and js.exists() else {"failed": f"failed, see {rec['log']}"}
        if not per: continue
        keys = list(dict.fromkeys(k for d in per.values() for k in d if k != "failed")) or ["-"]
        for k in keys:
            cells = [(per.get(s, {}).get(k) or per.get(s, {}).get("failed") or "not run") for s in stacks]
            goal = GOALS.get("panel drawing" if k.startswith("panel drawing") else "grpo_defaults reward" if "mean reward of the last" in k else name, "")
            lines.append(f"| {name} | {k} | {goal} | " + " | ".join(cells) + " |")
    sc = next((r for r in recs if r["part"] == "scaling"), None)
    if sc:
        lines += ["", "## Scaling (tested stack)", ""]
        if sc["rc"] == 0 and (out / "scaling.md").exists():
            table = [l for l in (out / "scaling.md").read_text().splitlines() if l.startswith("|")]
            lines += ["Time per step (median after the first) and peak RSS, ours against plain TRL (PPO: TRL 1.12); "
                      "the curves are in [scaling.png](scaling.png).", "", *table]
        else: lines += [f"failed, see {sc['log']}"]
    lines += ["", "Each part's wall time, the 1-minute load average before and after it (it counts the benchmarks' own threads), "
              "and the CPU that other processes took while it ran, in cores (above 0.10: the machine was busy, and that part's "
              "figures are not for quoting):", "", "| part | stack | started | seconds | load before | load after | other processes | exit |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['part']} | {r['stack']} | {r.get('started', '-')} | {r['seconds']:.0f} | {r['load_before']:.2f} | {r['load_after']:.2f} | "
              f"{fmt(r.get('others'), 2)}{' (busy)' if busy(r) else ''} | {r['rc']} |" for r in recs]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--newest", help="the newest stack's Python (without it, only the tested stack runs)")
    ap.add_argument("--check", action="store_true", help="tiny settings: checks that everything runs; the figures are noise")
    ap.add_argument("--only", default=",".join(PARTS), help=f"parts to run, of {','.join(PARTS)}")
    ap.add_argument("--out", help="folder for results.md, scaling.md/.png and the logs (default bench/results; with --check, a temporary folder)")
    ap.add_argument("--venv", default="/tmp/aligntune-bench-trl112", help="TRL 1.12's environment (PPO's baseline)")
    a = ap.parse_args()
    only = a.only.split(",")
    if bad := [n for n in only if n not in PARTS]: raise SystemExit(f"--only {a.only!r}: unknown part(s) {bad}; the parts are {','.join(PARTS)}")
    if a.newest and not Path(a.newest).exists(): raise SystemExit(f"--newest {a.newest}: no such Python; make the newest stack as bench/README.md shows")
    pys = {"pinned": sys.executable, **({"newest": a.newest} if a.newest else {})}
    stacks = {s: (py, versions(py)) for s, py in pys.items()}
    out = Path(a.out or (Path(tempfile.gettempdir()) / "aligntune-bench-check" if a.check else HERE / "results")); out.mkdir(parents=True, exist_ok=True)
    extra = {"ppo": ["--venv", a.venv], "scaling": ["--venv", a.venv]}
    est = sum(PARTS[n][4] * sum(s in pys for s in PARTS[n][3]) for n in only)
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"stacks: " + "; ".join(f"{s} ({py}): " + ", ".join(f"{k} {v}" for k, v in ver.items()) for s, (py, ver) in stacks.items()))
    print(f"parts: {', '.join(only)}; " + ("check run, tiny settings" if a.check else f"about {est / 60:.0f} min on 2 quiet cores"), flush=True)
    # the other parts' latest runs are kept (runs.json), so `--only` refreshes a part without losing the rest
    kept = [] if a.check or not (out / "runs.json").exists() else json.loads((out / "runs.json").read_text())
    recs = [{**r, "kept": True} for r in kept if r["part"] not in only and r["stack"] in stacks]
    for name in only:
        for s in PARTS[name][3]:
            if s in stacks: recs.append(run_part(name, s, stacks[s][0], a.check, out, extra))
            recs.sort(key=lambda r: (list(PARTS).index(r["part"]), r["stack"] != "pinned"))
            summary(recs, stacks, a.check, out, started)   # kept up to date, so an interrupted run still leaves one
            (out / "runs.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "kept"} for r in recs], indent=1))
    print("\n" + summary(recs, stacks, a.check, out, started) + f"\n\nwrote {out / 'results.md'}")
    sys.exit(1 if any(r["rc"] for r in recs) else 0)

if __name__ == "__main__":
    main()
