"""A table of bad inputs, each built in a temporary folder: the call must fail with our error class and a message naming the problem.

Most cases fail before any model loads; the model cases share the tiny model. `test_corpus_size` keeps the table at 150+ cases."""
import json, math, re, shutil
import pytest
from aligntune.config import ConfigError, UnifiedConfig, load_yaml, make_config, parse_set, apply_overrides
from aligntune.data import DataError, prepare_dataset, load_data
from aligntune.models import ModelError
from aligntune.rewards import RewardError

CASES = []  # (kind, id, error class, regex the message must match, function of the tmp folder that makes the call)

def case(kind, cid, exc, pattern):
    def deco(fn): CASES.append((kind, cid, exc, pattern, fn)); return fn
    return deco

def write(tmp, name, content):
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    return p

# ---------------------------------------------------------------- configs: fields
_FIELDS = [  # (id, UnifiedConfig kwargs, regex)
    ("lr-zero", dict(training=dict(learning_rate=0)), r"training\.learning_rate=0 "),
    ("lr-huge", dict(training=dict(learning_rate=5)), r"training\.learning_rate=5 .*small numbers"),
    ("lr-string", dict(training=dict(learning_rate="fast")), r"training\.learning_rate='fast'.*a number"),
    ("batch-zero", dict(training=dict(batch_size=0)), r"training\.batch_size=0 .*>= 1"),
    ("batch-float", dict(training=dict(batch_size=2.5)), r"training\.batch_size=2\.5 .*integer"),
    ("batch-bool", dict(training=dict(batch_size=True)), r"training\.batch_size=True .*integer"),
    ("grad-acc-neg", dict(training=dict(gradient_accumulation_steps=-1)), r"gradient_accumulation_steps=-1"),
    ("epochs-zero", dict(training=dict(num_epochs=0)), r"training\.num_epochs=0 "),
    ("max-steps-zero", dict(training=dict(max_steps=0)), r"training\.max_steps=0 .*num_epochs"),
    ("warmup-one", dict(training=dict(warmup_ratio=1.0)), r"training\.warmup_ratio=1\.0 .*< 1"),
    ("scheduler-typo", dict(training=dict(lr_scheduler_type="cosin")), r"lr_scheduler_type='cosin'.*Did you mean 'cosine'"),
    ("seed-negative", dict(training=dict(seed=-3)), r"training\.seed=-3"),
    ("logging-zero", dict(training=dict(logging_steps=0)), r"training\.logging_steps=0"),
    ("save-minutes-neg", dict(training=dict(save_minutes=-1)), r"training\.save_minutes=-1"),
    ("output-dir-empty", dict(training=dict(output_dir="")), r"training\.output_dir=''.*folder path"),
    ("report-to-typo", dict(training=dict(report_to="tensorbord")), r"training\.report_to='tensorbord'.*Did you mean 'tensorboard'"),
    ("report-to-number", dict(training=dict(report_to=3)), r"training\.report_to=3 "),
    ("sample-groups-neg", dict(training=dict(sample_groups=-1)), r"training\.sample_groups=-1"),
    ("precision-typo", dict(model=dict(precision="bf61")), r"model\.precision='bf61'.*one of"),
    ("precision-float16", dict(model=dict(precision="float16")), r"model\.precision='float16'.*'fp16'"),
    ("max-seq-tiny", dict(model=dict(max_seq_length=4)), r"model\.max_seq_length=4 .*>= 8"),
    ("trust-remote-str", dict(model=dict(trust_remote_code="yes")), r"model\.trust_remote_code='yes'.*true or false"),
    ("model-name-int", dict(model=dict(name_or_path=7)), r"model\.name_or_path=7 .*string"),
    ("chat-template-int", dict(model=dict(chat_template=5)), r"model\.chat_template=5 .*Jinja"),
    ("peft-r-zero", dict(peft=dict(enabled=True, r=0)), r"peft\.r=0 .*ranks"),
    ("peft-method-typo", dict(peft=dict(enabled=True, method="qlra")), r"peft\.method='qlra'.*Did you mean 'qlora'"),
    ("peft-dropout-one", dict(peft=dict(lora_dropout=1.0)), r"peft\.lora_dropout=1\.0"),
    ("peft-targets-empty", dict(peft=dict(target_modules=[])), r"peft\.target_modules=\[\]"),
    ("peft-targets-int", dict(peft=dict(target_modules=[1, 2])), r"peft\.target_modules=\[1, 2\]"),
    ("peft-bias-typo", dict(peft=dict(bias="some")), r"peft\.bias='some'"),
    ("qlora-not-enabled", dict(peft=dict(method="qlora")), r"peft\.method='qlora' with peft\.enabled=false"),
    ("system-prompt-int", dict(dataset=dict(system_prompt=123)), r"dataset\.system_prompt=123 .*string"),
    ("column-mapping-list", dict(dataset=dict(column_mapping=["q", "prompt"])), r"dataset\.column_mapping=\['q', 'prompt'\]"),
    ("max-samples-zero", dict(dataset=dict(max_samples=0)), r"dataset\.max_samples=0"),
    ("eval-size-frac", dict(dataset=dict(eval_size=1.5)), r"dataset\.eval_size=1\.5 .*fraction"),
    ("eval-both", dict(dataset=dict(eval_size=0.1, eval_split="test")), r"eval_size=0\.1 and dataset\.eval_split='test' are both set"),
    ("split-int", dict(dataset=dict(split=3)), r"dataset\.split=3 .*split name"),
    ("subset-int", dict(dataset=dict(subset=5)), r"dataset\.subset=5 .*string"),
    ("revision-int", dict(model=dict(revision=3)), r"model\.revision=3 .*string"),
    ("report-to-list-typo", dict(training=dict(report_to=["wandb", "tensorbord"])), r"training\.report_to=\['wandb', 'tensorbord'\]"),
    ("on-reward-error-bool", dict(training=dict(on_reward_error=True)), r"training\.on_reward_error=True "),
    ("max-seq-string", dict(model=dict(max_seq_length="512")), r"model\.max_seq_length='512' .*integer"),
    ("num-generations-one", dict(grpo=dict(num_generations=1)), r"grpo\.num_generations=1 .*at least 2"),
    ("temperature-zero", dict(grpo=dict(temperature=0)), r"grpo\.temperature=0 "),
    ("top-p-two", dict(grpo=dict(top_p=2)), r"grpo\.top_p=2 "),
    ("loss-type-typo", dict(grpo=dict(loss_type="dapoo")), r"grpo\.loss_type='dapoo'.*Did you mean 'dapo'"),
    ("group-divisibility", dict(training=dict(batch_size=3), grpo=dict(num_generations=2)), r"not divisible by grpo\.num_generations=2"),
    ("epsilon-high-low", dict(grpo=dict(epsilon=0.3, epsilon_high=0.1)), r"epsilon_high=0\.1 is below"),
    ("completion-too-long", dict(grpo=dict(max_completion_length=600)), r"max_completion_length=600 does not fit model\.max_seq_length=512"),
    ("dpo-beta-zero", dict(algorithm="dpo", dpo=dict(beta=0)), r"dpo\.beta=0 "),
    ("dpo-loss-typo", dict(algorithm="dpo", dpo=dict(loss_type="sigmod")), r"dpo\.loss_type='sigmod'.*Did you mean 'sigmoid'"),
    ("dpo-weights-len", dict(algorithm="dpo", dpo=dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0])), r"dpo\.loss_weights=\[1\.0\].*2 weight"),
    ("kto-weight-zero", dict(algorithm="kto", kto=dict(desirable_weight=0)), r"kto\.desirable_weight=0"),
    ("ppo-gamma-two", dict(algorithm="ppo", ppo=dict(gamma=2)), r"ppo\.gamma=2 "),
    ("ppo-value-mode", dict(algorithm="ppo", ppo=dict(value_mode="critic")), r"ppo\.value_mode='critic'"),
    ("algorithm-typo", dict(algorithm="grpoo"), r"grpoo.*Did you mean 'grpo'"),
    ("algorithm-int", dict(algorithm=5), r"algorithm.*5"),
    ("backend-typo", dict(backend=dict(backend="unslot")), r"backend\.backend='unslot'.*Did you mean 'unsloth'"),
    ("reward-weight-str", dict(rewards=[dict(name="length", weight="high")]), r"rewards\[length\]\.weight='high'"),
    ("reward-params-list", dict(rewards=[dict(name="length", params=[1])]), r"rewards\[length\]\.params=\[1\]"),
    ("reward-entry-int", dict(rewards=[5]), r"rewards\[\]=5 "),
    ("rewards-not-list", dict(rewards="length"), r"rewards='length' .*list"),
    ("group-not-mapping", dict(training=5), r"training=5 "),
    ("unknown-group-key", dict(training=dict(learnig_rate=1e-4)), r"'learnig_rate'.*Did you mean 'learning_rate'"),
]
for _id, _kw, _rx in _FIELDS:
    case("config", _id, ConfigError, _rx)(lambda tmp, kw=_kw: UnifiedConfig(**kw))

