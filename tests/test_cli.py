"The command line: every tiny recipe trains through `aligntune train`, every flag works, errors are one message."
import json, subprocess, sys
import pytest
from aligntune.cli import main
from aligntune.recipes import RECIPES
from aligntune import Run
from conftest import aligntune_cmd

TINY = [n for n in RECIPES if n.endswith("-tiny")]

@pytest.mark.parametrize("name", TINY)
def test_tiny_recipe_trains_with_cli_flags(name, tmp_path, capsys):
    if name == "ppo-tiny":
        pytest.importorskip("aligntune.ppo")
    out = tmp_path / name
    rc = main(["train", name, "--output", str(out), "--max-steps", "2", "--set", "training.seed=1", "--backend", "trl"])
    assert rc == 0
    run = Run.load(out)
    assert run.status["status"] == "finished" and run.status["global_step"] == 2
    assert run.config["training"]["seed"] == 1 and run.config["training"]["output_dir"] == str(out)
    assert (out / "model" / "config.json").exists()
    assert "done: 2 steps" in capsys.readouterr().out

def test_a_terminal_user_sees_step_lines_not_library_bars(tmp_path):
    "Without ALIGNTUNE_QUIET (as a user runs it), `aligntune train` prints its step lines and none of the per-map bars."
    import os
    env = {k: v for k, v in os.environ.items() if k != "ALIGNTUNE_QUIET"}
    p = subprocess.run([*aligntune_cmd(), "train", "sft-tiny", "-o", str(tmp_path / "run"), "--max-steps", "2"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    text = p.stdout + p.stderr
    assert "step 1/2" in text and "step 2/2" in text and "done: 2 steps" in p.stdout, text[-2000:]
    for bar in ("examples/s", "Tokenizing", "Writing model shards", "it/s]"):
        assert bar not in text, (bar, text[-2000:])

def test_errors_are_messages_not_tracebacks(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algorithm: grpo\ntraining: {learnig_rate: 1e-4}\n")
    p = subprocess.run([*aligntune_cmd(), "train", str(bad)], capture_output=True, text=True)
    assert p.returncode == 2
    assert "Did you mean 'learning_rate'" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([*aligntune_cmd(), "train", "sft-tiny", "--set", "training.batch_size=0"], capture_output=True, text=True)
    assert p.returncode == 2 and "training.batch_size=0" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([*aligntune_cmd(), "train", "nosuch-recipe"], capture_output=True, text=True)
    assert p.returncode == 2 and "neither a config file nor a recipe name" in p.stderr and "Traceback" not in p.stderr

def test_rewards_command_lists_them():
    p = subprocess.run([*aligntune_cmd(), "rewards"], capture_output=True, text=True, check=True)
    n = int(p.stdout.strip().splitlines()[-1].split()[0])
    assert n >= 30 and "exact_match" in p.stdout

@pytest.mark.slow
def test_eval_command_on_a_saved_model(tiny_model, tmp_path):
    out = tmp_path / "eval.json"
    p = subprocess.run([*aligntune_cmd(), "eval", "--model", str(tiny_model), "--task", "arithmetic", "--limit", "5", "--output", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout)
    assert "arithmetic" in res["results"] and 0.0 <= res["results"]["arithmetic"]["exact_match"] <= 1.0
    assert out.exists()
    p = subprocess.run([*aligntune_cmd(), "eval", "--model", str(tiny_model), "--task", "arithmatic"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "arithmetic" in p.stderr and "Traceback" not in p.stderr
