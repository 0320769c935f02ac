"`aligntune demo` runs end to end (a scaled-down budget here; the full demo's numbers are in demo.json when run)."
import json, re, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import aligntune_cmd

pytestmark = pytest.mark.slow

def test_demo_smoke(tmp_path):
    out = tmp_path / "demo"
    p = subprocess.run([*aligntune_cmd(), "demo", "--output", str(out), "--scale", "0.05"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "held-out facts" in p.stdout and "after GRPO" in p.stdout
    res = json.loads((out / "demo.json").read_text())
    assert [r["stage"] for r in res["results"]] == ["base model", "after SFT", "after DPO", "after GRPO", "PPO instead"]
    from aligntune.demo import DEMO_STEPS
    assert res["steps"] == {k: max(2, int(v * 0.05)) for k, v in DEMO_STEPS.items()}
    for png in ("1-sft.png", "2-dpo.png", "3-grpo.png", "4-ppo.png", "summary.png", "3-grpo/before_after.png"):
        assert (out / png).stat().st_size > 5000
    # even 15 SFT steps teach the seen facts' format: the model now writes numbers
    assert res["results"][1]["terse"] + res["results"][1]["seen_accuracy"] > 0
    ev = json.loads((out / "3-grpo" / "eval.json").read_text())
    assert "before_after" in ev
    # every training stage reports its progress while it runs, and the end says where the time went
    for stage, total in (("[1/4] SFT", res["steps"]["sft"]), ("[2/4] DPO", res["steps"]["dpo"]), ("[4/4] PPO", res["steps"]["ppo"])):
        assert f"step {total}/{total}" in next(l for l in p.stdout.splitlines()[::-1] if l.startswith(stage)), p.stdout
    assert f"step {res['grpo_steps_done']}/{res['steps']['grpo']}" in p.stdout
    # ... and from the moment it starts loading, so the console is never silent while a stage prepares
    lines = p.stdout.splitlines()
    for stage in ("[1/4] SFT", "[2/4] DPO", "[3/4] GRPO"):
        first = next(l for l in lines if l.startswith(stage))
        assert first.endswith("loading the model and data"), first
    # on two cores or more PPO trains beside GRPO, in a process of its own, and the console says so as it starts
    assert res["ppo_beside_grpo"] is True
    first_ppo = next(i for i, l in enumerate(lines) if l.startswith("[4/4] PPO"))
    assert "beside GRPO" in lines[first_ppo] and first_ppo < next(i for i, l in enumerate(lines) if l.startswith("[3/4] GRPO")), p.stdout
    for before, after in (("start-up: loading", "evaluating (base model)"), ("drawing the plots", "plots and tables:")):
        assert next(i for i, l in enumerate(lines) if before in l) < next(i for i, l in enumerate(lines) if after in l), p.stdout
    assert set(res["seconds"]) == {"start", "evaluation", "sft", "dpo", "grpo", "ppo", "plots"}
    # PPO's seconds overlap GRPO's; the other stages follow one another within the total
    assert sum(v for k, v in res["seconds"].items() if k != "ppo") <= res["total_seconds"] + 1
    assert 0 < res["seconds"]["ppo"] <= res["total_seconds"]
    time_line = next(l for l in p.stdout.splitlines() if l.startswith("time:"))
    for name in ("start", "evaluation", "SFT", "DPO", "GRPO", "PPO", "plots"): assert f"{name} " in time_line, time_line
    assert "beside GRPO" in time_line, time_line


def test_demo_sequential(tmp_path):
    "`--sequential` trains PPO after GRPO in the same process, as on one core."
    out = tmp_path / "demo"
    p = subprocess.run([*aligntune_cmd(), "demo", "--output", str(out), "--scale", "0.02", "--sequential"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((out / "demo.json").read_text())
    assert res["ppo_beside_grpo"] is False and res["results"][-1]["stage"] == "PPO instead"
    lines = p.stdout.splitlines()
    first_ppo = next(i for i, l in enumerate(lines) if l.startswith("[4/4] PPO"))
    assert lines[first_ppo].endswith("loading the model and data") and first_ppo > max(i for i, l in enumerate(lines) if l.startswith("[3/4] GRPO"))
    assert sum(res["seconds"].values()) <= res["total_seconds"] + 1
    assert "beside" not in next(l for l in lines if l.startswith("time:"))


def test_ppo_beside_failure_is_an_error(tmp_path):
    "A PPO process that fails stops the demo with its exit code and the end of its output; the log stays for reading."
    from aligntune.demo import _Beside
    from aligntune.launch import LaunchError
    b = _Beside(tmp_path, steps=2, seed=0, threads=1)  # no DPO model in this folder: the process cannot load one
    with pytest.raises(LaunchError, match=r"PPO stage.*exit code 1") as e:
        b.follow()
    assert "2-dpo" in str(e.value), str(e.value)  # the process's own error names the missing model
    assert Path(b.log_path).exists(); Path(b.log_path).unlink()


def test_ppo_beside_ends_with_its_demo(tmp_path):
    "A demo killed mid-run (kill -9) leaves no PPO process training on behind it."
    code = ("import sys, os, json; from pathlib import Path; from aligntune.demo import _Beside; "
            f"b = _Beside(Path({str(tmp_path)!r}), steps=2, seed=0, threads=1); "
            "print(json.dumps(dict(pid=b.proc.pid, log=b.log_path)), flush=True); os._exit(0)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    info = json.loads(p.stdout.strip().splitlines()[-1])
    for _ in range(600):  # the orphaned process notices within about a second
        if not Path(f"/proc/{info['pid']}").exists() or Path(f"/proc/{info['pid']}/stat").read_text().split(") ")[1].startswith("Z"): break
        time.sleep(0.1)
    else: pytest.fail("the PPO process outlived its demo by a minute")
    assert "has ended: stopping" in Path(info["log"]).read_text()
    Path(info["log"]).unlink()


def test_demo_interrupt_stops_every_stage(tmp_path):
    "An interrupt during GRPO (a notebook's, which reaches this process alone) stops the demo and the PPO process beside it; both runs are saved as interrupted."
    import signal
    out = tmp_path / "demo"
    p = subprocess.Popen([*aligntune_cmd(), "demo", "--output", str(out), "--scale", "0.3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for l in p.stdout:
        lines.append(l)
        if l.startswith("[3/4] GRPO") and re.search(r"step [1-9]\d*/", l): break  # GRPO is training (a quarter done), PPO beside it
    p.send_signal(signal.SIGINT)
    rest, err = p.communicate(timeout=300)
    text = "".join(lines) + rest
    assert p.returncode == 130, (text, err[-2000:])
    assert "GRPO interrupted at step" in text and "the demo stops here" in text, text
    assert "drawing the plots" not in text and not (out / "demo.json").exists()
    assert json.loads((out / "3-grpo" / "run.json").read_text())["status"] == "interrupted"
    # the PPO process ended with the demo: its run, if it had begun, is saved as interrupted (or had already finished)
    if (out / "4-ppo" / "run.json").exists(): assert json.loads((out / "4-ppo" / "run.json").read_text())["status"] in ("interrupted", "finished")
    for c in Path("/proc").glob("[0-9]*/cmdline"):
        try: cmd = c.read_bytes()
        except OSError: continue
        assert not (b"_ppo_process" in cmd and str(out).encode() in cmd), f"PPO process {c.parent.name} outlived the demo"
