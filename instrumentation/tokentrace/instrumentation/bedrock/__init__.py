"""AWS Bedrock auto-instrumentation: ``bedrock-runtime`` calls made through botocore (and boto3)
become GenAI spans with exact tokens, cost and the conventions' metrics.

Instrumented operations: ``converse``, ``converse_stream``, ``invoke_model`` and
``invoke_model_with_response_stream`` (chat, text completion and embeddings models of every family
Bedrock hosts). Zero code: ``opentelemetry-instrument python app.py`` (entry point
``tokentrace_bedrock``); one call: ``BedrockInstrumentor().instrument()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tokentrace.core.instrumentor import LibraryInstrumentor, Target
from tokentrace.core.recorder import Recorder

# 1.34.116 (May 2024) is the first botocore whose bedrock-runtime model has Converse/ConverseStream;
# InvokeModel* exist since 1.31.57.
_INSTRUMENTS = ("botocore >= 1.34.116",)
SCOPE = "tokentrace.instrumentation.bedrock"


class BedrockInstrumentor(LibraryInstrumentor):
    """Instruments botocore's ``bedrock-runtime`` client; a singleton, so instrumenting twice is a no-op."""

    SCOPE = SCOPE
    INSTRUMENTS = _INSTRUMENTS

    def targets(self, recorder: Recorder) -> Iterator[Target]:
        from tokentrace.instrumentation.bedrock._patch import BedrockTracer

        yield "botocore.client", "BaseClient", "_make_api_call", BedrockTracer(recorder).wrapper()

    def _instrument(self, **kwargs: Any) -> None:
        super()._instrument(**kwargs)
        if self.recorder.settings.http_attempts:  # botocore's own HTTP attempts (httpx's hook never sees them)
            from tokentrace.instrumentation import _botocore_http

            _botocore_http.install()
            self._botocore_http_installed = True

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        if getattr(self, "_botocore_http_installed", False):
            from tokentrace.instrumentation import _botocore_http

            _botocore_http.uninstall()
            self._botocore_http_installed = False


__all__ = ["BedrockInstrumentor"]
