"""Public dataset layouts as people bring them reach every trainer that can use them as the right prompt, completion(s),
label and reward columns: each test builds the trainer, then decodes what TRL (or the PPO engine) actually got.

The fixtures (`aligntune.layouts`) keep each dataset's exact columns and file layout; row i asks "What is a + b?"
with a = i + 2, b = 2i + 3, so row 1 is "What is 3 + 5?", its good answer says 8 and its bad answer 9."""
import gzip, json, os
import pytest
from aligntune import create_sft_trainer, create_rl_trainer, DataError, ConfigError
from aligntune.data import load_data, prepare_dataset
from aligntune.layouts import LAYOUTS, layout_rows, write_snapshot

Q0, Q1 = "What is 2 + 3?", "What is 3 + 5?"
HH1 = "\n\nHuman: Hi there.\n\nAssistant: Hello! How can I help?\n\nHuman: What is 3 + 5?\n\nAssistant:"
SYS = "You are an AI assistant. Answer briefly."
END = "<|im_end|>"  # the tiny model's EOS (its chat template is ChatML)

def chat(user, system=None, *more):
    "The ChatML text the tiny model's template makes of a prompt, ending with the generation prompt."
    turns = ([("system", system)] if system else []) + [("user", user)] + list(more)
    return "".join(f"<|im_start|>{r}\n{c}{END}\n" for r, c in turns) + "<|im_start|>assistant\n"

def reply(text): return f"{text}{END}\n"  # an assistant turn as the template closes it

# ---------------------------------------------------------------- what the offline trainers got, decoded
def _trainer(tiny_model, tmp_path, layout, algo, n=4, **kw):
    rows = layout_rows(layout, n, **({"config": kw.pop("config")} if "config" in kw else {}))
    if algo == "sft": return create_sft_trainer(tiny_model, rows, output_dir=str(tmp_path / algo), max_steps=1, batch_size=2, **kw)
    return create_rl_trainer(tiny_model, rows, algorithm=algo, output_dir=str(tmp_path / algo), max_steps=1, batch_size=2, **kw)

def reached(t, i):
    "Row i of the TRL trainer's processed dataset, decoded: prompt / completion (by the loss mask) / chosen / rejected / text."
    t.setup()
    tok, r = t.tokenizer, t.trl_trainer.train_dataset[i]
    dec = lambda ids: tok.decode(ids)
    if "labels" in r:  # SFT: the loss mask separates the prompt from the completion
        ids, lab = r["input_ids"], r["labels"]
        prompt, comp = dec([a for a, l in zip(ids, lab) if l == -100]), dec([a for a, l in zip(ids, lab) if l != -100])
        return {"text": dec(ids)} if not prompt else {"prompt": prompt, "completion": comp}
    out = {k[:-4]: dec(v) for k, v in r.items() if k in ("prompt_ids", "chosen_ids", "rejected_ids", "completion_ids")}
    if "label" in r: out["label"] = r["label"]
    return out

