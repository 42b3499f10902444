"""Token counts of one call, with where they came from."""

from __future__ import annotations

from dataclasses import dataclass

from tokentrace.core import semconv


@dataclass
class Usage:
    """Token counts in the conventions' accounting.

    ``input_tokens`` includes cached and cache-creation tokens and ``output_tokens`` includes
    reasoning tokens, as the GenAI conventions define them; a provider module converts its own
    accounting (Anthropic reports them separately) before filling this in. ``None`` means unknown,
    which is different from zero.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None
    source: str = semconv.USAGE_SOURCE_REPORTED

    @property
    def known(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None