# ---------------------------------------------------------------- configs: the original AlignTune's flags, overrides
_FLAGS = [("fp16", True, r"fp16.*model\.precision='fp16'"), ("bf16", True, r"bf16.*model\.precision='bf16'"),
          ("load_in_4bit", True, r"load_in_4bit.*peft\.method='qlora'"), ("load_in_8bit", True, r"load_in_8bit.*peft\.method='qlora'"),
          ("device_map", "auto", r"device_map.*model\.precision"), ("use_fp16", True, r"use_fp16.*model\.precision='fp16'"),
          ("torch_dtype", "bfloat16", r"torch_dtype.*model\.precision"), ("task_type", "causal", r"task_type.*column")]
for _k, _v, _rx in _FLAGS:
    case("config", f"flag-{_k}", ConfigError, _rx)(lambda tmp, k=_k, v=_v: make_config(algorithm="sft", **{k: v}))
case("config", "flag-fp16-in-training", ConfigError, r"training\.fp16.*model\.precision='fp16'")(
    lambda tmp: UnifiedConfig(training=dict(fp16=True)))
case("config", "flag-load-in-4bit-in-model", ConfigError, r"model\.load_in_4bit.*peft\.method='qlora'")(
    lambda tmp: UnifiedConfig(model=dict(load_in_4bit=True)))
case("config", "override-unknown", ConfigError, r"Unknown setting 'learnin_rate'")(lambda tmp: make_config(algorithm="sft", learnin_rate=1e-4))
case("config", "override-other-algorithm", ConfigError, r"num_generations.*sft does not read it")(lambda tmp: make_config(algorithm="sft", num_generations=4))
case("config", "override-bad-group", ConfigError, r"Unknown config group 'trainig'")(lambda tmp: apply_overrides(UnifiedConfig(), {"trainig.seed": 1}))
case("config", "set-no-equals", ConfigError, r"--set 'learning_rate' is not valid: expected key=value")(lambda tmp: parse_set(["learning_rate"]))
case("config", "set-bad-yaml", ConfigError, r"--set 'training\.seed=\[1': the value '\[1' is not valid YAML")(lambda tmp: parse_set(["training.seed=[1"]))
case("config", "set-empty-key", ConfigError, r"--set '=3'.*key")(lambda tmp: parse_set(["=3"]))
case("config", "make-config-int", ConfigError, r"config='int'")(lambda tmp: make_config(5))

