import os, pytest
os.environ.setdefault("ALIGNTUNE_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

@pytest.fixture(scope="session")
def tiny_model():
    from aligntune.models import tiny_model_path
    return tiny_model_path()
