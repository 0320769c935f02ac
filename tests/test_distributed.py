"Every algorithm under a two-process launcher (torchrun, gloo on CPU): one run, not one per process; the same run as one process with the same global batch; rank 0 alone writes."
import hashlib, json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest

TESTS, REPO = Path(__file__).parent, Path(__file__).parent.parent
STEPS, PER_DEVICE = 4, 4  # two processes x 4 rows per step against one process x 8 rows per step

def digit_share(prompts, completions, **kw):
    "A reward with spread even on a random model: the share of digits in a completion."
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(len(t), 1) for t in texts]

def prompt_score(prompts, completions, **kw):
    "A reward fixed by the prompt alone (its digits' sum mod 5, over 4): the same prompts give the same values, whatever was sampled."
    texts = [p if isinstance(p, str) else p[-1]["content"] for p in prompts]
    return [sum(int(ch) for ch in t if ch.isdigit()) % 5 / 4 for t in texts]

def text_length(prompts, completions, **kw):
    "A reward of the sampled text with spread on a random model: its length in characters, over 20."
    return [len(c if isinstance(c, str) else c[-1]["content"]) / 20 for c in completions]

def build(algo, out, batch_size, rewards=("digit_share",), **kw):
    "The tiny run every test here uses; `batch_size` is per process."
    from aligntune import create_sft_trainer, create_rl_trainer
    from aligntune.models import tiny_model_path
    from aligntune.toy import addition_facts, sft_rows, preference_rows, prompt_rows
    kw = {**dict(output_dir=str(out), max_steps=STEPS, batch_size=batch_size, seed=5, learning_rate=1e-3), **kw}
    if algo == "sft": return create_sft_trainer(tiny_model_path(), sft_rows(addition_facts()), **kw)
    if algo in ("dpo", "kto", "orpo", "simpo"):
        rows = preference_rows(addition_facts())
        if algo == "kto":  # KTO's unpaired form: each pair gives a desirable and an undesirable completion
            rows = [r for p in rows for r in ({"prompt": p["prompt"], "completion": p["chosen"], "label": True},
                                               {"prompt": p["prompt"], "completion": p["rejected"], "label": False})]
        return create_rl_trainer(tiny_model_path(), rows, algorithm=algo, **kw)
    extra = dict(num_ppo_epochs=1, num_mini_batches=1) if algo == "ppo" else dict(num_generations=4)
    if algo == "dapo": extra["mask_truncated_completions"] = False  # the random tiny model never stops: DAPO would mask every completion
    return create_rl_trainer(tiny_model_path(), prompt_rows(addition_facts()[:40]), algorithm=algo, reward_functions=[globals()[r] for r in rewards],
                             max_completion_length=4, **extra, **kw)

def weights_digest(t) -> str:
    "A hash of the trainable weights this process holds (equal across processes when gradients were averaged)."
    import torch
    if hasattr(t, "engine"): params = t.engine._trainable()  # PPO: policy and value adapters, value head
    else: params = [p for _, p in sorted(t._unwrapped_model().named_parameters()) if p.requires_grad]
    h = hashlib.sha256()
    for p in params: h.update(p.detach().to(torch.float32).cpu().numpy().tobytes())
    return h.hexdigest()

