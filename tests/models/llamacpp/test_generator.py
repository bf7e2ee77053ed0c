"""LlamaCppGenerator on the real SmolLM2-135M weights."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest

from duplex.errors import BackendError
from duplex.models.llamacpp.generator import LlamaCppGenerator
from duplex.models.stages import ChatMessage, TextGenerator, Tool, ToolCall

from .dialogue import SYSTEM, weather_dialogue


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaCppGenerator]:
    generator = LlamaCppGenerator(threads=1, n_ctx=256, temperature=0.0, seed=1)
    yield generator
    generator.close()


def test_satisfies_text_generator_protocol(llm: LlamaCppGenerator) -> None:
    assert isinstance(llm, TextGenerator)
    assert llm.chat_format.name == "chatml"  # read from the GGUF's chat template


def test_count_tokens_counts_model_tokens(llm: LlamaCppGenerator) -> None:
    assert llm.count_tokens("") == 0
    assert 1 <= llm.count_tokens("Hello there, how are you?") <= 10


def test_question_gets_a_relevant_answer_streamed_in_pieces(llm: LlamaCppGenerator) -> None:
    question = [SYSTEM, ChatMessage("user", "What is the capital of France?")]
    pieces = list(llm.stream(question, max_tokens=24))
    answer = "".join(pieces)
    assert len(pieces) >= 3
    assert "paris" in answer.lower()
    assert "<|im_end|>" not in answer and "<|im_start|>" not in answer


def test_min_words_keeps_the_answer_from_ending_on_a_fragment(llm: LlamaCppGenerator) -> None:
    goodbye = [SYSTEM, ChatMessage("user", "Thanks, bye.")]
    llm.reset()
    terse = "".join(llm.stream(goodbye, max_tokens=24))
    assert 1 <= len(terse.split()) <= 3  # the 135M model's own answer: "Bye."
    llm.min_words = 4
    try:
        llm.reset()
        longer = "".join(llm.stream(goodbye, max_tokens=24))
    finally:
        llm.min_words = 0
    assert len(longer.split()) >= 4
    assert longer.startswith(terse.rstrip(".!"))  # the same answer, only not cut short
    assert "<|im_end|>" not in longer


def _longest_shared_run(a: str, b: str) -> int:
    """Length in words of the longest run of words ``a`` and ``b`` share."""
    x, y = a.lower().split(), b.lower().split()
    return max((k for i in range(len(x)) for j in range(len(y)) for k in range(1, min(len(x) - i, len(y) - j) + 1)
                if x[i : i + k] == y[j : j + k]), default=0)


def test_dry_keeps_the_answer_from_repeating_the_previous_one(llm: LlamaCppGenerator) -> None:
    # A mis-heard follow-up. Without DRY the 135M model (greedy, min_words 4, this system
    # prompt) says its previous answer again, word for word.
    system = ChatMessage("system", "You are a friendly voice assistant. Answer in one or two short spoken sentences.")
    previous = "The best way to introduce a new baby is by wearing a blind snake nursery it's —"
    dialogue = [
        system,
        ChatMessage("user", "How do blind snake nephews?"),
        ChatMessage("assistant", previous),
        ChatMessage("user", "Your famous"),
    ]
    plain = llm.sampling
    llm.sampling, llm.min_words = dataclasses.replace(plain, dry_multiplier=0.8), 4
    try:
        llm.reset()
        answer = "".join(llm.stream(dialogue, max_tokens=40))
        llm.reset()
        paris = "".join(llm.stream([system, ChatMessage("user", "What is the capital of France?")], max_tokens=30))
    finally:
        llm.sampling, llm.min_words = plain, 0
    assert len(answer.split()) >= 4
    assert _longest_shared_run(answer, previous) <= 4, answer
    assert "paris" in paris.lower()  # a plain question still gets its plain answer


def test_closing_the_stream_stops_decoding(llm: LlamaCppGenerator) -> None:
    question = [SYSTEM, ChatMessage("user", "Tell me a long story about a dragon.")]
    stream = llm.stream(question, max_tokens=100)
    next(stream)
    next(stream)
    cached_after_two = llm._llm.n_tokens
    stream.close()
    assert llm._llm.n_tokens == cached_after_two  # nothing decoded after close
    # the prompt plus the first piece; the second was sampled but never evaluated
    assert cached_after_two == llm.last_prompt_tokens + 1


def test_next_turn_evaluates_only_the_new_tokens(llm: LlamaCppGenerator) -> None:
    llm.reset()
    turn1 = [SYSTEM, ChatMessage("user", "Name a fruit.")]
    answer = "".join(llm.stream(turn1, max_tokens=16))
    first_eval = llm.last_prompt_eval_tokens
    turn2 = turn1 + [ChatMessage("assistant", answer), ChatMessage("user", "Name another one.")]
    "".join(llm.stream(turn2, max_tokens=16))
    new_user = ChatMessage("user", "Name another one.")
    new_tokens = len(llm._segment(new_user)) + len(
        llm._segment(ChatMessage("assistant", ""), generation_prompt=True)
    )
    # the answer's end marker and the new user turn, give or take a re-tokenized word
    assert llm.last_prompt_eval_tokens <= new_tokens + 4
    assert llm.last_prompt_eval_tokens < first_eval


def test_long_conversation_stays_in_context_and_reuses_cache(llm: LlamaCppGenerator) -> None:
    history = weather_dialogue(25) + [ChatMessage("user", "What is two plus two?")]
    "".join(llm.stream(history, max_tokens=8))  # fills the cache up to the budget
    evals = []
    for i in range(3):
        history = history + [
            ChatMessage("assistant", "It is four."),
            ChatMessage("user", f"And {i} plus two?"),
        ]
        answer = "".join(llm.stream(history, max_tokens=8))
        assert answer.strip()
        assert llm._llm.n_tokens <= llm.n_ctx
        evals.append(llm.last_prompt_eval_tokens)
    # the oldest middle messages are shifted out of the KV cache instead of re-evaluating
    assert max(evals) < 40, evals


def test_a_final_shorter_than_its_partial_does_not_bring_an_evicted_message_back(llm: LlamaCppGenerator) -> None:
    # A full window: a long partial pushes the oldest exchange out of the cache; the final,
    # shorter, would leave room for it again. Re-admitting it would make the cache, which
    # no longer holds it, evaluate everything after the sinks once more.
    history = weather_dialogue(25)
    "".join(llm.stream(history + [ChatMessage("user", "What is two plus two?")], max_tokens=8))
    partial = "tell me a fun fact and i am out art of buses tell me about the " * 2
    llm.prefill(history + [ChatMessage("user", partial)])
    answer = "".join(llm.stream(history + [ChatMessage("user", "Tell me a fun fact.")], max_tokens=8))
    assert answer.strip()
    assert llm.last_prompt_eval_tokens < 40, llm.last_prompt_eval_tokens


def test_prefill_of_a_partial_transcript_leaves_only_the_tail_to_evaluate(llm: LlamaCppGenerator) -> None:
    llm.reset()
    system = ChatMessage("system", "You are a helpful voice assistant.")
    evaluated = llm.prefill([system, ChatMessage("user", "What is the capital of")])
    assert evaluated > 10
    answer = "".join(llm.stream([system, ChatMessage("user", "What is the capital of France?")], max_tokens=12))
    assert answer.strip()
    # Only the words after the partial, the turn end and the generation prompt are new.
    assert llm.last_prompt_eval_tokens <= 10, llm.last_prompt_eval_tokens
    assert llm.last_prompt_tokens > 20


@pytest.fixture(scope="module")
def scoring_llm() -> Iterator[LlamaCppGenerator]:
    generator = LlamaCppGenerator(threads=1, n_ctx=256, temperature=0.0, seed=1, score_end=True)
    yield generator
    generator.close()


def _end_probability(llm: LlamaCppGenerator, messages: list[ChatMessage]) -> float:
    stream = llm.stream(messages, max_tokens=4)
    next(stream)
    stream.close()
    assert llm.last_end_probability is not None
    return llm.last_end_probability


def test_the_answers_prompt_pass_says_whether_the_user_finished(scoring_llm: LlamaCppGenerator) -> None:
    finished = _end_probability(scoring_llm, [SYSTEM, ChatMessage("user", "What is the capital of France?")])
    cut_off = _end_probability(scoring_llm, [SYSTEM, ChatMessage("user", "I need some ideas for.")])
    assert finished > 0.3 and cut_off < 0.01
    # The same after a cached earlier exchange, and with the user's words already in
    # the cache from a prefill of the partial transcript (the last word is re-read).
    history = [SYSTEM, ChatMessage("user", "Hello."), ChatMessage("assistant", "Hi there!")]
    scoring_llm.prefill(history + [ChatMessage("user", "Can you give me")])
    assert _end_probability(scoring_llm, history + [ChatMessage("user", "Can you give me?")]) < 0.01
    assert scoring_llm.last_prompt_eval_tokens <= 8


def test_scoring_does_not_change_the_answer(llm: LlamaCppGenerator, scoring_llm: LlamaCppGenerator) -> None:
    question = [SYSTEM, ChatMessage("user", "What is the capital of France?")]
    llm.reset()
    scoring_llm.reset()
    plain = "".join(llm.stream(question, max_tokens=16))
    scored = "".join(scoring_llm.stream(question, max_tokens=16))
    assert scored == plain


WEATHER = Tool("get_weather", "Current weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
CLOCK = Tool("get_time", "Current time in a city", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


@pytest.mark.parametrize(("question", "name", "city"), [("What's the weather in Paris?", "get_weather", "Paris"), ("What time is it in Tokyo?", "get_time", "Tokyo")])
def test_a_required_call_is_decoded_under_the_tools_grammar(llm: LlamaCppGenerator, question: str, name: str, city: str) -> None:
    messages = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", question)]
    out = list(llm.stream(messages, max_tokens=64, tools=[WEATHER, CLOCK], tool_choice="required"))
    assert len(out) == 1 and isinstance(out[0], ToolCall), out
    assert out[0].name == name
    args = json.loads(out[0].arguments)  # the grammar guarantees the shape, not the value:
    assert list(args) == ["city"] and isinstance(args["city"], str)  # 135M puts a date in "city" for Tokyo
    if name == "get_weather":
        assert args == {"city": city}


def test_a_named_call_calls_that_function_and_auto_answers_in_words(llm: LlamaCppGenerator) -> None:
    messages = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "What's the weather in Paris?")]
    named = list(llm.stream(messages, max_tokens=64, tools=[WEATHER, CLOCK], tool_choice="get_time"))
    assert [c.name for c in named if isinstance(c, ToolCall)] == ["get_time"]
    words = list(llm.stream(messages, max_tokens=16, tools=[WEATHER, CLOCK], tool_choice="auto"))
    assert words and all(isinstance(p, str) for p in words)
    with pytest.raises(BackendError, match="not among the tools"):
        list(llm.stream(messages, max_tokens=16, tools=[WEATHER], tool_choice="get_time"))