# (layout, algorithm, row) -> exactly what the trainer must get for that row
OFFLINE = {
    ("hh-rlhf", "sft", 1): {"prompt": HH1, "completion": f" The answer is 8.{END}"},
    ("hh-rlhf", "dpo", 1): {"prompt": HH1, "chosen": f" The answer is 8.{END}", "rejected": f" The answer is 9.{END}"},
    ("hh-rlhf", "kto", 2): {"prompt": HH1, "completion": f" The answer is 8.{END}", "label": True},
    ("hh-rlhf", "kto", 3): {"prompt": HH1, "completion": f" The answer is 9.{END}", "label": False},
    ("orca-dpo", "sft", 0): {"prompt": chat(Q0, SYS), "completion": reply("The sum is 5.")},
    ("orca-dpo", "dpo", 0): {"prompt": chat(Q0, SYS), "chosen": reply("The sum is 5."), "rejected": reply("The sum is 6.")},
    ("orca-dpo", "dpo", 1): {"prompt": chat(Q1), "chosen": reply("The sum is 8."), "rejected": reply("The sum is 9.")},  # empty system: no turn
    ("orca-dpo", "kto", 1): {"prompt": chat(Q0, SYS), "completion": reply("The sum is 6."), "label": False},
    ("orca-dpo-intel", "dpo", 1): {"prompt": chat(Q1, "You are an AI assistant."), "chosen": reply("The sum is 8."), "rejected": reply("The sum is 9.")},
    ("ultrafeedback", "sft", 1): {"text": chat(Q1) + reply("It is 8.")},
    ("ultrafeedback", "dpo", 1): {"prompt": chat(Q1), "chosen": reply("It is 8."), "rejected": reply("It is 9.")},
    ("ultrafeedback", "kto", 2): {"prompt": chat(Q1), "completion": reply("It is 8."), "label": True},
    ("ultrafeedback-trl", "dpo", 1): {"prompt": chat(Q1), "chosen": reply("It is 8."), "rejected": reply("It is 9.")},
    ("ultrafeedback-trl", "sft", 1): {"prompt": chat(Q1), "completion": reply("It is 8.")},
    ("ultrachat", "sft", 1): {"text": chat(Q1) + reply("8.") + f"<|im_start|>user\nAnd doubled?{END}\n<|im_start|>assistant\n" + reply("16.")},
    ("gsm8k", "sft", 1): {"prompt": chat(Q1), "completion": reply("Add the numbers: 3 + 5 = <<3+5=8>>8.\n#### 8")},
    ("oasst-top1", "sft", 1): {"text": f"<|im_start|>user\n{Q1}{END}\n<|im_start|>assistant\nIt is 8.{END}\n{END}"},
    ("guanaco", "sft", 1): {"text": f"### Human: {Q1}### Assistant: It is 8.{END}"},
    ("alpaca-gpt4", "sft", 0): {"prompt": chat(Q0), "completion": reply("The sum is 5.")},
    ("alpaca-gpt4", "sft", 1): {"prompt": chat("Add the two numbers.\n\n3, 5"), "completion": reply("The sum is 8.")},
    ("metamathqa", "sft", 1): {"prompt": chat(Q1), "completion": reply("We add them and get 8.\nThe answer is: 8")},
    ("openr1-math", "sft", 1): {"text": chat(Q1) + reply("<think>8</think> \\boxed{8}")},
    ("numina-math", "sft", 1): {"text": chat(Q1) + reply("We add: 8. The answer is $\\boxed{8}$.")},
    ("mbpp", "sft", 1): {"prompt": chat("Write a function add_2(x) that returns x plus 2."), "completion": reply("def add_2(x):\n    return x + 2")},
    ("tldr", "sft", 1): {"prompt": layout_rows("tldr", 2)[1]["prompt"], "completion": f" 3 + 5 is 8.{END}"},
    ("tldr-preference", "dpo", 1): {"prompt": layout_rows("tldr", 2)[1]["prompt"], "chosen": f" 3 + 5 is 8.{END}", "rejected": f" 3 + 5 is 9.{END}"},
    ("tldr-preference", "kto", 3): {"prompt": layout_rows("tldr", 2)[1]["prompt"], "completion": f" 3 + 5 is 9.{END}", "label": False},
    ("kto-mix", "kto", 1): {"prompt": chat(Q0), "completion": reply("It is 6."), "label": False},
    ("kto-mix", "sft", 1): {"prompt": chat(Q1), "completion": reply("It is 8.")},  # SFT keeps the good rows only: row 1 is kto-mix row 2
    ("capybara", "sft", 1): {"text": chat(Q1) + reply("8.") + "<|im_start|>user\nAnd doubled?<|im_end|>\n<|im_start|>assistant\n" + reply("16.")},
    ("openhermes", "sft", 1): {"text": chat(Q1, "You answer with one sentence.") + reply("It is 8.")},
}

