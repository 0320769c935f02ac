"""Evaluation end to end on the tiny model: lm-eval in-process on local tasks, the Evaluator on saved full and LoRA
folders with every metric checked against a known answer, before/after comparison, generation metrics during
training, and the errors people see for bad input."""
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
import copy, json, math, shutil, time
from pathlib import Path
from types import SimpleNamespace
import pytest

torch = pytest.importorskip("torch")
from aligntune.eval import (Evaluator, EvalTask, TaskCategory, eval_main, get_task, register_task, sequence_logprobs,
                            generation_eval, list_tasks)
from aligntune.metrics import EvalError, distinct_n, extract_answer, win_rate, bleu, chrf, rouge, exact_match
from aligntune.compare import compare_models, plot_before_after, save_comparison
from aligntune.models import generate

TASKS = Path(__file__).parent / "data" / "lmeval_tasks"
LM_EVAL = __import__("importlib").util.find_spec("lm_eval") is not None
needs_lm_eval = pytest.mark.skipif(not LM_EVAL, reason="lm-eval not installed")


@pytest.fixture(scope="module")
def loaded(tiny_model):
    from aligntune.models import load_model
    return load_model(tiny_model)


@pytest.fixture(scope="module")
def trained(loaded):
    "A briefly trained copy: a few AdamW steps on the arithmetic answers with plain torch."
    model, tok = loaded
    m = copy.deepcopy(model); opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    rows = get_task("arithmetic").rows()
    batch = tok([r["prompt"] + r["answer"] + tok.eos_token for r in rows], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    m.train()
    for _ in range(10):
        opt.zero_grad(); m(**batch, labels=labels).loss.backward(); opt.step()
    return m.eval()


def _hand_logprob(model, tok, prompt, completion):
    "log p(completion | prompt) by one plain forward pass (prompt of length 0 gets the EOS token as context)."
    p = tok(prompt)["input_ids"] or [tok.eos_token_id]
    c = tok(completion, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + c])
    with torch.no_grad(): lp = torch.log_softmax(model(ids).logits[0].float(), -1)
    return sum(lp[len(p) - 1 + i, t].item() for i, t in enumerate(c)), len(c)


# ---------------------------------------------------------------- 1) lm-eval, in-process, local tasks

@needs_lm_eval
def test_lm_eval_local_mc_and_generation_tasks_on_model_object(loaded, tmp_path, monkeypatch):
    from aligntune.lmeval import run_lm_eval
    model, tok = loaded
    monkeypatch.chdir(tmp_path)   # data_files in the YAMLs are relative: they must resolve against the YAML folder, not here
    times = {}
    for name in ("toy_mc", "toy_gen"):
        t0 = time.perf_counter()
        r = run_lm_eval(model, [name], include_path=TASKS, tokenizer=tok, device="cpu", batch_size=4, log_samples=True, offline=True)
        times[name] = time.perf_counter() - t0
        print(f"lm-eval {name}: {dict(r)} in {times[name]:.1f} s (inside simple_evaluate {r.seconds[name]:.1f} s)")
        if name == "toy_mc": mc = r
        else: gen = r
    assert set(mc) == {"toy_mc/acc", "toy_mc/acc_norm"} and set(gen) == {"toy_gen/exact_match,strip"}
    assert len(mc.samples["toy_mc"]) == 8 and len(gen.samples["toy_gen"]) == 6
    # lm-eval's multiple-choice accuracy is what our own metric finds on the same rows with the same prompt
    rows = [json.loads(l) for l in (TASKS / "toy_mc.jsonl").read_text().splitlines()]
    ours = Evaluator(model, tok).evaluate(rows, ["multiple_choice"], prompt_template="Question: {question}\nAnswer:")
    assert ours["mc_accuracy"] == mc["toy_mc/acc"] and ours["mc_accuracy_norm"] == mc["toy_mc/acc_norm"]
    # and its generate-until answers score exactly as the regex filter + exact match say they should
    resp = [s["filtered_resps"][0] for s in gen.samples["toy_gen"]]
    tgt = [s["target"] for s in gen.samples["toy_gen"]]
    assert gen["toy_gen/exact_match,strip"] == sum(a == b for a, b in zip(resp, tgt)) / len(tgt)


