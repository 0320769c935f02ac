import os, sys, shutil, pytest
os.environ.setdefault("ALIGNTUNE_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

@pytest.fixture(scope="session")
def tiny_model():
    from aligntune.models import tiny_model_path
    return tiny_model_path()

@pytest.fixture
def one_torch_thread():
    "Tiny models: one thread is as fast as two, far faster on shared cores, and the same float sums in every process."
    import torch
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def aligntune_cmd():
    "The installed `aligntune` console script (next to this Python, or on PATH)."
    here = os.path.join(os.path.dirname(sys.executable), "aligntune")
    return [here] if os.path.exists(here) else [shutil.which("aligntune") or "aligntune"]
