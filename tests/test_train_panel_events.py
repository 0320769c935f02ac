"""The TrainPanel on the real trainer base, with a scripted engine instead of TRL: the panel hears the base's events,
silences its console through `quiet`, stops it through `request_stop`, and a second run archives the first."""
import os, time
from pathlib import Path
import pytest
from aligntune.backends.core import TrainerBase
from aligntune.callbacks import Callback
from aligntune.config import make_config
from aligntune.runs import Run
from aligntune.widgets import TrainPanel


class ScriptedTrainer(TrainerBase):
    "An engine that logs made-up metrics through the trainer base's events and honours stop requests; no model."
    backend = "scripted"
    def setup(self): self._step = 0
    def _global_step(self): return getattr(self, "_step", 0)
    def _train(self):
        for s in range(1, self.config.training.max_steps + 1):
            self._step = s
            self.events.emit("step", step=s)
            self.events.emit("log", step=s, metrics={"loss": 1 / s, "mean_token_accuracy": s / 10})
            if self.should_stop(): break
        return {"global_step": self._step, "metrics": {"loss": 1 / self._step}}
    def save_model(self, path=None):
        p = Path(path or self.output_dir / "model"); p.mkdir(parents=True, exist_ok=True)
        return p


def _trainer(out, steps=4):
    return ScriptedTrainer(make_config(algorithm="sft", model_name="none", dataset_name="none.jsonl", max_steps=steps, output_dir=str(out)))


@pytest.fixture(autouse=True)
def console(monkeypatch):
    monkeypatch.delenv("ALIGNTUNE_QUIET", raising=False)   # let the console progress speak unless the trainer is quiet


def test_panel_follows_the_trainer_base_and_keeps_the_console_quiet(tmp_path, capsys):
    t = _trainer(tmp_path / "run")
    panel = TrainPanel(t)
    res = panel.train()
    assert (res["status"], panel.step, panel.total, panel.progress.value) == ("finished", 4, 4, 4)
    assert panel.status.value.startswith("<b>finished</b> · step 4/4") and panel.renders >= 2
    assert Run(tmp_path / "run").metrics["step"].tolist() == [1, 2, 3, 4]
    assert "step 4/4" not in capsys.readouterr().out and t.quiet is False   # silent while the panel trained, restored after
    t.train()                                                                # trained directly: the console speaks
    assert "step 4/4" in capsys.readouterr().out


def test_stop_button_stops_the_trainer_base(tmp_path):
    t = _trainer(tmp_path / "run", steps=50)
    panel = TrainPanel(t)
    class PressStop(Callback):
        def on_log(self, trainer, step, metrics):
            if step == 2: panel.stop_button.click()
    t.add_callback(PressStop())
    res = panel.train()
    assert (res["status"], res["global_step"]) == ("stopped", 2)
    assert Run(tmp_path / "run").status["status"] == "stopped" and panel.status.value.startswith("<b>stopped</b> · step 2/50")


def test_panel_names_the_kernel_stop_button_where_clicks_wait(tmp_path):
    "Trained in the main thread without a kernel that takes clicks while a cell runs: the panel says to use the kernel's stop button."
    t = _trainer(tmp_path / "run", steps=3)
    panel, seen = TrainPanel(t), []
    t.add_callback(type("Note", (Callback,), {"on_log": lambda self, tr, step, metrics: seen.append(panel.note.value)})())
    assert panel.clicks_while_busy is False
    panel.train()
    assert len(seen) == 3 and all("press the kernel's ■ stop (interrupt) button" in s for s in seen), seen
    assert panel.note.value == ""   # gone once the run ended


def test_training_again_archives_the_earlier_record(tmp_path):
    panel = TrainPanel(lambda: _trainer(tmp_path / "run", steps=3))
    panel.train(); panel.train()
    assert panel.train_button.description == "Train again"
    assert Run(tmp_path / "run").metrics["step"].tolist() == [1, 2, 3]
    assert Run(tmp_path / "run" / "previous" / "1").status["status"] == "finished"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]   # no run-2 beside it


@pytest.mark.parametrize("algo", ["kto", "orpo", "simpo", "rloo"])
def test_new_algorithms_train_from_the_config_panel(tmp_path, algo, tiny_model):
    "The form built from the algorithm table trains each new algorithm: its own settings reach the run's config."
    from aligntune.widgets import ConfigPanel
    from aligntune.recipes import load_recipe
    panel = ConfigPanel(load_recipe(f"{algo}-tiny"))
    own = {"kto": {"kto.desirable_weight": 1.5}, "orpo": {"orpo.beta": 0.2}, "simpo": {"simpo.simpo_gamma": 0.3},
           "rloo": {"rloo.num_generations": 2}}[algo]
    panel.set(**{"model.name_or_path": str(tiny_model), "training.output_dir": str(tmp_path / algo), "training.max_steps": 3}, **own)
    res = TrainPanel(panel).train()
    assert res["status"] == "finished" and res["global_step"] == 3
    run = Run(tmp_path / algo)
    assert run.status["algorithm"] == algo and len(run.metrics) == 3
    (key, value), = own.items()
    group, field = key.split(".")
    assert run.config[group][field] == value