@pytest.mark.parametrize("layout,algo,row", sorted(OFFLINE), ids=[f"{l}-{a}-{r}" for l, a, r in sorted(OFFLINE)])
def test_offline_trainer_gets_the_right_rows(tiny_model, tmp_path, layout, algo, row):
    got = reached(_trainer(tiny_model, tmp_path, layout, algo), row)
    assert got == OFFLINE[(layout, algo, row)]
    if "prompt" in got:  # the prompt is not cut inside the answers: no answer text in it
        for k in ("chosen", "rejected", "completion"):
            if k in got: assert got[k].replace(END, "").strip() not in got["prompt"], (k, got)

# ---------------------------------------------------------------- what the online trainers' rewards got
U = lambda text: {"role": "user", "content": text}
A = lambda text: {"role": "assistant", "content": text}
S = lambda text: {"role": "system", "content": text}
TLDR1 = layout_rows("tldr", 2)[1]["prompt"]
# layout (or layout:config) -> (the prompt of row 1 as the trainer generates from it, columns the reward must see for that row)
ONLINE = {
    "hh-rlhf": (HH1, {"completion": "The answer is 8.", "chosen": HH1 + " The answer is 8.", "rejected": HH1 + " The answer is 9."}),
    "orca-dpo": ([U(Q1)], {"input": Q1, "system": "", "chosen": "The sum is 8.", "rejected": "The sum is 9.", "status": "unchanged"}),
    "orca-dpo-intel": ([S("You are an AI assistant."), U(Q1)], {"question": Q1, "chosen": "The sum is 8."}),
    "ultrafeedback": ([U(Q1)], {"chosen": [U(Q1), A("It is 8.")], "score_chosen": 8.0, "messages": [U(Q1), A("It is 8.")]}),
    "ultrafeedback-trl": ([U(Q1)], {"completion": "It is 8.", "rejected": [U(Q1), A("It is 9.")]}),
    "ultrachat": ([U(Q1)], {"messages": [U(Q1), A("8."), U("And doubled?"), A("16.")]}),
    "gsm8k": ([U(Q1)], {"question": Q1, "answer": "Add the numbers: 3 + 5 = <<3+5=8>>8.\n#### 8"}),
    "oasst-top1": (f"<|im_start|>user\n{Q1}{END}\n<|im_start|>assistant\n", {"completion": "It is 8."}),
    "guanaco": (f"### Human: {Q1}### Assistant:", {"completion": "It is 8."}),
    "alpaca-gpt4": ([U("Add the two numbers.\n\n3, 5")], {"output": "The sum is 8.", "input": "3, 5"}),
    "metamathqa": ([U(Q1)], {"response": "We add them and get 8.\nThe answer is: 8", "type": "GSM_Rephrased"}),
    "openr1-math": ([U(Q1)], {"answer": "8", "solution": "Adding gives 8, so the answer is $\\boxed{8}$.", "source": "olympiads"}),
    "numina-math": ([U(Q1)], {"solution": "We add: 8. The answer is $\\boxed{8}$.", "source": "synthetic_math"}),
    "mbpp": ([U("Write a function add_2(x) that returns x plus 2.")], {"test_list": ["assert add_2(1) == 3", "assert add_2(0) == 2"], "code": "def add_2(x):\n    return x + 2"}),
    "mbpp:sanitized": ("Write a function add_2(x) that returns x plus 2.", {"test_list": ["assert add_2(1) == 3", "assert add_2(0) == 2"]}),
    "tldr": (TLDR1, {"completion": " 3 + 5 is 8."}),
    "tldr-preference": (TLDR1, {"chosen": " 3 + 5 is 8.", "rejected": " 3 + 5 is 9."}),
    "kto-mix": ([U(Q0)], {"completion": [A("It is 6.")], "label": False}),  # kto-mix row 1 is the bad answer to row 0's question
    "capybara": ([U(Q1), A("8."), U("And doubled?")], {"completion": "16."}),
    "openhermes": ([S("You answer with one sentence."), U(Q1)], {"completion": "It is 8.", "source": "airoboros2.2"}),
}

