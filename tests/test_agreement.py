"""Training and evaluation read completions the same way: the registry's answer-checking rewards agree row by row with
the evaluation's exact match and accuracy, and the Evaluator's reward is the weighted total the training composite computes."""
import math, warnings
import pytest

from aligntune.rewards import get_reward, create_composite_reward, RewardWarning
from aligntune.metrics import exact_match, answer_accuracy, as_number, reference_answer

# (completion, reference, exact match, accuracy) -- the expected values are worked out by hand from the rule in
# aligntune.metrics: <answer> tag, \boxed{}, '#### x', 'answer is x', the last number, else the whole text.
CASES = [
    ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72", 1, 1),                     # GSM8K answer line
    ("#### 4", "4", 1, 1),
    ("so the answer is \\boxed{12}", "12", 1, 1),                                  # boxed
    ("\\boxed{7} and then #### 4", "4", 0, 0),                                      # the box is the answer, not the ####
    ("The answer is 7. Check: 3 + 4 = 7, and 4 is not it.", "7", 1, 1),            # stated answer, later numbers ignored
    ("The answer is 7. Check: 3 + 4 = 7, and 4 is not it.", "4", 0, 0),
    ("It costs $1,234 in total.", "1234", 1, 1),                                    # thousands separator
    ("#### 1,000", "1000", 1, 1),
    ("The temperature fell to -3 degrees.", "-3", 1, 1),                            # negative
    ("The temperature fell to -3 degrees.", "3", 0, 0),
    ("The answer is 2.50.", "2.5", 0, 1),                                           # decimals: same number, other text
    ("3.0", "3", 0, 1),
    ("I don't know.", "7", 0, 0),                                                   # no number at all
    ("<think>2 + 2 = 5?</think><answer>4</answer>", "4", 1, 1),                     # reasoning format
    ("Natalia sold 72 clips", "Natalia sold 48 + 24 = 72 clips in total.\n#### 72", 1, 1),   # a full solution as reference
    ("<answer>The Eiffel Tower</answer>", "eiffel tower", 1, 1),                    # text answers
    ("Paris is the capital.", "Paris", 0, 0),
]
COMPS, REFS = [c[0] for c in CASES], [c[1] for c in CASES]
NUMERIC = [i for i, r in enumerate(REFS) if as_number(reference_answer(r)) is not None]


def test_exact_match_reward_is_the_evaluation_exact_match_row_by_row():
    reward = get_reward("exact_match")(None, COMPS, answer=REFS)
    evaluation = [exact_match([c], [r]) for c, r in zip(COMPS, REFS)]
    assert reward == evaluation == [float(c[2]) for c in CASES]
    assert exact_match(COMPS, REFS) == pytest.approx(sum(reward) / len(reward))


def test_numeric_match_reward_is_the_evaluation_accuracy_on_numeric_references():
    assert len(NUMERIC) == len(CASES) - 2       # every case but the two text answers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RewardWarning)   # text references: numeric_match does not apply (None)
        reward = get_reward("numeric_match")(None, COMPS, answer=REFS)
    evaluation = [answer_accuracy([c], [r]) for c, r in zip(COMPS, REFS)]
    assert evaluation == [float(c[3]) for c in CASES]
    assert [reward[i] for i in NUMERIC] == [evaluation[i] for i in NUMERIC]
    assert [reward[i] for i in range(len(CASES)) if i not in NUMERIC] == [None, None]
    assert answer_accuracy([COMPS[i] for i in NUMERIC], [REFS[i] for i in NUMERIC]) == pytest.approx(sum(reward[i] for i in NUMERIC) / len(NUMERIC))


def test_evaluator_reward_is_the_training_weighted_total(tiny_model):
    "The Evaluator's per-sample and mean reward equal the training composite's weighted total with weights [2, 0.5]."
    from aligntune.eval import Evaluator
    from aligntune.models import load_model
    model, tok = load_model(tiny_model)
    rows = [{"prompt": f"{a}+{b}=", "answer": str(a + b), "bonus": b} for a, b in [(1, 2), (3, 4), (2, 2), (5, 1), (4, 4)]]
    rows[1]["bonus"] = rows[3]["bonus"] = None          # a reward that does not apply to some rows
    def bonus(prompts, completions, bonus, **kw): return [None if b is None else b / 10 for b in bonus]
    weights = [2, 0.5]
    res = Evaluator(model, tok).evaluate(rows, ["reward", "exact_match", "accuracy"], reward_functions=[get_reward("length", target=4, unit="chars"), bonus],
                                         reward_weights=weights, max_new_tokens=6, temperature=1.0, seed=0)
    comps = [s["completion"] for s in res.samples]
    assert len(set(comps)) > 1, comps                   # sampled: the rows differ, so the weights matter
    train = create_composite_reward([{"name": "length", "params": {"target": 4, "unit": "chars"}}, bonus], weights=weights)
    expected = train([s["prompt"] for s in res.samples], comps, answer=[r["answer"] for r in rows], bonus=[r["bonus"] for r in rows])
    assert [s["reward"] for s in res.samples] == pytest.approx(expected)
    assert res["reward"] == pytest.approx(sum(expected) / len(expected))
    unweighted = create_composite_reward([{"name": "length", "params": {"target": 4, "unit": "chars"}}, bonus])(
        None, comps, bonus=[r["bonus"] for r in rows])
    assert not math.isclose(res["reward"], sum(unweighted) / len(unweighted))
    # the answer checks on the same samples agree with the rewards, row by row
    refs = [r["answer"] for r in rows]
    assert [float(s["correct"]) for s in res.samples] == get_reward("numeric_match")(None, comps, answer=refs)
    assert res["exact_match"] == pytest.approx(sum(get_reward("exact_match")(None, comps, answer=refs)) / len(rows))
