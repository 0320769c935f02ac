"""Time to reward on the demo's task: GRPO with aligntune's defaults against GRPO with plain TRL's defaults.

Both start from the demo's DPO model (the script trains it first, with the demo's SFT and DPO settings), get the
same prompts (all 100 addition facts) and the same reward (`addition_correct`), and set nothing else that is not
required: aligntune's `create_rl_trainer(model, prompts, algorithm="grpo", reward_functions=[...])` against TRL's
`GRPOTrainer(model, reward_funcs=[...], args=GRPOConfig(output_dir))` (plus, on a CPU, fp32 as aligntune picks there; no saving; a log every step).
Each side trains until the mean reward of its last 20 steps reaches --target, or until --budget seconds pass.
The sides alternate over --repeats; printed: seconds to the target for each, and the ratio TRL / aligntune
(above 1: our defaults get there sooner). A side that never gets there within the budget counts as the budget,
and the ratio is then a lower (or upper) bound, marked so.

    python bench/grpo_defaults.py                      # target 0.6, 300 s budget per side, 1 repeat
    python bench/grpo_defaults.py --repeats 3 --target 0.55 --budget 600
"""
import argparse, json, os, statistics, tempfile, time
from pathlib import Path
os.environ.setdefault("ALIGNTUNE_QUIET", "1")

WINDOW = 20

def dpo_model(out, seed=0, sft_steps=300, dpo_steps=60):
    "The demo's first two stages (same data and settings; 300 and 60 steps as in the demo): the model its GRPO stage starts from."
    from aligntune import create_sft_trainer, create_rl_trainer
    from aligntune.models import tiny_model_path
    from aligntune.toy import addition_facts, sft_rows, preference_rows
    seen = addition_facts("seen"); common = dict(batch_size=16, lr_scheduler_type="constant", seed=seed)
    base = str(tiny_model_path(seed=seed, hidden_size=128))
    create_sft_trainer(base, sft_rows(seen, seed=seed), output_dir=f"{out}/1-sft", max_steps=sft_steps, learning_rate=3e-3, **common).train()
    create_rl_trainer(f"{out}/1-sft/model", preference_rows(seen), algorithm="dpo", output_dir=f"{out}/2-dpo", max_steps=dpo_steps,
                      learning_rate=2e-4, loss_type=["sigmoid", "sft"], loss_weights=[1.0, 1.0], **common).train()
    return f"{out}/2-dpo/model"

class Clock:
    "Mean reward of the last WINDOW steps against time; asks to stop at the target or the budget."
    def __init__(self, target, budget): self.target, self.budget, self.rewards, self.t0, self.hit = target, budget, [], None, None
    def log(self, reward):
        if self.t0 is None: self.t0 = time.perf_counter()
        self.rewards.append(reward)
        last = self.rewards[-WINDOW:]
        if self.hit is None and len(last) == WINDOW and sum(last) / WINDOW >= self.target: self.hit = time.perf_counter() - self.t0
    def stop(self): return self.hit is not None or (self.t0 is not None and time.perf_counter() - self.t0 > self.budget)
    def result(self):
        return dict(seconds=self.hit, reached=self.hit is not None, steps=len(self.rewards), last=sum(self.rewards[-WINDOW:]) / max(len(self.rewards[-WINDOW:]), 1))

def ours(model, clock, out):
    from aligntune import create_rl_trainer
    from aligntune.callbacks import Callback
    from aligntune.toy import addition_facts, prompt_rows, addition_correct
    class Watch(Callback):
        def on_log(self, trainer, step, metrics):
            if "reward" in metrics: clock.log(metrics["reward"])
        def should_stop(self): return clock.stop()
    create_rl_trainer(model, prompt_rows(addition_facts()), algorithm="grpo", reward_functions=[addition_correct], output_dir=out,
                      max_steps=100000, callbacks=[Watch()]).train()

def plain_trl(model, clock, out):
    import torch, trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from aligntune.toy import addition_facts, prompt_rows, addition_correct
    class Watch(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs: clock.log(logs["reward"])
            if clock.stop(): control.should_training_stop = True
    tok = AutoTokenizer.from_pretrained(model); m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    cpu = not torch.cuda.is_available()
    args = trl.GRPOConfig(output_dir=out, max_steps=100000, use_cpu=cpu, bf16=False if cpu else None, report_to="none", save_strategy="no",
                          logging_steps=1, disable_tqdm=True)
    trl.GRPOTrainer(model=m, reward_funcs=[addition_correct], args=args, train_dataset=Dataset.from_list(prompt_rows(addition_facts())),
                    processing_class=tok, callbacks=[Watch()]).train()

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", type=float, default=0.6); ap.add_argument("--budget", type=float, default=300)
    ap.add_argument("--repeats", type=int, default=1); ap.add_argument("--model", help="a DPO model to start from (default: train the demo's)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--prep-steps", default="300,60", help="SFT,DPO steps for the starting model (the demo's: 300,60; fewer only to check the script)")
    a = ap.parse_args()
    import torch, trl
    work = tempfile.mkdtemp(prefix="grpo-defaults-")
    model = a.model or dpo_model(work, 0, *map(int, a.prep_steps.split(",")))
    print(f"torch {torch.__version__}, trl {trl.__version__}, {torch.get_num_threads()} threads; target: mean reward of {WINDOW} steps >= {a.target}, "
          f"budget {a.budget:.0f} s per side", flush=True)
    res = {"aligntune": [], "trl": []}
    for r in range(a.repeats):
        order = [("aligntune", ours), ("trl", plain_trl)] if r % 2 == 0 else [("trl", plain_trl), ("aligntune", ours)]
        for name, fn in order:
            clock = Clock(a.target, a.budget)
            fn(model, clock, tempfile.mkdtemp(dir=work)); x = clock.result(); res[name].append(x)
            print(f"  {name:9s} repeat {r}: " + (f"target in {x['seconds']:.1f} s" if x["reached"] else f"target not reached in {a.budget:.0f} s")
                  + f" ({x['steps']} steps, last mean reward {x['last']:.3f})", flush=True)
    sec = {k: statistics.median(x["seconds"] if x["reached"] else a.budget for x in v) for k, v in res.items()}
    reached = {k: [x["reached"] for x in v] for k, v in res.items()}
    ratio = None if not any(reached["aligntune"]) and not any(reached["trl"]) else sec["trl"] / sec["aligntune"]
    bound = "" if all(reached["aligntune"] + reached["trl"]) else (
        " (at least: TRL's defaults did not reach it)" if all(reached["aligntune"]) and not any(reached["trl"]) else " (a bound: a side did not always reach it)")
    if a.json:
        Path(a.json).write_text(json.dumps(dict(target=a.target, budget=a.budget, repeats=a.repeats, runs=res, seconds=sec, ratio=ratio,
                                                bound=bound.strip(" ()")), indent=1))
    if ratio is None:
        print(f"\nneither side reached {a.target} within {a.budget:.0f} s: raise --budget (or lower --target)"); return
    print(f"\ntime to reward {a.target}: aligntune {sec['aligntune']:.1f} s, TRL {sec['trl']:.1f} s; ratio TRL / aligntune {ratio:.2f}{bound}")

if __name__ == "__main__":
    main()
