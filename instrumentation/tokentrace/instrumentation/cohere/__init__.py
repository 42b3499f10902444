"""Cohere auto-instrumentation: every v2 call of the ``cohere`` SDK (``ClientV2`` / ``AsyncClientV2`` and
``client.v2``) becomes a GenAI span with exact tokens, cost priced from Cohere's billed units, and the
conventions' metrics.

Zero code: ``opentelemetry-instrument python app.py`` (entry point ``tokentrace_cohere``).
One call: ``CohereInstrumentor().instrument()``.
"""

from __future__ import annotations

from collections.abc import Iterator

from tokentrace.core.instrumentor import LibraryInstrumentor, Target
from tokentrace.core.recorder import Recorder

SCOPE = "tokentrace.instrumentation.cohere"
# ClientV2 and the typed v2 stream events arrived in 5.10; 5.x-7.x share the v2 shapes read here.
_INSTRUMENTS = ("cohere >= 5.10",)
_MODULE = "cohere.v2.client"


class CohereInstrumentor(LibraryInstrumentor):
    """Instruments the ``cohere`` package's v2 API; a singleton, so instrumenting twice is a no-op."""

    SCOPE = SCOPE
    INSTRUMENTS = _INSTRUMENTS

    def targets(self, recorder: Recorder) -> Iterator[Target]:
        from tokentrace.instrumentation.cohere import _patch

        wrappers = _patch.Wrappers(recorder)
        # ClientV2 / AsyncClientV2 inherit these methods (V2Client comes first in their MRO), and
        # ``Client.v2`` is a V2Client: wrapping the base classes covers every way of calling v2.
        yield _MODULE, "V2Client", "chat", wrappers.chat()
        yield _MODULE, "V2Client", "chat_stream", wrappers.chat_stream()
        yield _MODULE, "V2Client", "embed", wrappers.embed()
        yield _MODULE, "AsyncV2Client", "chat", wrappers.async_chat()
        yield _MODULE, "AsyncV2Client", "chat_stream", wrappers.async_chat_stream()
        yield _MODULE, "AsyncV2Client", "embed", wrappers.async_embed()


__all__ = ["CohereInstrumentor"]
