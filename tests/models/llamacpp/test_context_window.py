"""The context window's rule: attention sinks plus the most recent messages in a budget."""

from __future__ import annotations

from duplex.models.llamacpp.context_window import fit_context
from duplex.models.stages import ChatMessage

from .dialogue import SYSTEM, weather_dialogue


def _words(message: ChatMessage) -> int:
    return len(message.content.split()) + 2


def test_fit_context_returns_everything_that_fits() -> None:
    messages = weather_dialogue(3) + [ChatMessage("user", "and tomorrow")]
    assert fit_context(messages, _words, budget=1000) == messages


def test_fit_context_keeps_system_and_first_exchange_and_most_recent_within_budget() -> None:
    messages = weather_dialogue(20) + [ChatMessage("user", "what should I wear")]
    kept = fit_context(messages, _words, budget=60)
    assert kept[:3] == messages[:3]  # system, first question, first answer: the sinks
    assert kept[-1] == messages[-1]
    tail = kept[3:]
    assert tail == messages[len(messages) - len(tail) :]  # a contiguous recent run
    assert sum(_words(m) for m in kept) <= 60
    # and no further message would have fit
    assert sum(_words(m) for m in kept) + _words(messages[-len(tail) - 1]) > 60


def test_fit_context_gives_up_first_exchange_before_the_last_message() -> None:
    long_last = ChatMessage("user", "word " * 40)
    kept = fit_context(weather_dialogue(5) + [long_last], _words, budget=55)
    assert kept[0] == SYSTEM
    assert kept[-1] == long_last
    assert sum(_words(m) for m in kept) <= 55


def test_two_hundred_turn_history_fits_with_sinks() -> None:
    messages = weather_dialogue(200) + [ChatMessage("user", "last question")]
    kept = fit_context(messages, _words, budget=300)
    assert kept[:3] == messages[:3]
    assert kept[-1] == messages[-1]
    assert sum(_words(m) for m in kept) <= 300
