"`grpo.filter_groups`: completions whose whole group got one reward leave the loss (DAPO's dynamic sampling, without resampling)."
import json
import pytest, torch
from aligntune import create_rl_trainer, ConfigError
from aligntune.config import make_config, resolved_settings
from aligntune.toy import addition_facts, prompt_rows

def half_constant(prompts, completions, **kw):
    "A reward that is 1 for every completion of the prompts that start with 0-4 (no signal there), and 0 or 1 by length for the others."
    return [1.0 if p.lstrip()[:1] in "01234" else float(len(c) % 2) for p, c in zip(prompts, completions)]

# with the filter asked for; the tiny random model seldom ends a completion: DAPO's preset would leave the truncated ones out, and with them every token
FILTERED = dict(mask_truncated_completions=False, filter_groups=True)

def test_the_setting_and_its_presets():
    settings = lambda **kw: resolved_settings(make_config(model_name="m", dataset_name="d", **kw))
    for algo in ("grpo", "gspo", "dapo", "dr_grpo"): assert settings(algorithm=algo)["filter_groups"] is False  # asked for, never a preset's
    assert settings(algorithm="dapo", filter_groups=True)["filter_groups"] is True
    assert settings(algorithm="grpo", beta=0.0, filter_groups=True)["filter_groups"] is True
    with pytest.raises(ConfigError, match=r"grpo.filter_groups=True .* grpo.beta=0.04 their KL term would go too"):
        make_config(algorithm="grpo", model_name="m", dataset_name="d", filter_groups=True)
    with pytest.raises(ConfigError, match="filter_groups"):
        make_config(algorithm="dapo", model_name="m", dataset_name="d", filter_groups="yes")

def test_the_loss_is_the_full_loss_over_the_informative_tokens(tiny_model, tmp_path):
    """One generation batch through the filtered trainer: the rows with advantage 0 leave the forward pass, and the loss and
    every gradient equal TRL's own over the whole batch times (all tokens / informative tokens)."""
    t = create_rl_trainer(tiny_model, prompt_rows(addition_facts()), algorithm="dapo", reward_functions=[half_constant],
                          output_dir=str(tmp_path / "run"), max_steps=1, batch_size=32, num_generations=4, max_completion_length=6, seed=0,
                          **FILTERED)
    t.setup()
    tt = t.trl_trainer; tt.model.train(); tt.current_gradient_accumulation_steps = 1  # as the training loop sets it
    batch = next(iter(tt.get_train_dataloader()))
    inputs = tt._prepare_inputs(batch)                    # generation and scoring, through the filter
    keep = inputs["advantages"] != 0
    assert 0 < keep.sum() < len(keep), inputs["advantages"]  # both kinds of group are in the batch
    n_all = inputs["completion_mask"].sum().item(); n_inf = (inputs["completion_mask"] * keep[:, None]).sum().item()
    assert inputs["num_items_in_batch"].item() == n_inf
    seen = []
    forward = tt.model.forward
    def counting(*a, **k):
        seen.append((k.get("input_ids") if "input_ids" in k else a[0]).shape[0]); return forward(*a, **k)
    tt.model.forward = counting
    try:
        def grads(fn, ins):
            tt.model.zero_grad(); loss = fn(tt.model, ins); loss.backward()
            return loss.item(), {n: p.grad.clone() for n, p in tt.model.named_parameters() if p.grad is not None}
        ours, g_ours = grads(tt._compute_loss, inputs)
        rows_ours = seen[-1]
        full = {**inputs, "num_items_in_batch": torch.tensor(float(n_all))}
        trl_loss, g_trl = grads(lambda m, i: type(tt)._compute_loss(tt, m, i), full)   # TRL's own loss, every row in it
    finally:
        tt.model.forward = forward
    assert rows_ours == int(keep.sum()) and seen[-1] == len(keep)
    scale = n_all / n_inf
    assert ours == pytest.approx(trl_loss * scale, rel=1e-5, abs=1e-7)
    assert g_ours.keys() == g_trl.keys() and max(g.abs().max().item() for g in g_trl.values()) > 1e-6  # a real gradient
    for n in g_ours: torch.testing.assert_close(g_ours[n], g_trl[n] * scale, rtol=1e-4, atol=1e-7)

def test_a_run_logs_the_informative_fraction_of_every_step(tiny_model, tmp_path):
    """The logged fraction of completions left in the loss is the fraction of groups whose rewards differ (with 0/1 rewards no
    completion of such a group sits exactly at its group's mean), and the steps learn (a gradient each step)."""
    out = tmp_path / "run"
    create_rl_trainer(tiny_model, prompt_rows(addition_facts()), algorithm="dapo", reward_functions=[half_constant], output_dir=str(out),
                      max_steps=4, batch_size=32, num_generations=4, max_completion_length=6, seed=0, quiet=True, **FILTERED).train()
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "frac_reward_zero_std" in r]
    assert len(rows) == 4
    for r in rows: assert r["filter_groups/informative_fraction"] == pytest.approx(1 - r["frac_reward_zero_std"], abs=1e-6), r
    assert any(0 < r["filter_groups/informative_fraction"] < 1 for r in rows)
    assert all(r["grad_norm"] > 0 for r in rows if r["filter_groups/informative_fraction"] > 0)
