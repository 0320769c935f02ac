"""Rewards that need models (built locally, tiny) and the TRL GRPO contract end to end."""
import json, math, threading, warnings
from pathlib import Path

import pytest

from aligntune.rewards import (RewardError, RewardFunction, get_reward_function, list_rewards, resolve_reward_functions,
                               create_composite_reward, score_rewards)


def _tiny_bert(path: Path) -> Path:
    "A tiny random BERT encoder with a word-level tokenizer, saved with save_pretrained."
    import torch
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
    words = "the cat sat on mat a dog ran in park paris is capital of france berlin germany".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    path.mkdir(parents=True, exist_ok=True)
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=64,
                                 initializer_range=0.5))  # wide init: random tokens get distinct embeddings
    model.save_pretrained(path); tok.save_pretrained(path)
    return path


def test_registry_has_thirty_documented_builtins():
    rows = list_rewards()
    assert len(rows) >= 30
    for r in rows:
        assert r["description"] and r["category"] != "custom", r
    names = {r["name"] for r in rows}
    for must in ("math_verify", "code_execution", "overlong_penalty", "reward_model", "semantic_similarity", "bleu", "rouge_l"):
        assert must in names


def test_every_builtin_builds_or_says_what_it_needs():
    "Built with defaults, a reward either works or raises a RewardError naming the missing parameter."
    for r in list_rewards():
        try:
            fn = get_reward_function(r["name"])
        except RewardError as e:
            assert r["name"] in str(e) and ("required" in str(e) or "expected" in str(e) or "must be" in str(e)), (r, e)
            continue
        assert isinstance(fn, RewardFunction) and fn.__name__ == r["name"]


def test_semantic_similarity_with_a_tiny_local_encoder(tmp_path):
    path = _tiny_bert(tmp_path / "bert")
    sim = get_reward_function("semantic_similarity", model_path=str(path))
    s = sim(None, ["paris is the capital of france", "a dog ran in the park"], answer=["paris is the capital of france"] * 2)
    assert math.isclose(s[0], 1.0, abs_tol=1e-5) and s[1] < s[0] - 0.05, s


def test_model_rewards_fail_at_creation_not_later(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RewardError, match="could not load an encoder model"):
        get_reward_function("semantic_similarity", model_path=str(tmp_path / "empty"))
    with pytest.raises(RewardError, match="could not load a sequence-classification model"):
        get_reward_function("reward_model", model_path=str(tmp_path / "empty"))


def test_reward_model_scores_through_the_contract(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from aligntune.models import tiny_model_path
    base = tiny_model_path()
    rm = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    tok = AutoTokenizer.from_pretrained(base)
    rm.config.pad_token_id = tok.pad_token_id
    rm.save_pretrained(tmp_path / "rm"); tok.save_pretrained(tmp_path / "rm")
    a = get_reward_function("reward_model", model_path=str(tmp_path / "rm"))
    b = get_reward_function("reward_model", model_path=str(tmp_path / "rm"))
    prompts = [[{"role": "user", "content": "What is 2 plus 2?"}]] * 2
    comps = [[{"role": "assistant", "content": "4"}], [{"role": "assistant", "content": "The answer is five."}]]
    sa, sb = a(prompts, comps), b(prompts, comps)
    assert all(isinstance(x, float) for x in sa) and sa == pytest.approx(sb, abs=1e-6)  # saved head: same scores on reload
    assert sa[0] != sa[1]


def test_math_verify_off_the_main_thread():
    "Math-Verify's signal timeouts only work on the main thread; the reward still works elsewhere."
    out = {}
    t = threading.Thread(target=lambda: out.update(r=get_reward_function("math_verify")(None, ["\\boxed{0.5}", "\\boxed{3}"], answer=["1/2", "1/2"])))
    t.start(); t.join()
    assert out["r"] == [1.0, 0.0]


def test_code_rewards_run_a_batch_in_parallel():
    good = "```python\ndef sq(x):\n    return x * x\n```"
    loop = "```python\ndef sq(x):\n    while True: pass\n```"
    tests = [["assert sq(3) == 9", "assert sq(-2) == 4"]] * 4
    fn = get_reward_function("code_pass_rate", timeout=2)
    assert fn(None, [good, loop, good, "def sq(x): return x"], tests=tests) == [1.0, 0.0, 1.0, 0.0]


def test_score_rewards_summary():
    comps = ["<think>a</think><answer>4</answer>", "<answer>4</answer>", "5", "four"]
    rs = score_rewards(["format", "numeric_match", "exact_match"], ["q"] * 4, comps, answer=["4"] * 4)
    assert list(rs.summary.index) == ["format", "numeric_match", "exact_match"]
    assert rs.summary.loc["numeric_match", "mean"] == 0.5 and rs.summary.loc["format", "frac_zero"] == 0.75
    assert rs.summary["errors"].sum() == 0 and rs.corr.shape == (3, 3)


def test_grpo_trainer_takes_resolved_rewards(tmp_path):
    "Three rewards from the registry go straight into TRL's GRPOTrainer and show up in its metrics."
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer
    from aligntune.models import tiny_model_path, checkpointing_args, hide_checkpointing_deprecation
    hide_checkpointing_deprecation()  # TRL 1.16's own read of a name transformers 5.24 deprecated, as aligntune's trainers do
    path = tiny_model_path()
    fns, ws = resolve_reward_functions(["length", {"name": "numeric_match", "weight": 2.0}, "proper_ending"])
    ds = Dataset.from_list([{"prompt": f"What is {a} plus {b}?", "answer": str(a + b)} for a, b in [(1, 2), (3, 4), (2, 2), (5, 1)]])
    cfg = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=2, max_completion_length=8,
                     max_steps=3, learning_rate=1e-4, reward_weights=ws, use_cpu=True, bf16=False, report_to="none",
                     disable_tqdm=True, save_strategy="no", logging_steps=1, **checkpointing_args(GRPOConfig, False))
    tok = AutoTokenizer.from_pretrained(path)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), reward_funcs=fns, args=cfg, train_dataset=ds,
                          processing_class=tok)
    trainer.train()
    logs = [l for l in trainer.state.log_history if "rewards/numeric_match/mean" in l]
    assert len(logs) == 3
    for name in ("length", "numeric_match", "proper_ending"):
        assert all(math.isfinite(l[f"rewards/{name}/mean"]) for l in logs), name


