from repertory.agents.demo_model import DEMO_LABEL, demo_answer


def msgs(*texts):
    return [{"role": "user", "content": t} for t in texts]


def test_recalls_the_matching_statement():
    ans = demo_answer(msgs("My name is Alice", "I like tea", "What's my name?"))
    assert ans.text.startswith(DEMO_LABEL)
    assert "Alice" in ans.text and "tea" not in ans.text


def test_knows_nothing_it_was_not_told():
    ans = demo_answer(msgs("What's my name?"))
    assert "Alice" not in ans.text and "nothing" in ans.text


def test_newest_fact_first_and_synonyms():
    ans = demo_answer(msgs("I prefer Python over JavaScript", "My favourite colour is blue",
                           "What's my favourite programming language?"))
    assert "Python" in ans.text


def test_statement_is_acknowledged_and_usage_counted():
    ans = demo_answer(msgs("Hello there"))
    assert "Noted" in ans.text and ans.prompt_tokens == 2 and ans.completion_tokens > 0


def test_system_context_can_be_quoted():
    history = [{"role": "system", "content": "The user's name is Bob."}, *msgs("What is my name?")]
    assert "Bob" in demo_answer(history).text


def test_deterministic():
    h = msgs("a b c", "My dog is Rex", "what is my dog called?")
    assert demo_answer(h) == demo_answer(h)
