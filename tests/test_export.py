"Export: merged weights, GGUF and Ollama Modelfiles match the trained model; runs export after their process is gone; bad requests fail before any work."
import json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest
from conftest import aligntune_cmd

REPO = Path(__file__).parent.parent
pytestmark = pytest.mark.usefixtures("one_torch_thread")

def check(res, name):
    "The row of `res.checks` named `name` (by prefix)."
    rows = [c for c in res.checks if c["check"].startswith(name)]
    assert len(rows) == 1, (name, res.table())
    return rows[0]

def nudged_adapter(folder, arch="qwen2", seed=0):
    "A LoRA adapter on the tiny model with random (non-zero) B matrices, saved with its tokenizer: an adapter that does something, built in a second."
    import torch
    from aligntune.models import load_model, tiny_model_path, add_lora
    from aligntune.config import PeftParams
    base, tok = load_model(tiny_model_path(arch=arch), precision="fp32")
    m = add_lora(base, PeftParams(enabled=True, r=4, lora_dropout=0.0))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n: p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    m.save_pretrained(folder); tok.save_pretrained(folder)
    return Path(folder)

# --- fast: built adapters, no training ----------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_merged_equals_adapter_and_differs_from_base(arch, tmp_path):
    from aligntune.export import export
    res = export(nudged_adapter(tmp_path / "adapter", arch), to="merged", out=tmp_path / "merged", quiet=True)
    n = len(res.probes)
    assert check(res, "greedy output identical")["value"] == f"{n}/{n}"
    assert check(res, "max logit difference")["value"] < 1e-3
    assert check(res, "differs from base")["value"] > 1e-3  # the adapter moved the logits
    assert res.ok
    cfg = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert cfg["model_type"] == arch and not (tmp_path / "merged" / "adapter_config.json").exists()
    # the merged folder loads as a plain model
    from aligntune.models import load_model
    m, _ = load_model(str(tmp_path / "merged"), precision="fp32")
    assert not hasattr(m, "peft_config")

def test_untrained_adapter_is_reported_as_equal_to_base(tmp_path):
    "A LoRA adapter that never trained (B = 0) merges into the base model unchanged: the export says so."
    from aligntune.models import load_model, tiny_model_path, add_lora
    from aligntune.config import PeftParams
    from aligntune.export import export
    base, tok = load_model(tiny_model_path(), precision="fp32")
    m = add_lora(base, PeftParams(enabled=True, r=4))
    m.save_pretrained(tmp_path / "a"); tok.save_pretrained(tmp_path / "a")
    with pytest.warns(UserWarning, match="differs from base"):
        res = export(tmp_path / "a", to="merged", out=tmp_path / "m", quiet=True)
    assert not res.ok and check(res, "differs from base")["ok"] is False
    # the CLI keeps the export for inspection and exits 1
    from aligntune.cli import main
    with pytest.warns(UserWarning): assert main(["export", str(tmp_path / "a"), "--out", str(tmp_path / "m2")]) == 1
    assert (tmp_path / "m2" / "config.json").exists()
    assert main(["export", str(tmp_path / "a"), "--to", "gguf", "--out", str(tmp_path / "m2")]) == 2  # not empty: a user error

@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_gguf_f16_reads_back_like_the_adapter(arch, tmp_path):
    import gguf
    from aligntune.export import export
    res = export(nudged_adapter(tmp_path / "adapter", arch), to="gguf", quant="f16", out=tmp_path / "g", quiet=True)
    assert check(res, "top-1 agreement")["value"] >= 0.99 and check(res, "mean KL")["value"] < 1e-3, res.table()
    print(f"{arch} f16: top-1 {check(res, 'top-1')['value']:.4f}, KL {check(res, 'mean KL')['value']:.3g}")
    # transformers rebuilds the Qwen2 tokenizer from the GGUF metadata and it encodes alike; its converter cannot yet
    # rebuild a gpt2-style vocabulary without a BOS token under the llama architecture, which the table says
    tk = check(res, "tokenizer read back from GGUF")
    assert tk["ok"] is True if arch == "qwen2" else tk["ok"] in (True, None), tk
    r = gguf.GGUFReader(str(tmp_path / "g" / "adapter-f16.gguf"))
    names = {t.name: t.tensor_type.name for t in r.tensors}
    assert names["blk.0.attn_q.weight"] == "F16" and names["blk.0.attn_norm.weight"] == "F32"
    assert ("output.weight" in names) == (arch == "llama")  # the tiny Llama has its own output layer; Qwen2 ties it
    assert bytes(r.fields["general.architecture"].parts[-1]).decode() == arch
    assert bytes(r.fields["tokenizer.ggml.model"].parts[-1]).decode() == "gpt2"
    assert "tokenizer.chat_template" in r.fields and "tokenizer.ggml.merges" in r.fields

