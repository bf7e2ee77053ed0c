"""Batch offline evaluation of duplex behaviour (``duplex eval``).

Scenario sets (``scenarios``, made by ``generate``) run closed loop through the
runtime on the offline clock (``runner``, ``acoustics``), are scored
(``metrics``: Full-Duplex-Bench take-over rates, response and stop latency,
false interruptions, real-time factors) and reported (``report``, ``compare``).
``fdb`` reads and writes Full-Duplex-Bench's sample layout. See docs/eval.md.
"""
