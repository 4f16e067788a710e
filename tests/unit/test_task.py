"""The task head of extproc.classify: the instruction read apart from its material, the features the
rubric (bench/devset/RUBRIC.md) names, and scores on requests written for this test (not in the dev set)."""

import copy

import pytest

from extproc import classify as C

KB = ("You are Pip, the assistant of Fernway Bikes. Answer only from the knowledge base.\n\n# Knowledge base\n"
      + "## Returns\nBikes can be returned within 21 days if unridden. Helmets are final sale. " * 3
      + "\n## Service\nThe first tune-up within 60 days is free; later tune-ups cost $49. " * 3)


def body(*msgs, **extra):
    return {"model": "auto", "messages": [{"role": r, "content": c} for r, c in msgs], **extra}


def dense(task):
    return dict(zip(C.TASK_DENSE_FEATURES, task.dense))


@pytest.fixture(scope="module")
def clf():
    return C.build_classifier(C.ClassifierSettings())


def test_instruction_is_read_apart_from_pasted_material():
    doc = "Order 1182\nDate: 2026-03-02\nItems:\n  Chain x1 = 24.00\nTotal 24.00"
    t = C.read_task(body(("system", "You extract fields."), ("user", f"Pull the order number and total as JSON.\n\n{doc}")))
    assert t.instruction == "Pull the order number and total as JSON."
    assert t.verb == "pull"
    assert t.product is True
    assert dense(t)["json_output"] == 1.0
    # content words pull, order, number, total, json: "order" and "total" occur in the document
    assert dense(t)["contained"] == pytest.approx(2 / 5)


def test_a_quotation_after_a_colon_is_material_not_instruction():
    draft = "Hi Marta, sorry, the delivery slipped to Thursday because the frame arrived damaged."
    t = C.read_task(body(("system", "You help with email."), ("user", f"Make my draft shorter and politer: '{draft}'")))
    assert t.instruction == "Make my draft shorter and politer:"
    assert dense(t)["log_instruction_words"] == pytest.approx(C.math.log1p(6))   # make my draft shorter and politer
    curly = C.read_task(body(("system", "x"), ("user", f"Fix the grammar: \u201c{draft}\u201d")))
    assert curly.instruction == "Fix the grammar:"
    # short quotes, and quotes that do not run to the end, are part of the instruction
    for text in ("Rename it to: 'total_amount'", f"Translate this: '{draft}' and then explain the tone you chose"):
        assert C.read_task(body(("system", "x"), ("user", text))).instruction == text


def test_containment_is_the_share_of_instruction_words_found_in_the_material():
    inside = C.read_task(body(("system", KB), ("user", "Are helmets final sale?")))
    outside = C.read_task(body(("system", KB), ("user", "Should I sue the courier for negligence?")))
    assert dense(inside)["contained"] == 1.0
    assert dense(outside)["contained"] == 0.0