# ---------------------------------------------------------------- configs: YAML files
_YAMLS = [
    ("yaml-empty", "", r"is empty"),
    ("yaml-comments-only", "# nothing here\n", r"is empty"),
    ("yaml-duplicate-key", "algorithm: sft\ntraining:\n  seed: 1\n  seed: 2\n", r"'seed' appears twice.*lines 3 and 4"),
    ("yaml-duplicate-top", "algorithm: sft\nalgorithm: dpo\n", r"'algorithm' appears twice.*lines 1 and 2"),
    ("yaml-list-top", "- a\n- b\n", r"config=.*list.*mapping"),
    ("yaml-scalar-top", "just words\n", r"mapping"),
    ("yaml-bad-indent", "algorithm: sft\ntraining:\n  seed: 1\n bad: 2\n", r"Could not parse the YAML config: .*line 4"),
    ("yaml-tab", "algorithm: sft\ntraining:\n\tseed: 1\n", r"Could not parse the YAML config"),
    ("yaml-unknown-top", "algorithm: sft\nlearning_rate: 1e-4\n", r"'learning_rate'.*UnifiedConfig"),
    ("yaml-null-group", "algorithm: sft\ntraining:\n", r"training=None "),
    ("yaml-python-tag", "algorithm: !!python/object:os.system {}\n", r"Could not parse the YAML config"),
]
for _id, _text, _rx in _YAMLS:
    case("config", _id, ConfigError, _rx)(lambda tmp, t=_text: load_yaml(write(tmp, "c.yaml", t)))
case("config", "yaml-missing-file", ConfigError, r"'.*nope\.yaml' does not exist")(lambda tmp: load_yaml(tmp / "nope.yaml"))
case("config", "yaml-folder", ConfigError, r"is a folder, not a config file")(lambda tmp: load_yaml((tmp / "cfg.yaml").mkdir() or tmp / "cfg.yaml"))
case("config", "yaml-binary", ConfigError, r"is not a text file.*byte")(lambda tmp: load_yaml(write(tmp, "c.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")))
case("config", "yaml-utf16", ConfigError, r"is not a text file")(lambda tmp: load_yaml(write(tmp, "c.yaml", "algorithm: sft\n".encode("utf-16"))))

# ---------------------------------------------------------------- data files
def prep(tmp, name, content, algo="sft", **kw):
    return prepare_dataset(write(tmp, name, content), algo, **kw)

_DATA = [  # (id, file name, content, algorithm, regex)
    ("empty-jsonl", "d.jsonl", "", "sft", r"d\.jsonl' is empty"),
    ("blank-lines-jsonl", "d.jsonl", "\n\n  \n", "sft", r"d\.jsonl' is empty"),
    ("empty-csv", "d.csv", "", "sft", r"d\.csv' is empty"),
    ("header-only-csv", "d.csv", "prompt,completion\n", "sft", r"d\.csv' has a header .*no rows"),
    ("empty-json", "d.json", "", "sft", r"d\.json' is empty"),
    ("json-empty-array", "d.json", "[]", "sft", r"d\.json' holds no rows"),
    ("bad-json-line", "d.jsonl", "".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(6)) + '{"text": "oops}\n', "sft",
     r"d\.jsonl' line 7 is not valid JSON"),
    ("bad-json-line-2", "d.jsonl", '{"text": "a"}\n{text: b}\n', "sft", r"line 2 is not valid JSON"),
    ("array-as-row", "d.jsonl", '{"text": "a"}\n["b", "c"]\n', "sft", r"line 2 holds a list, not a row"),
    ("number-as-row", "d.jsonl", '{"text": "a"}\n42\n', "sft", r"line 2 holds a number, not a row"),
    ("string-as-row", "d.jsonl", '"just text"\n', "sft", r"line 1 holds a string, not a row"),
    ("json-object-not-rows", "d.json", '{"a": 1, "b": 2}', "sft", r"columns found \(a, b\)"),
    ("non-utf8-jsonl", "d.jsonl", b'{"text": "caf\xe9"}\n', "sft", r"d\.jsonl' is not UTF-8: byte 0xe9 at offset 13 \(line 1\)"),
    ("non-utf8-csv", "d.csv", b"text\nna\xefve\n", "sft", r"d\.csv' is not UTF-8: byte 0xef at offset 7 \(line 2\)"),
    ("mixed-types", "d.jsonl", '{"prompt": "a", "completion": "b"}\n{"prompt": 3, "completion": "c"}\n', "sft", r"d\.jsonl': Column 'prompt' mixes types: line 1 holds a str, line 2 a number"),
    ("nulls-prompt", "d.jsonl", '{"prompt": null, "completion": "b"}\n{"prompt": "x", "completion": "c"}\n', "sft", r"empty or null prompt"),
    ("all-null-column", "d.jsonl", '{"prompt": null, "completion": "b"}\n{"prompt": null, "completion": "c"}\n', "sft", r"prompt"),
    ("csv-ragged", "d.csv", "prompt,completion\na,b,c,d\n", "sft", r"d\.csv'"),
    ("dpo-identical", "d.jsonl", "".join(json.dumps(dict(prompt=f"q{i}", chosen="same", rejected="same")) + "\n" for i in range(5)), "dpo",
     r"5 of 5 rows have chosen == rejected"),
    ("dpo-mostly-identical", "d.jsonl", "".join(json.dumps(dict(prompt=f"q{i}", chosen="same", rejected="same" if i else "other")) + "\n" for i in range(5)), "dpo",
     r"4 of 5 rows have chosen == rejected"),
    ("dpo-empty-chosen", "d.jsonl", "".join(json.dumps(dict(prompt=f"q{i}", chosen="", rejected="no")) + "\n" for i in range(3)), "dpo", r"empty or null answer"),
    ("sft-empty-text", "d.jsonl", '{"text": ""}\n{"text": "  "}\n', "sft", r"No row of 2 is usable.*empty text"),
    ("sft-empty-completions", "d.jsonl", '{"prompt": "a", "completion": ""}\n', "sft", r"empty or null answer"),
    ("kto-one-label", "d.jsonl", '{"prompt": "a", "completion": "b", "label": true}\n{"prompt": "c", "completion": "d", "label": true}\n', "kto", r"All 2 rows are labelled good"),
    ("kto-bad-label", "d.jsonl", '{"prompt": "a", "completion": "b", "label": "maybe"}\n', "kto", r"label='maybe' is not a good/bad label"),
    ("grpo-no-prompt", "d.jsonl", '{"question_text": "a"}\n', "grpo", r"question_text"),
    ("dpo-no-rejected", "d.jsonl", '{"prompt": "a", "chosen": "b"}\n', "dpo", r"rejected"),
    ("unknown-extension", "d.xlsx", "a", "sft", r"unknown file type '\.xlsx'"),
    ("json-array-item-string", "d.json", '[{"text": "a"}, "b"]', "sft", r"d\.json' item 1 holds a string, not a row"),
    ("json-array-broken", "d.json", '[{"text": "a"},\n {"text": "b"\n]', "sft", r"d\.json' is not valid JSON: .* at line 3"),
    ("json-messages-vs-string", "d.jsonl", '{"messages": [{"role": "user", "content": "a"}]}\n{"messages": "b"}\n', "sft",
     r"Column 'messages' mixes types: line 1 holds a message list, line 2 a str"),
    ("tsv-ragged", "d.tsv", "prompt\tcompletion\na\tb\tc\n", "sft", r"d\.tsv' line 2 has 3 fields but the header has 2"),
    ("csv-header-then-blank", "d.csv", "prompt,completion\n\n,\n", "sft", r"has a header \(prompt, completion\) but no rows"),
    ("text-file-empty", "d.txt", "   \n", "sft", r"d\.txt' is empty"),
    ("latin1-json", "d.json", '[{"text": "déjà"}]'.encode("latin-1"), "sft", r"d\.json' is not UTF-8: byte 0xe9 at offset 12 \(line 1\)"),
    ("parquet-garbage", "d.parquet", b"not parquet at all", "sft", r"Could not read .*d\.parquet"),
]
for _id, _name, _content, _algo, _rx in _DATA:
    case("data", _id, DataError, _rx)(lambda tmp, n=_name, c=_content, a=_algo: prep(tmp, n, c, a))
