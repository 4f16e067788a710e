"""Which failed answers tell the official SDKs not to retry (x-should-retry: false)."""

from extproc.client_retry import spent


def test_the_gateways_deadline_is_spent_even_after_one_attempt():
    # A pinned model's attempt ran to its deadline: it was sent (and billed) the prompt.
    assert spent(504, 1, deadline_passed=True, retry_after=False)
    assert spent(504, 3, deadline_passed=True, retry_after=False)


def test_a_providers_5xx_is_spent_only_after_a_fallback():
    assert spent(502, 2, deadline_passed=False, retry_after=False)
    assert spent(503, 3, deadline_passed=False, retry_after=False)
    assert not spent(502, 1, deadline_passed=False, retry_after=False)   # the gateway retried nothing
    assert not spent(504, 1, deadline_passed=False, retry_after=False)   # the provider's own 504


def test_an_answer_that_says_when_to_come_back_stays_retryable():
    assert not spent(429, 3, deadline_passed=False, retry_after=True)
    assert not spent(503, 3, deadline_passed=False, retry_after=True)


def test_client_errors_are_left_to_the_sdks_rules():
    for status in (400, 408, 409, 422, 429):
        assert not spent(status, 3, deadline_passed=False, retry_after=False)
