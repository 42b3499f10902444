"""The flags stage's rules for spans without content (inlined dispatch, no sets for the usual finish
reasons) give what the general rules give, for odd values too: a value the rules cannot read raises in
both, and the span then gets no flags."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tokentrace.core import semconv
from tokentrace.processor.model import STATUS_ERROR, STATUS_OK, STATUS_UNSET, SpanData
from tokentrace.processor.stages import flags


class Nothing:
    """A detector that finds nothing: its presence sends every span through the general rules."""

    name = "nothing"

    def __call__(self, span: SpanData, texts: list[str]) -> list[Any]:
        return []


reason_values = st.one_of(
    st.none(),
    st.sampled_from(["stop", "length", "LENGTH", "Content_Filter", "", "safety", "max_tokens"]),
    st.lists(
        st.one_of(st.sampled_from(["stop", "length", "Max_Tokens", "refusal", "STOP", ""]), st.integers(0, 3)),
        max_size=3,
    ).flatmap(lambda items: st.sampled_from([items, tuple(items)])),
    st.sampled_from([7, 1.5, True, {"a": 1}]),  # not iterable, or odd: both paths raise or agree
)
numbers = st.one_of(
    st.none(),
    st.integers(min_value=-5, max_value=5000),
    st.sampled_from([0, 1, True, False, 0.0, 2.0, 2.5, float("nan"), float("inf"), "10", [1]]),
)


@st.composite
def spans(draw: st.DrawFn) -> SpanData:
    attributes: dict[str, Any] = {
        semconv.OPERATION_NAME: draw(st.sampled_from(["chat", "embeddings", "execute_tool", "create_agent", 1, ["x"]]))
    }
    optional = {
        semconv.USAGE_OUTPUT_TOKENS: numbers,
        semconv.REQUEST_MAX_TOKENS: numbers,
        semconv.RESPONSE_FINISH_REASONS: reason_values,
        semconv.ERROR_TYPE: st.sampled_from(["Timeout", "", None]),
        semconv.FLAGS: st.sampled_from([["empty"], [], ("custom",)]),
    }
    for key in draw(st.lists(st.sampled_from(list(optional)), unique=True)):
        attributes[key] = draw(optional[key])
    status = draw(st.sampled_from([STATUS_UNSET, STATUS_OK, STATUS_ERROR]))
    return SpanData(1, 2, None, "span", 3, 0, 1, attributes, status_code=status)


CONFIGS = [
    flags.Config(),
    flags.Config(short_ratio=0.5),
    flags.Config(checks=(semconv.FLAG_TRUNCATED, semconv.FLAG_TOOL_ERROR)),
    flags.Config(checks=()),
]


@settings(max_examples=500, deadline=None)
@given(batch=st.lists(spans(), min_size=1, max_size=5), config=st.sampled_from(CONFIGS))
def test_process_without_content_equals_the_general_rules(batch: list[SpanData], config: flags.Config) -> None:
    general = copy.deepcopy(batch)
    flags.FlagsStage(config, detectors=[Nothing()]).process(general)
    flags.FlagsStage(config, detectors=[]).process(batch)
    assert [(s.attributes, s.changed) for s in batch] == [(s.attributes, s.changed) for s in general]