@needs_lm_eval
def test_lm_eval_generation_matches_our_greedy_decoding(loaded, tmp_path):
    "A known answer: references are the model's own greedy outputs for 2 of 3 questions, so exact match is 2/3."
    from aligntune.lmeval import run_lm_eval
    model, tok = loaded
    qs = ["What is 1 plus 2?", "Is the sun hot?", "Which is a color?"]
    prompts = [f"Question: {q}\nAnswer:" for q in qs]
    outs = [generate(model, tok, [p], max_new_tokens=6, stop=["\n", "Question:"], batch_size=1)["completions"][0] for p in prompts]
    ans = [outs[0].strip(), outs[1].strip(), "surely not " + outs[2].strip()]
    d = tmp_path / "tasks"; d.mkdir()
    (d / "mine.jsonl").write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in zip(qs, ans)))
    (d / "mine.yaml").write_text((TASKS / "toy_gen.yaml").read_text().replace("task: toy_gen", "task: mine_gen")
                                 .replace("toy_gen.jsonl", "mine.jsonl").replace("max_gen_toks: 8", "max_gen_toks: 6")
                                 .split("filter_list:")[0] + "metric_list:\n  - metric: exact_match\n    aggregation: mean\n"
                                 "    higher_is_better: true\n    regexes_to_ignore: [\" \"]\nmetadata:\n  version: 1.0\n")
    r = run_lm_eval(model, "mine_gen", include_path=d, tokenizer=tok, batch_size=1, offline=True, output=tmp_path / "run")
    assert r["mine_gen/exact_match"] == pytest.approx(2 / 3)
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["lm_eval"] == {"mine_gen/exact_match": pytest.approx(2 / 3)}


# ---------------------------------------------------------------- 2) Evaluator on folders; metrics with known answers

def test_evaluator_on_full_model_folder_known_answers(tiny_model, loaded):
    model, tok = loaded
    ev = Evaluator(tiny_model, device="cpu")          # loads the saved folder itself
    assert ev.device == "cpu" and type(ev.model).__name__ == "Qwen2ForCausalLM"
    prompts = ["1+1=", "What is 2 plus 2?", "Which is a color?"]
    greedy = generate(ev.model, ev.tokenizer, prompts, max_new_tokens=6)
    rows = [{"prompt": prompts[0], "answer": extract_answer(greedy["completions"][0])},   # the final answers the model gives
            {"prompt": prompts[1], "answer": extract_answer(greedy["completions"][1])},
            {"prompt": prompts[2], "answer": "definitely not this"}]
    res = ev.evaluate(rows, ["exact_match", "accuracy", "loss", "perplexity", "length", "distinct", "bleu", "chrf", "rouge"], max_new_tokens=6)
    assert res["exact_match"] == pytest.approx(2 / 3)
    assert ev.evaluate(rows, ["accuracy"], max_new_tokens=6)["accuracy"] == pytest.approx(2 / 3)
    # loss and perplexity: exp(token-pooled mean NLL), each NLL computed by hand
    hand = [_hand_logprob(model, tok, r["prompt"], r["answer"]) for r in rows]
    nll = -sum(s for s, _ in hand) / sum(n for _, n in hand)
    assert res["loss"] == pytest.approx(nll, rel=1e-5) and res["perplexity"] == pytest.approx(math.exp(nll), rel=1e-5)
    # lengths and distinct-n describe exactly the kept samples
    comps = [s["completion"] for s in res.samples]
    assert comps == greedy["completions"]
    assert res["length/mean_tokens"] == pytest.approx(sum(greedy["n_tokens"]) / 3)
    assert res["length/clipped_frac"] == pytest.approx(sum(n >= 6 for n in greedy["n_tokens"]) / 3)
    assert res["length/mean_chars"] == pytest.approx(sum(map(len, comps)) / 3)
    assert res["distinct_1"] == distinct_n(comps, 1) and res["distinct_2"] == distinct_n(comps, 2)
    refs = [r["answer"] for r in rows]
    assert res["bleu"] == bleu(comps, refs) and res["chrf"] == chrf(comps, refs)
    assert res["rouge1"] == rouge(comps, refs)["rouge1"]