case("data", "missing-path", DataError, r"Dataset path '\./no/such\.jsonl' does not exist")(lambda tmp: prepare_dataset("./no/such.jsonl", "sft"))
case("data", "empty-folder", DataError, r"holds no data files")(lambda tmp: prepare_dataset(str((tmp / "d").mkdir() or tmp / "d"), "sft"))
case("data", "empty-list", DataError, r"empty list")(lambda tmp: prepare_dataset([], "sft"))
case("data", "list-of-strings", DataError, r"must hold dicts")(lambda tmp: prepare_dataset(["a", "b"], "sft"))
case("data", "bad-split", DataError, r"Split 'tran' not found.*Did you mean 'train'")(lambda tmp: prepare_dataset([{"text": "a"}], "sft", split="tran"))
case("data", "column-mapping-missing", DataError, r"column_mapping names columns that are not in the dataset: \['q'\]")(
    lambda tmp: prepare_dataset([{"text": "a"}], "sft", column_mapping={"q": "prompt"}))
case("data", "system-prompt-text-rows", DataError, r"system_prompt cannot be added to plain text rows")(
    lambda tmp: prepare_dataset([{"text": "a"}], "sft", system_prompt="be nice"))
case("data", "in-memory-mixed", DataError, r"'prompt' mixes types")(lambda tmp: prepare_dataset([{"prompt": "a", "completion": "b"}, {"prompt": ["x"], "completion": "c"}], "sft"))
case("data", "in-memory-dpo-identical", DataError, r"3 of 3 rows have chosen == rejected")(
    lambda tmp: prepare_dataset([dict(prompt=f"p{i}", chosen="x", rejected="x") for i in range(3)], "dpo"))
case("data", "object-type", DataError, r"Cannot load a dataset from a int")(lambda tmp: prepare_dataset(5, "sft"))

# ---------------------------------------------------------------- models
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from aligntune.models import tiny_model_path
    return tiny_model_path()

def model_copy(tmp, tiny, drop=(), **files):
    d = tmp / "m"
    shutil.copytree(tiny, d)
    for f in drop: (d / f).unlink()
    for k, v in files.items(): write(d, k.replace("__", "."), v)
    return d

def load(path, **kw):
    from aligntune.models import load_model
    return load_model(str(path), precision="fp32", **kw)

MODEL_CASES = []
def mcase(cid, exc, pattern):
    def deco(fn): MODEL_CASES.append((cid, exc, pattern, fn)); return fn
    return deco

mcase("no-tokenizer", ModelError, r"has no tokenizer.*tokenizer\.json")(lambda tmp, t: load(model_copy(tmp, t, drop=("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"))))
mcase("truncated-safetensors", ModelError, r"model\.safetensors.*(truncated|corrupt)")(
    lambda tmp, t: load(model_copy(tmp, t, **{"model__safetensors": (t / "model.safetensors").read_bytes()[:1000]})))
