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
        self._version = 0  # bumped when messages are replaced or trimmed (a mark() goes stale)

    def add_user(self, text: str) -> None:
        if self.messages and self.messages[-1].role == "user" and not self.messages[-1].tool_calls:
            # Two user turns in a row (the agent said nothing): merge them.
            prev = self.messages.pop()
            text = f"{prev.content} {text}"
        self.messages.append(ChatMessage("user", text))
        self._bound()

    def add_assistant(self, text: str, *, interrupted: bool = False, at: tuple[int, int] | None = None) -> None:
        """Record what the user heard of the agent's answer (the spoken prefix).

        ``at``: where the answer began in the history (``len(messages)`` then), so what
        a client added while it played comes after it, as OpenAI's conversation has it.
        """
        if not text.strip():
            return
        if interrupted:
            text = f"{text.strip()} —"
        self.add(ChatMessage("assistant", text.strip()), at=at)

    def mark(self) -> tuple[int, int]:
        """Where a message added now would go: (history version, index) for ``add(at=)``."""
        return self._version, len(self.messages)

    def replace_last_assistant(self, text: str, *, interrupted: bool = False) -> None:
        """Rewrite the last assistant message (a client truncated its playback)."""
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "assistant":
                del self.messages[i]
                break
        self.add_assistant(text, interrupted=interrupted)

    def add(self, message: ChatMessage, *, at: int | tuple[int, int] | None = None) -> None:
        """Append any message as it is (a client's item: system text, history, a tool result).

        ``at`` (a ``mark()``) puts it where the history ended then, unless the history was
        replaced or trimmed since."""
        if isinstance(at, tuple) and at[0] == self._version and at[1] <= len(self.messages):
            self.messages.insert(at[1], message)
        else:
            self.messages.append(message)
        self._bound()

    def replace(self, messages: list[ChatMessage]) -> None:
        """The whole history at once (a client edited it: deleted or inserted items)."""
        self.messages = list(messages)
        self._version += 1
        self._bound()

    def set_system(self, text: str) -> None:
        self.system = ChatMessage("system", text)

    def messages_with_user(self, text: str, instructions: str | None = None) -> list[ChatMessage]:
        """The messages to answer ``text`` with (the history is not changed).

        ``text`` empty answers the history as it stands (the client asked for a response
        now); ``instructions`` replace the system prompt for this answer only.
        """
        system = self.system if instructions is None else ChatMessage("system", instructions)
        history = list(self.messages)
        if not text.strip():
            return [system, *history]
        if history and history[-1].role == "user":
            text = f"{history.pop().content} {text}"
        return [system, *history, ChatMessage("user", text)]

    def _bound(self) -> None:
        if len(self.messages) > self.max_messages:
            sinks = self.messages[:2]
            recent = self.messages[-(self.max_messages - 2) :]
            self.messages = sinks + recent
            self._version += 1
