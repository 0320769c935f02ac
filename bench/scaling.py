"""How cost grows: time per optimizer step and peak memory (RSS) of SFT, DPO, GRPO and PPO, aligntune against plain
TRL (and against TRL 1.12's PPOTrainer for PPO, as bench/ppo_vs_trl.py does), over model width, sequence length and
GRPO's group size. One axis moves at a time from a middle point; every run is a fresh process with one torch thread,
ours and the baseline alternate, and the peak RSS is read from the finished process (os.wait4), so both sides are
measured the same way (it includes the interpreter and the libraries, about the same on both sides).

Writes scaling.md (a table with the ratios ours/baseline) and scaling.png next to --out, and prints the table.

    python bench/scaling.py --quick          # 2 points per axis, a few steps: checks that everything runs (minutes)
    python bench/scaling.py --grid window    # three points per axis, 4 steps (about 10 minutes; bench/run_all.py runs this)
    python bench/scaling.py                  # the full grid (about an hour on 2 quiet cores)
    python bench/scaling.py --algos grpo --axes group

Models are aligntune's tiny Qwen2 (tiny_model_path) at several widths and depths, random weights, so generation runs
to the full completion length; PPO uses bench/ppo_vs_trl.py's character-level Llama and toy reward at the same widths
(its response length is fixed at 8 tokens, so PPO is measured over width only).
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (hidden_size, num_layers): 0.6M, 4.3M, 19M and 50M parameters with the tiny tokenizer's 512 tokens (16 h^2 a layer);
# PPO's character-level Llama at the same shapes is smaller (64 tokens, a 2x MLP): 0.3M and 1.9M at the first two, about 9M and 23M
SIZES = [(128, 2), (256, 4), (384, 8), (512, 12)]
BASE = dict(size=(256, 4), seq=128, completion=32, group=8)
# batch: sequences per SFT/DPO step (GRPO: PROMPTS_PER_STEP x group size completions; PPO: bench/ppo_vs_trl.py's 32)
FULL = dict(width=SIZES, seq=[64, 128, 256, 512], completion=[8, 32, 128], group=[4, 8, 16], steps=12, updates=8, batch=16)
QUICK = dict(width=SIZES[:2], seq=[64, 128], completion=[8, 16], group=[4, 8], steps=3, updates=2, batch=8)
# the grid that fits about 10 minutes on 2 quiet cores (bench/run_all.py): three widths up to 50M, three points on the
# other axes (the middle one is the shared base point), 3 steps or PPO updates per run (the median of the last 2 is
# reported; at 50M a step takes seconds, so two of them give a stable median), 8 sequences per SFT/DPO step
WINDOW = dict(width=[SIZES[0], SIZES[1], SIZES[3]], seq=[64, 128, 256], completion=[8, 32, 128], group=[4, 8, 16], steps=3, updates=3, batch=8)
GRIDS = dict(quick=QUICK, window=WINDOW, full=FULL)
PROMPTS_PER_STEP = 4  # GRPO: prompts per step; the batch is PROMPTS_PER_STEP x group size

# ---- workers (one run each, in a fresh process) ----------------------------------------------------------------------
def _rows(algo, seq, tok):
    "Toy rows whose texts reach at least `seq` tokens (then truncated to max_length = seq)."
    from aligntune.toy import addition_facts, prompt_rows
    facts = addition_facts()
    pad = lambda s: (s + " ") * (seq // max(len(tok(s + " ")["input_ids"]), 1) + 1)
    if algo == "sft": return [{"prompt": f"{a}+{b}=", "completion": pad(f"the answer is {a + b}.")} for a, b in facts]
    if algo == "dpo": return [{"prompt": f"{a}+{b}=", "chosen": pad(f"{a + b}."), "rejected": pad(f"the answer is {a + b}.")} for a, b in facts]
    return prompt_rows(facts)

def worker(side, algo, hidden, layers, seq, completion, group, steps, batch=16):
    "Train `steps` steps; returns the seconds of each step and the parameter count."
    os.environ["ALIGNTUNE_QUIET"] = "1"
    import torch
    torch.set_num_threads(1)
    from aligntune.models import tiny_model_path
    from aligntune.toy import addition_correct
    from transformers import AutoTokenizer
    path = str(tiny_model_path(hidden_size=hidden, num_layers=layers))
    out, rows = tempfile.mkdtemp(prefix="scaling-"), _rows(algo, seq, AutoTokenizer.from_pretrained(path))
    bs = PROMPTS_PER_STEP * group if algo == "grpo" else batch
    stamps = []
    if side == "ours":
        from aligntune import create_sft_trainer, create_rl_trainer
        from aligntune.callbacks import Callback
        class Stamp(Callback):
            def on_step(self, trainer, step): stamps.append((time.perf_counter(), time.process_time()))
        common = dict(output_dir=out, max_steps=steps, batch_size=bs, lr_scheduler_type="constant", seed=0, callbacks=[Stamp()])
        if algo == "sft": t = create_sft_trainer(path, rows, learning_rate=1e-3, max_seq_length=seq, **common)
        elif algo == "dpo": t = create_rl_trainer(path, rows, algorithm="dpo", learning_rate=1e-4, max_seq_length=seq, **common)
        else: t = create_rl_trainer(path, rows, algorithm="dapo", reward_functions=[addition_correct], learning_rate=5e-4,
                                    num_generations=group, max_completion_length=completion, **common)
        t.setup(); n = sum(p.numel() for p in t.model.parameters())
        stamps.append((time.perf_counter(), time.process_time())); t.train()
    else:
        import trl
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
        class Stamp(TrainerCallback):
            def on_step_end(self, args, state, control, **kw): stamps.append((time.perf_counter(), time.process_time()))
        tok = AutoTokenizer.from_pretrained(path); model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        n = sum(p.numel() for p in model.parameters())
        cpu = dict(output_dir=out, max_steps=steps, per_device_train_batch_size=bs, use_cpu=True, bf16=False, report_to="none",
                   save_strategy="no", disable_tqdm=True, logging_steps=1, lr_scheduler_type="constant", seed=0, data_seed=0,
                   gradient_checkpointing=False)  # as aligntune runs it (TRL's configs default to True)
        ds = Dataset.from_list(rows)
        if algo == "sft":
            t = trl.SFTTrainer(model=model, args=trl.SFTConfig(learning_rate=1e-3, max_length=seq, **cpu), train_dataset=ds, processing_class=tok)
        elif algo == "dpo":
            t = trl.DPOTrainer(model=model, args=trl.DPOConfig(learning_rate=1e-4, max_length=seq, **cpu), train_dataset=ds, processing_class=tok)
        else:
            args = trl.GRPOConfig(learning_rate=5e-4, num_generations=group, max_completion_length=completion, loss_type="dapo", beta=0.0,
                                  epsilon=0.2, epsilon_high=0.28, scale_rewards="group", mask_truncated_completions=True,
                                  remove_unused_columns=False, **cpu)
            t = trl.GRPOTrainer(model=model, reward_funcs=[addition_correct], args=args, train_dataset=ds, processing_class=tok)
        t.add_callback(Stamp())
        stamps.append((time.perf_counter(), time.process_time())); t.train()
    secs = [b[0] - a[0] for a, b in zip(stamps, stamps[1:])]
    cpu = [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]  # CPU seconds of this process: less blurred by other load than wall time
    return {"secs": secs, "cpu": cpu, "params": n}

def build_char_model(path, hidden, layers):
    "bench/ppo_vs_trl.py's character-level Llama (tokenizer, toy reward) at another width and depth."
    import torch
    from transformers import LlamaConfig, AutoModelForCausalLM
    from aligntune.models import char_model
    m, tok = char_model(seed=0, initializer_range=0.1)
    cfg = LlamaConfig(**{**m.config.to_dict(), "hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": layers,
                         "num_attention_heads": 4, "num_key_value_heads": 4})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path); tok.save_pretrained(path)

# ---- driver ------------------------------------------------------------------------------------------------------------
def run_process(argv, env):
    "(RESULT json, peak RSS in MB) of one worker process."
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        p = subprocess.Popen(argv, stdout=so, stderr=se, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0); se.seek(0); out, err = so.read(), se.read()
    line = [l for l in out.splitlines() if l.startswith("RESULT ")]
    if p.returncode or not line: raise RuntimeError(f"{' '.join(argv[1:])} failed:\n{err[-3000:]}")
    return json.loads(line[-1][7:]), usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux

def measure(point, trl112, order):
    "Both sides of one point, in `order`; returns {side: (median s/step, peak MB, params)}."
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "TRL_EXPERIMENTAL_SILENCE": "1",
           "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    algo, (hidden, layers) = point["algo"], point["size"]
    res = {}
    for side in order:
        if algo == "ppo":
            model_dir = point["_char_dirs"][(hidden, layers)]
            py = sys.executable if side == "ours" else str(trl112)
            e = env if side == "ours" else {k: v for k, v in env.items() if k != "PYTHONPATH"}
            r, mb = run_process([py, str(HERE / "ppo_vs_trl.py"), "--worker", "ours" if side == "ours" else "trl", "--model-dir", model_dir,
                                 "--mode", "full", "--updates", str(point["steps"]), "--seed", "0"], e)
            secs, n = r["secs"], point["_char_params"][(hidden, layers)]
        else:
            r, mb = run_process([sys.executable, __file__, "--worker", side, "--algo", algo, "--hidden", str(hidden), "--layers", str(layers),
                                 "--seq", str(point["seq"]), "--completion", str(point["completion"]), "--group", str(point["group"]),
                                 "--steps", str(point["steps"]), "--batch", str(point["batch"])], env)
            secs, n = r["secs"], r["params"]
        warm = secs[1:] if len(secs) > 2 else secs  # the first step pays for one-off work
        res[side] = (statistics.median(warm), mb, n)
    return res

def grid(cfg, algos, axes):
    "One axis at a time from the middle point; each algorithm only on the axes it has."
    pts = []
    def add(algo, axis, **kw):
        p = dict(algo=algo, axis=axis, size=BASE["size"], seq=BASE["seq"], completion=BASE["completion"], group=BASE["group"],
                 steps=cfg["updates"] if algo == "ppo" else cfg["steps"], batch=cfg["batch"]); p.update(kw); pts.append(p)
    for algo in algos:
        if "width" in axes:
            for s in cfg["width"]: add(algo, "width", size=s)
        if "seq" in axes and algo in ("sft", "dpo"):
            for L in cfg["seq"]: add(algo, "seq", seq=L)
        if "seq" in axes and algo == "grpo":
            for L in cfg["completion"]: add(algo, "completion", completion=L)
        if "group" in axes and algo == "grpo":
            for g in cfg["group"]: add(algo, "group", group=g)
    return pts

def value_of(p):
    return {"width": "{}x{}".format(*p["size"]), "seq": p["seq"], "completion": p["completion"], "group": p["group"]}[p["axis"]]

def table(rows) -> str:
    out = ["| algo | axis | value | params | baseline | s/step baseline | s/step ours | time ratio | peak MB baseline | peak MB ours | memory ratio |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p, r in rows:
        b, o = r["baseline"], r["ours"]
        out.append(f"| {p['algo']} | {p['axis']} | {value_of(p)} | {o[2] / 1e6:.1f}M | {'TRL 1.12' if p['algo'] == 'ppo' else 'TRL'} | {b[0]:.3f} | {o[0]:.3f} | "
                   f"{o[0] / b[0]:.2f} | {b[1]:.0f} | {o[1]:.0f} | {o[1] / b[1]:.2f} |")
    return "\n".join(out)

def plot(rows, path):
    import matplotlib; matplotlib.use("Agg")
    from matplotlib.figure import Figure
    axes = [a for a in ("width", "seq", "completion", "group") if any(p["axis"] == a for p, _ in rows)]
    fig = Figure(figsize=(4 * len(axes), 6), layout="constrained")
    grid_ = fig.subplots(2, len(axes), squeeze=False)
    for j, axis in enumerate(axes):
        for algo in ("sft", "dpo", "grpo", "ppo"):
            sel = [(p, r) for p, r in rows if p["axis"] == axis and p["algo"] == algo]
            if not sel: continue
            xs = [r["ours"][2] / 1e6 if axis == "width" else p[axis] for p, r in sel]
            for i, (k, label) in enumerate(((0, "s/step"), (1, "peak RSS (MB)"))):
                ax = grid_[i][j]
                color = {"sft": "C0", "dpo": "C1", "grpo": "C2", "ppo": "C3"}[algo]
                ax.plot(xs, [r["ours"][k] for _, r in sel], marker="o", color=color, label=f"{algo} ours")
                ax.plot(xs, [r["baseline"][k] for _, r in sel], marker="x", ls="--", color=color,
                        label=f"{algo} {'TRL 1.12' if algo == 'ppo' else 'TRL'}")
                ax.set_xlabel("parameters (millions)" if axis == "width" else {"seq": "sequence length (tokens)", "completion": "completion length (tokens)", "group": "group size"}[axis])
                ax.set_ylabel(label); ax.set_xscale("log", base=10 if axis == "width" else 2)
                if k == 0: ax.set_yscale("log")
        grid_[0][j].set_title(f"over {axis}", fontsize=10); grid_[0][j].legend(fontsize=6)
    fig.savefig(path, dpi=110)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="two points per axis and a few steps: checks that everything runs (= --grid quick)")
    ap.add_argument("--grid", choices=list(GRIDS), default="full", help="quick: checks that it runs; window: about 10 min quiet; full: about an hour")
    ap.add_argument("--algos", default="sft,dpo,grpo,ppo"); ap.add_argument("--axes", default="width,seq,group")
    ap.add_argument("--out", default=str(HERE / "scaling"), help="writes OUT.md and OUT.png")
    ap.add_argument("--venv", default="/tmp/aligntune-bench-trl112", help="TRL 1.12's environment (made once, as bench/ppo_vs_trl.py does)")
    ap.add_argument("--worker"); ap.add_argument("--algo"); ap.add_argument("--hidden", type=int); ap.add_argument("--layers", type=int)
    ap.add_argument("--seq", type=int); ap.add_argument("--completion", type=int); ap.add_argument("--group", type=int); ap.add_argument("--steps", type=int); ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    if a.worker:
        print("RESULT " + json.dumps(worker(a.worker, a.algo, a.hidden, a.layers, a.seq, a.completion, a.group, a.steps, a.batch))); return
    if a.quick: a.grid = "quick"
    a.quick = a.grid == "quick"
    cfg = GRIDS[a.grid]
    algos, axes = a.algos.split(","), a.axes.split(",")
    pts = grid(cfg, algos, axes)
    trl112 = None
    if "ppo" in algos:
        sys.path.insert(0, str(HERE)); import ppo_vs_trl
        trl112 = ppo_vs_trl.ensure_venv(a.venv)
        from transformers import AutoModelForCausalLM
        char_dirs, char_params = {}, {}
        for s in {p["size"] for p in pts if p["algo"] == "ppo"}:
            d = tempfile.mkdtemp(prefix=f"scaling-char-{s[0]}x{s[1]}-"); build_char_model(d, *s); char_dirs[s] = d
            char_params[s] = sum(x.numel() for x in AutoModelForCausalLM.from_pretrained(d).parameters())
        for p in pts:
            if p["algo"] == "ppo": p["_char_dirs"], p["_char_params"] = char_dirs, char_params
    from aligntune.models import tiny_model_path
    for s in {p["size"] for p in pts if p["algo"] != "ppo"}: tiny_model_path(hidden_size=s[0], num_layers=s[1])  # built once, before timing
    import torch, trl
    print(f"torch {torch.__version__}, trl {trl.__version__}, 1 thread per run, {len(pts)} points x 2 sides"
          f"{' (quick: few steps, noisy)' if a.quick else ''}", flush=True)
    rows, seen = [], {}
    for i, p in enumerate(pts):
        key = (p["algo"], p["size"], p["seq"], p["completion"], p["group"], p["steps"], p["batch"])
        if key not in seen:
            order = ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours")
            seen[key] = measure(p, trl112, order)
        r = seen[key]
        rows.append((p, r))
        print(f"  {p['algo']:4s} {p['axis']:10s} {str(value_of(p)):>7s}: s/step ours {r['ours'][0]:.3f} baseline {r['baseline'][0]:.3f} "
              f"(x{r['ours'][0] / r['baseline'][0]:.2f}), peak MB ours {r['ours'][1]:.0f} baseline {r['baseline'][1]:.0f}", flush=True)
    md = table(rows)
    note = ("quick mode: a few steps per point, for checking that the script runs; the figures are not for quoting.\n\n" if a.quick else "")
    Path(a.out + ".md").write_text(f"# Scaling: aligntune vs plain TRL (PPO: vs TRL 1.12)\n\n{note}torch {torch.__version__}, trl {trl.__version__}, "
                                   f"one thread per run, grid '{a.grid}': median seconds per step after the first, {cfg['batch']} sequences per SFT/DPO step, "
                                   f"{PROMPTS_PER_STEP} prompts x the group size per GRPO step, PPO as bench/ppo_vs_trl.py (32 x 8 tokens).\n\n{md}\n")
    Path(a.out + ".json").write_text(json.dumps(dict(torch=torch.__version__, trl=trl.__version__, quick=a.quick, rows=[
        dict(**{k: v for k, v in p.items() if not k.startswith("_")}, baseline=r["baseline"], ours=r["ours"]) for p, r in rows]), indent=1))
    plot(rows, a.out + ".png")
    print("\n" + md + f"\n\nwrote {a.out}.md, {a.out}.json and {a.out}.png")

if __name__ == "__main__":
    main()
