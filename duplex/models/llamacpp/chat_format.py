"""How messages are laid out in a small chat model's prompt, and a function call's schema.

``ChatFormat`` renders one message at a time (so a conversation's tokens only ever grow
at their end) for the two template families the shipped and suggested models use:
ChatML (SmolLM2's) and Gemma's. The small templates have no tool roles, so a tool's
result is written as a user turn and an assistant's calls after its words.

Function calling: a response that must call a function (``tool_choice`` "required" or a
function's name, ``forced_tools``) is decoded under a llama.cpp grammar built from
``call_schema``, the JSON Schema of one call to any offered function.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from duplex.errors import BackendError
from duplex.models.stages import ChatMessage, Tool, ToolChoice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatFormat:
    """How one message is laid out in the prompt, for a family of chat templates.

    Attributes:
        name: ``"chatml"`` or ``"gemma"``.
        turn_end: the text that closes a turn; its token stops generation.
    """

    name: str
    turn_end: str

    def render(self, message: ChatMessage) -> str:
        """The prompt text of one message, template markers included.

        A tool's result is a user turn that says so; an assistant's calls are written out
        after its words (the small chat templates have no tool roles)."""
        if message.role == "tool":
            message = ChatMessage("user", f"The function answered: {message.content}. Tell me in one sentence.")
        elif message.tool_calls:
            calls = " ".join(
                json.dumps({"name": c.name, "arguments": _json_or_text(c.arguments)}) for c in message.tool_calls
            )
            message = ChatMessage("assistant", f"{message.content} (function call) {calls}".strip())
        if self.name == "gemma":
            # Gemma has no system role; its template folds the system text into the first
            # user turn. A turn of its own keeps messages independently tokenizable.
            role = "model" if message.role == "assistant" else "user"
            return f"<start_of_turn>{role}\n{message.content}{self.turn_end}\n"
        return f"<|im_start|>{message.role}\n{message.content}{self.turn_end}\n"

    def generation_prompt(self) -> str:
        """The text that opens the assistant's turn."""
        if self.name == "gemma":
            return "<start_of_turn>model\n"
        return "<|im_start|>assistant\n"


CHATML = ChatFormat(name="chatml", turn_end="<|im_end|>")
GEMMA = ChatFormat(name="gemma", turn_end="<end_of_turn>")


def chat_format_from_template(template: str | None) -> ChatFormat:
    """Recognize the chat format from a GGUF's ``tokenizer.chat_template`` (ChatML if unknown)."""
    if template and "<start_of_turn>" in template:
        return GEMMA
    if template and "<|im_start|>" not in template:
        log.warning("unrecognized chat template in GGUF; falling back to ChatML")
    return CHATML


def _json_or_text(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


def call_schema(tools: Sequence[Tool]) -> dict[str, object]:
    """JSON Schema of one call to any of ``tools``: ``{"name": ..., "arguments": {...}}``."""
    options: list[dict[str, object]] = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t.name},
                "arguments": t.parameters or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def forced_tools(tools: Sequence[Tool], tool_choice: ToolChoice) -> list[Tool]:
    """The functions one of which must be called now ([] : the model answers in words)."""
    if tool_choice == "required":
        return list(tools)
    if tool_choice in ("auto", "none"):
        return []
    named = [t for t in tools if t.name == tool_choice]
    if not named:
        raise BackendError(f"tool_choice names {tool_choice!r}, which is not among the tools offered")
    return named
