"aligntune's PPO engine: the arithmetic against hand-computed numbers, log-prob alignment, adapters, saving, rewards, and a reward that rises."
import json, math, os
import pytest
import torch
from aligntune.config import UnifiedConfig, TrainingConfig, PPOParams, PeftParams, ModelConfig, ConfigError
from aligntune.ppo_core import (masked_whiten, masked_mean, masked_var, response_masks, kl_penalty, token_rewards, gae,
                                policy_loss, value_loss, AdaptiveKLController)
from aligntune.models import char_model
from aligntune.callbacks import Callback, Dispatcher, RunRecorder, StopAfter
from aligntune.ppo import PPOEngine, PPOModels, PPOModelError, check_ppo_model, response_logits, response_logprobs, position_ids_from_mask


# ---- fixtures ---------------------------------------------------------------------------------------------------------
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest

def tiny_lm(seed=0, initializer_range=0.1):
    "A ~60k-parameter Llama with a character tokenizer (pad 0, eos 1, 'a' = 3); see aligntune.models.char_model."
    return char_model(seed, initializer_range)

A_ID = 3
PROMPTS = [{"prompt": p} for p in ["hello", "abc", "say a", "why?", "tell me", "ok", "x", "more"]]

def a_fraction(prompts, completions, completion_ids, **kw):
    "Share of the 8 response positions that hold the token 'a'."
    return [sum(t == A_ID for t in ids) / 8 for ids in completion_ids]

def make_cfg(tmp_path, peft=True, steps=2, **ppo):
    kw = dict(max_completion_length=8, kl_coef=0.02, num_ppo_epochs=2, num_mini_batches=2)
    kw.update(ppo)
    return UnifiedConfig(algorithm="ppo", model=ModelConfig(max_seq_length=64),
                         peft=PeftParams(enabled=peft, r=8, lora_alpha=16, lora_dropout=0.05),
                         training=TrainingConfig(output_dir=str(tmp_path / "run"), batch_size=8, learning_rate=1e-2,
                                                 max_steps=steps, seed=0, lr_scheduler_type="constant"),
                         ppo=PPOParams(**kw))

class Recorder(Callback):
    "Hears the engine's events with the listener signature on_<event>(trainer, **payload)."
    def __init__(self): self.logs, self.samples, self.steps, self.saves, self.others = [], [], [], [], []
    def on_step(self, trainer, step): self.steps.append(step)
    def on_log(self, trainer, step, metrics): self.logs.append((step, metrics))
    def on_samples(self, trainer, step, rows): self.samples.append((step, rows))
    def on_save(self, trainer, step, path): self.saves.append((step, path))
    def on_train_begin(self, trainer): self.others.append("train_begin")
    def on_train_end(self, trainer, status, result): self.others.append("train_end")
    def on_stop(self, trainer, step, reason): self.others.append("stop")


