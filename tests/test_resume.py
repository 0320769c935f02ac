"Runs that survive: kill -9 then resume reaches the uninterrupted weights; reruns lose nothing; one live run per folder; exits tell the truth."
import json, os, signal, socket, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
from conftest import aligntune_cmd

TESTS, REPO = Path(__file__).parent, Path(__file__).parent.parent
STEPS, DIE_AFTER = 6, 4  # six steps with a checkpoint after each; the first process is killed after logging step 4 (checkpoint 4 never written)
ONLINE = ("grpo", "dapo", "gspo", "ppo")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # one thread here and in the subprocesses: float sums in the same order

def digit_share(prompts, completions, **kw):
    "A reward with spread even on a random model (so GRPO and PPO really move the weights): the share of digits."
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(len(t), 1) for t in texts]

def rows(algo):
    from aligntune.toy import addition_facts, sft_rows, preference_rows, prompt_rows
    return {"sft": sft_rows, "dpo": preference_rows}.get(algo, prompt_rows)(addition_facts() if algo in ("sft", "dpo") else addition_facts()[:40])

def trainer(algo, out, callbacks=(), **kw):
    "The run every test uses: the tiny model, six steps, a checkpoint after each step."
    from aligntune import create_sft_trainer, create_rl_trainer
    from aligntune.models import tiny_model_path
    kw = {**dict(output_dir=str(out), max_steps=STEPS, batch_size=8, save_steps=1, save_total_limit=3, seed=3, learning_rate=1e-3,
                 callbacks=list(callbacks)), **kw}
    if algo == "sft": return create_sft_trainer(tiny_model_path(), rows(algo), **kw)
    if algo == "dpo": return create_rl_trainer(tiny_model_path(), rows(algo), algorithm="dpo", **kw)
    extra = dict(num_ppo_epochs=2, num_mini_batches=2) if algo == "ppo" else dict(num_generations=4)
    if algo == "dapo": extra["mask_truncated_completions"] = False  # every completion of the random tiny model hits the cap: DAPO would mask them all
    return create_rl_trainer(tiny_model_path(), rows(algo), algorithm=algo, reward_functions=[digit_share], max_completion_length=4, **extra, **kw)

class PauseAfterLog:
    "Tells the test it logged `step` (a file holding its pid), then waits there to be killed."
    def __init__(self, step, flag): self.step, self.flag = step, Path(flag)
    def on_log(self, trainer, step, metrics):
        if step == self.step:
            self.flag.write_text(str(os.getpid()))
            time.sleep(600)

