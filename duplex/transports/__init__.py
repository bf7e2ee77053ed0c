"""Transports: files, microphone, WebSocket (native + OpenAI Realtime subset), web page."""
