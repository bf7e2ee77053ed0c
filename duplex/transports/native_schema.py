"""The native protocol's client messages as one pydantic schema (docs/protocol.md).

``parse_message`` turns any text a client sends into a typed message or a
``BadMessage`` naming the field at fault; it never raises, whatever the input
(deep nesting, huge numbers, NUL bytes, bad UTF-8 surrogates). ``parse_query``
does the same for the connection URL's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
Rate = Literal[8000, 16000, 22050, 24000, 32000, 44100, 48000]


class _Message(BaseModel):
    # Unknown fields are ignored (forward compatibility); known ones are typed strictly.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class SessionUpdate(_Message):
    type: Literal["session.update"]
    input_sample_rate: Rate | None = None
    output_sample_rate: Rate | None = None
    instructions: str | None = None
    turn_detection: bool | None = None


class InputCommit(_Message):
    type: Literal["input.commit"]


class InputClear(_Message):
    type: Literal["input.clear"]


class Text(_Message):
    type: Literal["text"]
    text: Annotated[str, Field(min_length=1, pattern=r"\S")]


class ResponseCancel(_Message):
    type: Literal["response.cancel"]


class Ping(_Message):
    type: Literal["ping"]


ClientMessage = Annotated[
    SessionUpdate | InputCommit | InputClear | Text | ResponseCancel | Ping,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
MESSAGE_TYPES = ("session.update", "input.commit", "input.clear", "text", "response.cancel", "ping")


@dataclass(frozen=True)
class BadMessage:
    """Why a message was refused: an error ``code`` and a message naming the field."""

    code: str
    message: str


def _describe(exc: ValidationError) -> BadMessage:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = [str(p) for p in err["loc"]]
    kind = err["type"]
    if kind == "union_tag_invalid":
        return BadMessage("unknown_type", f"unknown message type; known: {', '.join(MESSAGE_TYPES)}")
    if kind == "union_tag_not_found":
        return BadMessage("bad_message", "malformed message: a message must be a JSON object with a string 'type'")
    if kind in ("json_invalid", "model_type", "model_attributes_type") or not loc:
        return BadMessage("bad_message", f"malformed message: {err['msg']}")
    field = loc[1] if len(loc) > 1 else loc[0]  # loc[0] is the message type's tag
    if field.endswith("sample_rate"):
        return BadMessage("bad_rate", f"{field}: sample rates must be one of {RATES}")
    return BadMessage("bad_message", f"{field}: {err['msg']}")


def parse_message(text: str | bytes) -> ClientMessage | BadMessage:
    """A client's JSON text as a typed message, or why not."""
    try:
        return _ADAPTER.validate_json(text)
    except ValidationError as exc:
        return _describe(exc)
    except ValueError as exc:  # e.g. invalid UTF-8 in bytes
        return BadMessage("bad_message", f"malformed message: {exc}")


class Query(BaseModel):
    """The ``/ws`` URL's parameters (``rate`` is an old name of ``input_sample_rate``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    input_sample_rate: Rate | None = None
    rate: Rate | None = None
    output_sample_rate: Rate | None = None


def parse_query(params: dict[str, str]) -> Query | BadMessage:
    """The URL's parameters, typed (text digits are numbers here), or why not."""
    try:
        typed = {k: int(v) if v.isascii() and v.isdigit() and len(v) < 7 else v for k, v in params.items() if k in Query.model_fields}
        return Query.model_validate(typed)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        field = str(err["loc"][0]) if err["loc"] else "query"
        return BadMessage("bad_rate", f"{field}: sample rates must be one of {RATES}")
