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