def test_unsupported_architecture_fails_before_any_work(tmp_path):
    "A model folder of an architecture the GGUF writer lacks: the error names the supported ones; nothing is loaded or written."
    from aligntune.export import export, ExportError
    folder = tmp_path / "gpt2"; folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))  # no weights at all
    for to in ("gguf", "ollama"):
        with pytest.raises(ExportError) as e: export(folder, to=to)
        assert "supports the architectures qwen2, llama" in str(e.value) and "'gpt2'" in str(e.value) and "to='merged'" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt2"]
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]

def test_unsupported_architecture_of_a_run_fails_before_the_model_loads(tmp_path, monkeypatch):
    "The check reads the config only: a run whose model is a GPT-2 fails without loading anything."
    from aligntune.export import export, ExportError
    import aligntune.models as models
    run = tmp_path / "run"; (run / "model").mkdir(parents=True)
    (run / "config.yaml").write_text("algorithm: sft\n")
    (run / "model" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    loaded = []
    monkeypatch.setattr(models, "load_model", lambda *a, **k: loaded.append(a))
    with pytest.raises(ExportError, match="supports the architectures"): export(run, to="gguf", quant="q8_0")
    assert loaded == [] and not (run / "exports").exists()

def test_bad_target_and_quant_name_the_choices(tmp_path):
    from aligntune.export import export, ExportError
    with pytest.raises(ExportError, match=r"to='onnx'.*merged, gguf, ollama"): export(tmp_path, to="onnx")
    with pytest.raises(ExportError, match=r"quant='q4_k_m'.*f16, bf16, q8_0.*llama-quantize"): export(tmp_path, to="gguf", quant="q4_k_m")
    with pytest.raises(ExportError, match="does not exist"): export(tmp_path / "missing", to="gguf")

def test_never_overwrites(tmp_path):
    "A non-empty out= is refused and left as it was; without out= every export gets a new numbered folder."
    from aligntune.export import export, ExportError
    adapter = nudged_adapter(tmp_path / "adapter")
    mine = tmp_path / "mine"; mine.mkdir(); (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not empty"): export(adapter, to="merged", out=mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    a = export(adapter, to="gguf", quant="f16", quiet=True); b = export(adapter, to="gguf", quant="f16", quiet=True)
    assert (a.path.name, b.path.name) == ("adapter-gguf-f16", "adapter-gguf-f16-2")
    assert (a.path / "adapter-f16.gguf").exists() and (b.path / "adapter-f16.gguf").exists()
    empty = tmp_path / "empty"; empty.mkdir()
    assert export(adapter, to="gguf", quant="f16", out=empty, quiet=True).path == empty and (empty / "adapter-f16.gguf").exists()

# --- Ollama templates ---------------------------------------------------------------------------------------------

LLAMA3 = ("{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
QWEN25 = ("{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
          "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

def tokenizer_with(template):
    from aligntune.models import load_tokenizer, tiny_model_path
    tok = load_tokenizer(tiny_model_path())
    if template == "llama3":
        tok.add_special_tokens({"bos_token": "<|begin_of_text|>", "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
        tok.chat_template = LLAMA3
    elif template == "qwen25": tok.chat_template = QWEN25
    return tok

CONVERSATIONS = [
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "And 3+3?"}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "tell me {{ .Secret }} and \"quotes\""}],
    [{"role": "user", "content": "one turn"}],
]

@pytest.mark.parametrize("template", ["chatml", "qwen25", "llama3"])
def test_modelfile_template_renders_like_the_chat_template(template):
    from aligntune.export import modelfile, render_modelfile, read_modelfile
    tok = tokenizer_with(template)
    mf = modelfile("m.gguf", tok)
    for conv in CONVERSATIONS:
        assert render_modelfile(mf, conv) == tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True), (template, conv)
    parsed = read_modelfile(mf)
    assert parsed["system"] == ("You are a helpful assistant." if template == "qwen25" else None)
    assert parsed["stop"] == {"chatml": ["<|im_end|>"], "qwen25": ["<|im_end|>"], "llama3": ["<|im_end|>", "<|eot_id|>"]}[template]
    assert mf.startswith("FROM ./m.gguf\n")

def test_template_that_drops_content_is_refused():
    from aligntune.export import modelfile, ExportError
    tok = tokenizer_with("chatml")
    tok.chat_template = "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}{% endif %}{% endfor %}"
    with pytest.raises(ExportError, match="cannot be written as an Ollama template"): modelfile("m.gguf", tok)

def test_ollama_export_checks_its_template(tmp_path):
    from aligntune.export import export
    res = export(nudged_adapter(tmp_path / "adapter"), to="ollama", quant="f16", out=tmp_path / "o", quiet=True)
    assert check(res, "template = chat template (with system)")["ok"] and check(res, "template = chat template (no system)")["ok"]
    assert sorted(res.files) == ["Modelfile", "adapter-f16.gguf"] and res.ok

def test_push_to_hub_offline_error_names_the_fix_and_hides_the_token(tmp_path, monkeypatch):
    from aligntune.export import push_to_hub, ExportError
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(ExportError) as e: push_to_hub(tmp_path, "someone/tiny-gguf", token="hf_DoNotShowMe")
    msg = str(e.value)
    assert "HF_HUB_OFFLINE" in msg and "someone/tiny-gguf" in msg and "hf_DoNotShowMe" not in msg
    with pytest.raises(ExportError, match="not an export folder"): push_to_hub(tmp_path / "none", "someone/x")

# --- slow: trained runs -------------------------------------------------------------------------------------------

def _train(arch, out, steps=20):
    from aligntune import create_sft_trainer
    from aligntune.models import tiny_model_path
    from aligntune.toy import addition_facts, sft_rows
    t = create_sft_trainer(tiny_model_path(arch=arch), sft_rows(addition_facts()), output_dir=str(out), max_steps=steps, batch_size=8,
                           learning_rate=5e-3, seed=0, use_peft=True, **{"peft.r": 8, "peft.lora_dropout": 0.0})
    t.train()
    return t

@pytest.mark.slow
@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_trained_lora_exports_merged_and_gguf(arch, tmp_path):
    "A LoRA SFT run on each tiny model: merged equals the adapter and differs from the base; GGUF f16 and q8_0 agree on >= 99% of top-1 tokens."
    t = _train(arch, tmp_path / "run")
    res = {"merged": t.export(to="merged", quiet=True)}
    for q in ("f16", "q8_0"): res[q] = t.export(to="gguf", quant=q, n_probes=16, quiet=True)
    n = len(res["merged"].probes)
    assert check(res["merged"], "greedy output identical")["value"] == f"{n}/{n}"
    assert check(res["merged"], "differs from base")["value"] > 1e-3
    for q in ("f16", "q8_0"):
        top1, kl = check(res[q], "top-1 agreement")["value"], check(res[q], "mean KL")["value"]
        print(f"{arch} {q}: top-1 {top1:.4f} over {check(res[q], 'positions')['value']} positions of {len(res[q].probes)} probes, mean KL {kl:.3g}")
        assert top1 >= 0.99 and 0 <= kl < (1e-3 if q == "f16" else 1e-2), res[q].table()
    assert all(r.ok for r in res.values())
    # the probes came from the training rows, and the run keeps every export's table
    assert res["f16"].probes[:2] == ["0+0=", "0+1="]
    recorded = json.loads((tmp_path / "run" / "export.json").read_text())["exports"]
    assert [(e["to"], e["quant"]) for e in recorded] == [("merged", None), ("gguf", "f16"), ("gguf", "q8_0")]
    assert sorted(p.name for p in (tmp_path / "run" / "exports").iterdir()) == ["gguf-f16", "gguf-q8_0", "merged"]

@pytest.mark.slow
def test_run_exports_after_its_process_exited(tmp_path):
    "Train in a subprocess that exits, then `aligntune export RUN --to ollama --quant q8_0` in another: probes from the run's dataset file."
    data = tmp_path / "facts.jsonl"
    from aligntune.toy import addition_facts, sft_rows
    data.write_text("".join(json.dumps(r) + "\n" for r in sft_rows(addition_facts())))
    run = tmp_path / "run"
    env = {**os.environ, "ALIGNTUNE_QUIET": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    code = textwrap.dedent(f"""
        import os, torch; torch.set_num_threads(1)
        from aligntune import create_sft_trainer
        from aligntune.models import tiny_model_path
        t = create_sft_trainer(tiny_model_path(), {str(data)!r}, output_dir={str(run)!r}, max_steps=20, batch_size=8, learning_rate=5e-3,
                               seed=0, use_peft=True, **{{"peft.r": 8, "peft.lora_dropout": 0.0}})
        t.train(); print("PID", os.getpid())""")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    pid = int(p.stdout.split("PID")[-1].split()[0])
    with pytest.raises(ProcessLookupError): os.kill(pid, 0)  # the training process is gone
    from aligntune.runs import Run
    assert Run(run).status.get("status") != "running"
    e = subprocess.run(aligntune_cmd() + ["export", str(run), "--to", "ollama", "--quant", "q8_0"], env=env, capture_output=True, text=True, timeout=900)
    assert e.returncode == 0, e.stdout[-2000:] + e.stderr[-3000:]
    assert "top-1 agreement" in e.stdout and "template = chat template" in e.stdout
    rec = json.loads((run / "export.json").read_text())["exports"][-1]
    assert rec["to"] == "ollama" and rec["ok"] and rec["probes"][:2] == ["0+0=", "0+1="]  # probes from facts.jsonl
    top1 = next(c for c in rec["checks"] if c["check"] == "top-1 agreement")["value"]
    assert top1 >= 0.99
    out = Path(rec["path"])
    assert out.parent == run / "exports" and sorted(p.name for p in out.iterdir()) == ["Modelfile", "export.json", "run-q8_0.gguf"]
    # exporting again never touches the first export; a user error exits 2 with one line
    again = subprocess.run(aligntune_cmd() + ["export", str(run), "--to", "gguf", "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and again.stderr.strip().count("\n") == 0 and "not empty" in again.stderr

@pytest.mark.slow
def test_ppo_trainer_exports(tmp_path):
    "The PPO engine's policy adapter exports like any trainer's."
    from aligntune import create_rl_trainer
    from aligntune.models import tiny_model_path
    from aligntune.toy import addition_facts, prompt_rows
    def digits(prompts, completions, **kw): return [sum(ch.isdigit() for ch in str(c)) / max(len(str(c)), 1) for c in completions]
    t = create_rl_trainer(tiny_model_path(), prompt_rows(addition_facts()[:16]), algorithm="ppo", reward_functions=[digits],
                          output_dir=str(tmp_path / "ppo"), max_steps=2, batch_size=8, max_completion_length=4, num_ppo_epochs=1,
                          num_mini_batches=2, learning_rate=1e-3, use_peft=True, seed=0)
    t.train()
    res = t.export(to="merged", quiet=True)
    n = len(res.probes)
    assert check(res, "greedy output identical")["value"] == f"{n}/{n}" and check(res, "differs from base")["value"] > 0
    assert not (res.path / "value").exists()  # the critic is not part of the exported model

def test_full_fine_tune_in_a_run_is_compared_with_its_starting_model(tmp_path):
    "A run's full fine-tune (no adapter): merged is the model as is, compared with the model the run started from (config.yaml)."
    import torch, yaml
    from aligntune.models import load_model, tiny_model_path
    from aligntune.export import export
    run = tmp_path / "run"; run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"algorithm": "sft", "model": {"name_or_path": str(tiny_model_path())}}))
    m, tok = load_model(tiny_model_path(), precision="fp32")
    with torch.no_grad(): m.model.norm.weight.mul_(1.5)
    m.save_pretrained(run / "model"); tok.save_pretrained(run / "model")
    res = export(run, quiet=True)
    n = len(res.probes)
    assert res.path == run / "exports" / "merged" and res.ok
    assert check(res, "greedy output identical")["value"] == f"{n}/{n}" and check(res, "max logit difference")["value"] < 1e-3
    assert check(res, f"differs from base ({tiny_model_path()})")["value"] > 1e-3
    half = export(run, dtype="bf16", quiet=True)  # 16-bit on request: the logit difference is reported, not judged
    assert half.path.name == "merged-2" and json.loads((half.path / "config.json").read_text())["dtype"] == "bfloat16"
    assert check(half, "max logit difference")["ok"] is None and check(half, "max logit difference")["value"] > 0
    assert [e["to"] for e in json.loads((run / "export.json").read_text())["exports"]] == ["merged", "merged"]

def test_export_panel_shows_steps_table_and_errors(tmp_path):
    from aligntune.export import ExportPanel, EXPORT_STEPS
    panel = ExportPanel(nudged_adapter(tmp_path / "adapter"), to="ollama", quant="f16")
    panel.out.value = str(tmp_path / "o")
    res = panel.run()
    assert panel.steps() == {s: "done" for s in EXPORT_STEPS} and res.ok
    assert "all checks pass" in panel.table_html.value and "template = chat template" in panel.table_html.value
    assert not panel.button.disabled
    bad = tmp_path / "gpt2"; bad.mkdir(); (bad / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    p2 = ExportPanel(bad, to="gguf", quant="f16")
    assert p2.run(raise_errors=False) is None
    assert p2.steps()["check"] == "failed" and p2.steps()["load"] == "waiting"
    assert "supports the architectures qwen2, llama" in p2.table_html.value and "aligntune-error" in p2.table_html.value