def env():
    e = {**os.environ, "ALIGNTUNE_QUIET": "1", "OMP_NUM_THREADS": "1"}
    e["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    return e

def start_paused(algo, out, tmp_path):
    "A subprocess training `algo` into `out`, paused right after logging step DIE_AFTER (alive, holding the folder)."
    flag, log = tmp_path / f"{algo}.paused", open(tmp_path / f"{algo}.log", "w")
    code = textwrap.dedent(f"""
        import sys, torch; sys.path.insert(0, {str(TESTS)!r}); torch.set_num_threads(1)
        from test_resume import trainer, PauseAfterLog
        trainer({algo!r}, {str(out)!r}, callbacks=[PauseAfterLog({DIE_AFTER}, {str(flag)!r})]).train()""")
    p = subprocess.Popen([sys.executable, "-c", code], env=env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while not flag.exists():
        if p.poll() is not None or time.time() > deadline:
            p.kill(); raise AssertionError(f"the training subprocess ended before step {DIE_AFTER}:\n" + (tmp_path / f"{algo}.log").read_text()[-3000:])
        time.sleep(0.2)
    return p

def killed_run(algo, out, tmp_path) -> int:
    "Train `algo` into `out` in a subprocess and SIGKILL it after it logged step DIE_AFTER; returns its pid."
    p = start_paused(algo, out, tmp_path)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    return p.pid

def weights(folder) -> dict:
    "Every tensor under a saved model folder (the PPO critic under value/ included), by file and name."
    from safetensors.torch import load_file
    return {f"{f.relative_to(folder)}:{k}": v for f in sorted(Path(folder).rglob("*.safetensors")) for k, v in load_file(str(f)).items()}

def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)

def steps_of(run_dir) -> list:
    return [json.loads(l)["step"] for l in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sft", "dpo", "grpo", "dapo", "gspo", "ppo"])  # gspo: one generation serves 4 steps
def test_kill_9_then_resume_reaches_the_uninterrupted_weights(algo, tmp_path, capsys):
    from aligntune import Run
    from aligntune.models import tiny_model_path
    out = tmp_path / "run"
    pid = killed_run(algo, out, tmp_path)
    run = Run(out)
    assert run.status["status"] == "died" and not run.alive
    assert run.state == f"died at step {DIE_AFTER}, last checkpoint {DIE_AFTER - 1} (pid {pid} on {socket.gethostname()} is gone)", run.state

    t = run.resume(train_dataset=rows(algo), **({"reward_functions": [digit_share]} if algo in ONLINE else {}))
    assert t.resume_from == out / f"checkpoint-{DIE_AFTER - 1}"
    res = t.train()
    assert (res["status"], res["global_step"]) == ("finished", STEPS)
    assert f"resuming from {out / f'checkpoint-{DIE_AFTER - 1}'} (step {DIE_AFTER - 1})" in capsys.readouterr().out
    ref = trainer(algo, tmp_path / "ref").train()
    assert ref["global_step"] == STEPS

    diff = max_diff(weights(out / "model"), weights(tmp_path / "ref" / "model"))
    print(f"{algo}: max |resumed - uninterrupted| = {diff:.3g}")
    assert diff <= 1e-6, (algo, diff)
    start = weights(tiny_model_path())
    trained = {k: v for k, v in weights(out / "model").items() if k in start}
    assert trained and max_diff(trained, {k: start[k] for k in trained}) > 1e-4  # training did move the weights

    assert steps_of(out) == list(range(1, STEPS + 1))  # every step exactly once
    a, b = Run(out).metrics.set_index("step"), Run(tmp_path / "ref").metrics.set_index("step")
    same = [c for c in b.columns if c in a.columns and "time" not in c and "per_second" not in c and b[c].dtype.kind == "f"]
    assert len(same) >= 3
    for c in same:
        assert ((a[c] - b[c]).abs().fillna(0) <= 1e-5 * (1 + b[c].abs().fillna(0))).all(), (algo, c, a[c].tolist(), b[c].tolist())
    aside = out / "previous" / "1"
    assert steps_of(aside) == list(range(1, DIE_AFTER + 1)) and (aside / "set_aside.json").exists()  # the first process's record, kept
    st = json.loads((out / "run.json").read_text())
    assert st["status"] == "finished" and st["resumed"][0]["step"] == DIE_AFTER - 1 and st["pid"] == os.getpid()


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_skipped_with_its_name(tmp_path, capsys):
    from aligntune import Run
    out = tmp_path / "run"
    killed_run("sft", out, tmp_path)
    bad = out / f"checkpoint-{DIE_AFTER - 1}" / "model.safetensors"
    size = bad.stat().st_size
    with open(bad, "r+b") as f: f.truncate(size // 2)
    t = Run(out).resume(train_dataset=rows("sft"))
    said = capsys.readouterr().out
    assert f"skipping {bad.parent}: model.safetensors has {size // 2} bytes where {size} were written" in said, said
    assert t.resume_from.name == f"checkpoint-{DIE_AFTER - 2}"
    assert t.train()["global_step"] == STEPS and steps_of(out) == list(range(1, STEPS + 1))
    assert (out / "previous" / "1" / bad.parent.name / "model.safetensors").stat().st_size == size // 2  # set aside, not deleted


@pytest.mark.slow
def test_a_new_run_after_a_crash_archives_the_whole_record(tmp_path, capsys):
    from aligntune import Run
    out = tmp_path / "run"
    killed_run("sft", out, tmp_path)
    before = sorted(p.name for p in out.iterdir())
    assert {"checkpoint-1", "checkpoint-2", "checkpoint-3", "metrics.jsonl", "config.yaml", "run.json"} <= set(before)
    res = trainer("sft", out).train()  # no resume: a new run in the same folder
    said = capsys.readouterr().out
    assert f"the earlier run in {out} (died at step {DIE_AFTER}, last checkpoint {DIE_AFTER - 1}" in said and f"was moved to {out / 'previous' / '1'}" in said
    assert "to continue it instead, train with resume=True" in said
    old = out / "previous" / "1"
    assert sorted(p.name for p in old.iterdir()) == before  # everything, checkpoints included
    assert steps_of(old) == list(range(1, DIE_AFTER + 1)) and Run(old).state.startswith(f"died at step {DIE_AFTER}, last checkpoint {DIE_AFTER - 1}")
    assert res["global_step"] == STEPS and steps_of(out) == list(range(1, STEPS + 1))
    trainer("sft", out, max_steps=2, save_steps=None).train()  # and a third run moves the finished one, model included
    assert (out / "previous" / "2" / "model" / "model.safetensors").exists() and (out / "previous" / "2" / "checkpoint-6").exists()


@pytest.mark.slow
def test_a_live_run_holds_its_folder(tmp_path):
    from aligntune import Run
    from aligntune.runs import RunFolderError
    out = tmp_path / "run"
    p = start_paused("sft", out, tmp_path)
    try:
        before = {q.name: q.stat().st_mtime_ns for q in out.rglob("*")}
        with pytest.raises(RunFolderError, match=f"is in use: a sft run is training there \\(pid {p.pid} on {socket.gethostname()}"):
            trainer("sft", out)
        r = subprocess.run([*aligntune_cmd(), "train", "sft-tiny", "-o", str(out)], capture_output=True, text=True, env=env(), timeout=300)
        assert r.returncode == 2 and f"pid {p.pid}" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert Run(out).alive and Run(out).state.startswith(f"running at step {DIE_AFTER}/{STEPS}, last checkpoint {DIE_AFTER - 1}")
        s = subprocess.run([*aligntune_cmd(), "status", str(out)], capture_output=True, text=True, env=env(), timeout=120)
        assert s.returncode == 0 and f"{out}: running at step {DIE_AFTER}/{STEPS}" in s.stdout, s.stdout + s.stderr
        assert {q.name: q.stat().st_mtime_ns for q in out.rglob("*")} == before  # nothing of the live run was touched
    finally:
        p.kill(); p.wait()
    assert Run(out).state.startswith(f"died at step {DIE_AFTER}")


@pytest.mark.slow
def test_cli_ctrl_c_exits_130_with_a_checkpoint_and_resume_finishes(tmp_path):
    from aligntune import Run
    out = tmp_path / "run"
    cmd = [*aligntune_cmd(), "train", "sft-tiny", "-o", str(out), "--backend", "trl"]
    p = subprocess.Popen([*cmd, "--max-steps", "100000"], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not ((out / "metrics.jsonl").exists() and len((out / "metrics.jsonl").read_text().splitlines()) >= 3):
        assert p.poll() is None and time.time() < deadline, p.communicate()
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 130, (p.returncode, stderr[-3000:])
    run = Run(out)
    n = run.status["global_step"]
    assert run.status["status"] == "interrupted" and n >= 3 and "Traceback" not in stderr
    assert f"interrupted at step {n}: checkpoint and model saved" in stderr and "--resume" in stderr
    assert [c.name for c in run.checkpoints] == [f"checkpoint-{n}"] and (out / "model" / "model.safetensors").exists()
    assert steps_of(out) == list(range(1, n + 1))
    r = subprocess.run([*cmd, "--max-steps", str(n + 2), "--resume"], env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert Run(out).status["status"] == "finished" and steps_of(out) == list(range(1, n + 3))
    assert "missing keys" not in r.stdout + r.stderr, r.stderr[-3000:]  # the tiny model's head is tied to its embeddings: nothing is missing


@pytest.fixture
def small_disk(tmp_path):
    "A 3 MB tmpfs: room for the run and one tiny-model checkpoint, not for two."
    mnt = tmp_path / "disk"; mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode: pytest.skip(f"cannot mount a small tmpfs here to fill a disk ({r.stderr.strip() or 'mount failed'}; needs root)")
    yield mnt
    subprocess.run(["umount", str(mnt)])

@pytest.mark.slow
def test_a_full_disk_is_a_clear_failure(small_disk):
    from aligntune import Run
    out = small_disk / "run"
    r = subprocess.run([*aligntune_cmd(), "train", "sft-tiny", "-o", str(out), "--backend", "trl", "--set", "training.save_steps=1",
                        "--set", "training.save_total_limit=3"], capture_output=True, text=True, env=env(), timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "Training stopped:" in r.stderr and "disk is full" in r.stderr and "resume from checkpoint-1" in r.stderr, r.stderr[-2000:]
    st = Run(out).status
    assert st["status"] == "failed" and "disk is full" in st["error"]
    assert not [q.name for q in out.iterdir() if q.name.startswith(".")]  # no temporary folder or file left
    assert [c.name for c in Run(out).checkpoints] == ["checkpoint-1"] and len(list(out.glob("checkpoint-*"))) == 1


def test_unusable_output_folders_fail_before_training(tiny_model, tmp_path):
    from aligntune import create_sft_trainer
    from aligntune.runs import RunFolderError
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="notes.txt' is a file"):
        create_sft_trainer(tiny_model, rows("sft"), output_dir=str(tmp_path / "notes.txt"))
    ro = tmp_path / "ro"; ro.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount is the real thing
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode: pytest.skip("cannot mount a read-only tmpfs")
    else: ro.chmod(0o555)
    try:
        with pytest.raises(RunFolderError, match="cannot be written: (the file system is read-only|permission denied)"):
            create_sft_trainer(tiny_model, rows("sft"), output_dir=str(ro / "run"))
        r = subprocess.run([*aligntune_cmd(), "train", "sft-tiny", "-o", str(ro / "run")], capture_output=True, text=True, env=env(), timeout=300)
        assert r.returncode == 2 and "cannot be written" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    finally:
        if os.geteuid() == 0: subprocess.run(["umount", str(ro)])
        else: ro.chmod(0o755)


def test_fork_starts_a_new_run_from_a_checkpoint(tmp_path):
    from aligntune import Run
    from aligntune.runs import RunFolderError
    trainer("sft", tmp_path / "parent", max_steps=3, save_steps=3).train()
    parent = Run(tmp_path / "parent")
    with pytest.raises(RunFolderError, match="fork needs a new output_dir"):
        parent.fork(tmp_path / "parent")
    child = parent.fork(tmp_path / "child", learning_rate=5e-4, max_steps=2, train_dataset=rows("sft"))
    child.setup()
    start = {k: v for k, v in child._unwrapped_model().state_dict().items()}
    ck = weights(tmp_path / "parent" / "checkpoint-3")
    assert max(((start[k.split(":", 1)[1]] - v).abs().max().item() for k, v in ck.items())) == 0.0  # the child starts at the checkpoint
    assert child.train()["global_step"] == 2
    run = Run(tmp_path / "child")
    assert run.status["parent"] == {"run": str(tmp_path / "parent"), "checkpoint": str(tmp_path / "parent" / "checkpoint-3"), "step": 3}
    assert run.config["training"]["learning_rate"] == 5e-4 and run.config["model"]["name_or_path"] == str(tmp_path / "parent" / "checkpoint-3")
    assert steps_of(tmp_path / "child") == [1, 2] and steps_of(tmp_path / "parent") == [1, 2, 3]


@pytest.mark.parametrize("algo", ["sft", "ppo"])
def test_save_minutes_writes_checkpoints_by_the_clock(algo, tmp_path):
    from aligntune import Run
    trainer(algo, tmp_path / "run", max_steps=3, save_steps=None, save_minutes=1e-6).train()  # every step ends past the deadline
    run = Run(tmp_path / "run")
    assert [c.name for c in run.checkpoints] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    assert run.status["last_checkpoint"] == "checkpoint-3" and run.state == "finished at step 3, last checkpoint 3"


def test_resuming_a_finished_run_says_it_has_no_steps_left(tmp_path):
    "A run that reached max_steps has nothing to resume: a clear error before training, and more steps on request."
    from aligntune import ConfigError, Run
    trainer("sft", tmp_path / "done", max_steps=2).train()
    with pytest.raises(ConfigError, match=r"checkpoint-2 is already at step 2 and training.max_steps=2: the run has no steps left"):
        trainer("sft", tmp_path / "done", max_steps=2, resume=True)
    assert trainer("sft", tmp_path / "done", max_steps=3, resume=True).train()["global_step"] == 3
    assert Run(tmp_path / "done").metrics["step"].tolist() == [1, 2, 3]


@pytest.mark.slow
def test_checkpoints_in_another_folder_are_checked_and_found_on_resume(tmp_path, capsys):
    "training.checkpoint_dir (a mounted Drive folder on Colab): checkpoints go there, resume finds them, a changed one is skipped by its hash."
    from aligntune import Run
    out, drive = tmp_path / "run", tmp_path / "drive" / "run-1"
    res = trainer("sft", out, checkpoint_dir=str(drive), max_steps=4).train()
    assert res["global_step"] == 4
    assert not [p.name for p in out.iterdir() if p.name.startswith("checkpoint-")]  # none in the run folder
    assert [p.name for p in Run(out).checkpoints] == ["checkpoint-2", "checkpoint-3", "checkpoint-4"]
    assert all(p.parent == drive for p in Run(out).checkpoints)
    newest = drive / "checkpoint-4" / "model.safetensors"
    data = bytearray(newest.read_bytes()); data[len(data) // 2] ^= 0xFF  # one byte changed, size unchanged: only the hash can tell
    newest.write_bytes(bytes(data))
    capsys.readouterr()
    t = trainer("sft", out, checkpoint_dir=str(drive), max_steps=STEPS, resume=True)
    said = capsys.readouterr().out
    assert f"skipping {drive / 'checkpoint-4'}: model.safetensors does not match its SHA-256" in said, said
    assert t.resume_from == drive / "checkpoint-3" and f"resuming from {drive / 'checkpoint-3'} (step 3)" in said
    assert t.train()["global_step"] == STEPS and steps_of(out) == list(range(1, STEPS + 1))
    assert (drive / "previous" / "1" / "checkpoint-4" / "model.safetensors").read_bytes() == bytes(data)  # set aside on its own disk, not deleted
    assert Run(out).checkpoints[-1] == drive / f"checkpoint-{STEPS}"