def env():
    e = {**os.environ, "ALIGNTUNE_QUIET": "1", "OMP_NUM_THREADS": "1"}
    e["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    return e

def two_processes(tmp_path, algo, out, launcher="torchrun", **kw) -> list:
    "Train `algo` into `out` under a two-process launcher; each rank's RESULT (rank, world, steps, pid, weights digest)."
    script = training_script(tmp_path, algo, out, **kw)
    from aligntune.launch import launch_command
    cmd = launch_command(2, launcher)  # torchrun --standalone, or accelerate launch --multi_gpu on a free port
    p = subprocess.run([*cmd, str(script)], capture_output=True, text=True, env=env(), timeout=900, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return results(p.stdout)

def say_result(**record):
    """Print this process's RESULT line in ONE write to the pipe both processes share. (`print` makes a write per piece
    when Python runs unbuffered, as CI does, and two processes' pieces then interleave and break each other's line.)"""
    os.write(1, ("\nRESULT " + json.dumps(record) + "\n").encode())

def result_lines(stdout) -> list:
    """The RESULT records the processes printed. Each is printed after a newline and found wherever it starts: a library
    may leave a line unfinished on stdout, and both processes write to the same pipe."""
    return [json.loads(l[l.index("RESULT {") + 7:]) for l in stdout.splitlines() if "RESULT {" in l]

def results(stdout) -> list:
    res = sorted(result_lines(stdout), key=lambda r: r["rank"])
    assert [r["rank"] for r in res] == [0, 1] and all(r["world"] == 2 for r in res), stdout[-2000:]
    return res

def training_script(tmp_path, algo, out, **kw) -> Path:
    "A script that trains `algo` into `out` and prints this process's RESULT."
    script = tmp_path / f"ddp_{algo}.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, json, torch; sys.path.insert(0, {str(TESTS)!r}); torch.set_num_threads(1)
        from test_distributed import build, digit_share, weights_digest, say_result
        t = build({algo!r}, {str(out)!r}, **{kw!r})
        res = t.train()
        say_result(rank=int(os.environ["RANK"]), world=int(os.environ["WORLD_SIZE"]), steps=res["global_step"],
                   status=res["status"], pid=os.getpid(), digest=weights_digest(t))
        """))
    return script

def launch_jobs(tmp_path, jobs: dict, launcher="torchrun") -> dict:
    """Train several runs one after another in ONE two-process launch (starting the processes costs far more than a tiny
    run); `jobs` maps a name to (algo, out, kwargs). Returns each job's per-rank RESULTs, or its error text."""
    spec = tmp_path / "jobs.json"
    spec.write_text(json.dumps({k: [a, str(o), kw] for k, (a, o, kw) in jobs.items()}))
    script = tmp_path / "ddp_jobs.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, json, gc, traceback, torch; sys.path.insert(0, {str(TESTS)!r}); torch.set_num_threads(1)
        from test_distributed import build, weights_digest, say_result
        for name, (algo, out, kw) in json.load(open({str(spec)!r})).items():
            try:
                t = build(algo, out, **kw); res = t.train()
                r = dict(steps=res["global_step"], status=res["status"], digest=weights_digest(t))
            except Exception: r = dict(error=traceback.format_exc()[-3000:])
            say_result(job=name, rank=int(os.environ["RANK"]), world=int(os.environ["WORLD_SIZE"]), pid=os.getpid(), **r)
            t = None; gc.collect()
        """))
    from aligntune.launch import launch_command
    p = subprocess.run([*launch_command(2, launcher), str(script)], capture_output=True, text=True, env=env(), timeout=1800, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    out = {}
    for r in result_lines(p.stdout): out.setdefault(r.pop("job"), []).append(r)
    out = {k: sorted(v, key=lambda r: r["rank"]) for k, v in out.items()}
    out["stdout"] = p.stdout  # shown when a job's results are missing
    return out

def job_results(launched: dict, name: str) -> list:
    "One job's RESULTs from `launch_jobs`, both ranks there and neither failed."
    res = launched.get(name, [])
    assert [r["rank"] for r in res] == [0, 1] and all(r["world"] == 2 for r in res), (name, res, launched.get("stdout", "")[-3000:])
    for r in res: assert "error" not in r, r["error"]
    return res

def metrics(out) -> list:
    return [json.loads(l) for l in (Path(out) / "metrics.jsonl").read_text().splitlines()]

# What "the same run" means here, per kind of algorithm:
# - SFT, DPO, KTO, ORPO, SimPO sample nothing: the two processes see the rows of the one-process batch (the sampler
#   shuffles the dataset once and deals each global batch out), so the losses agree up to float summation order
#   (measured: at most 4e-7 relative for SFT, DPO, KTO and SimPO) and, for ORPO, the mean of per-process means of its
#   NLL term where one process takes the mean over all rows (measured: 2.3e-4). 1e-3 relative covers both and
#   is far below what another global batch gives (the loss moves 2-50% from one step to the next on this model).
# - the GRPO family, RLOO and PPO sample completions; two processes draw other random numbers than one, so per-step values
#   differ by sampling noise. What must agree exactly is the bookkeeping of one run with a global batch
#   (steps, prompts seen, the number of processes), and the processes must end with identical weights
#   (gradients averaged, not trained once per rank). Their metrics against one process: see SAMPLED below.
EXACT = {"sft": "loss", "dpo": "loss", "kto": "loss", "orpo": "loss", "simpo": "loss"}

ALGOS = ["sft", "dpo", "kto", "orpo", "simpo", "grpo", "dapo", "gspo", "dr_grpo", "rloo", "ppo"]
SAMPLED_ALGOS = ["grpo", "gspo", "ppo"]

def sampled_kwargs(algo) -> dict:
    "The sampling comparison's settings (see SAMPLED below): GSPO's preset generates every 4 steps; every 2 here, over 8 steps."
    return dict(rewards=("prompt_score", "text_length"), max_steps=8 if algo == "gspo" else SAMPLED_STEPS,
                **({"steps_per_generation": 2} if algo == "gspo" else {}))

@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    "Every two-process run the tests below compare, trained in one launch: (results by job, folder)."
    d = tmp_path_factory.mktemp("launched")
    jobs = {f"one-run/{a}": (a, d / "one-run" / a, dict(batch_size=PER_DEVICE)) for a in ALGOS}
    jobs |= {f"sampled/{a}": (a, d / "sampled" / a, dict(batch_size=PER_DEVICE, **sampled_kwargs(a))) for a in SAMPLED_ALGOS}
    jobs |= {f"resume/{a}": (a, d / "resume" / a, dict(batch_size=PER_DEVICE, max_steps=3, save_steps=1)) for a in ("grpo", "ppo")}
    return launch_jobs(d, jobs), d

@pytest.mark.slow
@pytest.mark.parametrize("algo", ALGOS)
def test_two_processes_are_one_run_with_the_global_batch(algo, launched, tmp_path):
    from aligntune import Run
    launched, d = launched
    out, ref = d / "one-run" / algo, tmp_path / "one"
    res = job_results(launched, f"one-run/{algo}")
    assert all(r["steps"] == STEPS and r["status"] == "finished" for r in res)
    assert res[0]["digest"] == res[1]["digest"], "the processes ended with different weights: they trained apart"
    st = json.loads((out / "run.json").read_text())
    assert st["num_processes"] == 2 and st["pid"] == res[0]["pid"] and st["status"] == "finished"  # rank 0 wrote the record
    assert [m["step"] for m in metrics(out) if "train_runtime" not in m] == list(range(1, STEPS + 1))  # each step once
    assert (out / "model").is_dir() and not list(out.glob(".*tmp*"))

    one = build(algo, ref, batch_size=2 * PER_DEVICE).train()
    assert one["global_step"] == STEPS
    a, b = Run(out).metrics.set_index("step"), Run(ref).metrics.set_index("step")
    if algo in EXACT:
        k = EXACT[algo]
        rel = ((a[k] - b[k]).abs() / b[k].abs().clip(lower=1e-3)).max()
        print(f"{algo}: max relative difference of {k}, 2 x {PER_DEVICE} against 1 x {2 * PER_DEVICE}: {rel:.2e}")
        assert rel <= 1e-3, (a[k].tolist(), b[k].tolist())
    for k in ("episode", "num_tokens"):  # rows or tokens seen: the global batch, not one process's share
        if k in b.columns and (algo in EXACT or k == "episode"):  # sampled completions end at different lengths
            assert a[k].tolist() == b[k].tolist(), (k, a[k].tolist(), b[k].tolist())


@pytest.fixture(scope="module")
def resumed(launched):
    "The two-process GRPO and PPO runs of `launched` (3 steps, a checkpoint each step) resumed to 5 steps, in one more launch."
    first, d = launched
    jobs = {a: (a, d / "resume" / a, dict(batch_size=PER_DEVICE, max_steps=5, save_steps=1, resume=True)) for a in ("grpo", "ppo")
            if all(r.get("steps") == 3 for r in first.get(f"resume/{a}", []))}
    marked = {a: (d / "resume" / a / "checkpoint-3" / "aligntune_checkpoint.json").exists() for a in ("grpo", "ppo")}  # before resuming
    return (launch_jobs(d / "resume", jobs) if jobs else {}), marked

@pytest.mark.slow
@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_a_two_process_run_resumes_in_two_processes(algo, launched, resumed):
    launched, d = launched
    out = d / "resume" / algo
    first = job_results(launched, f"resume/{algo}")
    assert all(r["steps"] == 3 for r in first)
    resumed, marked = resumed
    assert marked[algo]  # the first launch left a complete checkpoint at step 3
    again = job_results(resumed, algo)
    assert all(r["steps"] == 5 for r in again) and again[0]["digest"] == again[1]["digest"]
    assert [m["step"] for m in metrics(out) if "train_runtime" not in m] == [1, 2, 3, 4, 5]
    st = json.loads((out / "run.json").read_text())
    assert st["resumed"][0]["step"] == 3 and st["num_processes"] == 2 and st["global_step"] == 5


@pytest.mark.slow
def test_a_notebook_cell_launches_two_processes_and_the_live_panel_follows(tmp_path, monkeypatch):
    "From a notebook cell (run by nbclient): TrainPanel(Launch(...)) trains with two processes and shows rank 0's steps as they come."
    import nbformat
    from nbclient import NotebookClient
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    out = tmp_path / "nb-run"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from aligntune.launch import Launch\nfrom aligntune.widgets import TrainPanel\nfrom aligntune.callbacks import Callback"),
                nbformat.v4.new_code_cell(textwrap.dedent(f"""
                    class Seen(Callback):
                        steps = []
                        def on_log(self, trainer, step, metrics): self.steps.append((step, round(metrics["loss"], 4)))
                    panel = TrainPanel(Launch("sft-tiny", num_processes=2, output_dir={str(out)!r}, max_steps=4, callbacks=[Seen()]))
                    display(panel)
                    res = panel.train()
                    print("result", res["status"], res["global_step"], res["num_processes"])
                    print("logged", [s for s, _ in Seen.steps])
                    print("status", panel.status.value, "renders", panel.renders)"""))]
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outs = nb.cells[1].outputs
    text = "".join(o.get("text", "") for o in outs if o.output_type == "stream")
    assert any(o.output_type == "display_data" and "application/vnd.jupyter.widget-view+json" in o.data for o in outs)
    assert "result finished 4 2" in text and "logged [1, 2, 3, 4]" in text, text
    assert "<b>finished</b> · step 4/4" in text and "renders 0" not in text, text
    losses = [json.loads(l)["loss"] for l in (out / "metrics.jsonl").read_text().splitlines() if "loss" in json.loads(l)]
    assert len(losses) == 4 and json.loads((out / "run.json").read_text())["num_processes"] == 2


@pytest.mark.slow
def test_ppo_whitening_over_two_processes_is_that_of_the_whole_rollout(tmp_path):
    "The PPO engine's cross-process statistics: each process whitens its half with the mean and variance of both halves."
    script = tmp_path / "whiten.py"
    script.write_text(textwrap.dedent("""
        import os, json, types, torch, torch.distributed as dist
        from aligntune.ppo import PPOEngine
        from aligntune.ppo_core import masked_whiten
        dist.init_process_group("gloo")
        g = torch.Generator().manual_seed(0)
        x, mask = torch.randn(8, 6, generator=g) * 3 + 1, torch.rand(8, 6, generator=g) > 0.3
        r = dist.get_rank(); half = slice(4 * r, 4 * r + 4)
        me = types.SimpleNamespace(world=2)
        me._masked_stats = lambda a, m: PPOEngine._masked_stats(me, a, m)
        diffs = [(PPOEngine._whiten(me, x[half], mask[half], shift_mean=s) - masked_whiten(x, mask, shift_mean=s)[half]).abs().max().item()
                 for s in (True, False)]
        alone = (masked_whiten(x[half], mask[half]) - masked_whiten(x, mask)[half]).abs().max().item()
        os.write(1, ("\\nRESULT " + json.dumps(dict(rank=r, diffs=diffs, alone=alone)) + "\\n").encode())  # one write: see say_result
        dist.destroy_process_group()
        """))
    from aligntune.launch import launch_command
    p = subprocess.run([*launch_command(2), str(script)], capture_output=True, text=True, env=env(), timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    res = result_lines(p.stdout)
    assert len(res) == 2
    for r in res:
        assert max(r["diffs"]) < 1e-5, r  # float32 against float64 sums
        assert r["alone"] > 1e-2, r  # whitening a half with its own statistics would differ: the test can tell


@pytest.mark.slow
def test_stopping_a_launched_run_stops_every_process_at_the_same_step(tmp_path):
    "Launch.request_stop (the panel's Stop): both processes stop after one step, the model is saved, the run reads 'interrupted'."
    from aligntune.launch import Launch
    from aligntune.callbacks import Callback
    class StopAt(Callback):
        def on_log(self, trainer, step, metrics):
            if step == 2: trainer.request_stop()
    out = tmp_path / "stopped"
    launch = Launch("sft-tiny", num_processes=2, output_dir=str(out), max_steps=200, callbacks=[StopAt()], quiet=True)
    res = launch.train()
    st = json.loads((out / "run.json").read_text())
    assert res["status"] == st["status"] == "interrupted" and 2 <= res["global_step"] < 200, res
    assert st["global_step"] == res["global_step"] and (out / "model" / "model.safetensors").exists()
    # the processes' script and config lived in a temporary folder, removed once they ended; what they printed is kept
    assert not Path(launch.log_path).parent.exists() and "step" in launch.log.lower(), launch.log[-2000:]


@pytest.mark.slow
def test_unsloth_under_a_launcher_is_refused_before_anything_loads(tmp_path):
    "torchrun with backend='unsloth': every process stops with the reason before loading a model; nothing trains once per rank."
    out = tmp_path / "refused"
    script = tmp_path / "unsloth_ddp.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from aligntune import create_sft_trainer
        from aligntune.models import tiny_model_path
        from aligntune.toy import addition_facts, sft_rows
        t = create_sft_trainer(tiny_model_path(), sft_rows(addition_facts()), backend="unsloth", output_dir={str(out)!r}, max_steps=2)
        print("TRAINING", flush=True); t.train()
        """))
    from aligntune.launch import launch_command
    p = subprocess.run([*launch_command(2), str(script)], capture_output=True, text=True, env=env(), timeout=300, cwd=tmp_path)
    assert p.returncode != 0 and "TRAINING" not in p.stdout, p.stdout[-2000:]
    # a rank refused with the reason (torchrun ends the other process as soon as one fails, so it may not get to print)
    assert "torchrun started 2 processes (WORLD_SIZE=2)" in p.stderr, p.stderr[-3000:]
    assert "Use backend='trl' for a multi-process run" in p.stderr, p.stderr[-3000:]
    assert not (out / "model").exists() and not (out / "metrics.jsonl").exists()


