"""extproc.classify: class decisions, settings validation, determinism, score sanity, shipped weights."""

import json
import math

import pytest

from extproc import classify as C


def chat(text, **extra):
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture(scope="module")
def rules():
    return C.RuleClassifier(C.ClassifierSettings())


@pytest.fixture(scope="module")
def combined():
    return C.build_classifier(C.ClassifierSettings.from_config(None))


SIMPLE = "What is the capital of France?"
MATH = ("A bakery sells muffins for $3 each and cookies for $1.50 each. On Monday it sold 3 times as many cookies "
        "as muffins, and half of the muffins were sold before noon. If total sales were $450, how many muffins "
        "were sold after noon? Explain step by step and show your work.")
CODE = "Why does this crash?\n```python\ndef f(xs):\n    return xs[0] / len(xs)\n\nf([])\n```\nPlease fix the bug."


def test_defaults_build_the_combined_classifier(combined):
    assert isinstance(combined, C.CombinedClassifier)
    assert isinstance(combined, C.Classifier)


@pytest.mark.parametrize("kind", ["rules", "combined"])
def test_simple_question_is_simple(kind):
    clf = C.build_classifier(C.ClassifierSettings(kind=kind))
    c = clf.classify(chat(SIMPLE))
    assert c.name == "simple_queries"
    assert 0.5 <= c.confidence <= 1.0
    assert c.features["simple_opening"] is True


@pytest.mark.parametrize("kind", ["rules", "combined"])
def test_multi_step_math_word_problem_is_complex(kind):
    clf = C.build_classifier(C.ClassifierSettings(kind=kind))
    c = clf.classify(chat(MATH))
    assert c.name == "complex_reasoning"
    assert c.features["step_by_step"] is True and c.features["math"] >= 2


def test_harder_prompt_scores_higher(rules, combined):
    for clf in (rules, combined):
        assert clf.classify(chat(MATH)).score > clf.classify(chat(SIMPLE)).score


def test_code(rules):
    c = rules.classify(chat(CODE))
    assert c.name == "code" and c.features["code"] >= 2


def test_long_context(rules):
    c = rules.classify(chat("Summarize this report.\n" + "The quarterly numbers were fine. " * 1200))
    assert c.name == "long_context" and c.features["tokens"] >= 8000


def test_a_chinese_report_of_long_context_length_is_long_context(rules):
    # 70 copies of the Chinese sample: about 9,300 o200k tokens, which chars/4 read as about 3,500.
    from extproc import tokens
    from tests.multilingual import SAMPLES
    report = "请总结这份报告。\n" + "\n".join(SAMPLES["zh"] * 70)
    assert tokens.count(report) >= 8000 > len(report) // 4
    c = rules.classify(chat(report))
    assert c.name == "long_context" and c.features["tokens"] >= 8000


def test_tools_and_tool_history(rules):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    assert rules.classify(chat("Weather in Paris?", tools=tools)).name == "tool_use"
    body = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                         {"role": "tool", "tool_call_id": "1", "content": "22C"}]}
    assert rules.classify(body).name == "tool_use"


def test_json_schema(rules):
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    c = rules.classify(chat("List three colors.", response_format=rf))
    assert c.name == "structured_output" and c.features["json_schema"] is True
    c = rules.classify(chat("List three colors.", response_format={"type": "json_object"}))
    assert c.features["json_mode"] is True and c.name != "structured_output"


def test_image_parts(rules):
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}
    c = rules.classify(body)
    assert c.name == "vision" and c.features["images"] == 1


def test_conversation_depth_and_script(rules):
    body = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Привет, как дела?"},
                         {"role": "assistant", "content": "Хорошо."},
                         {"role": "user", "content": "Почему небо голубое?"}]}
    f = rules.classify(body).features
    assert f["depth"] == 3 and f["user_turns"] == 2 and f["messages"] == 4
    assert f["script"] == "cyrillic"


def test_malformed_bodies_do_not_raise(rules):
    for body in ({}, {"messages": None}, {"messages": ["x", {"role": "user", "content": 5}]},
                 {"messages": [{"role": "user", "content": [None, {"type": "text", "text": 3}]}]}):
        c = rules.classify(body)
        assert c.name == "simple_queries" and 0.0 <= c.score <= 1.0


