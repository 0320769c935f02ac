"""Benchmark (not a test): aligntune's PPO against TRL 1.12's `trl.experimental.ppo.PPOTrainer` on one toy task.

Same tiny model (a random Llama, character tokenizer), same prompts, seeds and PPO settings on both sides. The
reward is the share of the 8 response positions that hold the token 'a' (a random model scores about 1/64).
TRL 1.12 is the last release with PPO and cannot live next to the TRL aligntune uses, so the script makes its own
virtual environment for it (``--venv``, default /tmp/aligntune-bench-trl112) and installs
``torch==2.13.0 trl==1.12.0 transformers==5.17.0 datasets==4.8.5 peft accelerate`` there once.

Every run is a fresh subprocess with one torch thread. Printed: seconds per update (median over updates, then
over repeats), mean reward of the first and last 3 updates, and the ratios aligntune / TRL.

    python bench/ppo_vs_trl.py                 # full fine-tune and LoRA, 3 repeats of 20 updates
    python bench/ppo_vs_trl.py --updates 10 --repeats 2 --modes full
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

A_ID, R, PROMPT_CHARS = 3, 8, 6
PROMPTS = ["hello!", "abcdef", "say a.", "why?..", "tell m", "ok now", "xxxxxx", "more.."]
assert all(len(p) == PROMPT_CHARS for p in PROMPTS)   # equal lengths: TRL's reward shim needs one context length
SETTINGS = dict(batch_size=32, num_ppo_epochs=4, num_mini_batches=4, temperature=0.7, kl_coef=0.02, learning_rate=1e-2,
                lora_r=8, lora_alpha=16)

def build_model(path):
    "Save the tiny character-level Llama used by both sides."
    from aligntune.models import char_model
    m, tok = char_model(seed=0, initializer_range=0.1)
    m.save_pretrained(path); tok.save_pretrained(path)
    assert tok.convert_tokens_to_ids("a") == A_ID

# ---- workers (run in a subprocess) ---------------------------------------------------------------------------------
def worker_ours(model_dir, mode, updates, seed):
    import torch
    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from aligntune.config import UnifiedConfig, TrainingConfig, PPOParams, PeftParams, ModelConfig
    from aligntune.ppo import PPOEngine
    s = SETTINGS
    tok = AutoTokenizer.from_pretrained(model_dir); model = AutoModelForCausalLM.from_pretrained(model_dir)
    cfg = UnifiedConfig(algorithm="ppo", model=ModelConfig(max_seq_length=64),
                        peft=PeftParams(enabled=mode == "lora", r=s["lora_r"], lora_alpha=s["lora_alpha"], lora_dropout=0.0),
                        training=TrainingConfig(output_dir=tempfile.mkdtemp(), batch_size=s["batch_size"], learning_rate=s["learning_rate"],
                                                max_steps=updates, seed=seed, lr_scheduler_type="constant"),
                        ppo=PPOParams(max_completion_length=R, temperature=s["temperature"], kl_coef=s["kl_coef"],
                                      num_ppo_epochs=s["num_ppo_epochs"], num_mini_batches=s["num_mini_batches"]))
    def reward(prompts, completions, completion_ids, **kw): return [sum(t == A_ID for t in ids) / R for ids in completion_ids]
    rows, t = [], [0.0]
    class Rec:
        "Seconds between two logs, measured the same way as on the TRL side."
        def on_log(self, trainer, step, metrics):
            now = time.perf_counter(); rows.append((metrics["objective/scores"], now - t[0])); t[0] = now
    tr = PPOEngine(model, tok, cfg, [{"prompt": p} for p in PROMPTS], reward_functions=[reward], callbacks=[Rec()], num_logged_samples=0)
    t[0] = time.perf_counter()
    tr.train()
    return {"scores": [r[0] for r in rows], "secs": [r[1] for r in rows], "value_mode": tr.models.value_mode}

def worker_trl(model_dir, mode, updates, seed):
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    import torch
    torch.set_num_threads(1)
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    s = SETTINGS
    tok = AutoTokenizer.from_pretrained(model_dir); tok.padding_side = "left"
    C = PROMPT_CHARS

    class Backbone(torch.nn.Module):
        "Hands the token ids through as the 'hidden state' so `score` can count the target token."
        def forward(self, input_ids=None, **kw):
            class O: pass
            o = O(); o.hidden_states = (input_ids[..., None].float(),); return o
    class RewardShim(torch.nn.Module):
        "TRL 1.12 only takes reward models; this one scores each prefix by its share of 'a' in the response."
        base_model_prefix = "backbone"
        def __init__(self):
            super().__init__(); self.backbone = Backbone(); self.dummy = torch.nn.Parameter(torch.zeros(1))
        def score(self, h):
            ids = h[..., 0].long()
            hit = (ids == A_ID).float(); hit[:, :C] = 0
            return (hit.cumsum(1) / R)[..., None]

    policy = AutoModelForCausalLM.from_pretrained(model_dir)
    ref = None if mode == "lora" else AutoModelForCausalLM.from_pretrained(model_dir)
    value = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    torch.nn.init.zeros_(value.score.weight)
    peft_config = None
    if mode == "lora":
        from peft import LoraConfig
        peft_config = LoraConfig(r=s["lora_r"], lora_alpha=s["lora_alpha"], lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    ds = Dataset.from_dict({"input_ids": [tok(p)["input_ids"] for p in PROMPTS * 4]})
    assert all(len(x) == C for x in ds["input_ids"])
    args = PPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=s["batch_size"], gradient_accumulation_steps=1,
                     num_ppo_epochs=s["num_ppo_epochs"], num_mini_batches=s["num_mini_batches"], response_length=R,
                     temperature=s["temperature"], kl_coef=s["kl_coef"], learning_rate=s["learning_rate"],
                     total_episodes=updates * s["batch_size"], stop_token="eos", num_sample_generations=0,
                     local_rollout_forward_batch_size=s["batch_size"], lr_scheduler_type="constant", use_cpu=True, bf16=False,
                     gradient_checkpointing=False, report_to="none", save_strategy="no", logging_steps=1, seed=seed,
                     disable_tqdm=True, missing_eos_penalty=None)
    rows, t = [], [time.perf_counter()]
    class Rec(TrainerCallback):
        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "objective/scores" in logs:
                now = time.perf_counter(); rows.append((logs["objective/scores"], now - t[0])); t[0] = now
    tr = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=RewardShim(), train_dataset=ds,
                    value_model=value, peft_config=peft_config, callbacks=[Rec()])
    t[0] = time.perf_counter()
    tr.train()
    return {"scores": [r[0] for r in rows], "secs": [r[1] for r in rows], "trl": trl.__version__}

# ---- driver ---------------------------------------------------------------------------------------------------------
def ensure_venv(venv, pip_args=()):
    """TRL 1.12's environment at `venv`, made once. Its torch is the running one's version (a CPU build stays a CPU
    build: `torch==2.13.0+cpu`, found by pip in a local wheel folder or an index given with `pip_args`, e.g.
    `--extra-index-url https://download.pytorch.org/whl/cpu`); the install is refused before it starts if pip would
    bring CUDA libraries onto a machine whose torch has none."""
    py = Path(venv) / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import trl.experimental.ppo, trl; assert trl.__version__ == '1.12.0'"],
                                        capture_output=True, env={**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1"}).returncode == 0
    if ok: return py
    import torch
    reqs = [f"torch=={torch.__version__}", "trl==1.12.0", "transformers==5.17.0", "datasets==4.8.5", "peft", "accelerate"]
    print(f"making {venv} with trl 1.12.0 (once): {' '.join(reqs)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", *pip_args]
    if torch.version.cuda is None:
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([*pip, "--dry-run", "--report", f"{d}/plan.json", *reqs], check=True)
            plan = [i["metadata"]["name"] for i in json.loads(Path(d, "plan.json").read_text())["install"]]
        cuda = [n for n in plan if n.startswith(("nvidia-", "triton", "cuda"))]
        if cuda:
            raise SystemExit(f"installing TRL 1.12's environment would bring CUDA packages ({', '.join(cuda[:4])}...) next to this CPU torch "
                             f"{torch.__version__}; give pip an index that has {reqs[0]}, e.g. "
                             "--pip-args='--extra-index-url https://download.pytorch.org/whl/cpu'")
    subprocess.run([*pip, *reqs], check=True)
    return py

def run(py, which, model_dir, mode, updates, seed):
    env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    if which == "ours": env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([str(py), __file__, "--worker", which, "--model-dir", model_dir, "--mode", mode, "--updates", str(updates),
                          "--seed", str(seed)], capture_output=True, text=True, env=env)
    line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
    if out.returncode or not line: raise RuntimeError(f"{which} {mode} seed {seed} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[-1][7:])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=20); ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", default="full,lora"); ap.add_argument("--venv", default="/tmp/aligntune-bench-trl112")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--pip-args", default="", help="extra pip arguments for making --venv, e.g. an index with a CPU torch")
    ap.add_argument("--worker"); ap.add_argument("--model-dir"); ap.add_argument("--mode"); ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.worker:
        res = (worker_ours if a.worker == "ours" else worker_trl)(a.model_dir, a.mode, a.updates, a.seed)
        print("RESULT " + json.dumps(res)); return
    trl_py = ensure_venv(a.venv, a.pip_args.split())
    model_dir = tempfile.mkdtemp(prefix="ppo-bench-model-"); build_model(model_dir)
    print(f"toy task: share of 'a' in 8 tokens; batch {SETTINGS['batch_size']}, {SETTINGS['num_ppo_epochs']} epochs x "
          f"{SETTINGS['num_mini_batches']} minibatches, lr {SETTINGS['learning_rate']}, {a.updates} updates, {a.repeats} repeats, 1 thread")
    table = []
    for mode in a.modes.split(","):
        res = {"ours": [], "trl": []}
        for seed in range(a.repeats):
            for which, py in (("ours", sys.executable), ("trl", trl_py)):
                r = run(py, which, model_dir, mode, a.updates, seed); res[which].append(r)
                print(f"  {mode:4s} {which:4s} seed {seed}: {statistics.median(r['secs']):.3f} s/update, reward "
                      f"{sum(r['scores'][:3]) / 3:.3f} -> {sum(r['scores'][-3:]) / 3:.3f}", flush=True)
        summ = {}
        for which, rs in res.items():
            summ[which] = dict(spu=statistics.median(statistics.median(r["secs"]) for r in rs),
                               first=statistics.mean(sum(r["scores"][:3]) / 3 for r in rs),
                               last=statistics.mean(sum(r["scores"][-3:]) / 3 for r in rs))
        table.append((mode, summ))
    print("\nmode  engine  s/update  reward first3 -> last3")
    for mode, summ in table:
        for which in ("ours", "trl"):
            s = summ[which]; print(f"{mode:5s} {which:7s} {s['spu']:8.3f}  {s['first']:.3f} -> {s['last']:.3f}")
        o, t = summ["ours"], summ["trl"]
        print(f"{mode:5s} ratio   time ours/trl = {o['spu'] / t['spu']:.2f}, final reward ours/trl = {o['last'] / max(t['last'], 1e-9):.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(dict(updates=a.updates, repeats=a.repeats, modes={
            mode: dict(**{f"{w}_{k}": v for w in ("ours", "trl") for k, v in summ[w].items()}, time_ratio=summ["ours"]["spu"] / summ["trl"]["spu"],
                       reward_ratio=summ["ours"]["last"] / max(summ["trl"]["last"], 1e-9)) for mode, summ in table}), indent=1))

if __name__ == "__main__":
    main()