# ---- the arithmetic -------------------------------------------------------------------------------------------------
def test_gae_hand_computed():
    rewards = torch.tensor([[-0.01, -0.02, 0.97], [0.0, 0.5, 7.0]])
    values = torch.tensor([[0.5, 0.2, -0.1], [0.3, 0.1, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    assert torch.allclose(adv[0], torch.tensor([0.3517, 0.6965, 1.0700]), atol=1e-4)
    assert torch.allclose(ret[0], torch.tensor([0.8517, 0.8965, 0.9700]), atol=1e-4)
    assert torch.allclose(adv[1], torch.tensor([0.18, 0.40, 0.0]), atol=1e-6)
    r, v = torch.randn(4, 6), torch.randn(4, 6)
    m = torch.ones(4, 6).bool(); m[1, 3:] = False; m[3] = False
    _, ret = gae(r, v, m, 1.0, 1.0)                      # gamma = lam = 1: returns are rewards-to-go
    assert torch.allclose(ret[0], r[0].flip(0).cumsum(0).flip(0), atol=1e-5)
    assert torch.allclose(ret[1, :3], r[1, :3].flip(0).cumsum(0).flip(0), atol=1e-5)
    assert torch.isfinite(ret).all() and (ret[3] == 0).all()

def test_kl_estimators():
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.3, 0.5])
    exact = (p * (p / q).log()).sum()
    xs = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    for kind in ("k1", "k3"):
        assert abs(kl_penalty(p.log()[xs], q.log()[xs], kind).mean() - exact) < 0.01
        assert kl_penalty(p.log(), p.log(), kind).abs().max() == 0
    assert (kl_penalty(torch.randn(500), torch.randn(500), "k3") >= 0).all()
    assert torch.allclose(kl_penalty(torch.tensor([-1.0]), torch.tensor([-1.5]), "k1"), torch.tensor([0.5]))

@pytest.mark.parametrize("r,a,loss,zero_grad", [(1.5, 2.0, -2.4, True), (0.5, -2.0, 1.6, True), (1.5, -2.0, 3.0, False),
                                                (1.2, 2.0, -2.4, False), (1.0, 2.0, -2.0, False)])
def test_policy_clip(r, a, loss, zero_grad):
    new = torch.tensor([[math.log(r)]], requires_grad=True)
    l, cf, akl = policy_loss(new, torch.zeros(1, 1), torch.tensor([[a]]), torch.ones(1, 1).bool(), 0.2)
    l.backward()
    assert abs(l.item() - loss) < 1e-5
    assert (new.grad.item() == 0) == zero_grad
    assert cf.item() == (1.0 if zero_grad else 0.0)

def test_value_clip():
    v = torch.tensor([[1.0, 0.1]], requires_grad=True)
    l, cf = value_loss(v, torch.zeros(1, 2), torch.tensor([[2.0, 2.0]]), torch.ones(1, 2).bool(), 0.2)
    assert abs(l.item() - 0.5 * ((0.2 - 2) ** 2 + 1.9 ** 2) / 2) < 1e-5 and abs(cf.item() - 0.5) < 1e-6
    l.backward()
    assert v.grad[0, 0] == 0 and v.grad[0, 1] != 0

def test_eos_masks_and_score_position():
    eos = pad = 1
    r = torch.tensor([[5, 6, 1, 1, 1], [5, 6, 7, 8, 9], [1, 1, 1, 1, 1], [5, 1, 7, 1, 9]])
    rm = response_masks(r, eos)
    assert rm.mask.int().tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]]
    assert rm.has_eos.tolist() == [True, False, True, True] and rm.last_idx.tolist() == [2, 4, 0, 1]
    kl = torch.full((4, 5), 9.0)
    rw, ns = token_rewards(torch.tensor([1.0, 2.0, 3.0, 4.0]), kl, rm.mask, rm.last_idx, 0.1)
    for i, j in enumerate(rm.last_idx.tolist()):
        assert abs(rw[i, j].item() - ([1, 2, 3, 4][i] - 0.9)) < 1e-5      # score on the EOS / last token
    assert (rw[~rm.mask] == 0).all() and (ns[~rm.mask] == 0).all()

def test_whiten_and_adaptive_kl():
    x = torch.tensor([[1.0, 2.0, 3.0, 50.0]]); m = torch.tensor([[1, 1, 1, 0]]).bool()
    w = masked_whiten(x, m)
    assert abs(masked_mean(w, m)) < 1e-6 and abs(masked_var(w, m) - 1) < 1e-5 and w[0, 3] == 50.0
    assert abs(masked_mean(masked_whiten(x, m, shift_mean=False), m) - 2.0) < 1e-6
    c = AdaptiveKLController(0.1, target=1.0, horizon=100)
    assert c.update(5.0, 10) > 0.1 and AdaptiveKLController(0.1).update(5.0, 10) == 0.1


# ---- models ---------------------------------------------------------------------------------------------------------
def test_logprobs_match_generation_under_left_padding():
    model, tok = tiny_lm()
    model.eval()
    q = torch.tensor([[0, 0, 0, 10, 11], [12, 13, 14, 15, 16]]); qm = (q != 0).long()
    T = 0.7
    torch.manual_seed(0)
    out = model.generate(input_ids=q, attention_mask=qm, do_sample=True, temperature=T, top_k=0, top_p=1.0, max_new_tokens=6,
                         min_new_tokens=6, output_logits=True, return_dict_in_generate=True, pad_token_id=0, eos_token_id=1)
    resp = out.sequences[:, 5:]
    gen_lp = torch.stack(out.logits, 1).float().div(T).log_softmax(-1).gather(-1, resp[..., None]).squeeze(-1)
    ids = out.sequences; attn = torch.cat([qm, torch.ones_like(resp)], 1)
    with torch.no_grad(): lp = response_logprobs(response_logits(model, ids, attn, 5, T)[0], resp)
    assert torch.allclose(lp, gen_lp, atol=1e-4), (lp - gen_lp).abs().max()

