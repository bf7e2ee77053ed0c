"""The llama.cpp backend: chat GGUF models on the CPU, weights loaded once per process.

One concept a module:

* ``generator`` — the streaming LLM stage (``LlamaCppGenerator``, a ``TextGenerator``);
* ``end_of_turn`` — the end-of-turn scorer (``LlamaCppEndOfUtterance``) and its head;
* ``context_window`` — attention sinks plus a recent window, and the KV cache kept reusable;
* ``chat_format`` — how messages are laid out in the prompt, and a function call's schema;
* ``sampling`` — the sampler chains an answer is decoded with;
* ``sentence_end`` — P(the sentence ends) from the next-token logits;
* ``session_context`` — one holder's llama.cpp context over shared weights;
* ``gguf`` — the packaged GGUF, its weights re-encoded, and loaded once per process.
"""
