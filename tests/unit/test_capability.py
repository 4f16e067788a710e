"""providers.unable: the planner's per-candidate question, answered by the translators' own rules."""

from extproc.providers import Target, unable

ANTHROPIC = Target(model="claude", upstream_model="claude-x", provider="anthropic", api="anthropic")
OPENAI = Target(model="gpt", upstream_model="gpt-x", provider="openai", api="openai")
BODY = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "n": 2}


def test_a_provider_that_cannot_honour_a_parameter_says_why():
    why = unable(ANTHROPIC, BODY)
    assert why is not None and "n must be 1" in why


def test_a_provider_that_can_serve_the_request_gives_no_reason():
    assert unable(OPENAI, BODY) is None
    assert unable(ANTHROPIC, {**BODY, "n": 1}) is None


def test_embeddings_on_a_chat_only_api_is_a_reason():
    assert "does not offer embeddings" in unable(ANTHROPIC, {"model": "e", "input": "x"}, "embeddings")


def test_what_would_change_the_answer_if_dropped_makes_a_provider_unable():
    """Tryout: legacy functions vanished on Claude (a plain 200), web_search_options on Gemini."""
    gemini = Target(model="g", upstream_model="gemini-3.5-flash-lite", provider="gemini", api="gemini")
    legacy = {"model": "auto", "messages": [{"role": "user", "content": "weather?"}],
              "functions": [{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}]}
    assert "legacy functions" in unable(ANTHROPIC, legacy)
    assert "legacy functions" in unable(gemini, legacy)
    assert unable(OPENAI, legacy) is None
    search = {"model": "auto", "messages": [{"role": "user", "content": "news?"}], "web_search_options": {}}
    assert "web search" in unable(gemini, search) and "web search" in unable(ANTHROPIC, search)
