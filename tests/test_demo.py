"`aligntune demo` runs end to end (a scaled-down budget here; the full demo's numbers are in demo.json when run)."
import json, subprocess
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
    for stage in ("[1/4] SFT", "[2/4] DPO", "[3/4] GRPO", "[4/4] PPO"):
        first = next(l for l in lines if l.startswith(stage))
        assert first.endswith("loading the model and data"), first
    for before, after in (("start-up: loading", "evaluating (base model)"), ("drawing the plots", "plots and tables:")):
        assert next(i for i, l in enumerate(lines) if before in l) < next(i for i, l in enumerate(lines) if after in l), p.stdout
    assert set(res["seconds"]) == {"start", "evaluation", "sft", "dpo", "grpo", "ppo", "plots"}
    assert sum(res["seconds"].values()) <= res["total_seconds"] + 1
    time_line = next(l for l in p.stdout.splitlines() if l.startswith("time:"))
    for name in ("start", "evaluation", "SFT", "DPO", "GRPO", "PPO", "plots"): assert f"{name} " in time_line, time_line