def _recorder(log):
    def record_reward(prompts, completions, **kw):
        for j, p in enumerate(prompts):
            log.append((p, {k: v[j] for k, v in kw.items() if isinstance(v, list) and len(v) == len(prompts) and k != "completion_ids"}))
        return [float(len(str(c))) for c in completions]
    return record_reward

@pytest.mark.parametrize("algo", ["grpo", "ppo"])
@pytest.mark.parametrize("layout", sorted(ONLINE))
def test_online_trainer_and_rewards_get_the_right_rows(tiny_model, tmp_path, layout, algo):
    name, _, config = layout.partition(":")
    log = []
    kw = dict(num_generations=2, batch_size=8) if algo == "grpo" else dict(batch_size=4, num_ppo_epochs=1)
    res = create_rl_trainer(tiny_model, layout_rows(name, 4, config=config or None), algorithm=algo, reward_functions=[_recorder(log)],
                            output_dir=str(tmp_path / algo), max_steps=1, max_completion_length=2, **kw).train()
    assert res["global_step"] == 1
    prompt, cols = ONLINE[layout]
    same = [c for p, c in log if p == prompt]
    assert same, f"row 1's prompt never reached the reward; prompts seen: {[p for p, _ in log][:4]}"
    seen = [c for c in same if all(c.get(k) == v for k, v in cols.items())]
    assert seen, f"the reward saw {same[0]} for row 1, expected {cols}"
    assert not any(k.startswith("ref_") for k in seen[0]), seen[0].keys()  # the reward sees the dataset's own names
    assert all(p for p, _ in log)  # no empty prompt reached generation

