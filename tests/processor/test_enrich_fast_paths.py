"""The enrich stage's hot path gives what the straightforward per-span code gives.

The reference below is the stage as it was before its hot path: a ``Usage`` and ``PriceBook.cost`` per
span, seven ``span.set`` calls, the fingerprint computed every time, and attribution looked up span by
span in the attributes and then the resource. Spans are generated with odd values (ints, floats, bools,
strings and lists where numbers or names belong, unknown and tiered-price models, existing costs) and
batches share resource dicts as the gateway's do.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentrace.core import semconv
from tokentrace.core.pricing import CURRENCY, Cost, PriceBook
from tokentrace.core.usage import Usage
from tokentrace.processor.model import SpanData
from tokentrace.processor.stages import enrich
from tokentrace.processor.stages.enrich import Config, metadata_fingerprint

CACHE_WRITE_KEYS = (
    semconv.RELEASED.usage_cache_creation_input_tokens,
    semconv.DEVELOPMENT.usage_cache_creation_input_tokens,
)


# -- the reference --------------------------------------------------------------------------------


def as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def reference_cost(span: SpanData, prices: PriceBook, reprice: bool) -> None:
    attributes = span.attributes
    has_cost = semconv.USAGE_COST_AMOUNT in attributes
    if has_cost and not reprice:
        return
    model = attributes.get(semconv.RESPONSE_MODEL) or attributes.get(semconv.REQUEST_MODEL)
    cache_write = None
    for key in CACHE_WRITE_KEYS:
        cache_write = as_int(attributes.get(key))
        if cache_write is not None:
            break
    usage = Usage(
        input_tokens=as_int(attributes.get(semconv.USAGE_INPUT_TOKENS)),
        output_tokens=as_int(attributes.get(semconv.USAGE_OUTPUT_TOKENS)),
        cache_read_input_tokens=as_int(attributes.get(semconv.USAGE_CACHE_READ_INPUT_TOKENS)),
        cache_creation_input_tokens=cache_write,
    )
    if not model or not usage.known:
        return
    provider = str(attributes.get(semconv.PROVIDER_NAME) or attributes.get(semconv.SYSTEM) or "")
    result = prices.cost(provider, str(model), usage)
    if isinstance(result, str):
        if not has_cost and semconv.COST_UNAVAILABLE_REASON not in attributes:
            span.set(semconv.COST_UNAVAILABLE_REASON, result)
        return
    if has_cost and result.source != semconv.COST_SOURCE_PRICE_FILE:
        return
    assert isinstance(result, Cost)
    span.set(semconv.USAGE_COST_AMOUNT, result.total)
    span.set(semconv.USAGE_COST_CURRENCY, CURRENCY)
    span.set(semconv.USAGE_COST_SOURCE, result.source)
    span.set(semconv.COST_INPUT, result.input)
    span.set(semconv.COST_OUTPUT, result.output)
    span.set(semconv.COST_PRICING_MODEL, result.pricing_model)
    span.set(semconv.COST_PRICING_VERSION, result.pricing_version)
    span.pop(semconv.COST_UNAVAILABLE_REASON)


def reference_lookup(keys: tuple[str, ...], attributes: dict[str, Any], resource: dict[str, Any]) -> Any:
    for source in (attributes, resource):
        for key in keys:
            value = source.get(key)
            if value is not None and value != "":
                return value if isinstance(value, (str, bool, int, float)) else str(value)
    return None


def reference_enrich(span: SpanData, config: Config, prices: PriceBook) -> None:
    """One span without content, as the stage enriched it before (estimates need content: not here)."""
    attributes = span.attributes
    if config.cost:
        reference_cost(span, prices, config.reprice)
    if config.fingerprint and semconv.PROMPT_FINGERPRINT not in attributes:
        span.set(semconv.PROMPT_FINGERPRINT, metadata_fingerprint(attributes))
        span.set(semconv.PROMPT_FINGERPRINT_SOURCE, semconv.FINGERPRINT_SOURCE_METADATA)
    if config.attribution:
        for target, keys in (
            (semconv.ATTRIBUTION_TENANT, config.tenant_keys),
            (semconv.ATTRIBUTION_USER, config.user_keys),
            (semconv.ATTRIBUTION_FEATURE, config.feature_keys),
        ):
            if target not in attributes:
                value = reference_lookup(keys, attributes, span.resource)
                if value is not None:
                    span.set(target, value)


def reference_process(batch: list[SpanData], config: Config, prices: PriceBook) -> None:
    for span in batch:
        if semconv.OPERATION_NAME in span.attributes:
            try:
                reference_enrich(span, config, prices)
            except Exception:
                pass


def state(batch: list[SpanData]) -> list[tuple[list[tuple[str, Any]], bool]]:
    """Every span's attributes in order (order included: it is the order they are exported in), with
    their types (1 and True are equal, their attributes are not) and the changed mark."""
    return [([(k, type(v), v) for k, v in span.attributes.items()], span.changed) for span in batch]


# -- generated spans ------------------------------------------------------------------------------

MODELS = [
    "gpt-4o-mini",
    "gpt-4o-mini-2024-07-18",
    "claude-sonnet-4-5",  # tiered prices
    "gemini-2.5-pro",  # tiered prices
    "no-such-model-xyz",
    "mine-1",  # in the price file only
    "",
    1,
    True,
    1.0,
    ["gpt-4o"],
]
PROVIDERS = ["openai", "anthropic", "gcp.gemini", "ollama", "", 1, True, ["openai"]]
numbers = st.one_of(
    st.none(),
    st.integers(min_value=-10, max_value=3_000_000),
    st.sampled_from([0, 1, True, False, 1.0, 2.5, float("nan"), float("inf"), "12", [3]]),
)
names = st.one_of(st.none(), st.sampled_from(MODELS))
ATTRIBUTION_VALUES = st.sampled_from(["acme", "", 7, True, 1.5, ["a", "b"], None])


@st.composite
def genai_attributes(draw: st.DrawFn) -> dict[str, Any]:
    attributes: dict[str, Any] = {semconv.OPERATION_NAME: draw(st.sampled_from(["chat", "embeddings", 1, True]))}
    optional = {
        semconv.PROVIDER_NAME: st.sampled_from(PROVIDERS),
        semconv.SYSTEM: st.sampled_from(PROVIDERS),
        semconv.REQUEST_MODEL: names,
        semconv.RESPONSE_MODEL: names,
        semconv.USAGE_INPUT_TOKENS: numbers,
        semconv.USAGE_OUTPUT_TOKENS: numbers,
        semconv.USAGE_CACHE_READ_INPUT_TOKENS: numbers,
        CACHE_WRITE_KEYS[0]: numbers,
        CACHE_WRITE_KEYS[1]: numbers,
        semconv.USAGE_COST_AMOUNT: st.sampled_from([0.5, 0, None]),
        semconv.COST_UNAVAILABLE_REASON: st.just("model_not_in_catalogue"),
        semconv.COST_INPUT: st.just(0.1),  # a cost attribute already there keeps its place
        semconv.PROMPT_FINGERPRINT: st.just("0123456789abcdef"),
        "tenant.id": ATTRIBUTION_VALUES,
        "user.id": ATTRIBUTION_VALUES,
        semconv.ATTRIBUTION_USER: st.just("already"),
    }
    for key in draw(st.lists(st.sampled_from(list(optional)), unique=True)):
        attributes[key] = draw(optional[key])
    return attributes


resources = st.fixed_dictionaries(
    {},
    optional={
        "tenant": ATTRIBUTION_VALUES,
        "enduser.id": ATTRIBUTION_VALUES,
        "feature": ATTRIBUTION_VALUES,
        "service.name": st.just("svc"),
    },
)


@st.composite
def batches(draw: st.DrawFn) -> list[SpanData]:
    shared = draw(st.lists(resources, min_size=1, max_size=3))  # resource dicts shared by several spans
    batch = []
    for index in range(draw(st.integers(min_value=1, max_value=8))):
        attributes = draw(genai_attributes()) if draw(st.booleans()) or index == 0 else {"http.route": "/"}
        resource = draw(st.sampled_from(shared)) if draw(st.integers(0, 3)) else draw(resources)
        batch.append(SpanData(1, index + 1, None, "span", 3, 0, 1, attributes, resource))
    return batch


PRICE_FILE = (
    '{"models": [{"model": "mine-*", "input_mtok": 2.0, "output_mtok": 8.0},'
    ' {"model": "gpt-4o-mini*", "discount": 0.25}]}'
)
CONFIGS = [
    Config(),
    Config(reprice=True, prices_file="PRICE_FILE"),
    Config(fingerprint=False, cost=False),
    Config(tenant_keys=("tokentrace.user", "tenant")),  # a target that is also a key: no resource shortcut
    Config(attribution=False),
]


@pytest.fixture(scope="module")
def price_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prices") / "prices.json"
    path.write_text(PRICE_FILE)
    return path


def configured(config: Config, price_file: Path) -> Config:
    if config.prices_file == "PRICE_FILE":
        return Config(reprice=True, prices_file=str(price_file))
    return config


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), config_index=st.integers(min_value=0, max_value=len(CONFIGS) - 1))
def test_enrich_equals_the_span_by_span_reference(batch: list[SpanData], config_index: int, price_file: Path) -> None:
    config = configured(CONFIGS[config_index], price_file)
    stage = enrich.build(config)
    expected = copy.deepcopy(batch)
    # The reference shares resource dicts the same way, so deepcopy keeps their sharing.
    reference_process(expected, config, stage.prices or PriceBook())
    stage.process(batch)
    assert state(batch) == state(expected)
    again = copy.deepcopy(expected)  # a second pass over enriched spans (memos warm) changes nothing more
    stage.process(again)
    reference_process(expected, config, stage.prices or PriceBook())
    assert state(again) == state(expected)


# -- the memos ------------------------------------------------------------------------------------


def span(attributes: dict[str, Any], resource: dict[str, Any] | None = None) -> SpanData:
    return SpanData(1, 2, None, "chat", 3, 0, 1, {semconv.OPERATION_NAME: "chat", **attributes}, resource or {})


def test_fingerprint_memo_keeps_equal_values_of_different_types_apart() -> None:
    """1, True and 1.0 are one dict key, but three models with three fingerprints."""
    stage = enrich.build(Config(cost=False, attribution=False))
    spans = [span({semconv.REQUEST_MODEL: model}) for model in (1, True, 1.0, 1, True)]
    stage.process(spans)
    for item in spans:
        assert item.attributes[semconv.PROMPT_FINGERPRINT] == metadata_fingerprint(
            {semconv.OPERATION_NAME: "chat", semconv.REQUEST_MODEL: item.attributes[semconv.REQUEST_MODEL]}
        )
    assert len({item.attributes[semconv.PROMPT_FINGERPRINT] for item in spans}) == 3


def test_fingerprint_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enrich, "_FINGERPRINTS_LIMIT", 8)
    stage = enrich.build(Config(cost=False, attribution=False))
    spans = [span({semconv.REQUEST_MODEL: f"model-{n % 20}"}) for n in range(60)]
    stage.process(spans)
    assert 0 < len(stage._fingerprints) <= 8
    for item in spans:
        assert item.attributes[semconv.PROMPT_FINGERPRINT] == metadata_fingerprint(
            {semconv.OPERATION_NAME: "chat", semconv.REQUEST_MODEL: item.attributes[semconv.REQUEST_MODEL]}
        )


def test_resource_attribution_is_not_remembered_across_batches() -> None:
    """The per-resource answer lives for one process() call: a resource dict changed (or a new one at
    the same address) between batches is looked up again."""
    stage = enrich.build(Config(cost=False, fingerprint=False))
    resource = {"tenant.id": "acme"}
    first = [span({}, resource), span({}, resource)]
    stage.process(first)
    assert [s.attributes[semconv.ATTRIBUTION_TENANT] for s in first] == ["acme", "acme"]
    resource["tenant.id"] = "globex"
    second = [span({}, resource)]
    stage.process(second)
    assert second[0].attributes[semconv.ATTRIBUTION_TENANT] == "globex"


def test_span_attributes_win_over_the_shared_resource() -> None:
    stage = enrich.build(Config(cost=False, fingerprint=False))
    resource = {"tenant": "from-resource", "feature": "search"}
    batch = [span({}, resource), span({"tenant.id": "from-span"}, resource), span({}, resource)]
    stage.process(batch)
    assert [s.attributes[semconv.ATTRIBUTION_TENANT] for s in batch] == ["from-resource", "from-span", "from-resource"]
    assert [s.attributes[semconv.ATTRIBUTION_FEATURE] for s in batch] == ["search"] * 3


def test_a_target_that_is_also_a_key_is_looked_up_after_the_earlier_target_is_set() -> None:
    """user_keys naming the tenant target: the user is looked up after the tenant was set from the
    resource, so it finds it there (span by span, as before: no resource-only shortcut)."""
    config = Config(cost=False, fingerprint=False, user_keys=("tokentrace.tenant",), tenant_keys=("tenant",))
    stage = enrich.build(config)
    batch = [span({}, {"tenant": "acme"})]
    stage.process(batch)
    assert batch[0].attributes[semconv.ATTRIBUTION_TENANT] == "acme"
    assert batch[0].attributes[semconv.ATTRIBUTION_USER] == "acme"


def test_an_unhashable_model_still_gets_its_fingerprint_and_attribution() -> None:
    """A list where the model belongs cannot key the memo: computed directly, as without the memo."""
    stage = enrich.build(Config(cost=False))
    item = span({semconv.REQUEST_MODEL: ["gpt-4o"]}, {"tenant": "acme"})
    stage.process([item])
    assert item.attributes[semconv.PROMPT_FINGERPRINT] == metadata_fingerprint(
        {semconv.OPERATION_NAME: "chat", semconv.REQUEST_MODEL: ["gpt-4o"]}
    )
    assert item.attributes[semconv.ATTRIBUTION_TENANT] == "acme"
