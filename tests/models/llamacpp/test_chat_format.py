"""How messages are laid out in the prompt, and which functions a tool choice forces."""

from __future__ import annotations

import json
import logging

import pytest

from duplex.errors import BackendError
from duplex.models.llamacpp.chat_format import (
    CHATML,
    GEMMA,
    call_schema,
    chat_format_from_template,
    forced_tools,
)
from duplex.models.stages import ChatMessage, Tool, ToolCall

WEATHER = Tool("get_weather", "the weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}})
TIME = Tool("get_time", "the time now")


def test_the_template_names_the_format_and_an_unknown_one_falls_back_to_chatml(caplog) -> None:
    assert chat_format_from_template("{{'<start_of_turn>' + role}}") is GEMMA
    assert chat_format_from_template("{{'<|im_start|>' + role}}") is CHATML
    assert chat_format_from_template(None) is CHATML
    with caplog.at_level(logging.WARNING):
        assert chat_format_from_template("[INST] {{content}} [/INST]") is CHATML
    assert "unrecognized chat template" in caplog.text


def test_each_message_is_one_turn_of_its_template() -> None:
    assert CHATML.render(ChatMessage("user", "Hi")) == "<|im_start|>user\nHi<|im_end|>\n"
    assert CHATML.generation_prompt() == "<|im_start|>assistant\n"
    # Gemma has no system role and calls the assistant "model".
    assert GEMMA.render(ChatMessage("system", "Be brief.")) == "<start_of_turn>user\nBe brief.<end_of_turn>\n"
    assert GEMMA.render(ChatMessage("assistant", "Hello")) == "<start_of_turn>model\nHello<end_of_turn>\n"


def test_calls_and_results_are_written_into_the_turns_of_a_template_without_tool_roles() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    said = CHATML.render(ChatMessage("assistant", "Let me look.", tool_calls=(call,)))
    assert said.startswith("<|im_start|>assistant\nLet me look. (function call) ")
    assert json.loads(said.split("(function call) ")[1].removesuffix("<|im_end|>\n")) == {
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    result = CHATML.render(ChatMessage("tool", "sunny", tool_call_id="call_1"))
    assert result.startswith("<|im_start|>user\nThe function answered: sunny.")


def test_a_tool_choice_forces_all_one_or_no_function() -> None:
    assert forced_tools([WEATHER, TIME], "required") == [WEATHER, TIME]
    assert forced_tools([WEATHER, TIME], "get_time") == [TIME]
    assert forced_tools([WEATHER, TIME], "auto") == [] and forced_tools([WEATHER], "none") == []
    with pytest.raises(BackendError, match="'get_news', which is not among the tools offered"):
        forced_tools([WEATHER, TIME], "get_news")


def test_the_call_schema_names_an_offered_function_and_its_parameters() -> None:
    one = call_schema([WEATHER])
    assert one["properties"] == {"name": {"const": "get_weather"}, "arguments": WEATHER.parameters}
    both = call_schema([WEATHER, TIME])
    options = both["anyOf"]
    assert isinstance(options, list) and [o["properties"]["name"] for o in options] == [
        {"const": "get_weather"},
        {"const": "get_time"},
    ]
    assert options[1]["properties"]["arguments"] == {"type": "object", "properties": {}}