# Sampling algorithms against one process. Two processes draw other random numbers than one, so their completions
# differ and per-step values are draws from the same distribution, not equal numbers. Two kinds of check:
# - exact: `prompt_score` depends on the prompt alone, and both runs deal out the same prompts per global step (over
#   SAMPLED_STEPS = 6 steps of 8 rows from 40 prompts, into the second pass over them), so its
#   logged mean (and, for the GRPO family, std) must agree step by step up to float summation order (1e-6). Its value
#   moves from step to step (checked), so rank 0's rewards alone, half the batch, or a sum over processes would not match.
# - statistical: for each sampled metric, |mean_2p - mean_1p| <= 4 * sqrt(var_2p/n + var_1p/n) over n = SAMPLED_STEPS
#   steps (sample variances from the same two runs; GSPO logs its rewards at its n = 4 generations). Under "the same
#   run up to sampling noise" the ratio is about Student-t with 2(n-1) = 6 to 10 degrees of freedom: 4 is exceeded
#   with probability 0.3-0.7% per metric, so the handful of metrics per algorithm rarely trips by chance (3 would
#   trip 1.3-2.4%); the runs are seeded and repeat exactly on a CPU, so a passing test does not flicker. A sum
#   instead of a mean over processes doubles the value: the test asserts that
#   twice the two-process mean would fail the same check, for the token count and the text reward.
SAMPLED_STEPS = 6
SAMPLED = {"grpo": ("reward", "reward_std", "rewards/text_length/mean", "completions/mean_length", "entropy", "tokens_per_step"),
           "gspo": ("reward", "reward_std", "rewards/text_length/mean", "completions/mean_length", "entropy", "tokens_per_step"),
           "ppo": ("objective/scores", "rewards/text_length/mean", "completions/mean_length", "objective/entropy", "objective/kl")}