def test_conversation_state_tool_results_and_errors():
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}
    ok = {"model": "auto", "messages": [{"role": "user", "content": "Where is parcel 7?"}, call,
                                        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "delivered"}'}]}
    failed = copy.deepcopy(ok)
    failed["messages"][-1]["content"] = '{"error": "timeout after 30s"}'
    t_ok, t_failed = C.read_task(ok), C.read_task(failed)
    assert dense(t_ok)["after_tool_result"] == 1.0 and dense(t_ok)["tool_error"] == 0.0
    assert dense(t_failed)["tool_error"] == 1.0
    assert "state:after_tool" in t_ok.tokens and "state:after_tool:error" in t_failed.tokens
    assert dense(t_ok)["log_assistant_turns"] > 0 and t_ok.product


def test_bare_prompts_keep_the_exam_head_and_product_requests_get_the_task_head(clf):
    bare = clf.classify(body(("user", "What is the capital of France?")))
    product = clf.classify(body(("system", KB), ("user", "Are helmets final sale?")))
    assert bare.features.get("head") != "task" and "score_linear" in bare.features
    assert product.features["head"] == "task" and "score_task" in product.features


def test_lookups_in_a_long_knowledge_base_go_cheap_and_judgement_goes_premium(clf):
    # written for this test: the same long system prompt, a look-up, a reformat, and a multi-rule judgement
    lookup = clf.classify(body(("system", KB), ("user", "How much does a tune-up cost after the free one?")))
    reformat = clf.classify(body(("system", KB), ("user", "Summarize the returns policy in two bullet points.")))
    hard = clf.classify(body(("system", KB), ("user",
        "I rode my bike twice, it's been 25 days, and the free tune-up found a cracked frame they say is my "
        "fault. Weigh the policies against each other and explain exactly whether I'm entitled to a refund, "
        "a repair or neither, and why.")))
    assert lookup.name == "simple_queries" and reformat.name == "simple_queries"
    assert hard.name == "complex_reasoning"
    assert hard.score > max(lookup.score, reformat.score)


def test_long_material_does_not_make_a_simple_task_complex(clf):
    short = clf.classify(body(("system", "You format data."), ("user", "Convert this CSV to a Markdown table.\n\na,b\n1,2\n3,4")))
    rows = "\n".join(f"{i},{i * 7},item-{i}" for i in range(300))
    long = clf.classify(body(("system", "You format data."), ("user", f"Convert this CSV to a Markdown table.\n\nid,qty,name\n{rows}")))
    assert short.name == long.name == "simple_queries"
    assert abs(short.score - long.score) < 0.1


def test_task_head_can_be_turned_off():
    off = C.build_classifier(C.ClassifierSettings.from_config({"task_model_path": "none"}))
    c = off.classify(body(("system", KB), ("user", "Are helmets final sale?")))
    assert off.task_model is None and c.features.get("head") != "task"


def test_bad_task_model_file_is_rejected(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="extproc-task-router/1"):
        C.load_task_model(str(p))


def test_odd_shapes_do_not_raise(clf):
    for b in ({"model": "auto"}, {"model": "auto", "messages": "x"}, {"model": "auto", "messages": [1, None, {}]},
              {"model": "auto", "messages": [{"role": "system", "content": [{"type": "text", "text": "x"}]},
                                             {"role": "user", "content": [{"type": "image_url"}]}]}):
        assert clf.classify(b).name in C.DEFAULT_CLASSES.values()


def test_deterministic_and_does_not_mutate(clf):
    b = body(("system", KB), ("user", "Are helmets final sale? And the first tune-up?"))
    before = copy.deepcopy(b)
    assert clf.classify(b) == clf.classify(copy.deepcopy(b))
    assert b == before


# Tryout 9 H1/M1: the ask after a long paste, next to a code fence, or on the last line of a log; bare
# requests that paste material. Written for this test.
LOG = "\n".join(f"2026-11-29T14:{i // 60:02d}:{i % 60:02d}.350Z INFO payments-worker GET /v1/charge/{i} status="
                f"{503 if i % 17 == 0 else 200} 12ms" for i in range(400))


def test_the_ask_after_a_long_paste_is_read():
    assert len(LOG) > 20_000
    asks = ("What is the timestamp of the first line?", "Why is this pod crash-looping after the deploy?")
    tasks = [C.read_task(body(("system", "You help on-call engineers."), ("user", f"```\n{LOG}\n```\n\n{a}")))
             for a in asks]
    assert [t.instruction for t in tasks] == list(asks)
    assert tasks[0].verb != tasks[1].verb


def test_a_question_joined_to_a_fence_or_to_a_pasted_block_is_still_the_question():
    code = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s / len(xs)"
    fenced = C.read_task(body(("system", "You review code."), ("user", f"```python\n{code}\n```\nWhy does this crash on []?")))
    assert fenced.instruction.strip() == "Why does this crash on []?"
    inline = C.read_task(body(("system", "You help on-call engineers."),
                              ("user", "Here is the log:\n" + LOG[:3000] + "\nHow many of these requests returned 503?")))
    assert inline.instruction == "How many of these requests returned 503?"   # the intro stays with the log


def test_a_bare_turn_that_pastes_material_is_scored_as_a_task(clf):
    # no system prompt, no history: still product traffic (a log and one question), not an exam question
    bare = clf.classify(body(("user", f"{LOG[:6000]}\n\nHow many of these requests returned 503?")))
    assert bare.features["head"] == "task" and bare.name == "simple_queries"
    # an exam question's lettered choices are not pasted material; a word problem pastes nothing
    mc = clf.classify(body(("user", "Which gas do plants absorb?\nA. Oxygen\nB. Carbon dioxide\nC. Helium\nD. Neon\nAnswer:")))
    word = clf.classify(body(("user", "Tom has 3 apples and buys 4 bags of 6. He gives half away. How many are left?")))
    assert mc.features["head"] == "mc" and word.features["head"] == "open"


def test_a_document_pasted_as_one_line_and_its_ask_on_the_next_line():
    # tryout 10: prose pasted as one long line, the ask after one newline; all three asks scored alike
    doc = "The supplier shall deliver the goods within thirty days of each purchase order. " * 250
    asks = ("Quote the exact sentence about delivery.", "Summarize this in three bullets.",
            "Why would a court read the delivery clause against the supplier here?")
    tasks = [C.read_task(body(("system", "You help contract managers."), ("user", f"{doc}\n{a}"))) for a in asks]
    assert [t.instruction for t in tasks] == list(asks)
    intro = C.read_task(body(("user", f"Summarize this:\n{doc}")))
    assert intro.instruction == "Summarize this:" and intro.material


def test_a_long_turn_cut_inside_a_code_fence_keeps_code_as_code():
    # read at both ends, a turn whose tail begins inside a fenced block: its closing fence must not read
    # as an opening one (the ask after it would be code)
    prose = "The service reads prices from the catalogue and sums them per order line. " * 120
    code = "\n".join(f"    total += price[{i}] * qty[{i}]  # line {i}" for i in range(400))
    turn = f"Context.\n\n```\nsmall = 1\n```\n\n{prose}\n\n```python\n{code}\n```\nWhy is the total off by one cent?"
    assert len(turn) > 16_000
    t = C.read_task(body(("system", "You review code."), ("user", turn)))
    assert t.instruction.endswith("Why is the total off by one cent?") and "total +=" not in t.instruction
