"The guardrails in the panels: a real GRPO run of the tiny model with a constant reward and a mid-run knob change shows its health message and marks in a TrainPanel; the ConfigPanel's fit table follows the form."
import pytest
from aligntune import create_rl_trainer, Run, tiny_model_path
from aligntune.callbacks import Callback
from aligntune.toy import addition_facts, prompt_rows
from aligntune.widgets import TrainPanel, ConfigPanel

def constant(prompts, completions, **kw):
    return [1.0] * len(completions)

class At(Callback):
    "Calls `fn(trainer)` once, at the step boundary after `step`."
    def __init__(self, step, fn): self.at, self.fn = step, fn
    def on_step(self, trainer, step):
        if step == self.at: self.fn(trainer)

@pytest.mark.slow
def test_train_panel_shows_health_and_knob_marks(tiny_model, tmp_path):
    t = create_rl_trainer(tiny_model, prompt_rows(addition_facts()), algorithm="grpo", reward_functions=[constant], output_dir=str(tmp_path / "g"),
                          max_steps=6, batch_size=8, num_generations=4, max_completion_length=4, learning_rate=1e-3, lr_scheduler_type="constant")
    t.health.tune(window=3)
    t.add_callback(At(4, lambda tr: tr.set(learning_rate=2e-4)))
    p = TrainPanel(t)
    assert "No health warnings" in p.health.widget.value and "aligntune-mark" not in p.curves.value
    p.train()
    h = p.health.widget.value
    assert "zero_reward_std" in h and "raise num_generations or temperature" in h.lower() and "#8a5a00" in h   # amber: a warning
    assert p.health.widget in p.widget.children                                                            # on show without switching tabs
    ev = {e["event"]: e for e in Run(tmp_path / "g").events if e["event"] in ("health", "knob")}
    assert ev["knob"]["step"] == 5 and ev["health"]["step"] == 3
    c = p.curves.value
    assert 'data-event="health"' in c and ">zero_reward_std</text>" in c
    assert 'data-event="knob"' in c and ">learning_rate=0.0002</text>" in c
    assert set(p.knobs.values()) >= {"learning_rate", "temperature", "beta", "reward_weights"}
    assert p.knobs.boxes["learning_rate"].value == 2e-4 and p.knobs.current["learning_rate"] == 2e-4   # set from code, shown in its box
    assert p.knobs.trainer is t and p.tabs.children[2].children == (p.knobs.widget,)

def test_config_panel_fit_table_follows_the_form():
    p = ConfigPanel(dict(algorithm="sft", model=dict(name_or_path=str(tiny_model_path()))))
    before = p.fit.loc["T4", "total_gib"]
    assert "GiB needed" in p.fit_view.value and f">{before:.2f}<" in p.fit_view.value and ">T4<" in p.fit_view.value
    p.set(**{"model.max_seq_length": 8192, "training.batch_size": 64})
    after = p.fit.loc["T4", "total_gib"]
    assert after > before + 1 and f">{after:.2f}<" in p.fit_view.value
    p.set(**{"model.name_or_path": "Qwen/Qwen2.5-7B"})   # a known shape, no download: too big for a T4, with what to change
    assert ">no<" in p.fit_view.value and "peft.enabled=True" in p.fit_view.value
    p.set(**{"model.name_or_path": "my-org/unknown-model"})
    assert "no estimate: No shape known for model &#x27;my-org/unknown-model&#x27;" in p.fit_view.value
