"Live knobs changed mid-run on real runs of the tiny model: the change shows in the logged metrics and in the Run's events."
import pytest
from aligntune import create_rl_trainer, Run, ConfigError
from aligntune.callbacks import Callback
from aligntune.toy import addition_facts, prompt_rows

def digit_share(prompts, completions, **kw):
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]

class At(Callback):
    "Calls `fn(trainer)` once, at the step boundary after `step`."
    def __init__(self, step, fn): self.at, self.fn = step, fn
    def on_step(self, trainer, step):
        if step == self.at: self.fn(trainer)

def _knobs(run): return [(e["name"], e["value"], e["previous"], e["step"]) for e in Run(run).events if e["event"] == "knob"]

@pytest.mark.slow
def test_grpo_temperature_and_reward_weights_mid_run(tiny_model, tmp_path):
    t = create_rl_trainer(tiny_model, prompt_rows(addition_facts()), algorithm="grpo", reward_functions=[digit_share],
                          output_dir=str(tmp_path / "g"), max_steps=10, batch_size=8, num_generations=4, max_completion_length=8,
                          temperature=1.0, learning_rate=1e-3, lr_scheduler_type="constant")
    t.health.tune(window=3)
    t.add_callback(At(4, lambda tr: tr.set(temperature=0.01)))
    t.add_callback(At(6, lambda tr: tr.set(reward_weights=[0.0])))
    t.train()
    m = Run(tmp_path / "g").metrics.set_index("step")
    ent, rew = m["entropy"], m["reward"]
    print(f"entropy steps 1-4 {ent.loc[1:4].round(3).tolist()}, 5-10 {ent.loc[5:10].round(5).tolist()}; reward 7-10 {rew.loc[7:10].tolist()}")
    assert ent.loc[1:4].min() > 5.0 and ent.loc[5:10].max() < 0.5  # sampling at T=0.01 from step 5 on: 6.2 nats -> under 0.5
    assert (rew.loc[7:10] == 0).all() and rew.loc[1:6].max() > 0  # weight 0 from step 7 on
    assert _knobs(tmp_path / "g") == [("temperature", 0.01, 1.0, 5), ("reward_weights", [0.0], [1.0], 7)]
    health = [e for e in Run(tmp_path / "g").events if e["event"] == "health"]
    collapse = [e["step"] for e in health if e["rule"] == "entropy_collapse"]
    assert len(collapse) == 1 and collapse[0] >= 7  # three logged steps in a row under 0.05 nats, after the change

@pytest.mark.slow
def test_ppo_learning_rate_and_beta_mid_run(tiny_model, tmp_path):
    t = create_rl_trainer(tiny_model, prompt_rows(addition_facts()), algorithm="ppo", reward_functions=[digit_share],
                          output_dir=str(tmp_path / "p"), max_steps=6, batch_size=8, max_completion_length=4, num_ppo_epochs=1,
                          learning_rate=1e-3, lr_scheduler_type="constant")
    t.add_callback(At(3, lambda tr: tr.set(learning_rate=2e-4, beta=0.5)))
    t.train()
    m = Run(tmp_path / "p").metrics.set_index("step")
    print(m[["lr", "objective/kl_coef"]].to_string())
    assert m["lr"].loc[1:3].tolist() == [1e-3] * 3 and m["lr"].loc[4:6].tolist() == [2e-4] * 3
    assert m["objective/kl_coef"].loc[4] == 0.5 and m["objective/kl_coef"].loc[3] != 0.5
    assert _knobs(tmp_path / "p") == [("learning_rate", 2e-4, 1e-3, 4), ("beta", 0.5, m["objective/kl_coef"].loc[3], 4)]
    with pytest.raises(ConfigError, match="reward_weights has 2 weights but this run has 1 reward sources"):
        t.set(reward_weights=[1.0, 1.0])