def test_unsloth_models_are_refused():
    class Cfg: unsloth_version = "2026.10.9"
    class M: config, generate = Cfg(), None
    with pytest.raises(PPOModelError, match="loaded with Unsloth"): check_ppo_model(M())

def test_adapters_reference_fixed_and_grads_separate(tmp_path):
    model, tok = tiny_lm()
    q = torch.tensor([[0, 5, 6, 7, 8, 9, 10], [4, 5, 6, 7, 8, 9, 10]]); am = (q != 0).long()
    with torch.no_grad(): base_logits = response_logits(model, q, am, 4, 0.7)[0]
    tr = PPOEngine(model, tok, make_cfg(tmp_path, steps=1), PROMPTS, reward_functions=[a_fraction])
    M = tr.models
    assert M.value_mode == "adapter" and sorted(M.model.peft_config) == ["policy", "value"]
    # value loss alone: no gradient reaches the policy adapter, and the other way round
    v = M.values(q, am, 4); (v.sum() + 1).pow(2).backward()
    assert all(p.grad is None for p in M.policy_parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in M.critic_parameters())
    tr.optimizer.zero_grad(set_to_none=True)
    lp = M.policy_forward(q, am, 4)[0]; lp.logsumexp(-1).sum().backward()
    assert all(p.grad is None for p in M.critic_parameters())
    tr.optimizer.zero_grad(set_to_none=True); M.use_policy()
    tr.train()
    with torch.no_grad():
        ref = M.ref_logits(q, am, 4); pol = M.policy_forward(q, am, 4)[0]
    assert torch.allclose(ref, base_logits, atol=1e-6)            # reference unchanged after an update
    assert (pol - base_logits).abs().max() > 1e-3                 # the policy moved

def test_save_and_reload_reproduce_logprobs(tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    model, tok = tiny_lm()
    tr = PPOEngine(model, tok, make_cfg(tmp_path, steps=2), PROMPTS, reward_functions=[a_fraction])
    tr.train()
    out = tr.save_model(tmp_path / "final")
    assert (out / "adapter_model.safetensors").exists() and (out / "value" / "adapter_model.safetensors").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    q = torch.tensor([[0, 5, 6, 7, 8, 9, 10]]); am = (q != 0).long()
    with torch.no_grad(): want = tr.models.policy_forward(q, am, 4)[0]
    base, _ = tiny_lm()
    loaded = PeftModel.from_pretrained(base, str(out)).eval()
    with torch.no_grad(): got = response_logits(loaded, q, am, 4, 0.7)[0]
    assert torch.allclose(got, want, atol=1e-5)
    head = load_file(str(out / "value" / "value_head.safetensors"))
    assert torch.allclose(head["weight"], tr.models.value_head.weight.detach())


# ---- the trainer ----------------------------------------------------------------------------------------------------
def test_full_finetune_chat_prompts_reward_model_and_run_record(tmp_path, tiny_model):
    "Full fine-tune ('model' value mode) of the shared tiny model, chat prompts, a reward model plus a function, the Run recorder listening."
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from aligntune.runs import RunWriter, Run
    tok = AutoTokenizer.from_pretrained(tiny_model); tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1); rm.config.pad_token_id = tok.pad_token_id
    rm.save_pretrained(tmp_path / "rm"); tok.save_pretrained(tmp_path / "rm")
    rows = [{"prompt": [{"role": "user", "content": f"What is {a} plus {b}?"}], "answer": str(a + b)} for a in range(4) for b in range(2)]
    seen = {}
    def right_answer(prompts, completions, answer, **kw):
        seen["c"], seen["a"] = completions[0], answer[0]
        return [None if i == 0 else float(c[0]["content"].strip() == a) for i, (c, a) in enumerate(zip(completions, answer))]
    cfg = make_cfg(tmp_path, peft=False, steps=2, missing_eos_penalty=1.0)
    w = RunWriter(tmp_path / "run")
    tr = PPOEngine(model, tok, cfg, rows, reward_functions=[right_answer], reward_weights=[1.0, 0.5], reward_model=str(tmp_path / "rm"),
                    callbacks=[RunRecorder(w)])
    ref_before = {k: v.clone() for k, v in tr.models.ref_model.state_dict().items()}
    pol_before = {k: v.clone() for k, v in model.state_dict().items()}
    res = tr.train(); w.close()
    assert tr.models.value_mode == "model" and not tr.models.is_peft
    assert res["global_step"] == 2 and set(res) == {"global_step", "metrics", "output_dir"}
    assert isinstance(seen["c"], list) and seen["c"][0]["role"] == "assistant" and seen["a"] in {str(i) for i in range(5)}
    assert all(torch.equal(v, tr.models.ref_model.state_dict()[k]) for k, v in ref_before.items())
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in pol_before.items())
    run = Run.load(tmp_path / "run")
    assert list(run.metrics["step"]) == [1, 2]
    assert {"rewards/right_answer/mean", "rewards/rm/mean", "objective/kl", "val/num_eos_tokens"} <= set(run.metrics.columns)
    assert len(run.samples) == 8 and {"prompt", "completion", "rewards", "reward", "advantage"} <= set(run.samples.columns)
    out = tr.save_model(tmp_path / "full")
    assert (out / "model.safetensors").exists() and (out / "value" / "model.safetensors").exists()