def test_panel_resume_continues_a_stopped_run_and_a_fork_is_drawn_at_its_parent_step(tmp_path, tiny_model):
    "Resume in the panel continues from the newest checkpoint; RunCompare draws a fork from its parent's step."
    from aligntune.callbacks import StopAfter
    from aligntune.plots import plot_runs, fork_point
    from aligntune.toy import addition_facts, sft_rows
    cfg = make_config(algorithm="sft", model_name=str(tiny_model), output_dir=str(tmp_path / "sft"), max_steps=5,
                      batch_size=8, save_steps=1)
    panel = TrainPanel(cfg, train_dataset=sft_rows(addition_facts()[:40]), callbacks=[StopAfter(2)])
    assert panel.train()["status"] == "stopped"
    assert not panel.resume_button.disabled            # stopped with a checkpoint: Resume is offered
    panel.trainer_kw.pop("callbacks")
    res = panel.resume()
    assert res["status"] == "finished" and res["global_step"] == 5
    run = Run(tmp_path / "sft")
    assert run.metrics["step"].tolist() == [1, 2, 3, 4, 5] and run.status.get("resumed")
    assert panel.resume_button.disabled                # finished: nothing to resume
    fork = run.fork(str(tmp_path / "fork"), train_dataset=sft_rows(addition_facts()[:40]),
                    max_steps=2, learning_rate=1e-5)
    fork.train()
    assert fork_point(Run(tmp_path / "fork")) == ("sft", 5)   # the newest checkpoint
    fig = plot_runs([run, Run(tmp_path / "fork")], ["loss"])
    xs = [list(l.get_xdata()) for l in fig.axes[0].lines]
    assert [6, 7] in xs                                # the fork's steps 1-2 drawn after its parent's step 5
    assert any(l.get_linestyle() == ":" and list(l.get_xdata()) == [5, 5] for l in fig.axes[0].lines)


KERNEL_SETUP = '''
import time
from pathlib import Path
from aligntune.backends.core import TrainerBase
from aligntune.config import make_config
from aligntune.widgets import TrainPanel

class Slow(TrainerBase):
    backend = "scripted"
    def setup(self): self._step = 0
    def _global_step(self): return getattr(self, "_step", 0)
    def _train(self):
        for s in range(1, self.config.training.max_steps + 1):
            time.sleep(0.02); self._step = s
            self.events.emit("step", step=s)
            self.events.emit("log", step=s, metrics={"loss": 1 / s})
            if self.should_stop(): break
        return {"global_step": self._step, "metrics": {}}
    def save_model(self, path=None):
        p = Path(path or self.output_dir / "model"); p.mkdir(parents=True, exist_ok=True); return p

panel = TrainPanel(Slow(make_config(algorithm="sft", model_name="none", dataset_name="none.jsonl", max_steps=5000, output_dir=OUT)))
print(panel.clicks_while_busy, panel.stop_button.comm.comm_id)
'''


@pytest.mark.slow
def test_stop_click_arrives_while_the_cell_trains(tmp_path):
    "In a real kernel, a Stop click sent while `panel.train()` runs in a cell ends the run early (not after the cell)."
    import jupyter_client
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", cwd=str(Path(__file__).parent.parent),
                                                     env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    def run(code, wait=True):
        mid = kc.execute(code)
        if not wait: return mid
        out = []
        while True:
            m = kc.get_iopub_msg(timeout=120)
            if m["parent_header"].get("msg_id") != mid: continue
            if m["msg_type"] == "stream": out.append(m["content"]["text"])
            if m["msg_type"] == "error": raise AssertionError("\n".join(m["content"]["traceback"]))
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle": return "".join(out)
    try:
        busy, comm_id = run(f"OUT = {str(tmp_path / 'run')!r}\n" + KERNEL_SETUP).split()
        if busy != "True": pytest.skip("this ipykernel delivers widget messages only between cells")
        mid = run('res = panel.train(); print(res["status"], res["global_step"], panel.status.value)', wait=False)
        metrics = tmp_path / "run" / "metrics.jsonl"
        for _ in range(600):   # the cell is training: wait until it has logged a few steps
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 5: break
            time.sleep(0.2)
        kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}))
        out = []
        while True:
            m = kc.get_iopub_msg(timeout=300)
            if m["parent_header"].get("msg_id") != mid: continue
            if m["msg_type"] == "stream": out.append(m["content"]["text"])
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle": break
        status, step, shown = "".join(out).split(" ", 2)
        assert status == "stopped" and 1 < int(step) < 5000, out
        assert shown.startswith(f"<b>stopped</b> · step {step}/5000"), shown
    finally:
        kc.stop_channels(); km.shutdown_kernel(now=True)
