"""What the live TrainPanel costs per training step.

The same tiny GRPO (or SFT) run, trained with and without a TrainPanel attached, alternating A/B/B/A so that drift in
machine load falls on both sides, several repeats. Step time is the wall time between the first and the last logged
step divided by the number of steps in between, measured by a plain callback, so model loading and saving are left
out and everything the panel does inside training (progress, ETA, drawing, reading the run folder) is counted.

    python bench/panel_overhead.py                 # GRPO, 1000 steps, 3 repeats
    python bench/panel_overhead.py --algorithm sft --steps 60 --repeats 4

Prints each run's step time, the median ratio with/without the panel (goal: <= 1.02), and the share of training time
the panel itself spent drawing (a direct measure that machine noise does not blur). The panel draws the first logged
step at once, then every 2.5 s from the values logged so far (no file read), and never so often that one drawing
takes more than 2% of the time since the previous one; the run folder is read once, at the end. On a shared
machine the ratio swings with other processes' load; compare the per-repeat pairs, which run back to back.
"""
import argparse, json, os, statistics, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("ALIGNTUNE_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class StepClock:
    "Records the wall-clock time of each logged step."
    def __init__(self): self.times = []
    def on_log(self, trainer, step, metrics): self.times.append((step, time.perf_counter()))
    def step_time(self):
        (s0, t0), (s1, t1) = self.times[0], self.times[-1]
        return (t1 - t0) / max(s1 - s0, 1)


def make_trainer(algorithm, steps, out, model_path):
    from aligntune.backends.core import create_rl_trainer, create_sft_trainer
    if algorithm == "sft":
        rows = [{"prompt": f"What is {a} plus {b}?", "completion": f" {a + b}"} for a in range(6) for b in range(6)]
        return create_sft_trainer(model_path, rows, max_steps=steps, batch_size=4, output_dir=out, learning_rate=1e-4)
    rows = [{"prompt": f"What is {a} plus {b}?", "answer": str(a + b)} for a in range(6) for b in range(6)]
    return create_rl_trainer(model_path, rows, algorithm=algorithm, reward_functions=["exact_match", "length"], max_steps=steps,
                             batch_size=4, num_generations=4, max_completion_length=12, output_dir=out, learning_rate=1e-4)


def one_run(algorithm, steps, with_panel, root, i, model_path):
    from aligntune.widgets import TrainPanel
    out = str(Path(root) / f"{'panel' if with_panel else 'plain'}-{i}")
    trainer = make_trainer(algorithm, steps, out, model_path)
    clock = StepClock()
    trainer.add_callback(clock)   # first, so the panel's work on a step lands inside the measured interval
    panel = TrainPanel(trainer) if with_panel else None   # adds its listener (panel.listener) after the clock
    drawn = []
    if panel:   # then a note of the panel's drawing time at each step (the final redraw after training is not counted)
        trainer.add_callback(type("DrawNote", (), {"on_log": lambda self, t, step, metrics: drawn.append((panel.renders, panel.draw_seconds))})())
    res = panel.train() if panel else trainer.train()
    assert res["global_step"] == steps, res
    return clock.step_time(), drawn[-1] if drawn else (0, 0.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithm", default="grpo")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args(argv)
    import torch
    torch.manual_seed(0)
    from aligntune.models import tiny_model_path
    model_path = str(tiny_model_path())
    with tempfile.TemporaryDirectory() as root:
        one_run(a.algorithm, 3, False, root, "warmup", model_path)   # load libraries and caches once
        plain, panel, shares = [], [], []
        for i in range(a.repeats):
            for with_panel in ((False, True) if i % 2 == 0 else (True, False)):
                st, (renders, drawn) = one_run(a.algorithm, a.steps, with_panel, root, i, model_path)
                (panel if with_panel else plain).append(st)
                if with_panel: shares.append(drawn / (st * a.steps))
                extra = f"  ({renders} draws during training, {drawn:.2f} s drawing)" if with_panel else ""
                print(f"repeat {i}  {'panel' if with_panel else 'plain'}  {st * 1000:7.1f} ms/step{extra}", flush=True)
    ratios = [p / q for p, q in zip(panel, plain)]
    print(f"\n{a.algorithm}, {a.steps} steps, {a.repeats} repeats, torch threads {torch.get_num_threads()}")
    print(f"median step time: plain {statistics.median(plain) * 1000:.1f} ms, with panel {statistics.median(panel) * 1000:.1f} ms")
    print(f"ratio with/without panel: median {statistics.median(ratios):.3f}  (per repeat: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"time the panel spent drawing, as a share of training time: median {statistics.median(shares):.3%} "
          "(measured inside the panel, so it does not depend on machine noise)")
    if a.json:
        Path(a.json).write_text(json.dumps(dict(algorithm=a.algorithm, steps=a.steps, repeats=a.repeats, plain_s=plain, panel_s=panel,
                                                ratio=statistics.median(ratios), pair_ratios=ratios, draw_share=statistics.median(shares)), indent=1))
    return statistics.median(ratios)


if __name__ == "__main__":
    main()