def test_class_names_come_from_config():
    s = C.ClassifierSettings.from_config({"classes": {"simple": "cheap", "reasoning": "premium"}, "kind": "rules"})
    clf = C.build_classifier(s)
    assert clf.classify(chat(SIMPLE)).name == "cheap"
    assert clf.classify(chat(MATH)).name == "premium"
    assert s.classes["code"] == "code"


def test_premium_threshold_moves_the_decision():
    low = C.RuleClassifier(C.ClassifierSettings.from_config({"premium_threshold": 0.01}))
    high = C.RuleClassifier(C.ClassifierSettings.from_config({"premium_threshold": 0.99}))
    assert low.classify(chat(SIMPLE)).name == "complex_reasoning"
    assert high.classify(chat(MATH)).name == "simple_queries"


@pytest.mark.parametrize("mapping, key", [
    ({"kind": "neural"}, "kind"),
    ({"premium_threshold": 1.5}, "premium_threshold"),
    ({"premium_threshold": "high"}, "premium_threshold"),
    ({"rules_weight": True}, "rules_weight"),
    ({"long_context_tokens": 0}, "long_context_tokens"),
    ({"long_context_tokens": 10.5}, "long_context_tokens"),
    ({"max_scan_chars": 10}, "max_scan_chars"),
    ({"chars_per_token": 0}, "chars_per_token"),
    ({"model_path": ""}, "model_path"),
    ({"classes": {"fancy": "x"}}, "classes.fancy"),
    ({"classes": {"simple": ""}}, "classes.simple"),
    ({"classes": ["simple"]}, "classes"),
    ({"thresholds": 1}, "thresholds"),
])
def test_settings_errors_name_the_key(mapping, key):
    with pytest.raises(ValueError) as e:
        C.ClassifierSettings.from_config(mapping)
    assert str(e.value).startswith(f"{key}: ")


def test_settings_defaults_and_values():
    assert C.ClassifierSettings.from_config(None) == C.ClassifierSettings()
    s = C.ClassifierSettings.from_config({"kind": "linear", "rules_weight": 0.25, "long_context_tokens": 1000})
    assert (s.kind, s.rules_weight, s.long_context_tokens) == ("linear", 0.25, 1000)


def test_deterministic(combined):
    bodies = [chat(SIMPLE), chat(MATH), chat(CODE)]
    first = [combined.classify(b) for b in bodies]
    again = C.build_classifier(C.ClassifierSettings()).classify
    assert [again(b) for b in bodies] == first == [combined.classify(b) for b in bodies]


def test_classify_does_not_mutate_the_body(combined):
    body = chat(MATH, tools=[{"type": "function", "function": {"name": "f"}}])
    before = json.dumps(body, sort_keys=True)
    combined.classify(body)
    assert json.dumps(body, sort_keys=True) == before


def test_shipped_weights_load_and_are_small():
    assert C.DEFAULT_MODEL_PATH.stat().st_size < 1_500_000   # the open head's steps term: 18,690 words
    model = C.load_model()
    assert set(model.heads) == {"mc", "open"}
    assert 0.0 <= model.rules_weight <= 1.0
    for head in model.heads.values():
        assert len(head.dense) == len(C.DENSE_FEATURES) and len(head.words) > 500


def test_linear_features_explain_the_score(combined):
    mc = "Which gas do plants absorb?\nA. Oxygen\nB. Carbon dioxide\nC. Helium\nD. Neon\nAnswer:"
    f = combined.classify(chat(mc)).features
    assert f["multiple_choice"] is True and f["head"] == "mc"
    assert -1.0 <= f["expected_gain"] <= 1.0 and 0.0 <= f["score_linear"] <= 1.0
    assert combined.classify(chat(MATH)).features["head"] == "open"


def test_bad_model_file_is_rejected(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="model_path: "):
        C.LinearClassifier(C.ClassifierSettings(model_path=str(p)))