DOUBLED = {"grpo": ("tokens_per_step", "rewards/text_length/mean"), "gspo": ("tokens_per_step", "rewards/text_length/mean"),
           "ppo": ("completions/mean_length", "rewards/text_length/mean")}

def within_noise(a, b, z=4.0) -> tuple:
    "(agrees, difference of means, tolerance): the means of two series differ by at most z standard errors of that difference."
    import statistics as st
    n, m = len(a), len(b)
    tol = z * ((st.variance(a) / n + st.variance(b) / m) ** 0.5) + 1e-6 * max(abs(st.mean(a)), abs(st.mean(b)), 1e-3)
    d = abs(st.mean(a) - st.mean(b))
    return d <= tol, d, tol

@pytest.mark.slow
@pytest.mark.parametrize("algo", SAMPLED_ALGOS)
def test_a_sampling_run_on_two_processes_matches_one_process_within_sampling_noise(algo, launched, tmp_path):
    kw = sampled_kwargs(algo); steps = kw["max_steps"]
    launched, d = launched
    out, ref = d / "sampled" / algo, tmp_path / "one"
    res = job_results(launched, f"sampled/{algo}")
    assert all(r["steps"] == steps for r in res) and res[0]["digest"] == res[1]["digest"]
    assert build(algo, ref, batch_size=2 * PER_DEVICE, **kw).train()["global_step"] == steps
    a, b = ([m for m in metrics(d) if "train_runtime" not in m] for d in (out, ref))
    assert len(a) == len(b) == steps
    def series(rows, k) -> list:  # the values of `k` at the steps that log it (the GRPO family logs rewards when it generates)
        if k == "tokens_per_step":
            seen = [m["num_tokens"] for m in rows if "num_tokens" in m]
            return [u - v for u, v in zip(seen, [0] + seen[:-1])]
        return [m[k] for m in rows if k in m]
    exact = ["rewards/prompt_score/mean"] + (["rewards/prompt_score/std"] if algo != "ppo" else [])
    for k in exact:
        x, y = series(a, k), series(b, k)
        assert len(x) == len(y) >= 4 and max(abs(u - v) for u, v in zip(x, y)) <= 1e-6, (k, x, y)
        assert len({round(v, 6) for v in y}) > 1, (k, y)  # it moves with the prompts: another share of them would not match
    report = []
    for k in SAMPLED[algo]:
        x, y = series(a, k), series(b, k)
        assert len(x) == len(y) >= 4, (k, x, y)
        ok, d, tol = within_noise(x, y)
        report.append(f"{k} ({len(x)} values): 2p {sum(x) / len(x):.4g} 1p {sum(y) / len(y):.4g} |d| {d:.3g} tol {tol:.3g}")
        assert ok, (k, x, y, d, tol)
        if k in DOUBLED[algo]:  # a sum over the two processes instead of a mean would be caught
            assert not within_noise([2 * v for v in x], y)[0], (k, x, y)
    print(f"{algo}, {steps} steps, 2 x {PER_DEVICE} against 1 x {2 * PER_DEVICE}:", *report, sep="\n  ")


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sft", "ppo"])
def test_ctrl_c_stops_both_processes_at_one_step_with_one_checkpoint_and_the_run_resumes(algo, tmp_path):
    "Ctrl-C in the terminal (SIGINT to the launcher's process group): one step for all, one complete checkpoint, 'interrupted', resumable."
    import signal, time
    from aligntune.launch import launch_command
    from aligntune.runs import checkpoint_problem
    out = tmp_path / "run"
    script = training_script(tmp_path, algo, out, batch_size=PER_DEVICE, max_steps=200)
    p = subprocess.Popen([*launch_command(2), str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(),
                         cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().count("\n") >= 1):
            assert p.poll() is None and time.monotonic() < deadline, "the run ended or never logged a step"
            time.sleep(0.05)
        os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the launcher and both processes get it
        text = p.communicate(timeout=300)[0]
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode != 0, text[-3000:]
    res = results(text)
    step = res[0]["steps"]
    assert all(r["status"] == "interrupted" and r["steps"] == step for r in res) and 1 <= step < 200, res
    assert res[0]["digest"] == res[1]["digest"]
    st = json.loads((out / "run.json").read_text())
    assert st["status"] == "interrupted" and st["global_step"] == step and st["pid"] == res[0]["pid"] and st["num_processes"] == 2
    assert sorted(c.name for c in out.glob("checkpoint-*")) == [f"checkpoint-{step}"], list(out.iterdir())
    assert checkpoint_problem(out / f"checkpoint-{step}") is None and (out / "model").is_dir()
    again = two_processes(tmp_path, algo, out, batch_size=PER_DEVICE, max_steps=step + 2, resume=True)
    assert all(r["steps"] == step + 2 and r["status"] == "finished" for r in again) and again[0]["digest"] == again[1]["digest"]
    assert [m["step"] for m in metrics(out) if "train_runtime" not in m] == list(range(1, step + 3))
    st = json.loads((out / "run.json").read_text())
    assert st["resumed"][0]["step"] == step and st["global_step"] == step + 2 and st["num_processes"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sft"])  # the refusal comes before the trainer is chosen: one algorithm stands for all but PPO's own engine
def test_an_fsdp_config_on_cpus_is_refused_before_anything_loads(algo, tmp_path):
    "accelerate launch --config_file fsdp.yaml on CPUs: accelerate 1.15 would train plain data parallel; every process stops with the reason."
    from aligntune.launch import launch_command, distributed_options
    from aligntune.recipes import write_accelerate_config
    if distributed_options()["fsdp"][0]: pytest.skip("FSDP can run here (2+ CUDA GPUs)")
    out = tmp_path / "fsdp"
    script = training_script(tmp_path, algo, out, batch_size=PER_DEVICE)
    cfg = write_accelerate_config("fsdp", tmp_path / "fsdp.yaml", num_processes=2, mixed_precision="no")
    p = subprocess.run([*launch_command(2, "accelerate", accelerate_config=cfg), str(script)], capture_output=True, text=True,
                       env=env(), timeout=300, cwd=tmp_path)
    assert p.returncode != 0 and "RESULT" not in p.stdout, p.stdout[-2000:]
    why = "accelerate launch asks for FSDP (its config file), which cannot run here: needs 2+ CUDA GPUs (0 here)"
    assert why in p.stderr and "Launch with the 'ddp' config (or torchrun) here" in p.stderr, p.stderr[-3000:]
    assert not out.exists()
