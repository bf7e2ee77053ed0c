"""What the OpenAI Realtime endpoint's two sides share: ids, the audio rate, tool
definitions, and conversation items read as the agent's dialogue history."""

from __future__ import annotations

import uuid
from typing import Any

from duplex.models.stages import ChatMessage, Tool, ToolCall
from duplex.transports import realtime_schema as rs

RATE = 24000
TEXT_PARTS = ("input_text", "text", "output_text")
AUDIO_PARTS = ("input_audio", "audio", "output_audio")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def tools_from(tools: list[rs.FunctionTool]) -> tuple[Tool, ...]:
    return tuple(Tool(t.name, t.description, t.parameters) for t in tools)


def tool_choice_name(choice: str | rs.ToolChoiceFunction) -> str:
    return choice if isinstance(choice, str) else choice.function_name


def item_text(item: dict[str, Any]) -> str:
    """What the agent reads of a message item: its text parts and audio transcripts."""
    texts = []
    for part in item.get("content") or []:
        if part.get("type") in TEXT_PARTS and part.get("text"):
            texts.append(part["text"])
        elif part.get("type") in AUDIO_PARTS and part.get("transcript"):
            texts.append(part["transcript"])
    return " ".join(t.strip() for t in texts if t.strip())


def history(items: list[dict[str, Any]]) -> list[ChatMessage]:
    """The conversation items as the dialogue history the agent answers from."""
    out: list[ChatMessage] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            text = item_text(item)
            if not text:
                continue
            role = {"developer": "system"}.get(item["role"], item["role"])
            out.append(ChatMessage(role, text))
        elif kind == "function_call":
            call = ToolCall(item["call_id"], item["name"], item.get("arguments") or "{}")
            if out and out[-1].role == "assistant":  # the words and the calls of one answer
                prev = out.pop()
                out.append(ChatMessage("assistant", prev.content, (*prev.tool_calls, call)))
            else:
                out.append(ChatMessage("assistant", "", (call,)))
        elif kind == "function_call_output":
            out.append(ChatMessage("tool", item["output"], tool_call_id=item["call_id"]))
    return out
