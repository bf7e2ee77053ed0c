"""One frame's ``ListenSignals`` as the policy tests feed them to the turn-taker."""

from __future__ import annotations

from duplex.models.base import ListenSignals

FRAME_MS = 32.0


def heard(voiced: bool, final: str | None, requested: tuple | None, **with_final: float | None) -> ListenSignals:
    """One frame's signals: speech or silence, and the requested final when it comes back
    (with ``with_final`` fields, e.g. its confidence, only then)."""
    extra = with_final if final is not None else {}
    return ListenSignals(
        vad_prob=0.9 if voiced else 0.0,
        energy_db=-25.0 if voiced else -70.0,
        final_text=final,
        final_end_ms=requested[0].end_ms if final is not None and requested else 0.0,
        **extra,  # type: ignore[arg-type]
    )
