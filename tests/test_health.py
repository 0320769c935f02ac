"Each health rule provoked on a real run of the tiny model, next to a run that must stay quiet."
import pytest
from aligntune import create_sft_trainer, create_rl_trainer, Run
from aligntune.health import HealthView
from aligntune.toy import addition_facts, sft_rows, prompt_rows

def digit_share(prompts, completions, **kw):
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]

def constant(prompts, completions, **kw):
    return [1.0] * len(completions)

GRPO = dict(algorithm="grpo", max_steps=12, batch_size=8, num_generations=4, lr_scheduler_type="constant")

def _rules(run): return {e["rule"]: e for e in Run(run).events if e["event"] == "health"}

def _grpo(tiny_model, out, reward, window=5, **kw):
    t = create_rl_trainer(tiny_model, prompt_rows(addition_facts()), reward_functions=[reward], output_dir=str(out), **{**GRPO, **kw})
    t.health.tune(window=window)
    t.train()
    return t

@pytest.fixture(scope="module")
def grpo_control(tiny_model, tmp_path_factory):
    "Rewards that differ within groups, temperature 1, a small learning rate: no signal, collapse or KL rule may speak."
    out = tmp_path_factory.mktemp("health") / "control"
    _grpo(tiny_model, out, digit_share, max_completion_length=8, temperature=1.0, learning_rate=1e-3)
    return out

@pytest.mark.slow
def test_constant_reward_length_one_cold_sampling(tiny_model, tmp_path, grpo_control, monkeypatch, capsys):
    monkeypatch.delenv("ALIGNTUNE_QUIET", raising=False)
    t = create_rl_trainer(tiny_model, prompt_rows(addition_facts()), reward_functions=[constant], output_dir=str(tmp_path / "a"),
                          max_completion_length=1, temperature=0.01, learning_rate=1e-3, **GRPO)
    t.health.tune(window=5); t.train()
    fired = _rules(tmp_path / "a")
    m = Run(tmp_path / "a").metrics
    print({k: (v["step"], v["message"][:60]) for k, v in fired.items()}, m[["frac_reward_zero_std", "completions/clipped_ratio", "entropy"]].iloc[-1].to_dict())
    assert {"zero_reward_std", "clipped_completions", "entropy_collapse"} <= set(fired)
    assert all(fired[r]["step"] == 5 for r in ("zero_reward_std", "clipped_completions", "entropy_collapse"))  # when the 5-step window fills
    assert "raise num_generations or temperature" in fired["zero_reward_std"]["message"].lower()
    assert "max_completion_length=1" in fired["clipped_completions"]["message"]
    assert "Raise temperature" in fired["entropy_collapse"]["message"]
    out = capsys.readouterr().out  # printed once each, though the condition held for 12 steps
    assert out.count("[zero_reward_std]") == 1 and out.count("[entropy_collapse]") == 1
    view = HealthView.from_run(tmp_path / "a")
    assert "zero_reward_std" in view.widget.value and "max_completion_length=1" in view.widget.value
    quiet = _rules(grpo_control)
    assert "zero_reward_std" not in quiet and "entropy_collapse" not in quiet

@pytest.mark.slow
def test_huge_learning_rate_blows_up_kl(tiny_model, tmp_path, grpo_control):
    _grpo(tiny_model, tmp_path / "c", digit_share, max_completion_length=8, learning_rate=0.3, beta=0.04)
    fired, kl = _rules(tmp_path / "c"), Run(tmp_path / "c").metrics["kl"]
    print(f"KL max {kl.max():.2f} at lr 0.3, {Run(grpo_control).metrics['kl'].max():.3f} at lr 1e-3")
    assert "kl_blowup" in fired and "raise beta" in fired["kl_blowup"]["message"]
    assert "kl_blowup" not in _rules(grpo_control)