def test_only_the_last_user_message_is_read_as_text(rules):
    # A fixed system prompt full of cues must not make every request look hard; its length still counts.
    body = {"messages": [{"role": "system", "content": "Think step by step and prove why. " * 20},
                         {"role": "user", "content": SIMPLE}]}
    f = rules.classify(body).features
    assert f["step_by_step"] is False and f["reasoning"] == 0 and f["simple_opening"] is True
    assert f["tokens"] > len(SIMPLE) // 4 + 100


def test_long_prompts_are_scanned_head_and_tail():
    s = C.ClassifierSettings(max_scan_chars=200)
    p = C.Prompt("Explain step by step. " + "filler " * 500 + "How many apples?", s.max_scan_chars)
    assert len(p.raw) <= 201 and "step by step" in p.low and "how many apples" in p.low
    assert "apples" in p.vocab and p.words[0] == "explain"


def test_mark_counting_matches_plain_counts():
    text = "x = f(a);\nreturn y => z}; ```code``` </b> self.x import os"
    assert C._count_marks(text, C._CODE_MARKS) == sum(text.count(m) for m in C._CODE_MARKS)
    assert C._count_marks("plain words only", C._CODE_MARKS) == 0


def test_linear_features_have_the_model_shape_and_see_numbers():
    view = C.read_request(chat(MATH))
    dense = C.linear_features(C.Prompt(view.prompt, 2000), view.chars)
    assert len(dense) == len(C.DENSE_FEATURES)
    named = dict(zip(C.DENSE_FEATURES, dense))
    assert named["log_distinct_numbers"] > 0 and named["log_dollar"] > 0 and named["log_decimals"] > 0
    mc = "Statement 1 | x. Statement 2 | y.\nA. True, True\nB. False, False\nC. True, False\nD. False, True"
    named = dict(zip(C.DENSE_FEATURES, C.linear_features(C.Prompt(mc, 2000), len(mc))))
    assert named["statements"] == 1.0 and named["log_choice_chars"] > 0


def test_combined_score_is_the_documented_blend(combined):
    f = combined.classify(chat(MATH))
    head = f.features["head"]
    w = combined.blend_weight(head)
    blended = (1 - w) * f.features["score_linear"] + w * f.features["score_rules"]
    assert abs(f.score - combined.model.calibrated(head, blended)) < 1e-3


def test_each_prompt_format_blends_with_its_own_cross_validated_weight(tmp_path):
    raw = json.loads(C.DEFAULT_MODEL_PATH.read_text())
    raw["heads"]["mc"]["rules_weight"], raw["heads"]["open"]["rules_weight"] = 0.0, 0.5
    path = tmp_path / "model.json"
    path.write_text(json.dumps(raw))
    clf = C.build_classifier(C.ClassifierSettings(model_path=str(path)))
    mc = "Which gas do plants absorb?\nA. oxygen\nB. carbon dioxide\nC. helium\nD. neon\nAnswer:"
    for text, w in ((mc, 0.0), (MATH, 0.5)):
        f = clf.classify(chat(text)).features
        assert clf.blend_weight(f["head"]) == w
        blended = (1 - w) * f["score_linear"] + w * f["score_rules"]
        assert abs(clf.classify(chat(text)).score - clf.model.calibrated(f["head"], blended)) < 1e-3
    # the config's rules_weight overrides every head's, and then the score is the plain blend (the file's
    # calibration was fitted for its own weights)
    fixed = C.build_classifier(C.ClassifierSettings(model_path=str(path), rules_weight=0.25))
    assert fixed.blend_weight("mc") == fixed.blend_weight("open") == 0.25
    f = fixed.classify(chat(MATH))
    assert abs(f.score - (0.75 * f.features["score_linear"] + 0.25 * f.features["score_rules"])) < 1e-3