# ---------------------------------------------------------------- files, shards, snapshot folders, subsets and splits
def test_compressed_files_load_and_train_rows(tmp_path):
    import bz2, pandas as pd
    rows = layout_rows("gsm8k", 6)
    with gzip.open(tmp_path / "g.jsonl.gz", "wt") as f: f.write("".join(json.dumps(r) + "\n" for r in rows))
    with gzip.open(tmp_path / "g.json.gz", "wt") as f: json.dump(rows, f)
    with bz2.open(tmp_path / "g.jsonl.bz2", "wt") as f: f.write("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame(rows).to_csv(tmp_path / "g.csv.gz", index=False)
    pd.DataFrame(rows).to_csv(tmp_path / "g.tsv", index=False, sep="\t")
    for name in ("g.jsonl.gz", "g.json.gz", "g.jsonl.bz2", "g.csv.gz", "g.tsv"):
        ds = load_data(tmp_path / name)
        assert ds.column_names == ["question", "answer"] and ds[1] == rows[1], name
    assert load_data(tmp_path / "g.jsonl.gz", split="train[2:4]")["question"] == [rows[2]["question"], rows[3]["question"]]
    assert prepare_dataset(tmp_path / "g.csv.gz", "grpo")[1]["prompt"] == [{"role": "user", "content": Q1}]
    with pytest.raises(DataError, match="A single file or in-memory dataset is one split, 'train'"): load_data(tmp_path / "g.jsonl.gz", split="test")
    with pytest.raises(DataError, match="a single file has no configurations"): load_data(tmp_path / "g.jsonl.gz", subset="main")

def test_parquet_shards_load_whole(tmp_path):
    f = write_snapshot("numina-math", tmp_path / "numina", n=6)  # data/train-0000{0,1}-of-00002.parquet
    assert len(list((f / "data").glob("train-*.parquet"))) == 2
    ds = load_data(f, split="train")
    assert sorted(ds["problem"]) == sorted(r["problem"] for r in layout_rows("numina-math", 6))  # both shards, every row
    assert len(load_data(f, split="test[:50%]")) == 3
    o = write_snapshot("openr1-math", tmp_path / "openr1", n=4)  # README configs default + extended, sharded
    assert load_data(o)["problem"] == load_data(o, subset="default")["problem"]  # 'default' is the default config
    assert load_data(o, subset="extended")[0]["problem"] == layout_rows("openr1-math", 1, start=4)[0]["problem"]

def test_snapshot_folders_with_configs_subsets_and_split_names(tmp_path):
    g = write_snapshot("gsm8k", tmp_path / "gsm8k", n=4)
    with pytest.raises(DataError, match=r"several configurations \(main, socratic\) and its README marks none as default: pass subset="):
        load_data(g)
    assert load_data(g, subset="main", split="test")[0]["question"] == layout_rows("gsm8k", 1, start=4)[0]["question"]
    assert len(load_data(g, subset="socratic", split="train[:50%]+test[:1]")) == 3
    with pytest.raises(DataError, match="Split 'validation' not found; the dataset has train, test"): load_data(g, subset="main", split="validation")
    with pytest.raises(DataError, match="Did you mean 'socratic'"): load_data(g, subset="socratc")
    m = write_snapshot("mbpp", tmp_path / "mbpp", n=2)  # README: full (default) and sanitized, four splits each
    assert "text" in load_data(m, split="prompt").column_names and "prompt" in load_data(m, subset="sanitized", split="prompt").column_names
    u = write_snapshot("ultrafeedback", tmp_path / "uf", n=2)  # split names from the README: train_prefs, train_sft, test_prefs, ...
    assert set(load_data(u, split=None)) == {"train_prefs", "test_prefs", "train_sft", "test_sft", "train_gen", "test_gen"}
    with pytest.raises(DataError, match="Did you mean 'train_prefs'"): load_data(u, split="train_pref")
    h = write_snapshot("hh-rlhf", tmp_path / "hh", n=2)  # no README configs: one folder per subset, .jsonl.gz files
    with pytest.raises(DataError, match=r"one folder each \(harmless-base, helpful-base\): pass subset="): load_data(h)
    assert load_data(h, subset="helpful-base", split="test")[0] == layout_rows("hh-rlhf", 1, start=6)[0]
    q = write_snapshot("guanaco", tmp_path / "guanaco", n=2)  # openassistant_best_replies_eval.jsonl is the test split
    assert load_data(q, split="test")[0]["text"] == layout_rows("guanaco", 1, start=2)[0]["text"]

def test_trainers_read_snapshot_folders_with_subset_and_split(tiny_model, tmp_path):
    h = write_snapshot("hh-rlhf", tmp_path / "hh", n=4)
    t = create_rl_trainer(tiny_model, str(h), algorithm="dpo", subset="helpful-base", split="train[:50%]", eval_split="test[:2]",
                          output_dir=str(tmp_path / "dpo"), max_steps=1, batch_size=2)
    rows = layout_rows("hh-rlhf", 2, start=8)  # helpful-base's train split, written after harmless-base's 8 rows
    assert len(t.train_dataset) == 2 and len(t.eval_dataset) == 2
    got = reached(t, 1)
    assert got["prompt"] == rows[1]["chosen"].rsplit(" The answer", 1)[0] and got["chosen"].startswith(" The answer is ")
    u = write_snapshot("ultrafeedback", tmp_path / "uf", n=4)
    s = create_sft_trainer(tiny_model, str(u), split="train_sft", output_dir=str(tmp_path / "sft"), max_steps=1, batch_size=2)
    assert s.train_dataset.column_names == ["messages"] and len(s.train_dataset) == 4

# ---------------------------------------------------------------- checks when the trainer is created
def digits(prompts, completions, **kw): return [sum(ch.isdigit() for ch in str(c)) / 10 for c in completions]

def test_bad_data_fails_at_trainer_creation_naming_the_column(tiny_model, tmp_path):
    mk = lambda rows, **kw: create_rl_trainer(tiny_model, rows, algorithm="grpo", output_dir=str(tmp_path / "g"), max_steps=1,
                                              batch_size=4, num_generations=2, **{"reward_functions": [digits], **kw})
    def rubric_score(prompts, completions, rubric, **kw): return [1.0] * len(completions)
    with pytest.raises(DataError, match=r"reward 'rubric_score' needs the column 'rubric'.*column_mapping=\{'your_column': 'rubric'\}"):
        mk(layout_rows("gsm8k", 4), reward_functions=[rubric_score])
    with pytest.raises(DataError, match=r"1 of 3 rows have an empty or null prompt \(column 'question'; rows 2\)"):
        mk([{"question": Q0, "answer": "5"}, {"question": Q1, "answer": "8"}, {"question": "  ", "answer": "1"}])
    with pytest.raises(DataError, match="Column 'answer' is null in every row, and reward 'needs_answer' scores against it"):
        def needs_answer(prompts, completions, answer, **kw): return [1.0] * len(completions)
        mk([{"prompt": "p", "answer": None}] * 4, reward_functions=[needs_answer])
    with pytest.raises(DataError, match="Column 'answer' mixes types: row 0 holds a str, row 1 a number"):
        mk([{"question": Q0, "answer": "5"}, {"question": Q1, "answer": 8}])
    with pytest.raises(DataError, match="Column 'input' is null in every row, so it cannot be the prompt"):
        create_rl_trainer(tiny_model, [{"system": "s", "input": None, "chosen": "a", "rejected": "b"}] * 2, algorithm="dpo")
    with pytest.raises(DataError, match="holds no dialogue markers"):
        create_rl_trainer(tiny_model, [{"chosen": "good", "rejected": "bad"}] * 2, algorithm="dpo")

def test_reference_read_from_a_column_of_the_same_kind(tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ALIGNTUNE_QUIET", raising=False)
    t = create_rl_trainer(tiny_model, layout_rows("numina-math", 4), algorithm="grpo", reward_functions=["exact_match"],
                          output_dir=str(tmp_path / "g"), max_steps=1, batch_size=4, num_generations=2)
    assert t.train_dataset["answer"] == [r["solution"] for r in layout_rows("numina-math", 4)]
    assert "reward 'exact_match' scores against 'answer'; the dataset has none, so it reads 'solution'." in capsys.readouterr().out
    m = create_rl_trainer(tiny_model, layout_rows("mbpp", 4), algorithm="grpo", reward_functions=["code_execution"],
                          output_dir=str(tmp_path / "m"), max_steps=1, batch_size=4, num_generations=2)
    assert m.train_dataset["tests"][1] == layout_rows("mbpp", 2)[1]["test_list"]

# ---------------------------------------------------------------- the seed's reward extension point drives GRPO and PPO
def _seed_reward():
    from aligntune.rewards import RewardFunction
    class CustomReward(RewardFunction):
        def compute(self, text: str) -> float:
            return sum(ch.isdigit() for ch in text) / max(len(text), 1)
    return CustomReward

def _first_last(xs, k=3): return sum(xs[:k]) / k, sum(xs[-k:]) / k

@pytest.mark.slow
@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_seed_custom_reward_compute_text_drives_training(tiny_model, tmp_path, algo):
    "The original's `class CustomReward(RewardFunction): def compute(self, text) -> float` scores every row, and the reward rises."
    from aligntune import Run
    from aligntune.rewards import RewardRegistry
    from aligntune.toy import addition_facts, prompt_rows
    RewardRegistry.register_reward("custom", _seed_reward())  # as the original's docs do; taken out again below
    try: _train_seed_reward(tiny_model, tmp_path, algo)
    finally: RewardRegistry._entries.pop("custom", None)

def _train_seed_reward(tiny_model, tmp_path, algo):
    from aligntune import Run
    from aligntune.toy import addition_facts, prompt_rows
    kw = (dict(max_steps=16, batch_size=32, num_generations=8, max_completion_length=6) if algo == "grpo" else
          dict(max_steps=8, batch_size=32, max_completion_length=6, num_ppo_epochs=4, num_mini_batches=4, kl_coef=0.0, temperature=1.0))
    res = create_rl_trainer(tiny_model, prompt_rows(addition_facts()), algorithm=algo, reward_functions=["custom"], learning_rate=1e-2,
                            lr_scheduler_type="constant", output_dir=str(tmp_path / algo), **kw).train()
    m = Run.load(tmp_path / algo).metrics
    scores = m["rewards/custom/mean" if algo == "grpo" else "objective/scores"].dropna().tolist()
    assert res["global_step"] == kw["max_steps"] and len(scores) == kw["max_steps"]
    r0, r1 = _first_last(scores)
    print(f"{algo}: seed CustomReward {r0:.3f} -> {r1:.3f}")
    assert r1 > r0 + 0.3

def test_seed_reward_that_raises_everywhere_stops_at_the_first_step(tiny_model, tmp_path):
    from aligntune.rewards import RewardFunction, RewardError
    class Typo(RewardFunction):
        def compute(self, text: str) -> float: return len(txt)  # noqa: F821 -- a bug: every row raises NameError
    t = create_rl_trainer(tiny_model, layout_rows("gsm8k", 4), algorithm="grpo", reward_functions=[Typo()], output_dir=str(tmp_path / "g"),
                          max_steps=2, batch_size=4, num_generations=2, max_completion_length=2)
    with pytest.raises(RewardError, match=r"reward 'typo' raised NameError: name 'txt' is not defined on row 0"):
        t.train()

# ---------------------------------------------------------------- settings of another group, and the original's names
def test_kl_coef_reaches_trl_beta_for_the_grpo_family(tiny_model, tmp_path):
    from aligntune.config import NameNote
    with pytest.warns(NameNote, match="kl_coef is the KL coefficient .ppo.kl_coef elsewhere.; for dapo it is grpo.beta"):
        t = create_rl_trainer(tiny_model, layout_rows("gsm8k", 4), algorithm="dapo", reward_functions=[digits], kl_coef=0.07,
                              output_dir=str(tmp_path / "d"), max_steps=1, batch_size=4, num_generations=2)
    t.setup()
    assert t.trl_trainer.args.beta == 0.07 and t.config.ppo.kl_coef == 0.05
    with pytest.raises(ConfigError, match="'kl_coef' is a setting of ppo.kl_coef; dpo does not read it"):
        create_rl_trainer(tiny_model, layout_rows("orca-dpo", 4), algorithm="dpo", kl_coef=0.1)

def test_the_original_names(tiny_model, tmp_path):
    import subprocess, sys, warnings
    from aligntune.config import NameNote, BackendConfig
    from aligntune.eval import EvalTask
    with pytest.warns(NameNote, match="lora_target_modules is the original AlignTune's name; aligntune calls it peft.target_modules"):
        t = create_sft_trainer(tiny_model, layout_rows("gsm8k", 4), lora_target_modules=["q_proj"], use_peft=True,
                               output_dir=str(tmp_path / "s"), max_steps=1, batch_size=2)
    assert t.config.peft.target_modules == ["q_proj"]
    with pytest.warns(NameNote, match=r"trainer.predict\(\) is the original AlignTune's name; aligntune calls it trainer.generate\(\)"):
        out = t.predict("What is 2 + 3?", max_new_tokens=3, do_sample=False)
    assert isinstance(out, str)
    with pytest.raises(ConfigError, match="reads the task from the dataset's columns"):
        create_sft_trainer(tiny_model, layout_rows("gsm8k", 4), task_type="instruction_following")
    with pytest.raises(ConfigError, match="reads the training type from the algorithm"): BackendConfig(training_type="rl")
    with pytest.warns(NameNote):
        task = EvalTask("t", dataset_name=layout_rows("gsm8k", 2), input_column="question", target_column="answer")
    assert (task.prompt_template, task.reference_column) == ("{question}", "answer")
    code = "from aligntune.core.backend_factory import create_rl_trainer, BackendType; import aligntune; print(create_rl_trainer is aligntune.create_rl_trainer)"
    p = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True)
    assert p.stdout.strip() == "True" and "aligntune.core.backend_factory is the original AlignTune's module" in p.stderr
    import aligntune
    with pytest.raises(AttributeError, match=r"DataManager.*original AlignTune's name; use aligntune.data.prepare_dataset"): aligntune.DataManager

def test_a_layout_that_needs_a_mapping_says_so_and_trains_once_mapped(tiny_model, tmp_path):
    "Stanford SHP: which of two replies won is in `labels`; no column names say chosen or rejected, so the user maps it."
    shp = layout_rows("shp", 4)
    with pytest.raises(DataError, match=r"DPO needs preference pairs: chosen and rejected columns.*columns found \(post_id, domain"):
        create_rl_trainer(tiny_model, shp, algorithm="dpo")
    pairs = [{"prompt": r["history"], "chosen": r["human_ref_A"] if r["labels"] == 1 else r["human_ref_B"],
              "rejected": r["human_ref_B"] if r["labels"] == 1 else r["human_ref_A"]} for r in shp]
    got = reached(create_rl_trainer(tiny_model, pairs, algorithm="dpo", output_dir=str(tmp_path / "d"), max_steps=1, batch_size=2), 1)
    assert got == {"prompt": Q1, "chosen": f"It is 8.{END}", "rejected": f"It is 9.{END}"}

def test_dolly_context_joins_the_instruction():
    "databricks-dolly-15k (instruction, context, response, category): the context is part of the prompt, as Alpaca's input is."
    from aligntune.data import prepare_dataset
    rows = [dict(instruction="Summarise the passage.", context="Cats sleep a lot.", response="Cats sleep.", category="summarization"),
            dict(instruction="Name a colour.", context="", response="Blue.", category="open_qa")]
    notes = []
    ds = prepare_dataset(rows, "sft", notes=notes)
    assert ds[0]["prompt"][0]["content"] == "Summarise the passage.\n\nCats sleep a lot." and ds[0]["completion"][0]["content"] == "Cats sleep."
    assert ds[1]["prompt"][0]["content"] == "Name a colour."   # an empty context adds nothing
    assert any("'context' appended to the prompt" in n for n in notes), notes

def test_squad_context_joins_the_question():
    "SQuAD (id, title, context, question, answers): a prompt without its passage cannot be answered."
    from aligntune.data import prepare_dataset
    rows = [dict(id="1", title="Cats", context="Cats sleep sixteen hours a day.", question="How long do cats sleep?",
                 answers={"text": ["sixteen hours a day"], "answer_start": [11]})]
    notes = []
    ds = prepare_dataset(rows, "grpo", notes=notes)
    assert ds[0]["prompt"][0]["content"] == "How long do cats sleep?\n\nCats sleep sixteen hours a day."
    assert ds[0]["answers"] == rows[0]["answers"] and any("'context' appended to the prompt" in n for n in notes), notes

def test_multiple_choice_options_join_the_question():
    "ARC/OpenBookQA ({'text', 'label'}), MMLU (a list, answer an index) and {'A': ...} options: the question is unanswerable without them."
    from aligntune.data import prepare_dataset
    from aligntune.rewards import get_reward
    arc = [dict(id="M1", question="Which is a gas at room temperature?", choices={"text": ["iron", "oxygen"], "label": ["A", "B"]}, answerKey="B")]
    notes = []
    ds = prepare_dataset(arc, "grpo", notes=notes)
    assert ds[0]["prompt"][0]["content"] == "Which is a gas at room temperature?\n\nA. iron\nB. oxygen"
    assert any("'choices' appended to the prompt as lettered options" in n for n in notes), notes
    assert get_reward("multiple_choice", reference_column="answerKey")(prompts=["q"] * 2, completions=["The answer is B", "A"], answerKey=["B", "B"]) == [1.0, 0.0]
    mmlu = [dict(question="2+2?", subject="math", choices=["3", "4", "5"], answer=1)]
    assert prepare_dataset(mmlu, "grpo")[0]["prompt"][0]["content"] == "2+2?\n\nA. 3\nB. 4\nC. 5"
    ds = prepare_dataset([dict(question="Q?", options={"A": "x", "B": "y"}, answer="A")], "sft")
    assert ds[0]["prompt"][0]["content"] == "Q?\n\nA. x\nB. y" and ds[0]["completion"][0]["content"] == "A"