@pytest.fixture(scope="module")
def sft_control(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("health") / "sft"
    t = create_sft_trainer(tiny_model, sft_rows(addition_facts())[:64], output_dir=str(out), max_steps=8, batch_size=8,
                           learning_rate=1e-3, lr_scheduler_type="constant")
    t.health.tune(window=5, grad_norm_max=15.0); t.train()
    return out

@pytest.mark.slow
def test_huge_learning_rate_explodes_grad_norm(tiny_model, tmp_path, sft_control):
    t = create_sft_trainer(tiny_model, sft_rows(addition_facts())[:64], output_dir=str(tmp_path / "d"), max_steps=8, batch_size=8,
                           learning_rate=1.0, lr_scheduler_type="constant")
    t.health.tune(grad_norm_max=15.0); t.train()
    g, g0 = Run(tmp_path / "d").metrics["grad_norm"], Run(sft_control).metrics["grad_norm"]
    print(f"grad_norm max {g.max():.1f} at lr 1.0, {g0.max():.1f} at lr 1e-3")
    fired = _rules(tmp_path / "d")
    assert "grad_explosion" in fired and "Lower the learning rate (now 1)" in fired["grad_explosion"]["message"]
    assert fired["grad_explosion"]["step"] == int(g[g > 15].index.map(lambda i: Run(tmp_path / "d").metrics["step"][i]).min())
    assert _rules(sft_control) == {}

@pytest.mark.slow
def test_tiny_learning_rate_loss_flat(tiny_model, tmp_path, sft_control):
    t = create_sft_trainer(tiny_model, sft_rows(addition_facts())[:1] * 64, output_dir=str(tmp_path / "e"), max_steps=8, batch_size=8,
                           learning_rate=1e-12, lr_scheduler_type="constant")
    t.health.tune(window=5); t.train()
    fired = _rules(tmp_path / "e")
    assert "loss_flat" in fired and fired["loss_flat"]["step"] == 5 and "1e-12" in fired["loss_flat"]["message"]
    assert "loss_flat" not in _rules(sft_control)  # the same window on a learning run: the loss fell 6.2 -> 5.2

@pytest.mark.slow
def test_nan_weight_gives_nan_loss(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad(): model.model.norm.weight[0] = float("nan")  # as a diverged or corrupted checkpoint would have
    t = create_sft_trainer(model, sft_rows(addition_facts())[:16], output_dir=str(tmp_path / "n"), max_steps=2, batch_size=8)
    t.train()
    fired = _rules(tmp_path / "n")
    assert fired["nan_loss"]["level"] == "error" and fired["nan_loss"]["step"] == 1
    assert fired["nan_loss"]["message"].startswith("loss is nan at step 1: training diverged")  # logged, not hidden (logging_nan_inf_filter=False)
    assert "grad_explosion" in fired

@pytest.mark.slow
def test_reward_hacking_when_heldout_metric_falls(tiny_model, tmp_path):
    # the training reward pays for digits; the held-out rows score the opposite, as a metric the reward does not measure would
    def digits_vs_heldout(prompts, completions, split, **kw):
        return [x if s == "train" else 1 - x for x, s in zip(digit_share(prompts, completions), split)]
    rows = prompt_rows(addition_facts())
    t = create_rl_trainer(tiny_model, [{**r, "split": "train"} for r in rows], algorithm="grpo", reward_functions=[digits_vs_heldout],
                          eval_dataset=[{**r, "split": "heldout"} for r in rows[:8]], eval_steps=5, output_dir=str(tmp_path / "f"),
                          max_steps=25, batch_size=32, num_generations=8, max_completion_length=6, learning_rate=1e-2, lr_scheduler_type="constant")
    t.train()
    m = Run(tmp_path / "f").metrics
    ev = m["eval_reward"].dropna().tolist()
    print(f"eval_reward at each evaluation: {[round(x, 3) for x in ev]}; training reward {m['reward'].dropna().iloc[0]:.3f} -> {m['reward'].dropna().iloc[-1]:.3f}")
    fired = _rules(tmp_path / "f")
    assert "reward_hacking" in fired and "eval_reward worsened" in fired["reward_hacking"]["message"]
    assert fired["reward_hacking"]["step"] % 5 == 0 and fired["reward_hacking"]["step"] >= 20  # at an evaluation, the fourth or later

def test_series_reads_backwards_and_gives_what_a_full_scan_gives():
    "`_series` stops at the last `n` values and skips keys never logged; it must return exactly what scanning every log returns."
    import math, random
    from aligntune.health import _Logs, _series, _num
    def full_scan(logs, keys, n=None):  # the definition: the values of the first key any log holds, the last n of them
        for k in keys:
            vals = [_num(m[k]) for m in logs if _num(m.get(k)) is not None]
            if vals: return vals[-n:] if n else vals
        return []
    rng = random.Random(0)
    pool = [0.5, -1.0, 3, float("nan"), float("inf"), True, None, "x"]
    for trial in range(300):
        logs, plain = _Logs(), []
        for _ in range(rng.randrange(0, 40)):
            m = {k: rng.choice(pool) for k in ("a", "b", "c") if rng.random() < 0.4}
            logs.append(m); plain.append(m)
        keys, n = rng.sample(["a", "b", "c", "never"], rng.randrange(1, 4)), rng.choice([None, 1, 3, 10, 50])
        want = full_scan(plain, keys, n)
        for got in (_series(logs, keys, n), _series(plain, keys, n)):
            assert len(got) == len(want) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(got, want)), (keys, n, got, want)
    assert _Logs().seen == set() and _series(_Logs(), ["a"], 3) == []