def test_shipped_exam_model_records_the_settings_train_cv_chose_per_head():
    # Each head's fit settings were chosen by its own source's repeated train-CV APGR under a protocol
    # written before the search (bench/results/apgr-protocol.md); the file says which, so a retrain can be
    # checked against it, and the runtime reads the blend weight of the prompt's own format.
    raw = json.loads(C.DEFAULT_MODEL_PATH.read_text())
    assert raw["selection"] == "bench/results/apgr-protocol.md"
    protocol = C.DEFAULT_MODEL_PATH.parent.parent / raw["selection"]
    assert "at most twice" in protocol.read_text()
    for name in ("mc", "open"):
        head = raw["heads"][name]
        assert head["C"] > 0 and head["l2_dense_scale"] >= 1 and head["form"] in ("outcomes", "pairs")
        assert head["dense_scale"] == 1.0   # the weights are stored on the raw features
        a, b = head["calibration"]
        assert b > 0    # monotone: the calibration cannot change a format's ranking (its APGR)
    model = C.load_model()
    assert model.blend_weight("open") == raw["heads"]["open"]["rules_weight"] > model.blend_weight("mc")
    xs = [i / 50 for i in range(51)]
    for name in ("mc", "open"):
        ys = [model.calibrated(name, x) for x in xs]
        assert ys == sorted(ys) and 0.0 <= ys[0] and ys[-1] <= 1.0
    # the open head's rules blend pulls its scores toward the rules' centre; calibrated, a score means
    # the same expected gain as the multiple-choice head's: (1 + E[premium right - cheap right]) / 2
    assert model.calibrated("open", 0.5) != 0.5
    # round 4 (its own protocol) gave the open head the steps term, fitted on GSM8K's own training set
    steps = raw["heads"]["open"]["steps"]
    assert steps["selection"] == "bench/results/apgr-protocol-4.md" and steps["beta"] == 0.02
    assert "mc" in raw["heads"] and "steps" not in raw["heads"]["mc"]
    assert C.LinearModel(model.heads).calibrated("open", 0.37) == 0.37    # no calibration: identity


def test_open_head_adds_the_predicted_solution_length(combined):
    # Round 4 (bench/results/apgr-protocol-4.md): the open head adds beta times the standardised predicted
    # solution length (a ridge regression fitted on GSM8K's own training set) to its score, so of two word
    # problems the one that reads as more steps scores higher, other things equal.
    one_step = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    many = ("Tom has 3 apples. He buys 4 bags with 6 apples in each bag, gives half of all his apples to his sister, "
            "then eats 2 apples a day for 3 days. His sister gives him back a third of hers. How many apples does "
            "Tom have now?")
    f1, fm = combined.classify(chat(one_step)).features, combined.classify(chat(many)).features
    assert f1["head"] == fm["head"] == "open"
    assert 1 <= f1["predicted_steps"] < fm["predicted_steps"]
    head = combined.model.head("open")
    view = C.read_request(chat(many))
    p = combined.rules.prompt(view)
    _, dense, tokens = C.linear_inputs(view, p, False)
    gain = head.gain(dense, tokens)
    steps = head.steps.term(head.steps.log1p_lines(dense, tokens))
    assert steps != 0.0 and head.linear(dense, tokens, gain) == (gain + 1.0) / 2.0 + steps
    assert fm["score_linear"] == round((gain + 1.0) / 2.0 + steps, 4)
    # the multiple-choice head has no such term: its score is the gain alone
    assert combined.model.head("mc").steps is None


def test_steps_term_is_checked_when_loaded():
    raw = json.loads(C.DEFAULT_MODEL_PATH.read_text())["heads"]["open"]
    with pytest.raises(ValueError, match="steps.dense"):
        C._Head({**raw, "steps": {**raw["steps"], "dense": [0.1]}})
    with pytest.raises(ValueError, match="steps.sd"):
        C._Head({**raw, "steps": {**raw["steps"], "sd": 0}})


def test_steps_prediction_is_held_to_the_range_it_learned(combined):
    # a list of 300 percentages is no word problem: without the bound it read as 40 solution steps
    numbers = ", ".join(f"{i % 97}.5%" for i in range(300))
    f = combined.classify(chat(f"Figures: {numbers}")).features
    head = combined.model.head("open")
    assert f["head"] == "open"
    assert f["predicted_steps"] == round(math.expm1(head.steps.high), 1)


def test_gsm8k_solution_lines_count_the_steps_before_the_answer():
    from bench.gsm8k_steps import solution_lines   # the steps predictor's target (round 4)
    answer = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n\n#### 72"
    assert solution_lines(answer) == 2
    assert solution_lines("#### 5") == 0
