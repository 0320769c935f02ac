"""The Unsloth backend: the messages people read when it cannot run, the fall back to TRL, and a real Unsloth SFT.

The first tests run in this environment, where unsloth is not installed and there is no GPU. The last two train in
subprocesses of a virtual environment with Unsloth in its CPU mode (importing unsloth patches transformers/TRL/PEFT
for the whole process, so it never goes into this environment). Tests never install anything: .ci/run builds that
environment with .ci/install-unsloth-cpu.sh and passes its Python in ALIGNTUNE_UNSLOTH_PYTHON; without it they skip.
"""
import importlib.util, json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest

from aligntune.backends.core import BackendError, BackendFactory, create_rl_trainer, create_sft_trainer
from aligntune.config import BackendConfig

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / ".ci" / "install-unsloth-cpu.sh"
UNSLOTH_VERSION = os.environ.get("UNSLOTH_VERSION", "2026.10.9")
NOT_INSTALLED = "unsloth is not installed (pip install 'aligntune[unsloth]')"


def _has_gpu():
    import torch
    return torch.cuda.is_available()


here_without_unsloth = pytest.mark.skipif(importlib.util.find_spec("unsloth") is not None or _has_gpu(),
                                          reason="these messages are for a machine without unsloth and without a GPU")

SFT_DATA = [{"prompt": f"{a}+{b}=", "completion": f"{a + b}"} for a in range(5) for b in range(5)]
DPO_DATA = [{"prompt": f"{a}+{b}=", "chosen": f"{a + b}", "rejected": f"{a + b + 1}"} for a in range(3) for b in range(3)]
RL_DATA = [{"prompt": f"{a}+{b}=", "answer": f"{a + b}"} for a in range(3) for b in range(3)]


def _reward(prompts, completions, **kw): return [float(len(c)) for c in completions]


@pytest.fixture(scope="module")
def tiny():
    from aligntune.models import tiny_model_path
    return str(tiny_model_path())


# --- without unsloth: the exact messages --------------------------------------------------------------------------

@here_without_unsloth
@pytest.mark.parametrize("algorithm", ["sft", "dpo", "grpo", "gspo", "dapo", "dr_grpo"])
def test_auto_and_explicit_messages_without_unsloth(algorithm, tiny, tmp_path, capsys):
    kw = dict(output_dir=str(tmp_path), max_steps=1)
    make = (lambda **k: create_sft_trainer(tiny, SFT_DATA, **kw, **k)) if algorithm == "sft" else \
           (lambda **k: create_rl_trainer(tiny, DPO_DATA if algorithm == "dpo" else RL_DATA, algorithm=algorithm, reward_functions=None if algorithm == "dpo" else [_reward], **kw, **k))
    t = make(backend="auto")
    import torch   # auto choosing TRL is worth a line only where a GPU could have run Unsloth
    said = f"aligntune: backend=auto -> trl (unsloth not used: {NOT_INSTALLED})\n" if torch.cuda.is_available() else ""
    assert capsys.readouterr().out == said
    assert t.backend == "trl" and t.backend_reason == f"backend=auto -> trl (unsloth not used: {NOT_INSTALLED})"
    t = make(backend="unsloth")
    assert capsys.readouterr().out == (f"aligntune: backend=unsloth cannot run {algorithm} here ({NOT_INSTALLED}); falling back to trl. "
                                       "Set fallback=False to make this an error.\n")
    assert t.backend == "trl" and NOT_INSTALLED in t.backend_reason
    with pytest.raises(BackendError) as e:
        make(backend="unsloth", fallback=False)
    assert str(e.value) == f"backend='unsloth' cannot run {algorithm} here: {NOT_INSTALLED}. Use backend='trl' or backend='auto'."


def test_ppo_is_never_unsloth():
    ok, why = BackendFactory.probe("unsloth", "ppo")
    assert not ok and why.startswith("Unsloth has no PPO trainer") and "refuses Unsloth-loaded models" in why
    assert BackendFactory.select("ppo", BackendConfig("auto")) == ("trl", f"backend=auto -> trl (unsloth not used: {why})")
    backend, msg = BackendFactory.select("ppo", BackendConfig("unsloth"))
    assert backend == "trl" and msg == f"backend=unsloth cannot run ppo here ({why}); falling back to trl. Set fallback=False to make this an error."
    with pytest.raises(BackendError, match="backend='unsloth' cannot run ppo here: Unsloth has no PPO trainer"):
        BackendFactory.select("ppo", BackendConfig("unsloth", fallback=False))


