"""Unsloth against TRL, and aligntune's Unsloth backend against raw Unsloth, on one CUDA GPU, offline.

    python bench/gpu/unsloth_vs_trl.py                       # SFT, DPO and GRPO on a ~33M-parameter Qwen2 built here
    python bench/gpu/unsloth_vs_trl.py --hidden-size 1024 --layers 16 --algos sft --steps 40

For each algorithm, three runs in separate processes (Unsloth patches libraries for the whole process, so the TRL
run must never see it):

  trl      aligntune, backend="trl"      (transformers + PEFT + TRL)
  unsloth  aligntune, backend="unsloth"  (FastLanguageModel + Unsloth's TRL trainers)
  raw      Unsloth and TRL called directly, with the same model, data, LoRA and TRL arguments as `unsloth`

Each run reports training tokens per second (TRL's own cumulative `num_tokens`, measured after `--warmup` steps
so that compilation and the first CUDA allocations are not counted) and peak GPU memory from the start of
training. The summary gives unsloth/trl (speed-up and memory) and unsloth/raw (aligntune's overhead; the goal is
a tokens/s ratio of at least 0.97). Nothing is downloaded: the model and the data are built locally.
"""
from __future__ import annotations
import argparse, json, os, random, subprocess, sys, tempfile, time
from pathlib import Path

ENGINES = ("trl", "unsloth", "raw")
ALGOS = ("sft", "dpo", "grpo")
GOAL_VS_RAW = 0.97
SMOKE = False  # --cpu-smoke: run the code paths on a CPU with tiny settings (no measurement), to check the script itself


# --- data and reward (deterministic, local) -----------------------------------------------------------------------

WORDS = ("the a an is was are good bad great happy sad yes no thank you please sorry hello world answer question think "
         "because so and or not very model reward train learn data text short long cat dog sun moon red blue green one two "
         "three four five six seven eight nine ten").split()

def _sentence(rng, n): return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."

def make_rows(algo: str, n: int, prompt_words: int, answer_words: int, seed: int = 0) -> list:
    "Synthetic rows in the format each algorithm reads (prompt/completion, prompt/chosen/rejected, prompt)."
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        p = _sentence(rng, prompt_words)
        if algo == "sft": rows.append({"prompt": p, "completion": " " + _sentence(rng, answer_words)})
        elif algo == "dpo": rows.append({"prompt": p, "chosen": " " + _sentence(rng, answer_words), "rejected": " " + _sentence(rng, answer_words)})
        else: rows.append({"prompt": p})
    return rows

def reward_word_count(prompts, completions, **kw):
    "Cheap reward: more known words, up to 20 (so rewards differ within a group)."
    return [float(min(sum(w.strip(".,!?").lower() in WORDS for w in str(c).split()), 20)) for c in completions]


# --- measuring ------------------------------------------------------------------------------------------------------

class Meter:
    "Records (time, cumulative tokens) at each logged step and the peak GPU memory from the start of training."
    def __init__(self, warmup: int):
        self.warmup, self.points, self.losses = warmup, [], []
    def on_train_begin(self, trainer=None):
        import torch
        if not SMOKE: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    def on_log(self, metrics, step):
        import torch
        if "num_tokens" not in metrics: return
        if not SMOKE: torch.cuda.synchronize()
        self.points.append((step, time.perf_counter(), float(metrics["num_tokens"])))
        if "loss" in metrics: self.losses.append(float(metrics["loss"]))
    def result(self) -> dict:
        import torch
        pts = [p for p in self.points if p[0] > self.warmup] or self.points
        first, last = (self.points[self.points.index(pts[0]) - 1] if self.points.index(pts[0]) > 0 else pts[0]), pts[-1]
        dt, dtok = last[1] - first[1], last[2] - first[2]
        return dict(tokens_per_s=round(dtok / dt, 1) if dt > 0 else None, timed_steps=last[0] - first[0], seconds=round(dt, 2),
                    peak_alloc_gb=None if SMOKE else round(torch.cuda.max_memory_allocated() / 2**30, 3),
                    peak_reserved_gb=None if SMOKE else round(torch.cuda.max_memory_reserved() / 2**30, 3),
                    first_loss=self.losses[0] if self.losses else None, last_loss=self.losses[-1] if self.losses else None)


