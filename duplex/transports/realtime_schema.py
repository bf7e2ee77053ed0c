"""The OpenAI Realtime client events ``/v1/realtime`` accepts, as one pydantic schema.

``parse_client_event`` turns one WebSocket text message into a typed event or raises
``ClientEventError`` naming the field at fault (``param``, dotted: ``session.audio.input``)
and an OpenAI-style error code; the connection answers it with an ``error`` event and the
session goes on. Fields the server does not use are accepted and ignored (clients send
voice, temperature, noise reduction ...), but every field it reads is checked here, so the
connection never meets a value of the wrong shape.

Both the GA shapes (``session.audio.input.turn_detection``, ``output_modalities``) and the
beta ones (``session.turn_detection``, ``modalities``) are accepted.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# A message larger than this is refused before parsing (the server's frame limit is larger:
# a base64 audio append of a few seconds is fine, a document is not).
MAX_EVENT_CHARS = 4 * 2**20


class ClientEventError(ValueError):
    """A client event that cannot be used: what is wrong, where, and the OpenAI error code."""

    def __init__(self, code: str, message: str, param: str | None = None, event_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id


class _Model(BaseModel):
    # Unknown fields are kept, not refused: clients send settings duplex has no use for.
    # No NaN or Infinity anywhere a number is read.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)


# ---------------------------------------------------------------- session
class TurnDetection(_Model):
    type: str = "server_vad"
    create_response: bool | None = None
    interrupt_response: bool | None = None


class AudioFormat(_Model):
    type: str = "audio/pcm"
    rate: int | None = None


class AudioInput(_Model):
    format: AudioFormat | None = None
    turn_detection: TurnDetection | None = None


class AudioOutput(_Model):
    format: AudioFormat | None = None


class AudioConfig(_Model):
    input: AudioInput | None = None
    output: AudioOutput | None = None


class FunctionTool(_Model):
    type: Literal["function"] = "function"
    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    parameters: dict[str, Any] | None = None


class FunctionName(_Model):
    name: str


class ToolChoiceFunction(_Model):
    """``{"type": "function", "name": ...}`` (the chat API's ``function.name`` too)."""

    type: Literal["function"]
    name: str | None = None
    function: FunctionName | None = None

    @model_validator(mode="after")
    def _named(self) -> ToolChoiceFunction:
        if not self.function_name:
            raise ValueError("a function tool_choice needs the function's 'name'")
        return self

    @property
    def function_name(self) -> str:
        return self.name or (self.function.name if self.function else "")


ToolChoice = Literal["auto", "none", "required"] | ToolChoiceFunction
Modality = Literal["text", "audio"]


class SessionConfig(_Model):
    type: str | None = None
    instructions: str | None = None
    turn_detection: TurnDetection | None = None  # beta
    input_audio_format: str | None = None  # beta
    output_audio_format: str | None = None  # beta
    audio: AudioConfig | None = None  # GA
    modalities: list[Modality] | None = None  # beta
    output_modalities: list[Modality] | None = None  # GA
    tools: list[FunctionTool] | None = None
    tool_choice: ToolChoice | None = None


# ---------------------------------------------------------------- items
class ContentPart(_Model):
    type: Literal["input_text", "input_audio", "input_image", "text", "output_text", "audio", "output_audio"]
    text: str | None = None
    audio: str | None = None
    transcript: str | None = None
    image_url: str | None = None


class MessageItem(_Model):
    id: str | None = Field(default=None, max_length=64)
    type: Literal["message"]
    role: Literal["user", "assistant", "system", "developer"]
    content: list[ContentPart]
    status: str | None = None


class FunctionCallItem(_Model):
    id: str | None = Field(default=None, max_length=64)
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = ""
    status: str | None = None


class FunctionCallOutputItem(_Model):
    id: str | None = Field(default=None, max_length=64)
    type: Literal["function_call_output"]
    call_id: str
    output: str
    status: str | None = None


Item = Annotated[MessageItem | FunctionCallItem | FunctionCallOutputItem, Field(discriminator="type")]
ITEM_TYPES = frozenset({"message", "function_call", "function_call_output"})


# ---------------------------------------------------------------- events
class ClientEvent(_Model):
    type: str
    event_id: str | None = None


class SessionUpdate(ClientEvent):
    type: Literal["session.update"]
    session: SessionConfig


class InputAudioBufferAppend(ClientEvent):
    type: Literal["input_audio_buffer.append"]
    audio: str


class InputAudioBufferCommit(ClientEvent):
    type: Literal["input_audio_buffer.commit"]


class InputAudioBufferClear(ClientEvent):
    type: Literal["input_audio_buffer.clear"]


class OutputAudioBufferClear(ClientEvent):
    type: Literal["output_audio_buffer.clear"]


class ConversationItemCreate(ClientEvent):
    type: Literal["conversation.item.create"]
    previous_item_id: str | None = None
    item: Item


class ConversationItemRetrieve(ClientEvent):
    type: Literal["conversation.item.retrieve"]
    item_id: str


class ConversationItemDelete(ClientEvent):
    type: Literal["conversation.item.delete"]
    item_id: str


class ConversationItemTruncate(ClientEvent):
    type: Literal["conversation.item.truncate"]
    item_id: str
    content_index: int = Field(default=0, ge=0)
    audio_end_ms: float = Field(ge=0)


class ResponseParams(_Model):
    instructions: str | None = None
    metadata: dict[str, Any] | None = None
    conversation: str | None = None  # "auto" (the default) or "none": out of band
    tools: list[FunctionTool] | None = None
    tool_choice: ToolChoice | None = None
    modalities: list[Modality] | None = None
    output_modalities: list[Modality] | None = None
    input: list[Item] | None = None


class ResponseCreate(ClientEvent):
    type: Literal["response.create"]
    response: ResponseParams | None = None


class ResponseCancel(ClientEvent):
    type: Literal["response.cancel"]
    response_id: str | None = None


EVENTS: dict[str, type[ClientEvent]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in (
        SessionUpdate,
        InputAudioBufferAppend,
        InputAudioBufferCommit,
        InputAudioBufferClear,
        OutputAudioBufferClear,
        ConversationItemCreate,
        ConversationItemRetrieve,
        ConversationItemDelete,
        ConversationItemTruncate,
        ResponseCreate,
        ResponseCancel,
    )
}


def _param(loc: tuple[int | str, ...]) -> str:
    """Dotted field path of a validation error (the union's tags left out)."""
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p not in ITEM_TYPES and not p.startswith(("literal[", "function-")) and not p[:1].isupper():
            parts.append(("." if parts else "") + p)
    return "".join(parts)


def parse_client_event(message: str) -> ClientEvent:
    """One client message as its typed event.

    Raises:
        ClientEventError: not JSON, not an object with a string ``type``, a type this
            server does not know, or a field of the wrong shape (``param`` names it).
    """
    if len(message) > MAX_EVENT_CHARS:
        raise ClientEventError("invalid_json", f"event of {len(message)} characters; the limit is {MAX_EVENT_CHARS}")
    try:
        raw = json.loads(message)
    except RecursionError:
        raise ClientEventError("invalid_json", "the event is nested too deeply") from None
    except ValueError as exc:
        raise ClientEventError("invalid_json", f"the event is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ClientEventError("invalid_json", "an event must be a JSON object")
    event_id = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise ClientEventError("missing_required_parameter", "an event needs a string 'type'", "type", event_id)
    cls = EVENTS.get(kind)
    if cls is None:
        raise ClientEventError("unknown_event", f"unsupported client event {kind[:80]!r}", "type", event_id)
    try:
        return cls.model_validate(raw)
    except RecursionError:
        raise ClientEventError("invalid_value", "the event is nested too deeply", None, event_id) from None
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        param = _param(tuple(first["loc"]))
        code = "missing_required_parameter" if first["type"] == "missing" else "invalid_value"
        detail = "; ".join(f"{_param(tuple(e['loc'])) or kind}: {e['msg']}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ClientEventError(code, f"{kind}: {detail}{more}", param or None, event_id) from None