def test_text_metrics_known_answers():
    assert exact_match(["Paris", " paris. ", "London"], ["Paris"] * 3) == pytest.approx(2 / 3)
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100)
    assert bleu(["dog"], ["the cat sat on the mat"]) == 0.0
    assert chrf(["hello world"], ["hello world"]) == pytest.approx(100)
    assert rouge(["the cat sat"], ["the cat sat on the mat"])["rouge1"] == pytest.approx(2 / 3)
    assert distinct_n(["a b", "a c"], 1) == 0.75 and distinct_n(["a b", "a c"], 2) == 1.0
    assert win_rate([1, 1, 0], [0, 0, 0]) == pytest.approx(5 / 6)


def test_multiple_choice_picks_higher_loglikelihood(loaded):
    model, tok = loaded
    rows = [{"question": "1+1=", "choices": ["2", "9"], "label": 0}, {"question": "3+4=", "choices": ["5", "7"], "label": 1},
            {"question": "Which is a color?", "choices": ["red", "dog", "sun"], "answer": "red"}]
    res = Evaluator(model, tok).evaluate(rows, ["multiple_choice"])
    picks = []
    for r in rows:
        ll = [_hand_logprob(model, tok, r["question"], " " + c)[0] for c in r["choices"]]
        picks.append(max(range(len(ll)), key=ll.__getitem__))
    labels = [0, 1, 0]
    assert res["mc_accuracy"] == pytest.approx(sum(p == l for p, l in zip(picks, labels)) / 3)


def test_rewards_win_rate_and_kl(loaded, trained):
    model, tok = loaded
    rows = [{"prompt": f"{a}+{b}=", "answer": str(a + b)} for a, b in [(1, 2), (3, 4), (2, 2), (5, 1)]]
    def length(completions, **kw): return [float(len(c)) for c in completions]
    def only_digits(completions, answer, **kw): return [None if not c.strip() else float(c.strip() == a) for c, a in zip(completions, answer)]
    ev = Evaluator(trained, tok)
    res = ev.evaluate(rows, ["reward", "win_rate", "kl"], reward_functions={"length": length, "exact": only_digits},
                      base_model=(model, tok), reference_model=model, max_new_tokens=4)
    comps = [s["completion"] for s in res.samples]
    assert res["reward/length"] == pytest.approx(sum(map(len, comps)) / 4)
    vals = [v for v in only_digits(comps, [r["answer"] for r in rows]) if v is not None]
    assert res["reward/exact"] == (pytest.approx(sum(vals) / len(vals)) if vals else res["reward/exact"])
    # win rate: recomputed from the kept samples' totals, base completions generated by the base model
    base = generate(model, tok, [r["prompt"] for r in rows], max_new_tokens=4)["completions"]
    assert [s["base_completion"] for s in res.samples] == base
    assert res["win_rate"] == pytest.approx(win_rate([s["reward"] for s in res.samples], [s["base_reward"] for s in res.samples]))
    # a model against itself: greedy ties everywhere (win rate 1/2) and KL 0
    same = Evaluator(model, tok).evaluate(rows, ["reward", "win_rate", "kl"], reward_functions=length, base_model=(model, tok),
                                          reference_model=model, max_new_tokens=4)
    assert same["win_rate"] == 0.5 and same["kl"] == pytest.approx(0.0, abs=1e-7)
    # KL of the trained model to the base: positive, and equal to the full-vocabulary sum done by hand on one row
    assert res["kl"] > 0
    one = Evaluator(trained, tok).evaluate(rows[:1], ["kl"], reference_model=model, max_new_tokens=4)
    p = tok(rows[0]["prompt"])["input_ids"]; c = tok(one.samples[0]["completion"], add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + c])
    with torch.no_grad():
        lp = torch.log_softmax(trained(ids).logits[0, len(p) - 1:-1].float(), -1)
        lq = torch.log_softmax(model(ids).logits[0, len(p) - 1:-1].float(), -1)
    assert one["kl"] == pytest.approx((lp.exp() * (lp - lq)).sum(-1).mean().item(), rel=1e-4)


