"""The LLM's written lists and markdown are spoken as plain sentences."""

from duplex.models.spoken_text import spoken_pieces


def spoken(pieces: list[str]) -> str:
    return "".join(spoken_pieces(pieces))


def test_numbered_list_is_spoken_without_its_numbers() -> None:
    # SmolLM2's tokens for a list it was told not to write.
    pieces = ["1", ".", " Don", "'t forget", " to breathe", ".", "\n", "2", ".", " Take", " breaks", ".", "\n", "3", "."]
    assert spoken(pieces).split() == ["Don't", "forget", "to", "breathe.", "Take", "breaks."]


def test_bullets_headings_and_emphasis_are_dropped() -> None:
    pieces = ["## ", "Tips", "\n", "-", " Drink", " **water**", "\n", "*", " Sleep", " `well`"]
    assert spoken(pieces).split() == ["Tips", "Drink", "water", "Sleep", "well"]


def test_numbers_and_dashes_inside_sentences_are_kept() -> None:
    pieces = ["It", " boils", " at", " 100", ".", "5", " degrees", " -", " about", " 2", " cups", "."]
    assert spoken(pieces) == "It boils at 100.5 degrees - about 2 cups."


def test_ordinary_words_are_not_held_back() -> None:
    # Each word goes on as soon as it arrives: the first clause is on the critical path.
    out = list(spoken_pieces(iter(["The", " capital", " of", " France"])))
    assert out == ["The", " capital", " of", " France"]
