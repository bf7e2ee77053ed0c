"""The policy layer: the turn-taker and the echo canceller."""