mcase("garbage-safetensors", ModelError, r"model\.safetensors.*(truncated|corrupt)")(lambda tmp, t: load(model_copy(tmp, t, **{"model__safetensors": b"\x00" * 64})))
mcase("invalid-config-json", ModelError, r"config\.json.*not valid JSON.*line 1")(lambda tmp, t: load(model_copy(tmp, t, **{"config__json": "{'model_type': qwen2"})))
mcase("config-no-model-type", ModelError, r"config\.json.*model_type")(lambda tmp, t: load(model_copy(tmp, t, **{"config__json": "{}"})))
mcase("config-unknown-model-type", ModelError, r"model_type 'qwen99'")(
    lambda tmp, t: load(model_copy(tmp, t, **{"config__json": json.dumps({**json.loads((t / "config.json").read_text()), "model_type": "qwen99"})})))
def _other_tokenizer(tmp, t):
    from aligntune.models import build_tiny_model
    m = build_tiny_model(tmp / "m300", vocab_size=300)
    for f in ("tokenizer.json", "tokenizer_config.json"): shutil.copy(t / f, m / f)
    return load(m)
mcase("vocab-mismatch", ModelError, r"tokenizer has 51\d tokens but the model's embedding has 300 rows")(_other_tokenizer)
mcase("weights-wrong-shape", ModelError, r"(weights do not match|size mismatch|shape)")(
    lambda tmp, t: load(model_copy(tmp, t, **{"config__json": json.dumps({**json.loads((t / "config.json").read_text()), "hidden_size": 32})})))
mcase("lora-target-typo", ModelError, r"peft\.target_modules=\['qq_proj'\].*q_proj")(
    lambda tmp, t: load(t, peft=dict(enabled=True, target_modules=["qq_proj"])))
mcase("broken-chat-template", ModelError, r"chat template.*(syntax|could not)")(lambda tmp, t: load(t, chat_template="{% for m in messages %}{{ m.content }"))
mcase("chat-template-no-messages", ModelError, r"chat template.*renders nothing")(lambda tmp, t: load(t, chat_template="hello"))
mcase("qlora-on-cpu", ModelError, r"qlora.*CUDA GPU")(lambda tmp, t: load(t, peft=dict(enabled=True, method="qlora")))
mcase("folder-not-model", ModelError, r"is a folder but not a model")(lambda tmp, t: load((tmp / "x").mkdir() or tmp / "x"))
mcase("config-no-weights", ModelError, r"has a config\.json but no weights")(lambda tmp, t: load(model_copy(tmp, t, drop=("model.safetensors",))))
mcase("model-is-file", ModelError, r"is a file, not a model folder")(lambda tmp, t: load(write(tmp, "m.bin", b"x")))
mcase("model-missing", ModelError, r"does not exist")(lambda tmp, t: load(tmp / "nope"))

# ---------------------------------------------------------------- rewards
def rf(fn, on_error="stop"):
    from aligntune.rewards import FunctionReward
    r = FunctionReward(fn); r.on_error = on_error
    return r

P, C = ["p0", "p1", "p2"], ["a", "b", "c"]
def raises(prompts, completions, **kw): raise KeyError("answer")
def some_raise(prompts, completions, **kw): return [1 / 0 if c == "b" else 1.0 for c in completions]
def row_raise(text): return {"a": 1.0}[text]
def nan_fn(prompts, completions, **kw): return [1.0, float("nan"), 0.0]
def inf_fn(prompts, completions, **kw): return [1.0, 0.0, float("inf")]
def neg_inf_row(text): return -math.inf if text == "b" else 1.0
def str_fn(prompts, completions, **kw): return ["1.0", 0.0, 0.0]
def word_fn(prompts, completions, **kw): return [1.0, "good", 0.0]
def short_fn(prompts, completions, **kw): return [1.0]
def long_fn(prompts, completions, **kw): return [1.0] * 5
def none_fn(prompts, completions, **kw): return [None, None, None]
def dict_fn(prompts, completions, **kw): return [{"score": 1}] * 3
def list_fn(prompts, completions, **kw): return [[1.0]] * 3
def scalar_fn(prompts, completions, **kw): return 1.0
def gen_none(prompts, completions, **kw): return None

_REWARDS = [  # (id, function, regex)
    ("raises-everywhere", raises, r"reward 'raises' raised KeyError: 'answer' on row 0"),
    ("raises-on-row", some_raise, r"reward 'some_raise' raised ZeroDivisionError.* on row 1"),
    ("row-fn-raises", row_raise, r"reward 'row_raise' raised KeyError: 'b' on row 1"),
    ("nan", nan_fn, r"reward 'nan_fn' returned nan for row 1"),
    ("inf", inf_fn, r"reward 'inf_fn' returned inf for row 2"),
    ("neg-inf-row", neg_inf_row, r"reward 'neg_inf_row' returned -inf for row 1"),
    ("string-number", str_fn, r"reward 'str_fn' returned '1\.0' \(a str\) for row 0"),
    ("string-word", word_fn, r"reward 'word_fn' returned 'good' \(a str\) for row 1"),
    ("too-few", short_fn, r"reward 'short_fn' returned 1 scores for 3 completions"),
    ("too-many", long_fn, r"reward 'long_fn' returned 5 scores for 3 completions"),
    ("dict-scores", dict_fn, r"reward 'dict_fn' returned \{'score': 1\} \(a dict\) for row 0"),
    ("list-scores", list_fn, r"reward 'list_fn' returned \[1\.0\] \(a list\) for row 0"),
    ("scalar", scalar_fn, r"reward 'scalar_fn' returned 1\.0 \(a float\), not a list"),
    ("none-result", gen_none, r"reward 'gen_none' returned None \(a NoneType\), not a list"),
]
for _id, _fn, _rx in _REWARDS:
    case("rewards", _id, RewardError, _rx)(lambda tmp, f=_fn: rf(f)(prompts=P, completions=C))

