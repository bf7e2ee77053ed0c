"""A long made-up dialogue the context-window and generator tests share."""

from __future__ import annotations

from duplex.models.stages import ChatMessage

SYSTEM = ChatMessage("system", "You are a helpful voice assistant. Answer in one short sentence.")


def weather_dialogue(n_exchanges: int) -> list[ChatMessage]:
    """The system prompt and ``n_exchanges`` question/answer pairs about the weather."""
    messages = [SYSTEM]
    for i in range(n_exchanges):
        messages.append(ChatMessage("user", f"question number {i} about the weather today"))
        messages.append(ChatMessage("assistant", f"answer number {i} it is sunny and warm"))
    return messages
