"""Overhead of aligntune over a hand-written TRL script: the same SFT, DPO and GRPO runs, same seed and data,
alternating, several repeats. Prints the median wall-time ratio (goal <= 1.03) and checks that the losses match.

    python bench/overhead.py [--repeats 5] [--steps 40]
"""
import argparse, json, os, statistics, sys, tempfile, time
from pathlib import Path
os.environ.setdefault("ALIGNTUNE_QUIET", "1")
import torch
import trl
from transformers import AutoModelForCausalLM, AutoTokenizer
from datasets import Dataset
from aligntune import create_sft_trainer, create_rl_trainer, Run
from aligntune.models import tiny_model_path
from aligntune.toy import addition_facts, sft_rows, preference_rows, prompt_rows, addition_correct

CPU = dict(use_cpu=not torch.cuda.is_available(), bf16=False, fp16=False, gradient_checkpointing=False, report_to="none",
           save_strategy="no", disable_tqdm=True, logging_steps=1, lr_scheduler_type="constant", seed=0, data_seed=0)

def plain_trl(algo, model_path, out, steps):
    "What a user would write with TRL alone (load, train, save)."
    tok = AutoTokenizer.from_pretrained(model_path); tok.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    if algo == "sft":
        args = trl.SFTConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=16, learning_rate=3e-3, max_length=512, **CPU)
        t = trl.SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(sft_rows(addition_facts())), processing_class=tok)
    elif algo == "dpo":
        args = trl.DPOConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=16, learning_rate=1e-3, max_length=512, beta=0.1, **CPU)
        t = trl.DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(preference_rows(addition_facts())), processing_class=tok)
    else:
        args = trl.GRPOConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=32, learning_rate=5e-4, num_generations=8,
                              max_completion_length=4, loss_type="dapo", beta=0.0, epsilon=0.2, epsilon_high=0.28, scale_rewards="group",
                              mask_truncated_completions=True, remove_unused_columns=False, **CPU)
        t = trl.GRPOTrainer(model=model, reward_funcs=[addition_correct], args=args, train_dataset=Dataset.from_list(prompt_rows(addition_facts())), processing_class=tok)
    t.train(); t.save_model(os.path.join(out, "model"))
    return [r["loss"] for r in t.state.log_history if "loss" in r]

def ours(algo, model_path, out, steps):
    if algo == "sft": t = create_sft_trainer(model_path, sft_rows(addition_facts()), output_dir=out, max_steps=steps, batch_size=16, learning_rate=3e-3, lr_scheduler_type="constant", seed=0)
    elif algo == "dpo": t = create_rl_trainer(model_path, preference_rows(addition_facts()), algorithm="dpo", output_dir=out, max_steps=steps, batch_size=16, learning_rate=1e-3, lr_scheduler_type="constant", seed=0)
    else: t = create_rl_trainer(model_path, prompt_rows(addition_facts()), algorithm="dapo", reward_functions=[addition_correct], output_dir=out, max_steps=steps,
                                batch_size=32, num_generations=8, max_completion_length=4, learning_rate=5e-4, lr_scheduler_type="constant", seed=0)
    t.train()
    return Run.load(out).metrics["loss"].dropna().tolist()

def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--repeats", type=int, default=5); ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--algos", default="sft,dpo,grpo"); ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    model_path = str(tiny_model_path())
    print(f"torch {torch.__version__}, trl {trl.__version__}, {torch.get_num_threads()} threads, {a.steps} steps, {a.repeats} repeats")
    summary = dict(steps=a.steps, repeats=a.repeats, algos={})
    for algo in a.algos.split(","):
        times = {"trl": [], "aligntune": []}; losses = {}
        for r in range(a.repeats):
            order = [("trl", plain_trl), ("aligntune", ours)] if r % 2 == 0 else [("aligntune", ours), ("trl", plain_trl)]
            for name, fn in order:
                with tempfile.TemporaryDirectory() as d:
                    t0 = time.perf_counter(); losses[name] = fn(algo, model_path, d, a.steps); times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        diff = max(abs(x - y) for x, y in zip(losses["trl"], losses["aligntune"]))
        print(f"{algo:5s} trl {med['trl']:.2f} s  aligntune {med['aligntune']:.2f} s  ratio {med['aligntune'] / med['trl']:.3f}  "
              f"max |loss diff| {diff:.2e} over {len(losses['trl'])} logged steps ({'match' if diff < 1e-4 else 'DIFFER'})", flush=True)
        summary["algos"][algo] = dict(trl_s=med["trl"], ours_s=med["aligntune"], ratio=med["aligntune"] / med["trl"],
                                      pair_ratios=[o / t for o, t in zip(times["aligntune"], times["trl"])], max_loss_diff=diff)
    if a.json: Path(a.json).write_text(json.dumps(summary, indent=1))

if __name__ == "__main__":
    main()
