"The template check before SFT: a run whose rows train no token stops before its first step, saying why."
import pytest
from aligntune import create_sft_trainer, DataError, Run
from aligntune.templates import inspect_row, family_tokenizer, FAMILIES

def _long_rows(n=8):
    return [{"messages": [{"role": "user", "content": "Add these numbers: " + "+".join(["12"] * 20)},
                          {"role": "assistant", "content": "240"}]} for _ in range(n)]

def test_every_token_masked_stops_before_training(tiny_model, tmp_path):
    # the first rows lose their reply to truncation; later short ones keep theirs, so the length check alone would let it run
    short = [{"messages": [{"role": "user", "content": "1+2"}, {"role": "assistant", "content": "3"}]}] * 4
    t = create_sft_trainer(tiny_model, _long_rows(4) + short, output_dir=str(tmp_path / "s"), max_steps=2, batch_size=4, max_seq_length=32,
                           assistant_only_loss=True)
    with pytest.raises(DataError, match=r"No token of the first 4 training rows is trained.*past max_length=32\. Raise max_seq_length"):
        t.train()
    assert t.global_step == 0 and not (tmp_path / "s" / "metrics.jsonl").exists()

def test_sound_rows_train(tiny_model, tmp_path, capsys):
    t = create_sft_trainer(tiny_model, _long_rows(), output_dir=str(tmp_path / "s"), max_steps=2, batch_size=4, max_seq_length=128,
                           assistant_only_loss=True)
    t.train()
    assert len(Run(tmp_path / "s").metrics) == 2 and "template check" not in capsys.readouterr().out

@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_without_generation_markers_masks_everything(tiny_model, family):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model)
    bare = family_tokenizer(tok, family, FAMILIES[family][2].replace("{% generation %}", "").replace("{% endgeneration %}", ""))
    rep = inspect_row(bare, _long_rows(1)[0], assistant_only_loss=True)
    assert rep.n_trained == 0 and rep.problems[0][0] == "no_trained_tokens" and "{% generation %}" in rep.problems[0][1]
    good = inspect_row(family_tokenizer(tok, family), _long_rows(1)[0], assistant_only_loss=True)
    assert good.problems == [] and good.text().endswith("«240" + FAMILIES[family][0][-1 if family != "gemma" else 2] + "»" + ("\n" if family != "llama3" else ""))