def test_missing_eos_penalty_and_stop_and_checkpoints(tmp_path):
    model, tok = tiny_lm()
    zero = lambda prompts, completions, **kw: [0.0] * len(completions)
    cfg = make_cfg(tmp_path, steps=5, missing_eos_penalty=2.0, num_ppo_epochs=1, num_mini_batches=1)
    cfg.training.save_steps, cfg.training.save_total_limit = 1, 1
    tr = PPOEngine(model, tok, cfg, PROMPTS, reward_functions=[zero], callbacks=[StopAfter(3)])
    rollout = tr.rollout([tr.train_dataset[i] for i in range(8)])
    assert torch.equal(rollout.scores, torch.where(rollout.has_eos, 0.0, -2.0))
    assert (~rollout.has_eos).any()
    res = tr.train()
    assert res["global_step"] == 3
    cks = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert cks == ["checkpoint-3"], cks
    st = json.loads((tmp_path / "run" / "checkpoint-3" / "trainer_state.json").read_text())
    assert st["global_step"] == 3 and len(st["log_history"]) == 3

def test_events_have_the_trl_adapters_payloads(tmp_path):
    "step after every update; log, samples at logging steps; save per checkpoint; rows shaped as the TRL adapter's; no trainer events."
    model, tok = tiny_lm()
    cfg = make_cfg(tmp_path, steps=3, num_ppo_epochs=1, num_mini_batches=1)
    cfg.training.logging_steps, cfg.training.save_steps = 2, 2
    def none_for_odd(prompts, completions, **kw): return [None if i % 2 else 1.0 for i in range(len(completions))]
    rec = Recorder()
    tr = PPOEngine(model, tok, cfg, PROMPTS, reward_functions=[a_fraction, none_for_odd], reward_weights=[1.0, 0.5], callbacks=[rec],
                   num_logged_samples=3)
    tr.train()
    assert rec.steps == [1, 2, 3] and rec.others == []                    # train_begin/stop/train_end are the trainer's
    assert [s for s, _ in rec.logs] == [2, 3] and [s for s, _ in rec.samples] == [2, 3]   # every 2nd step, and the last
    assert rec.saves == [(2, str(tmp_path / "run" / "checkpoint-2"))] and (tmp_path / "run" / "checkpoint-2" / "optimizer.pt").exists()
    for _, metrics in rec.logs:
        assert all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in metrics.items()), metrics
    # the row of the TRL engine's adapter (backends.trl.SampleTap.flush) less `group` (PPO samples one response per prompt)
    row_types = {"prompt": str, "completion": str, "rewards": dict, "reward": float, "advantage": float, "completion_length": int, "truncated": bool}
    rows = rec.samples[-1][1]
    assert len(rows) == 3
    for row in rows:
        assert set(row) == set(row_types) and all(type(row[k]) is t for k, t in row_types.items()), row
        assert set(row["rewards"]) == {"a_fraction", "none_for_odd"}
    last = tr.last_rollout
    for i, row in enumerate(rows):
        assert row["prompt"] == last.prompts[i] and row["completion"] == last.completions[i]
        assert row["rewards"]["none_for_odd"] == (None if i % 2 else 1.0)
        assert row["rewards"]["a_fraction"] == sum(t == A_ID for t in last.completion_ids[i]) / 8
        assert abs(row["reward"] - (row["rewards"]["a_fraction"] + (0.5 if i % 2 == 0 else 0.0))) < 1e-6   # weighted total; None adds nothing
        ids = last.completion_ids[i]
        assert row["completion_length"] == len(ids) and row["truncated"] == (len(ids) >= 8 and ids[-1] != 1)

