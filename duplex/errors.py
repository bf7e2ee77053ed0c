"""Errors the runtime raises. Each says what went wrong and what to do about it."""

from __future__ import annotations


class DuplexError(Exception):
    """Base class of every error duplex raises on purpose."""


class ConfigError(DuplexError):
    """A profile or override names an unknown key or holds a bad value."""


class AudioFormatError(DuplexError):
    """Input audio is not in the format the runtime expects (rate, channels, dtype, corrupt)."""


class ModelNotFound(DuplexError):
    """A model's weights are missing; the message says which package or path provides them."""


class BackendError(DuplexError):
    """A model backend (local library or remote server) failed while serving a request."""


class SessionClosed(DuplexError):
    """Audio was pushed to, or events read from, a session that has been closed."""


class EngineFull(DuplexError):
    """Every session slot of the engine is taken; nothing was built for the refused one."""