# --- one run (in its own process) -----------------------------------------------------------------------------------

def _overrides(a, algo: str) -> dict:
    "The aligntune settings every engine uses for `algo` (raw Unsloth reads the same ones)."
    ov = dict(max_steps=a.steps, learning_rate=1e-4, max_seq_length=a.seq_len, use_peft=True,
              **{"training.seed": 0, "peft.r": 16, "peft.lora_alpha": 16, "peft.lora_dropout": 0.0, "training.logging_steps": 1,
                 "training.save_steps": None, "training.sample_groups": 0, "model.gradient_checkpointing": a.gradient_checkpointing})
    if algo == "sft": ov["batch_size"] = a.batch_size
    elif algo == "dpo": ov["batch_size"] = max(1, a.batch_size // 2)
    else: ov.update(batch_size=a.batch_size, num_generations=a.num_generations, max_completion_length=a.completion_len)
    return ov

def run_aligntune(engine, algo, model_path, rows, a, meter, out_dir):
    from aligntune.backends.core import create_sft_trainer, create_rl_trainer
    ov = _overrides(a, algo)
    if algo == "sft": t = create_sft_trainer(model_path, rows, backend=engine, fallback=False, output_dir=out_dir, callbacks=[meter], **ov)
    else:
        extra = dict(reward_functions=[reward_word_count]) if algo == "grpo" else {}
        t = create_rl_trainer(model_path, rows, algorithm=algo, backend=engine, fallback=False, output_dir=out_dir, callbacks=[meter], **extra, **ov)
    if engine == "unsloth": t.fast_inference = a.vllm
    t.train()
    return f"{type(t.trl_trainer).__module__}.{type(t.trl_trainer).__qualname__}"

def run_raw(algo, model_path, rows, a, meter, out_dir):
    "Unsloth and TRL called directly; the TRL arguments are the ones aligntune would pass, so only the plumbing differs."
    import unsloth
    from unsloth import FastLanguageModel, is_bfloat16_supported
    import trl, transformers
    from aligntune.config import make_config, resolved_settings
    from aligntune.backends.trl import _args_kwargs, build_trl_config
    from aligntune.data import prepare_dataset
    cfg = make_config(None, algorithm=algo, model_name=model_path, output_dir=out_dir, **_overrides(a, algo))
    if not SMOKE: cfg.model.precision = "bf16" if is_bfloat16_supported() else "fp16"
    p = cfg.peft
    model, tok = FastLanguageModel.from_pretrained(model_path, max_seq_length=cfg.model.max_seq_length, dtype=None, load_in_4bit=False,
                                                   fast_inference=bool(a.vllm and algo == "grpo"), **({"max_lora_rank": p.r} if a.vllm and algo == "grpo" else {}))
    model = FastLanguageModel.get_peft_model(model, r=p.r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout, target_modules=p.target_modules,
                                             bias=p.bias, use_gradient_checkpointing="unsloth", random_state=cfg.training.seed)
    from aligntune.models import fix_tokenizer
    tok = fix_tokenizer(tok)
    ds = prepare_dataset(rows, algo)
    kw = _args_kwargs(cfg, False)
    class Adapter(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, **k): meter.on_train_begin()
        def on_log(self, args, state, control, logs=None, **k):
            if logs: meter.on_log(logs, state.global_step)
    if algo == "sft":
        args = build_trl_config(trl.SFTConfig, {**kw, "max_length": cfg.model.max_seq_length, "dataset_text_field": "text"})
        t = trl.SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    elif algo == "dpo":
        d = cfg.dpo
        args = build_trl_config(trl.DPOConfig, {**kw, "max_length": cfg.model.max_seq_length, "beta": d.beta, "loss_type": d.loss_type})
        if isinstance(getattr(args, "loss_type", None), list): args.loss_type = [d.loss_type]
        t = trl.DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    else:
        g = resolved_settings(cfg)
        keys = ("num_generations", "max_completion_length", "temperature", "top_p", "num_iterations", "steps_per_generation", "generation_batch_size",
                "beta", "epsilon", "epsilon_high", "loss_type", "importance_sampling_level", "scale_rewards", "mask_truncated_completions")
        gk = {**kw, **{k: g[k] for k in keys if g[k] is not None}, "reward_weights": [1.0]}
        if gk.get("steps_per_generation") and gk.get("generation_batch_size"): gk.pop("steps_per_generation")
        args = build_trl_config(trl.GRPOConfig, gk)
        t = trl.GRPOTrainer(model=model, reward_funcs=[reward_word_count], args=args, train_dataset=ds, processing_class=tok)
    t.add_callback(Adapter())
    t.train()
    return f"{type(t).__module__}.{type(t).__qualname__}"

def worker(a):
    os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    global SMOKE
    SMOKE = a.cpu_smoke
    if not SMOKE: os.environ["UNSLOTH_DISABLE_CPU_FALLBACK"] = "1"
    if a.engine in ("unsloth", "raw"): import unsloth  # noqa: F401  -- first, before transformers/trl/peft
    import torch
    assert SMOKE or torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    algo = a.algo
    rows = make_rows(algo, a.rows, a.prompt_words, a.answer_words)
    meter = Meter(a.warmup)
    out_dir = tempfile.mkdtemp(prefix=f"bench-{a.engine}-{algo}-")
    t0 = time.time()
    cls = run_raw(algo, a.model, rows, a, meter, out_dir) if a.engine == "raw" else run_aligntune(a.engine, algo, a.model, rows, a, meter, out_dir)
    res = dict(engine=a.engine, algo=algo, trainer_class=cls, wall_s=round(time.time() - t0, 1), **meter.result())
    print("RESULT " + json.dumps(res), flush=True)


# --- the whole comparison -------------------------------------------------------------------------------------------

def _ratio(x, y): return round(x / y, 3) if x and y else None

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algos", default=",".join(ALGOS), help="comma-separated: sft,dpo,grpo")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: trl,unsloth,raw")
    ap.add_argument("--model", default=None, help="a local model folder (default: build a Qwen2 model here)")
    ap.add_argument("--hidden-size", type=int, default=512); ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab-size", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=30); ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8); ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--rows", type=int, default=512); ap.add_argument("--prompt-words", type=int, default=40)
    ap.add_argument("--answer-words", type=int, default=120)
    ap.add_argument("--num-generations", type=int, default=4); ap.add_argument("--completion-len", type=int, default=128)
    ap.add_argument("--gradient-checkpointing", action="store_true", help="also for the trl engine (Unsloth always uses its own)")
    ap.add_argument("--vllm", action="store_true", help="GRPO generation with vLLM (fast_inference) on unsloth and raw")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per run")
    ap.add_argument("--json", default=None, help="write all results to this file")
    ap.add_argument("--check", action="store_true", help=f"exit 1 when unsloth/raw tokens/s < {GOAL_VS_RAW}")
    ap.add_argument("--cpu-smoke", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS); ap.add_argument("--algo", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker: return worker(a)

    import torch
    if not torch.cuda.is_available() and not a.cpu_smoke:
        sys.exit("No CUDA GPU: this benchmark compares GPU speed and memory; run it on a CUDA machine.")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (smoke run, no measurement)"
    print(f"GPU: {gpu}, torch {torch.__version__}", flush=True)
    from aligntune.backends.unsloth import probe
    engines = a.engines.split(",")
    ok, why = probe("sft")
    if not ok and set(engines) & {"unsloth", "raw"}:
        print(f"unsloth cannot run here ({why}); running trl only", flush=True)
        engines = [e for e in engines if e == "trl"]
    work = Path(tempfile.mkdtemp(prefix="unsloth-bench-"))
    model = a.model
    if model is None:
        from aligntune.models import build_tiny_model
        model = str(build_tiny_model(work / "model", seed=0, hidden_size=a.hidden_size, num_layers=a.layers, vocab_size=a.vocab_size))
        from transformers import AutoConfig
        c = AutoConfig.from_pretrained(model)
        n = c.num_hidden_layers * (4 * c.hidden_size ** 2 + 3 * c.hidden_size * c.intermediate_size) + c.vocab_size * c.hidden_size
        print(f"model: Qwen2, hidden {c.hidden_size}, {c.num_hidden_layers} layers, vocab {c.vocab_size}, about {n / 1e6:.1f}M parameters", flush=True)
    results = []
    passthrough = [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
                   if k in ("steps", "warmup", "batch_size", "seq_len", "rows", "prompt_words", "answer_words", "num_generations", "completion_len")]
    passthrough += ["--gradient-checkpointing"] * a.gradient_checkpointing + ["--vllm"] * a.vllm + ["--cpu-smoke"] * a.cpu_smoke
    for algo in a.algos.split(","):
        for engine in engines:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"--engine={engine}", f"--algo={algo}", f"--model={model}", *passthrough]
            print(f"-- {algo} on {engine} ...", flush=True)
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout, cwd=work)  # Unsloth's compile cache is shared in `work`
                line = next((l for l in reversed(r.stdout.splitlines()) if l.startswith("RESULT ")), None)
                if r.returncode != 0 or line is None:
                    tail = (r.stdout + r.stderr).strip().splitlines()[-15:]
                    print(f"   failed (exit {r.returncode}):\n     " + "\n     ".join(tail), flush=True)
                    results.append(dict(engine=engine, algo=algo, error="\n".join(tail))); continue
                res = json.loads(line[7:]); results.append(res)
                print(f"   {res['tokens_per_s']} tokens/s, peak {res['peak_alloc_gb']} GB allocated / {res['peak_reserved_gb']} GB reserved, "
                      f"loss {res['first_loss']} -> {res['last_loss']}, {res['trainer_class']}", flush=True)
            except subprocess.TimeoutExpired:
                print(f"   timed out after {a.timeout} s", flush=True); results.append(dict(engine=engine, algo=algo, error="timeout"))

    by = {(r["algo"], r["engine"]): r for r in results if "error" not in r}
    print(f"\n{'algo':5} {'engine':8} {'tokens/s':>10} {'peak GB':>8}   {'unsloth/trl speed':>17} {'unsloth/trl mem':>15} {'unsloth/raw speed':>17}")
    summary = []
    for algo in a.algos.split(","):
        t, u, w = by.get((algo, "trl")), by.get((algo, "unsloth")), by.get((algo, "raw"))
        s = dict(algo=algo, speedup_vs_trl=_ratio(u and u["tokens_per_s"], t and t["tokens_per_s"]),
                 memory_vs_trl=_ratio(u and u["peak_alloc_gb"], t and t["peak_alloc_gb"]),
                 ours_vs_raw=_ratio(u and u["tokens_per_s"], w and w["tokens_per_s"]))
        summary.append(s)
        for e in engines:
            r = by.get((algo, e))
            cells = f"{str(r['tokens_per_s']):>10} {str(r['peak_alloc_gb']):>8}" if r else f"{'failed':>10} {'':>8}"
            ratios = f"   {str(s['speedup_vs_trl']):>17} {str(s['memory_vs_trl']):>15} {str(s['ours_vs_raw']):>17}" if e == engines[-1] else ""
            print(f"{algo:5} {e:8} {cells}{ratios}")
    print(f"\ngoal: unsloth/raw tokens/s >= {GOAL_VS_RAW}: " +
          ", ".join(f"{s['algo']} {s['ours_vs_raw']} {'ok' if s['ours_vs_raw'] and s['ours_vs_raw'] >= GOAL_VS_RAW else 'MISSED'}" for s in summary))
    if a.json: Path(a.json).write_text(json.dumps(dict(gpu=gpu, args=vars(a), results=results, summary=summary), indent=1))
    if a.check and any((s["ours_vs_raw"] or 0) < GOAL_VS_RAW for s in summary): sys.exit(1)


if __name__ == "__main__":
    main()