def _sole_none(tmp):
    r = rf(none_fn); r._sole = True
    return r(prompts=P, completions=C)
case("rewards", "sole-reward-all-none", RewardError, r"reward 'none_fn' returned None for all 3 completions")(_sole_none)

def _unscored(tmp):
    from aligntune.rewards import check_scored
    return check_scored({"math_verify": [None, None], "length": [None, 0.5]}, reference_columns={"math_verify": "solution"})
case("rewards", "row-no-reward-scores", RewardError, r"row 0: no reward scored it.*math_verify.*'solution'")(_unscored)

def _registry(name, **params):
    from aligntune.rewards import get_reward_function
    return get_reward_function(name, **params)
case("rewards", "unknown-reward", RewardError, r"'exact_mach'.*Did you mean 'exact_match'")(lambda tmp: _registry("exact_mach"))
case("rewards", "unknown-param", RewardError, r"length.*'targt'")(lambda tmp: _registry("length", targt=3))
case("rewards", "bad-param-value", RewardError, r"length.*target")(lambda tmp: _registry("length", target=-5))
case("rewards", "not-callable", RewardError, r"needs a callable")(lambda tmp: rf(5))

def _preflight(rows, rewards, algo="grpo"):
    from aligntune.rewards import check_reward_columns, check_rewards_on_rows
    ds = check_reward_columns(prepare_dataset(rows, algo), rewards, notes=[])
    return check_rewards_on_rows(ds, rewards)

NUMINA = [dict(problem=f"What is {i}+{i}?", solution=f"```python\nprint({i}+{i})\n```") for i in range(4)]  # a solution column holding code
TLDR = [dict(prompt=f"post {i}", completion="") for i in range(4)]
case("rewards", "math-verify-unparseable-reference", DataError, r"math_verify' could not score the reference itself on any of the first 4 rows \(column 'solution'")(
    lambda tmp: _preflight(NUMINA, [dict(name="math_verify", params=dict(reference_column="solution"))]))
case("rewards", "rouge-empty-reference", DataError, r"rouge_l' compares against the column 'answer', which is empty in the first 4 rows")(lambda tmp: _preflight(TLDR, ["rouge_l"]))
case("rewards", "numeric-match-text-reference", DataError, r"numeric_match.*'answer'")(
    lambda tmp: _preflight([dict(prompt=f"q{i}", answer="blue") for i in range(3)], ["numeric_match"]))
case("rewards", "reference-column-missing", DataError, r"needs the column 'gold'")(
    lambda tmp: _preflight([dict(prompt="q", answer="1")], [dict(name="exact_match", params=dict(reference_column="gold"))]))
case("rewards", "reference-all-null", DataError, r"Column 'answer' is null in every row")(
    lambda tmp: _preflight([dict(prompt="q", answer=None), dict(prompt="r", answer=None)], ["exact_match"]))

# ---------------------------------------------------------------- trainers (before any model loads)
def rl(tmp, **kw):
    from aligntune import create_rl_trainer
    kw.setdefault("model_name", "aligntune:tiny"); kw.setdefault("dataset_name", [dict(prompt="1+1=", answer="2")] * 4)
    return create_rl_trainer(output_dir=str(tmp / "run"), backend="trl", **kw)

case("rewards", "grpo-no-reward", ConfigError, r"grpo needs a reward")(lambda tmp: rl(tmp, algorithm="grpo"))
case("rewards", "weights-length", ConfigError, r"reward_weights has 2 weights for 1 reward")(lambda tmp: rl(tmp, algorithm="grpo", reward_functions=["exact_match"], reward_weights=[1, 2]))
case("rewards", "dpo-with-reward", ConfigError, r"takes no reward functions")(
    lambda tmp: rl(tmp, algorithm="dpo", reward_functions=["length"], dataset_name=[dict(prompt="a", chosen="b", rejected="c")] * 2))
case("rewards", "on-error-typo", ConfigError, r"training\.on_reward_error='skp'.*'skip'")(lambda tmp: UnifiedConfig(training=dict(on_reward_error="skp")))
case("config", "qlora-trl-no-gpu", ModelError, r"qlora.*CUDA GPU")(
    lambda tmp: rl(tmp, algorithm="grpo", reward_functions=["exact_match"], **{"peft.enabled": True, "peft.method": "qlora"}))
case("config", "report-to-typo-trainer", ConfigError, r"report_to='wandbb'.*Did you mean 'wandb'")(
    lambda tmp: rl(tmp, algorithm="grpo", reward_functions=["exact_match"], report_to="wandbb"))

# ---------------------------------------------------------------- CLI: one line on stderr, exit 2
def cli(tmp, capsys, *argv):
    from aligntune.cli import main
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err