@here_without_unsloth
def test_sft_asked_for_unsloth_trains_on_trl(tiny, tmp_path, capsys):
    t = create_sft_trainer(tiny, SFT_DATA, backend="unsloth", output_dir=str(tmp_path), max_steps=6, batch_size=4, learning_rate=5e-3)
    assert capsys.readouterr().out.startswith(f"aligntune: backend=unsloth cannot run sft here ({NOT_INSTALLED}); falling back to trl.")
    res = t.train()
    assert res["status"] == "finished" and res["global_step"] == 6
    losses = [json.loads(l)["loss"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    assert len(losses) == 6 and losses[-1] < losses[0], losses
    status = json.loads((tmp_path / "run.json").read_text())
    assert status["backend"] == "trl" and NOT_INSTALLED in status["backend_reason"]
    assert "unsloth" not in sys.modules


# --- with unsloth (CPU mode, its own virtual environment) ----------------------------------------------------------

def _check(py):
    "torch version seen by `py` when unsloth is importable there, else None."
    r = subprocess.run([str(py), "-c", "import importlib.util as u, importlib.metadata as m; assert u.find_spec('unsloth') and u.find_spec('unsloth_zoo'); print(m.version('torch'))"],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


@pytest.fixture(scope="module")
def unsloth_python():
    "Python of the virtual environment with Unsloth (CPU mode) on top of this one, given in ALIGNTUNE_UNSLOTH_PYTHON."
    from importlib.metadata import version
    given = os.environ.get("ALIGNTUNE_UNSLOTH_PYTHON")
    if not given:
        reason = (f"ALIGNTUNE_UNSLOTH_PYTHON is not set: build the Unsloth CPU environment with "
                  f"`bash {INSTALL.relative_to(ROOT)} VENV_DIR` and set ALIGNTUNE_UNSLOTH_PYTHON=VENV_DIR/bin/python (.ci/run does both)")
        if os.environ.get("ALIGNTUNE_REQUIRE_UNSLOTH") == "1": pytest.fail(reason + "; ALIGNTUNE_REQUIRE_UNSLOTH=1 makes this a failure")
        pytest.skip(reason)
    if _check(given) != version("torch"): pytest.fail(f"ALIGNTUNE_UNSLOTH_PYTHON={given} has no unsloth, or a torch other than {version('torch')}")
    return given


def _run(py, code, cwd, env=None, timeout=600):
    e = {k: v for k, v in os.environ.items() if not k.startswith("UNSLOTH_")}
    e.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="default", **(env or {}))
    r = subprocess.run([py, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd, env=e, timeout=timeout)
    assert r.returncode == 0, f"subprocess failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    result = json.loads(r.stdout.strip().splitlines()[-1])
    return result, r.stdout, r.stderr


SFT_ON_UNSLOTH = r'''
import os, sys, json
from aligntune.backends.core import create_sft_trainer, create_rl_trainer, BackendError
from aligntune.backends import unsloth as ub
out = {}
# 1. No GPU and CPU mode not asked for: a precise reason, and unsloth is not imported to find it out.
out["probe_sft"] = ub.probe("sft"); out["probe_grpo"] = ub.probe("grpo")
out["imported_by_probe"] = "unsloth" in sys.modules
# 2. Asked for: a real Unsloth SFT through the backend.
os.environ["UNSLOTH_FORCE_CPU"] = "1"
data = [{"prompt": f"{a}+{b}=", "completion": f"{a + b}"} for a in range(5) for b in range(5)]
run = os.path.abspath("run")
t = create_sft_trainer(TINY, data, backend="unsloth", fallback=False, output_dir=run, max_steps=6,
                       batch_size=4, learning_rate=5e-3, use_peft=True, **{"peft.r": 8, "peft.lora_dropout": 0.0})
out["trainer"] = type(t).__name__
res = t.train()
import trl
out["global_step"] = res["global_step"]
out["trl_class_is_patched"] = type(t.trl_trainer) is trl.SFTTrainer
out["trainer_from_unsloth"] = ub.made_by_unsloth(t.trl_trainer)
out["model_from_unsloth"] = ub.is_unsloth_model(t.model)
out["info"] = json.load(open(os.path.join(run, "unsloth.json")))
out["losses"] = [json.loads(l)["loss"] for l in open(os.path.join(run, "metrics.jsonl")) if '"loss"' in l]
out["status"] = json.load(open(os.path.join(run, "run.json")))["backend"]
t.save_lora("lora"); t.save_merged("merged")
out["lora"] = sorted(os.listdir("lora")); out["merged"] = sorted(os.listdir("merged"))
# 3. After a CPU-mode import, the GRPO family is refused with the reason and falls back to TRL.
out["probe_grpo_after"] = ub.probe("grpo")
try: ub.import_unsloth("grpo"); out["grpo_error"] = None
except BackendError as e: out["grpo_error"] = str(e)
print(json.dumps(out))
'''


@pytest.mark.slow
def test_real_unsloth_sft_on_cpu(unsloth_python, tiny, tmp_path):
    out, stdout, stderr = _run(unsloth_python, SFT_ON_UNSLOTH.replace("TINY", repr(tiny)), tmp_path)
    print(stdout[-2000:])
    assert out["probe_sft"] == [False, "no CUDA GPU: Unsloth's CPU mode supports only SFT and is used only when asked for with UNSLOTH_FORCE_CPU=1"]
    assert out["probe_grpo"] == [False, "no CUDA GPU: Unsloth's CPU mode supports only SFT"]
    assert out["imported_by_probe"] is False
    # asked for by name and given: no backend line (one is printed only when the choice differs from what was asked)
    assert "aligntune: backend=" not in stdout and "UnslothImportOrderWarning" not in stderr
    assert out["trainer"] == "UnslothSFTTrainer" and out["status"] == "unsloth"
    # Unsloth's classes did the work: its SFTTrainer (trl's name rebound by the import) and its model loader
    assert out["trl_class_is_patched"] and out["trainer_from_unsloth"] and out["model_from_unsloth"]
    assert out["info"]["device_type"] == "cpu" and out["info"]["version"] == UNSLOTH_VERSION and out["info"]["trainer_from_unsloth"]
    losses = out["losses"]
    assert out["global_step"] == 6 and len(losses) == 6 and losses[-1] < losses[0] - 0.2, losses
    assert "adapter_model.safetensors" in out["lora"] and "model.safetensors" in out["merged"]
    assert out["probe_grpo_after"] == [False, f"unsloth {UNSLOTH_VERSION} was imported in CPU mode (no GPU found at import): Unsloth's CPU mode supports only SFT"]
    assert out["grpo_error"].startswith(f"unsloth {UNSLOTH_VERSION} runs in CPU mode in this process") and "Use backend='trl' for grpo" in out["grpo_error"]


IMPORT_ORDER = r'''
import json, sys, warnings
import trl  # too early: a notebook that imported trl (or loaded a model) before choosing Unsloth
from aligntune.backends.core import create_sft_trainer
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    t = create_sft_trainer(TINY, [{"text": "1+1=2"}] * 4, backend="unsloth", fallback=False, output_dir="run", max_steps=1)
mine = [str(x.message) for x in w if type(x.message).__name__ == "UnslothImportOrderWarning"]
print(json.dumps({"warnings": mine, "backend": t.backend}))
'''


@pytest.mark.slow
def test_import_order_guard_warns(unsloth_python, tiny, tmp_path):
    out, stdout, stderr = _run(unsloth_python, IMPORT_ORDER.replace("TINY", repr(tiny)), tmp_path, env={"UNSLOTH_FORCE_CPU": "1"})
    assert out["backend"] == "unsloth"
    assert out["warnings"] == [
        "aligntune: trl was imported before unsloth in this process. Unsloth patches transformers, trl and peft when "
        "it is imported, so anything taken from them earlier stays unpatched and Unsloth's speed-ups and memory savings may not all "
        "apply. To fix it, restart the kernel (or the Python process) and make this the first import: "
        "`from aligntune.backends.unsloth import import_unsloth; import_unsloth()` (or `import unsloth`), before loading any model "
        "or calling aligntune.models, transformers, trl or peft."]
    print(out["warnings"][0])
