"Runs trained from the command line open in the panels afterwards: the panels read only the run folder."
import subprocess
import pytest
from conftest import aligntune_cmd

@pytest.mark.slow
def test_cli_runs_in_sample_inspector_and_run_compare(tmp_path):
    from aligntune.widgets import SampleInspector, RunCompare
    for name, lr in (("a", "1e-3"), ("b", "5e-4")):
        p = subprocess.run([*aligntune_cmd(), "train", "grpo-tiny", "--output", str(tmp_path / name), "--max-steps", "3",
                            "--set", f"training.learning_rate={lr}"], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
    insp = SampleInspector(tmp_path / "a")
    assert insp.steps == [1, 2, 3]
    insp.step_select.value = 3
    rows = insp.rows
    assert rows and all(r["step"] == 3 for r in rows) and "r:numeric_match" in rows[0]
    insp.zero_reward.value = True           # the filter keeps only completions that scored 0
    assert all(r["reward"] == 0 for r in insp.rows)
    cmp = RunCompare([tmp_path / "a", tmp_path / "b"])
    diff = cmp.diff
    assert list(diff.index) == ["training.learning_rate"]
    assert sorted(diff.iloc[0].tolist()) == [0.0005, 0.001]
    fig = cmp.figure()
    assert len(fig.axes) >= 2
