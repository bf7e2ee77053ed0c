"""The dialogue history the agent answers from: only what was actually said and heard.

The history is bounded: it keeps the attention sinks (the system prompt and the
first exchange) and a recent window, so memory stays flat in an endless
conversation. The LLM stage applies its own token budget on top.
"""

from __future__ import annotations

from duplex.models.stages import ChatMessage


class Dialogue:
    """System prompt + alternating user/assistant messages, bounded in count."""

    def __init__(self, system_prompt: str, max_messages: int = 64) -> None:
        self.system = ChatMessage("system", system_prompt)
        self.max_messages = max_messages
        self.messages: list[ChatMessage] = []

    def add_user(self, text: str) -> None:
        if self.messages and self.messages[-1].role == "user":
            # Two user turns in a row (the agent said nothing): merge them.
            prev = self.messages.pop()
            text = f"{prev.content} {text}"
        self.messages.append(ChatMessage("user", text))
        self._bound()

    def add_assistant(self, text: str, *, interrupted: bool = False) -> None:
        """Record what the user heard of the agent's answer (the spoken prefix)."""
        if not text.strip():
            return
        if interrupted:
            text = f"{text.strip()} —"
        self.messages.append(ChatMessage("assistant", text.strip()))
        self._bound()

    def replace_last_assistant(self, text: str, *, interrupted: bool = False) -> None:
        """Rewrite the last assistant message (a client truncated its playback)."""
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "assistant":
                del self.messages[i]
                break
        self.add_assistant(text, interrupted=interrupted)

    def set_system(self, text: str) -> None:
        self.system = ChatMessage("system", text)

    def messages_with_user(self, text: str) -> list[ChatMessage]:
        """The messages to answer ``text`` with (the history is not changed)."""
        history = list(self.messages)
        if history and history[-1].role == "user":
            text = f"{history.pop().content} {text}"
        return [self.system, *history, ChatMessage("user", text)]

    def _bound(self) -> None:
        if len(self.messages) > self.max_messages:
            sinks = self.messages[:2]
            recent = self.messages[-(self.max_messages - 2) :]
            self.messages = sinks + recent
