"The fit estimate against real peak memory: CPU RSS of short SFT runs at two widths, full fine-tune and LoRA."
import json, os, subprocess, sys, textwrap
import pytest
from aligntune.config import UnifiedConfig
from aligntune.fit import estimate, plan_from_config, fit_report, model_shape

BUILD = textwrap.dedent('''
    import sys
    from pathlib import Path
    from transformers import Qwen2Config, AutoModelForCausalLM, AutoTokenizer
    from aligntune import tiny_model_path
    h, d = int(sys.argv[1]), Path(sys.argv[2])
    cfg = Qwen2Config(hidden_size=h, intermediate_size=4 * h, num_hidden_layers=4, num_attention_heads=h // 64, num_key_value_heads=h // 64,
                      vocab_size=512, tie_word_embeddings=True, max_position_embeddings=512, eos_token_id=3, pad_token_id=0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(d); AutoTokenizer.from_pretrained(tiny_model_path()).save_pretrained(d)
''')

# The measured process only loads and trains (the model is built in another one, so its copy never counts).
# Training is what the estimate speaks of, so the peak is taken over train() alone, with the weights in the
# process's own memory as a GPU run holds them on the device: loaded weights are memory-mapped file pages, which
# the kernel may drop under pressure, and then a frozen (LoRA) base counted only in part.
RUN = textwrap.dedent('''
    import sys, json, gc, re
    from pathlib import Path
    method, d = sys.argv[1], Path(sys.argv[2])
    from aligntune import create_sft_trainer
    from aligntune.toy import addition_facts, sft_rows
    t = create_sft_trainer(str(d), sft_rows(addition_facts())[:32], output_dir=str(d / "run"), max_steps=3, batch_size=4,
                           max_seq_length=64, use_peft=method == "lora")
    t.setup()
    for p in t.model.parameters(): p.data = p.data.clone()
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f: f.write("5")  # reset the peak (VmHWM) to the current RSS
    t.train()
    hwm = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
    print(json.dumps({"maxrss_mib": hwm / 1024}))
''')

def _python(*args):
    env = {**os.environ, "ALIGNTUNE_QUIET": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout

def _peak(h, method, folder):
    if not (folder / "config.json").exists(): _python(BUILD, str(h), str(folder))
    return json.loads(_python(RUN, method, str(folder)).strip().splitlines()[-1])["maxrss_mib"]

def _estimate_mib(folder, method):
    cfg = UnifiedConfig(algorithm="sft", model={"name_or_path": str(folder), "max_seq_length": 64}, training={"batch_size": 4},
                        peft={"enabled": method == "lora"})
    e = estimate(plan_from_config(cfg))  # no GPU: fp32, as on this CPU
    return 1024 * sum(e[k] for k in ("weights", "trainable", "activations", "logits"))  # the allocator's parts are a GPU's

@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_estimate_tracks_peak_rss_between_widths(tmp_path, method):
    peak = {h: _peak(h, method, tmp_path / f"w{h}") for h in (256, 1024)}
    est = {h: _estimate_mib(tmp_path / f"w{h}", method) for h in (256, 1024)}
    measured, estimated = peak[1024] - peak[256], est[1024] - est[256]
    print(f"{method}: peak RSS {peak[256]:.0f} -> {peak[1024]:.0f} MiB (+{measured:.0f}); estimate +{estimated:.0f} MiB "
          f"({model_shape(tmp_path / 'w1024').n_params / 1e6:.1f}M vs {model_shape(tmp_path / 'w256').n_params / 1e6:.1f}M parameters)")
    assert abs(measured - estimated) <= 0.2 * estimated

def test_fit_report_picks_precision_and_advises():
    cfg = UnifiedConfig(algorithm="sft", model={"name_or_path": "Qwen/Qwen2.5-1.5B-Instruct", "max_seq_length": 1024},
                        training={"batch_size": 4}, peft={"enabled": True})
    rep = fit_report(cfg)
    assert rep.loc["T4", "precision"] == "fp16" and rep.loc["L4", "precision"] == "bf16" and rep.loc["H100", "precision"] == "bf16"
    assert not rep.loc["T4", "fits"] and rep.loc["T4", "change"] == "set model.gradient_checkpointing=True: 11.2 GiB"
    assert rep.loc["A100-40", "fits"] and rep.loc["A100-40", "change"] == ""
    # 2xT4: each GPU holds the model and half the batch
    assert rep.loc["2xT4", "activations"] == pytest.approx(rep.loc["T4", "activations"] / 2, rel=0.01)

def test_cli_fit(capsys):
    from aligntune.cli import main
    assert main(["fit", "sft-colab-t4", "--gpu", "T4", "--gpu", "A100-80", "--set", "model.name_or_path=Qwen/Qwen2.5-7B"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Qwen/Qwen2.5-7B: sft, lora, max_seq_length=")
    assert out[1].split()[:2] == ["T4", "fp16"] and "does not fit: set " in out[1] and "peft.method='qlora'" in out[1]
    assert out[2].split()[0] == "A100-80" and out[2].endswith("fits")
    assert main(["fit", "no-such-recipe"]) == 2
