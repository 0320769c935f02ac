"""What aligntune's listeners cost per logged step late in a long run, against early in the same run: the run record
(metrics, samples), the health checks, the console line, the live knobs and, with --panel, the live panel. A check
that rereads the whole history every step makes late steps dearer and a 10,000-step run quadratic; the ratio should
stay near 1.

    python bench/long_run.py [--steps 5000] [--window 200] [--panel]

The events are those of a GRPO run on the tiny model (32 sampled completions per step, TRL's metric names); no
training happens, so the figures are the listeners' own time.
"""
import argparse, json, os, random, statistics, sys, tempfile, time
from pathlib import Path
os.environ.setdefault("ALIGNTUNE_QUIET", "1")
from aligntune import create_rl_trainer
from aligntune.models import tiny_model_path
from aligntune.toy import addition_facts, prompt_rows, addition_correct

def metrics(rng) -> dict:
    "One logged step of a GRPO run (TRL's keys)."
    return {"loss": rng.uniform(-0.1, 0.1), "grad_norm": rng.uniform(0.1, 2), "learning_rate": 5e-4, "num_tokens": 1e5,
            "completions/mean_length": 3.5, "completions/clipped_ratio": 0.1, "completions/mean_terminated_length": 3.2,
            "rewards/addition_correct/mean": rng.random(), "rewards/addition_correct/std": 0.3, "reward": rng.random(),
            "reward_std": 0.3, "frac_reward_zero_std": rng.uniform(0.2, 0.6), "entropy": rng.uniform(0.5, 2), "epoch": 0.1}

def samples(rng, step) -> list:
    return [dict(prompt=f"What is {i} + {step % 50}?", completion=str(i + step % 50), group=i // 8, rewards={"addition_correct": 1.0},
                 reward=rng.random(), advantage=rng.uniform(-1, 1), completion_length=3, truncated=False) for i in range(32)]

def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--steps", type=int, default=5000); ap.add_argument("--window", type=int, default=200)
    ap.add_argument("--panel", action="store_true"); ap.add_argument("--json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t = create_rl_trainer(str(tiny_model_path()), prompt_rows(addition_facts()), algorithm="grpo", reward_functions=[addition_correct],
                              output_dir=d, max_steps=a.steps, num_generations=8, batch_size=32, max_completion_length=4)
        t.setup()
        if a.panel:
            from aligntune.widgets import TrainPanel
            t.events.add(TrainPanel(t).listener)
        print("listeners:", ", ".join(type(c).__name__ for c in t.events))
        t.events.emit("train_begin")
        rng, per_step = random.Random(0), []
        for step in range(1, a.steps + 1):
            m, rows = metrics(rng), samples(rng, step)
            t0 = time.perf_counter()
            t.events.emit("step", step=step); t.events.emit("log", step=step, metrics=m); t.events.emit("samples", step=step, rows=rows)
            per_step.append(time.perf_counter() - t0)
        t.events.emit("train_end", status="finished", result={"global_step": a.steps})
        size = sum(f.stat().st_size for f in Path(d).glob("*.jsonl"))
    early, late = statistics.median(per_step[:a.window]), statistics.median(per_step[-a.window:])
    print(f"{a.steps} logged steps: median per step over the first {a.window} {early * 1e3:.3f} ms, over the last {a.window} "
          f"{late * 1e3:.3f} ms, ratio late/early {late / early:.2f}; all listeners {sum(per_step):.1f} s; record {size / 1e6:.1f} MB")
    if a.json: Path(a.json).write_text(json.dumps(dict(steps=a.steps, window=a.window, early_ms=early * 1e3, late_ms=late * 1e3, ratio=late / early,
                                                       total_s=sum(per_step), panel=a.panel), indent=1))

if __name__ == "__main__":
    main()