def _arith_pairs(qs):
    from aligntune.reward_model import pairs_from_rewards
    return pairs_from_rewards([f"What is {a} plus {b}?" for a, b in qs],
                              [[f" The answer is {a + b}.", f" The answer is {a + b + 3}.", f" The answer is {a + b + 3} and"] for a, b in qs],
                              ["numeric_match", "proper_ending"], answer=[str(a + b) for a, b in qs])


@pytest.mark.slow
def test_trained_reward_model_ranks_held_out_pairs(tmp_path):
    "Pairs built from rule-based rewards train a reward model that ranks unseen pairs above chance and scores as a reward."
    import json
    from aligntune.models import tiny_model_path
    from aligntune.reward_model import train_reward_model, preference_accuracy
    from aligntune.rewards import RewardModelReward
    qs = [(a, b) for a in range(8) for b in range(8)]
    train, held = _arith_pairs([q for i, q in enumerate(qs) if i % 4]), _arith_pairs([q for i, q in enumerate(qs) if i % 4 == 0])
    assert len(train) == 48 and len(held) == 16 and held[0]["rejected"].endswith("and")
    path = train_reward_model(train, tiny_model_path(), tmp_path / "rm", epochs=4, batch_size=8, learning_rate=3e-3)
    losses = json.loads((path / "reward_training.json").read_text())["losses"]
    assert sum(losses[-3:]) / 3 < losses[0], losses
    acc = preference_accuracy(path, held)
    print(f"held-out preference accuracy: {acc:.2f} on {len(held)} pairs (chance 0.5); loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert acc >= 0.75, acc
    # through the reward contract, with the same name GRPO logs under, also from the registry
    rm = get_reward_function("reward_model", model_path=str(path))
    s = rm([held[0]["prompt"]] * 2, [held[0]["chosen"], held[0]["rejected"]])
    assert s[0] > s[1] and rm.__name__ == "reward_model"
    assert isinstance(RewardModelReward(str(path)), RewardFunction)

def test_qa_answer_records_are_references():
    "SQuAD keeps answers as {'text': [...], 'answer_start': [...]}, TriviaQA as {'value', 'aliases'}: the texts are the references."
    from aligntune.rewards import get_reward, RewardError
    squad = [{"text": ["4", "four"], "answer_start": [0, 0]}] * 3
    assert get_reward("exact_match", reference_column="answers")(prompts=["q"] * 3, completions=["4", "5", "The answer is four"], answers=squad) == [1.0, 0.0, 1.0]
    assert get_reward("contains_answer", reference_column="answers")(prompts=["q"] * 2, completions=["it is four", "5"], answers=squad[:2]) == [1.0, 0.0]
    assert get_reward("token_f1", reference_column="answers")(prompts=["q"], completions=["four"], answers=squad[:1]) == [1.0]
    trivia = [{"value": "Paris", "aliases": ["City of Light", "Paris"]}] * 2
    assert get_reward("exact_match", reference_column="answer")(prompts=["q"] * 2, completions=["City of Light", "Lyon"], answer=trivia) == [1.0, 0.0]
    with pytest.raises(RewardError, match=r"reference column 'answer' holds records with keys \['id'\], not answer text"):
        get_reward("exact_match", strict=True)(prompts=["q"], completions=["x"], answer=[{"id": 1}])

def test_numeric_and_math_rewards_take_any_of_several_references():
    from aligntune.rewards import get_reward, RewardError
    assert get_reward("numeric_match")(prompts=["q"] * 3, completions=["4", "5", "6"], answer=[["4.0", "5"]] * 3) == [1.0, 1.0, 0.0]
    assert get_reward("math_verify")(prompts=["q"] * 3, completions=["\\boxed{1/2}", "\\boxed{0.5}", "\\boxed{2}"], answer=[["\\frac{1}{2}"]] * 3) == [1.0, 1.0, 0.0]
    # aliases that are words beside a number (TriviaQA: value '4', aliases 'four'): the number decides, the words are no error
    trivia = [{"value": "4", "aliases": ["four", "4"]}] * 2
    assert get_reward("numeric_match")(prompts=["q"] * 2, completions=["4", "5"], answer=trivia) == [1.0, 0.0]
    assert get_reward("math_verify")(prompts=["q"] * 2, completions=["\\boxed{4}", "\\boxed{5}"], answer=[["four", "4"]] * 2) == [1.0, 0.0]
    with pytest.raises(RewardError, match=r"holds no number"):  # no number among them at all: still the clear error
        get_reward("numeric_match", strict=True)(prompts=["q"], completions=["4"], answer=[["four", "IV"]])