def test_dpo_preference_accuracy(loaded, trained):
    model, tok = loaded
    rows = [{"prompt": "2+3=", "chosen": "5", "rejected": "the cat"}, {"prompt": "1+1=", "chosen": "2", "rejected": "red"},
            {"prompt": "hi", "chosen": "hello", "rejected": "hello"}]
    res = Evaluator(trained, tok).evaluate(rows, ["preference_accuracy"], reference_model=model)
    hand = [(_hand_logprob(trained, tok, r["prompt"], r["chosen"])[0], _hand_logprob(trained, tok, r["prompt"], r["rejected"])[0]) for r in rows]
    assert res["preference_accuracy"] == pytest.approx(sum(c > r for c, r in hand) / 3)   # a tie (row 3) is not a win
    assert res["preference_margin"] == pytest.approx(sum(c - r for c, r in hand) / 3, rel=1e-4)
    assert "implicit_reward_accuracy" in res


def test_evaluator_on_lora_adapter_folder(tiny_model, loaded, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    from aligntune.models import hide_checkpointing_deprecation
    hide_checkpointing_deprecation()  # PEFT's wrapping reads a property transformers 5.24 deprecated (aligntune's own wrapping hides it too)
    pm = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n: p.normal_(0, 0.5)      # LoRA starts as a no-op; make it change the model
    pm.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").exists() and not (tmp_path / "adapter" / "config.json").exists()
    rows = [{"text": "the cat sat on the mat"}, {"text": "What is 2 plus 2? The answer is 4."}]
    ev = Evaluator(tmp_path / "adapter")
    assert isinstance(ev.model, PeftModel)
    got = ev.evaluate(rows, ["perplexity"])["perplexity"]
    hand = [_hand_logprob(pm.eval(), ev.tokenizer, "", r["text"]) for r in rows]
    assert got == pytest.approx(math.exp(-sum(s for s, _ in hand) / sum(n for _, n in hand)), rel=1e-5)
    assert got != pytest.approx(Evaluator(loaded).evaluate(rows, ["perplexity"])["perplexity"], rel=1e-3)   # the adapter is applied


def test_trainer_like_object_and_registered_tasks(loaded):
    model, tok = loaded
    ev = Evaluator(SimpleNamespace(model=model, tokenizer=tok))
    assert ev.model is model and ev.tokenizer is tok
    assert Evaluator(SimpleNamespace(model=model, processing_class=tok)).tokenizer is tok
    custom = EvalTask(name="custom", category=TaskCategory.CUSTOM, dataset=[{"q": "1+1=", "a": "2"}, {"q": "2+2=", "a": "4"}],
                      prompt_template="{q}", reference_column="a", metrics=["exact_match", "length"], max_new_tokens=3)
    register_task(custom, overwrite=True)
    assert "custom" in list_tasks(TaskCategory.CUSTOM)
    r = ev.evaluate("custom")
    assert r["n"] == 2 and "exact_match" in r and r["length/max_tokens"] <= 3
    assert set(TaskCategory.__members__) >= {"GENERATION", "MULTIPLE_CHOICE", "CLASSIFICATION", "MATH", "CODE", "SAFETY", "PREFERENCE", "CUSTOM"}


# ---------------------------------------------------------------- 3) before / after

def test_before_after_table_and_png(tiny_model, loaded, trained, tmp_path):
    model, tok = loaded
    tasks = ["arithmetic", "larger"] + (["toy_mc"] if LM_EVAL else [])   # registered tasks and an lm-eval task
    df = compare_models(tiny_model, (trained, tok), tasks, metrics=None, limit=10, include_path=TASKS)
    print(df.round(3).to_string())
    assert list(df.columns) == ["task", "metric", "base", "trained", "delta"]
    if LM_EVAL: assert {"acc", "acc_norm"} <= set(df[df.task == "toy_mc"].metric)
    loss = compare_models((model, tok), (trained, tok), ["arithmetic"], metrics=["loss"]).iloc[0]
    assert loss.trained < loss.base                  # the trained copy fits its training answers better
    assert set(df.task) == set(tasks) and {"accuracy", "mc_accuracy"} <= set(df.metric)
    fig = plot_before_after(df[df.metric.isin(["accuracy", "exact_match", "length/mean_tokens", "mc_accuracy"])])
    assert len(fig.axes) == 4
    paths = save_comparison(df, tmp_path / "run", fig=fig)
    assert paths["before_after.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rec = json.loads(paths["eval.json"].read_text())["before_after"]
    assert len(rec) == len(df) and rec[0]["task"] == "arithmetic"


# ---------------------------------------------------------------- during training

def test_generation_eval_callback_in_a_trainer(loaded, tmp_path):
    from transformers import Trainer, TrainingArguments, TrainerCallback
    from aligntune.eval import GenerationEvalCallback
    from aligntune.runs import RunWriter, Run
    model, tok = loaded
    model = copy.deepcopy(model)
    rows = get_task("arithmetic").rows(8)
    enc = [tok(r["prompt"] + r["answer"]) for r in rows]
    ds = [{"input_ids": e["input_ids"], "labels": e["input_ids"]} for e in enc]
    def correct(prompts, completions, answer, **kw): return [float(c.strip() == a) for c, a in zip(completions, answer)]
    writer = RunWriter(tmp_path / "run")
    cb = GenerationEvalCallback(rows[:4], reward_functions=[correct], max_new_tokens=3, run_writer=writer)
    assert isinstance(cb, TrainerCallback)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=1, per_device_eval_batch_size=1, eval_strategy="steps",
                             eval_steps=1, report_to=[], use_cpu=True, save_strategy="no", logging_steps=1, disable_tqdm=True)
    tr = Trainer(model=model, args=args, train_dataset=ds, eval_dataset=ds[:2], processing_class=tok, callbacks=[cb])
    tr.train(); writer.close()
    assert [h["step"] for h in cb.history] == [1, 2]
    assert {"eval_gen/reward/correct", "eval_gen/length/mean_tokens", "eval_gen/exact_match"} <= set(cb.history[0])
    m = Run(tmp_path / "run").metrics
    assert "eval_gen/distinct_1" in m.columns and len(m) == 2
    # the plain function, as a trainer would call it mid-training: the model comes back in training mode
    model.train()
    out = generation_eval(model, tok, rows[:4], reward_functions=[correct], max_new_tokens=3)
    assert model.training and tok.padding_side == "right"
    assert out["length/max_tokens"] <= 3 and 0 <= out["reward/correct"] <= 1


# ---------------------------------------------------------------- eval_main (what the CLI calls)

@needs_lm_eval
def test_eval_main_runs_ours_and_lm_eval_tasks_and_writes_eval_json(tiny_model, tmp_path):
    rec = eval_main(tiny_model, "arithmetic,toy_mc", limit=4, output=tmp_path / "run", include_path=TASKS)
    assert set(rec["results"]) == {"arithmetic", "toy_mc"} and set(rec["seconds"]) == {"arithmetic", "toy_mc"}
    assert set(rec["results"]["toy_mc"]) == {"acc", "acc_norm"}
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["results"]["arithmetic"]["n"] == 4
    print("eval_main seconds:", rec["seconds"])


# ---------------------------------------------------------------- 4) bad input

def test_unknown_task_names_list_near_matches(loaded):
    with pytest.raises(EvalError, match="Did you mean 'arithmetic'"): get_task("arithmetc")
    with pytest.raises(EvalError, match="Did you mean 'arithmetic'"): Evaluator(loaded).evaluate("arithmetc")
    with pytest.raises(EvalError, match="Unknown metric 'perplexty'.*Did you mean 'perplexity'"): Evaluator(loaded).evaluate("arithmetic", ["perplexty"])


@needs_lm_eval
def test_unknown_lm_eval_task_lists_near_matches(loaded, tiny_model):
    from aligntune.lmeval import run_lm_eval
    model, tok = loaded
    with pytest.raises(EvalError, match="Did you mean 'toy_mc'"): run_lm_eval(model, ["toy_mcc"], include_path=TASKS, tokenizer=tok)
    with pytest.raises(EvalError, match="Did you mean 'arc_easy'"): eval_main(tiny_model, ["arc_easyy"])


@needs_lm_eval
def test_hub_task_offline_says_so(loaded):
    from aligntune.lmeval import run_lm_eval
    model, tok = loaded
    t0 = time.perf_counter()
    with pytest.raises(EvalError) as e: run_lm_eval(model, ["arc_easy"], tokenizer=tok, limit=2, offline=True)
    msg = str(e.value)
    assert "'arc_easy'" in msg and "allenai/ai2_arc" in msg and "Hugging Face Hub" in msg and "include_path" in msg
    print(f"offline hub task refused in {time.perf_counter() - t0:.2f} s: {msg[:160]}…")


def test_model_folder_that_is_not_a_model(tmp_path, tiny_model):
    with pytest.raises(EvalError, match="does not exist"): Evaluator(tmp_path / "nope")
    empty = tmp_path / "empty"; empty.mkdir()
    with pytest.raises(EvalError, match=r"not a model folder: no config.json and no model weights"): Evaluator(empty)
    cfg_only = tmp_path / "cfg"; cfg_only.mkdir(); shutil.copy(Path(tiny_model) / "config.json", cfg_only)
    with pytest.raises(EvalError, match=r"no model weights \(\*.safetensors or \*.bin\). Found: config.json"): eval_main(cfg_only, "arithmetic")
    ad = tmp_path / "adapter"; ad.mkdir(); (ad / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model)}))
    with pytest.raises(EvalError, match="no adapter weights"): Evaluator(ad)
    (ad / "adapter_model.safetensors").write_bytes(b"")
    (ad / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/gone/base"}))
    with pytest.raises(EvalError, match="base model '/gone/base', which does not exist"): Evaluator(ad)
    with pytest.raises(EvalError, match="without a tokenizer"): Evaluator(torch.nn.Linear(2, 2))


@needs_lm_eval
def test_local_task_folder_with_include_function_and_relative_data(tmp_path, monkeypatch):
    "Relative data_files, an `include:` of a shared base YAML and a `!function` all work from another working directory."
    from lm_eval.tasks import TaskManager
    from aligntune.lmeval import localize_tasks, local_task_index
    src = tmp_path / "suite"; (src / "sub" / "data").mkdir(parents=True)
    (src / "sub" / "data" / "q.jsonl").write_text("".join(json.dumps({"question": f"q{i}", "answer": str(i)}) + "\n" for i in range(5)))
    (src / "_base.yaml").write_text("output_type: generate_until\ntest_split: test\ndoc_to_target: '{{answer}}'\n"
                                    "dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: sub/data/q.jsonl\n"
                                    "metric_list:\n  - metric: exact_match\nmetadata:\n  version: 1.0\n")
    (src / "sub" / "utils.py").write_text("def keep_odd(ds):\n    return ds.filter(lambda d: int(d['answer']) % 2 == 1)\n")
    (src / "sub" / "odd.yaml").write_text("include: ../_base.yaml\ntask: odd_q\n"   # data_files come from the base, relative to *its* folder
                                          "process_docs: !function utils.keep_odd\ndoc_to_text: '{{question}}'\n")
    assert set(local_task_index(src)) == {"odd_q"}
    monkeypatch.chdir(tmp_path)
    dirs = localize_tasks(src, tmp_path / "copy")
    task = TaskManager(include_path=[str(d) for d in dirs], include_defaults=False).load(["odd_q"])["tasks"]["odd_q"]
    assert [d["answer"] for d in task.test_docs()] == ["1", "3"]
    assert "sub/data/q.jsonl" in (src / "_base.yaml").read_text()   # the user's files are untouched