def test_engine_reports_to_a_trainers_events_and_stop(tmp_path):
    "Under a trainer: the trainer's dispatcher carries the events (listeners receive the trainer) and its should_stop ends the loop."
    class Trainer:
        "The face a trainer shows its listeners."
        global_step, asked = 0, 0
        def should_stop(self): self.asked += 1; return self.asked >= 2
    trainer, rec = Trainer(), Recorder()
    seen = []
    class WhoIsTrainer(Callback):
        def on_step(self, t, step): seen.append(t)
    events = Dispatcher(trainer, [rec, WhoIsTrainer()])
    model, tok = tiny_lm()
    tr = PPOEngine(model, tok, make_cfg(tmp_path, steps=5, num_ppo_epochs=1, num_mini_batches=1), PROMPTS, reward_functions=[a_fraction],
                   events=events, should_stop=trainer.should_stop, num_logged_samples=0)
    assert tr.events is events and tr.total_steps == 5
    res = tr.train()
    assert res["global_step"] == tr.global_step == 2 and trainer.asked == 2
    assert rec.steps == [1, 2] and [s for s, _ in rec.logs] == [1, 2] and rec.samples == []
    assert all(t is trainer for t in seen)

def test_shared_value_mode_runs(tmp_path):
    model, tok = tiny_lm()
    tr = PPOEngine(model, tok, make_cfg(tmp_path, steps=1, value_mode="shared", kl_estimator="k3"), PROMPTS, reward_functions=[a_fraction])
    m = tr.train()["metrics"]
    assert tr.models.value_mode == "shared" and sorted(tr.models.model.peft_config) == ["policy"]
    assert all(math.isfinite(v) for v in m.values() if isinstance(v, float))

def test_bad_inputs_fail_early(tmp_path):
    model, tok = tiny_lm()
    with pytest.raises(ConfigError, match="not divisible by ppo.num_mini_batches=3"):
        PPOEngine(model, tok, make_cfg(tmp_path, num_mini_batches=3), PROMPTS, reward_functions=[a_fraction])
    with pytest.raises(ConfigError, match="'prompt' column"):
        PPOEngine(model, tok, make_cfg(tmp_path), [{"question": "q"}], reward_functions=[a_fraction])
    with pytest.raises(ConfigError, match="PPO needs a reward"):
        PPOEngine(model, tok, make_cfg(tmp_path), PROMPTS)
    with pytest.raises(ConfigError, match="does not exist"):
        PPOEngine(model, tok, make_cfg(tmp_path), PROMPTS, reward_model=str(tmp_path / "nope"))


@pytest.mark.slow
def test_reward_rises(tmp_path):
    "The toy task: reward = share of response positions holding 'a'. A random model scores about 1/64."
    model, tok = tiny_lm()
    cfg = make_cfg(tmp_path, steps=12, num_ppo_epochs=4, num_mini_batches=4)
    cfg.training.batch_size = 32
    rec = Recorder()
    tr = PPOEngine(model, tok, cfg, PROMPTS, reward_functions=[a_fraction], callbacks=[rec])
    tr.train()
    scores = [m["objective/scores"] for _, m in rec.logs]
    secs = [m["step_time"] for _, m in rec.logs]
    first, last = sum(scores[:3]) / 3, sum(scores[-3:]) / 3
    print(f"PPO toy reward {first:.3f} -> {last:.3f} over {len(scores)} updates; {sum(secs) / len(secs):.2f} s/update; "
          f"scores {[round(s, 2) for s in scores]}; kl {rec.logs[-1][1]['objective/kl']:.2f}")
    assert len(scores) == 12
    assert max(m["val/ratio_first_minibatch_maxdev"] for _, m in rec.logs) < 1e-4   # ratio is 1 on the first minibatch
    assert all(math.isfinite(m["loss/policy_avg"]) and math.isfinite(m["loss/value_avg"]) for _, m in rec.logs)
    assert last >= first + 0.3
