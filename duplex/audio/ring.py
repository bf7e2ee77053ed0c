"""A bounded ring buffer of samples: memory stays flat however long a stream runs."""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Keeps the most recent ``capacity`` samples of a stream.

    Also counts every sample ever written, so callers can address the kept
    samples by absolute stream index.
    """

    def __init__(self, capacity: int, dtype: type = np.float32) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._data: np.ndarray = np.zeros(capacity, dtype=dtype)
        self._written = 0

    @property
    def total_written(self) -> int:
        """Samples written since creation (absolute stream index of the next sample)."""
        return self._written

    def __len__(self) -> int:
        return min(self._written, self.capacity)

    def write(self, samples: np.ndarray) -> None:
        n = len(samples)
        if n >= self.capacity:
            self._data[:] = samples[-self.capacity :]
            self._written += n
            return
        pos = self._written % self.capacity
        first = min(n, self.capacity - pos)
        self._data[pos : pos + first] = samples[:first]
        if first < n:
            self._data[: n - first] = samples[first:]
        self._written += n

    def latest(self, n: int) -> np.ndarray:
        """Return a copy of the last ``n`` samples (fewer if fewer were kept)."""
        n = min(n, len(self))
        return self.since(self._written - n)

    def since(self, start: int) -> np.ndarray:
        """Return a copy of samples from absolute index ``start`` to now (clamped to what is kept)."""
        start = max(start, self._written - len(self))
        n = self._written - start
        if n <= 0:
            return np.zeros(0, dtype=self._data.dtype)
        pos = start % self.capacity
        if pos + n <= self.capacity:
            return self._data[pos : pos + n].copy()
        return np.concatenate([self._data[pos:], self._data[: n - (self.capacity - pos)]])

    def clear(self) -> None:
        self._written = 0
