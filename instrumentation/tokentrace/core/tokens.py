"""Token estimates with tiktoken, for responses that report no usage.

Estimation runs once per call, at its end, over text gathered while streaming; never per chunk.
Encodings are resolved once per model and kept; an encoding that cannot be loaded (tiktoken
fetches its files on first use unless ``TIKTOKEN_CACHE_DIR`` holds them) is remembered as missing,
so the count is left unset rather than retried on every call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from tokentrace.core.safety import logger

DEFAULT_ENCODING = "o200k_base"
# Chat framing per message and for priming the reply, per OpenAI's published counting recipe.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


class TokenEstimator:
    """Counts tokens of text for a model; thread-safe, caches encodings per model."""

    def __init__(self) -> None:
        self._by_model: dict[str, Any] = {}
        self._by_name: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def prefetch(self, names: Iterable[str] = (DEFAULT_ENCODING, "cl100k_base")) -> threading.Thread:
        """Load encodings in the background, so the first estimate doesn't pay for it on the app's thread."""
        thread = threading.Thread(
            target=lambda: [self._load(name) for name in names], name="tokentrace-tiktoken", daemon=True
        )
        thread.start()
        return thread

    def encoding_for(self, model: str | None) -> Any | None:
        key = model or ""
        if key in self._by_model:
            return self._by_model[key]
        import tiktoken

        try:
            name = tiktoken.encoding_name_for_model(key) if key else DEFAULT_ENCODING
        except KeyError:
            name = DEFAULT_ENCODING
        encoding = self._load(name)
        with self._lock:
            self._by_model[key] = encoding
        return encoding

    def _load(self, name: str) -> Any | None:
        if name in self._by_name:
            return self._by_name[name]
        with self._lock:
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:  # one thread loads; others wait for it rather than loading again
            if name in self._by_name:
                return self._by_name[name]
            return self._load_now(name)

    def _load_now(self, name: str) -> Any | None:
        import tiktoken

        try:
            encoding = tiktoken.get_encoding(name)
        except Exception as exc:
            logger.warning(
                "tokentrace: tiktoken encoding %s is unavailable (%s: %s); streamed calls without reported "
                "usage will have no token counts. Put the encoding in TIKTOKEN_CACHE_DIR to enable estimates.",
                name,
                type(exc).__name__,
                exc,
            )
            encoding = None
        with self._lock:
            self._by_name[name] = encoding
        return encoding

    def count_text(self, model: str | None, texts: Iterable[str]) -> int | None:
        """Tokens in the concatenated texts, or ``None`` when no encoding is available."""
        encoding = self.encoding_for(model)
        if encoding is None:
            return None
        joined = "".join(texts)
        return len(encoding.encode_ordinary(joined)) if joined else 0

    def count_messages(self, model: str | None, message_texts: list[str]) -> int | None:
        """Prompt tokens of a chat request: each message's text plus the chat framing."""
        encoding = self.encoding_for(model)
        if encoding is None:
            return None
        total = TOKENS_PER_REPLY
        for text in message_texts:
            total += TOKENS_PER_MESSAGE + (len(encoding.encode_ordinary(text)) if text else 0)
        return total


shared_estimator = TokenEstimator()
"""One per process: encodings are large and identical for every instrumented library."""