_CLI = [  # (id, argv builder, regex)
    ("train-missing", lambda t: ["train", t / "nope.yaml"], r"neither a config file nor a recipe"),
    ("train-folder", lambda t: ["train", t], r"is a folder, not a config file"),
    ("train-binary", lambda t: ["train", write(t, "c.yaml", b"\xff\xfe\x00binary")], r"is not a text file"),
    ("train-empty-yaml", lambda t: ["train", write(t, "c.yaml", "")], r"is empty"),
    ("train-dup-yaml", lambda t: ["train", write(t, "c.yaml", "algorithm: sft\nalgorithm: dpo\n")], r"'algorithm' appears twice"),
    ("train-set-bad-yaml", lambda t: ["train", "sft-tiny", "--set", "training.seed=[1"], r"not valid YAML"),
    ("train-set-bad-value", lambda t: ["train", "sft-tiny", "--set", "training.batch_size=0"], r"training\.batch_size=0"),
    ("train-set-unknown", lambda t: ["train", "sft-tiny", "--set", "trainig.seed=1"], r"Unknown config group 'trainig'"),
    ("train-set-no-equals", lambda t: ["train", "sft-tiny", "--set", "seed"], r"expected key=value"),
    ("train-max-steps-zero", lambda t: ["train", "sft-tiny", "--max-steps", "0"], r"--max-steps.*0.*>= 1"),
    ("train-max-steps-text", lambda t: ["train", "sft-tiny", "--max-steps", "ten"], r"--max-steps.*'ten'"),
    ("train-backend-typo", lambda t: ["train", "sft-tiny", "--backend", "trll"], r"--backend.*'trll'"),
    ("train-recipe-typo", lambda t: ["train", "sft-tny"], r"Did you mean 'sft-tiny'"),
    ("train-unsloth-no-fallback", lambda t: ["train", "sft-tiny", "-o", t / "r", "--set", "backend.backend=unsloth", "--set", "backend.fallback=false"],
     r"[Uu]nsloth"),
    ("train-output-is-file", lambda t: ["train", "sft-tiny", "-o", write(t, "f.txt", "x")], r"f\.txt"),
    ("eval-limit-negative", lambda t: ["eval", "--model", "aligntune:tiny", "--task", "arithmetic", "--limit", "-1"], r"--limit.*-1.*>= 1"),
    ("eval-limit-zero", lambda t: ["eval", "--model", "aligntune:tiny", "--task", "arithmetic", "--limit", "0"], r"--limit.*0.*>= 1"),
    ("eval-model-missing", lambda t: ["eval", "--model", t / "nope", "--task", "arithmetic"], r"does not exist"),
    ("eval-no-task", lambda t: ["eval", "--model", "aligntune:tiny"], r"--task"),
    ("demo-scale-negative", lambda t: ["demo", "-o", t / "d", "--scale", "-1"], r"--scale.*-1.*> 0"),
    ("demo-scale-zero", lambda t: ["demo", "-o", t / "d", "--scale", "0"], r"--scale.*0.*> 0"),
    ("demo-scale-nan", lambda t: ["demo", "-o", t / "d", "--scale", "nan"], r"--scale.*nan"),
    ("demo-seed-negative", lambda t: ["demo", "-o", t / "d", "--seed", "-2"], r"--seed.*-2.*>= 0"),
    ("train-set-report-to", lambda t: ["train", "sft-tiny", "--set", "training.report_to=wandbb"], r"report_to='wandbb'.*Did you mean 'wandb'"),
    ("train-set-fp16", lambda t: ["train", "sft-tiny", "--set", "fp16=true"], r"fp16.*model\.precision='fp16'"),
    ("eval-limit-text", lambda t: ["eval", "--model", "aligntune:tiny", "--task", "arithmetic", "--limit", "all"], r"--limit: 'all' is not an integer"),
    ("status-not-folder", lambda t: ["status", t / "nope"], r"is not a folder"),
    ("unknown-command", lambda t: ["trian"], r"trian"),
]

@pytest.mark.parametrize("cid,argv,rx", _CLI, ids=[c[0] for c in _CLI])
def test_cli_bad_input(cid, argv, rx, tmp_path, capsys):
    try: rc, err = cli(tmp_path, capsys, *argv(tmp_path))
    except SystemExit as e: rc, err = e.code, capsys.readouterr().err  # argparse's own refusals
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(rx, lines[0]), lines[0]

