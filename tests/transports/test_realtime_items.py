"""Conversation items as the agent's dialogue history (``duplex.transports.realtime_items``)."""

from __future__ import annotations

from duplex.transports.realtime_items import history, item_text, new_id


def test_an_item_reads_as_its_text_parts_and_transcripts_only():
    item = {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": " Hello "},
            {"type": "input_image", "image_url": "data:..."},
            {"type": "input_audio", "transcript": "there"},
            {"type": "input_audio", "audio": "AAAA"},
        ],
    }
    assert item_text(item) == "Hello there"


def test_a_function_call_joins_the_answer_it_belongs_to_and_its_output_follows():
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "rain"},
        {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": "x"}]},
    ]
    msgs = history(items)
    assert [m.role for m in msgs] == ["system", "assistant", "tool"]
    assert msgs[1].content == "Let me look." and [c.name for c in msgs[1].tool_calls] == ["weather"]
    assert msgs[2].content == "rain" and msgs[2].tool_call_id == "c1"


def test_ids_are_prefixed_and_unique():
    ids = {new_id("item") for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("item_") for i in ids)