# ---------------------------------------------------------------- the table runs
@pytest.mark.parametrize("kind,cid,exc,rx,fn", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_input(kind, cid, exc, rx, fn, tmp_path):
    with pytest.raises(exc) as e: fn(tmp_path)
    assert re.search(rx, str(e.value), flags=re.S), f"{type(e.value).__name__}: {e.value}"

@pytest.mark.parametrize("cid,exc,rx,fn", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_bad_model(cid, exc, rx, fn, tmp_path, tiny):
    with pytest.raises(exc) as e: fn(tmp_path, tiny)
    assert re.search(rx, str(e.value), flags=re.S), f"{type(e.value).__name__}: {e.value}"

def test_corpus_size():
    by = {}
    for c in CASES: by[c[0]] = by.get(c[0], 0) + 1
    by["models"] = len(MODEL_CASES); by["cli"] = len(_CLI)
    assert sum(by.values()) >= 150, by

# ---------------------------------------------------------------- runs: a failing reward stops the run, or is counted when asked
def _grpo(tiny, tmp, reward, **kw):
    from aligntune import create_rl_trainer
    from aligntune.toy import addition_facts, prompt_rows
    return create_rl_trainer(str(tiny), prompt_rows(addition_facts())[:8], algorithm="grpo", reward_functions=reward, backend="trl",
                             output_dir=str(tmp / "run"), max_steps=2, batch_size=4, num_generations=4, max_completion_length=4, **kw)

def nan_first(completions, **kw):
    "NaN for the first completion of a batch."
    return [float("nan")] + [1.0] * (len(completions) - 1)

def make_flaky():
    "A per-row reward that raises on the second completion of every batch of four."
    calls = [0]
    def flaky(text):
        calls[0] += 1
        return {}["missing"] if calls[0] % 4 == 2 else 1.0
    return flaky

def test_failing_reward_stops_the_run(tiny, tmp_path):
    from aligntune import Run
    t = _grpo(tiny, tmp_path, [make_flaky()])
    with pytest.raises(RewardError, match=r"reward 'flaky' raised KeyError: 'missing' on row 1 \(completion .*on_reward_error='skip'"): t.train()
    assert Run.load(tmp_path / "run").status["status"] == "failed"

def test_nan_reward_stops_the_run(tiny, tmp_path):
    with pytest.raises(RewardError, match=r"reward 'nan_first' returned nan for row 0"): _grpo(tiny, tmp_path, [nan_first]).train()

def test_sample_recorder_takes_inf():
    from aligntune.backends.trl import group_advantages, SampleTap
    adv = group_advantages([math.inf, 0.0, 1.0, 0.0], 2)
    assert math.isnan(adv[0]) and adv[2:] == pytest.approx([1.0, -1.0], abs=1e-3)
    tap = SampleTap(["r"], [1.0], 2)
    tap.record("r", ["p", "p"], ["a", "b"], [math.inf, 0.0])
    assert tap.flush()[0]["reward"] == math.inf

def test_skipped_reward_rows_are_counted(tiny, tmp_path):
    from aligntune import Run
    res = _grpo(tiny, tmp_path, [make_flaky(), "length"], on_reward_error="skip").train()
    assert res["status"] == "finished"
    m = Run.load(tmp_path / "run").metrics
    skipped = [x for x in m["rewards/skipped"] if x == x]
    assert skipped and skipped[-1] >= 2 and skipped == sorted(skipped), skipped  # one per batch at least, cumulative

def test_rl_run_records_its_rewards_and_algorithm(tiny, tmp_path):
    import yaml
    from aligntune import create_rl_trainer, Run
    from aligntune.toy import addition_facts, prompt_rows
    t = create_rl_trainer(str(tiny), prompt_rows(addition_facts())[:8], algorithm="dapo", reward_functions=["numeric_match"], backend="trl",
                          output_dir=str(tmp_path / "run"), max_steps=1, batch_size=4, num_generations=4, max_completion_length=4,
                          mask_truncated_completions=False)
    t.train()
    run = Run.load(tmp_path / "run")
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert [r["name"] for r in cfg["rewards"]] == ["numeric_match"]
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status.get("algorithm") == "dapo", status

def test_all_prompts_too_long_fails_before_training(tiny, tmp_path):
    from aligntune import create_rl_trainer
    rows = [dict(prompt="1+1= " * 40, answer="2") for _ in range(4)]
    t = create_rl_trainer(str(tiny), rows, algorithm="grpo", reward_functions=["numeric_match"], backend="trl", output_dir=str(tmp_path / "run"),
                          max_steps=1, batch_size=4, num_generations=4, max_completion_length=8, max_seq_length=32)
    with pytest.raises(DataError, match=r"All 4 prompts checked are longer than the 24 tokens left for them .*the longest has \d+ tokens.*Raise model\.max_seq_length to at least"):
        t.train()
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or not (tmp_path / "run" / "metrics.jsonl").read_text().strip()

def _cuda_and_bnb():
    import importlib.util
    try:
        import torch
        return torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None
    except ImportError: return False

@pytest.mark.skipif(not _cuda_and_bnb(), reason="QLoRA needs a CUDA GPU and bitsandbytes")
def test_qlora_on_trl_quantises(tiny, tmp_path):
    from aligntune import create_rl_trainer
    t = create_rl_trainer(str(tiny), [dict(prompt="1+1=", answer="2")] * 4, algorithm="grpo", reward_functions=["numeric_match"], backend="trl",
                          output_dir=str(tmp_path / "run"), max_steps=1, batch_size=4, num_generations=4, max_completion_length=4,
                          **{"peft.enabled": True, "peft.method": "qlora", "peft.target_modules": ["q_proj", "v_proj"]})
    t.setup()
    kinds = {type(m).__name__ for m in t.trl_trainer.model.modules()}
    assert "Linear4bit" in kinds, kinds
    assert t.train()["status"] == "finished"

def test_qlora_refuses_an_unquantised_model(tiny, tmp_path):
    from aligntune import create_rl_trainer
    from aligntune.models import load_model
    model, tok = load_model(str(tiny), precision="fp32")
    t = create_rl_trainer(model, [dict(prompt="1+1=", answer="2")] * 4, algorithm="grpo", reward_functions=["numeric_match"], backend="trl",
                          tokenizer=tok, output_dir=str(tmp_path / "run"), max_steps=1, batch_size=4, num_generations=4, max_completion_length=4,
                          **{"peft.enabled": True, "peft.method": "qlora"}) if _cuda_and_bnb() else None
    if t is None:  # without a GPU the refusal comes when the trainer is created
        with pytest.raises(ModelError, match="qlora.*needs a CUDA GPU"):
            create_rl_trainer(model, [dict(prompt="1+1=", answer="2")] * 4, algorithm="grpo", reward_functions=["numeric_match"], backend="trl",
                              tokenizer=tok, output_dir=str(tmp_path / "run"), **{"peft.enabled": True, "peft.method": "qlora"})
        return
    with pytest.raises(ModelError, match="not loaded in 4-bit"): t.setup()

def test_ppo_stops_on_an_infinite_reward(tiny, tmp_path):
    from aligntune import create_rl_trainer
    from aligntune.toy import addition_facts, prompt_rows
    def inf_last(completions, **kw): return [0.0] * (len(completions) - 1) + [math.inf]
    t = create_rl_trainer(str(tiny), prompt_rows(addition_facts())[:8], algorithm="ppo", reward_functions=[inf_last], backend="trl",
                          output_dir=str(tmp_path / "run"), max_steps=1, batch_size=4, max_completion_length=4, num_ppo_epochs=1)
    with pytest.raises(RewardError, match=r"reward 'inf_last' returned inf for row 3"): t.train()
