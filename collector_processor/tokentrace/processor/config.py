"""Building the pipeline from configuration: a YAML file and ``TOKENTRACE_*`` environment variables.

```yaml
pipeline: [normalise, enrich, flags, redact, span_metrics, sample]   # order; omit a stage to skip it
enrich: {prices_file: /etc/tokentrace/prices.yaml}
redact: {mode: mask}
sample: {probability: 0.1, latency_threshold_s: 5}
```

The file is named by ``TOKENTRACE_PROCESSOR_CONFIG``. Environment variables override it:
``TOKENTRACE_PIPELINE=normalise,enrich,sample`` sets the order and
``TOKENTRACE_<STAGE>__<KEY>=value`` one setting (the value is read as YAML, so ``0.1`` is a number
and ``[a, b]`` a list), e.g. ``TOKENTRACE_SAMPLE__PROBABILITY=0.1``.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tokentrace.processor.pipeline import Pipeline

CONFIG_FILE_ENV = "TOKENTRACE_PROCESSOR_CONFIG"
PIPELINE_ENV = "TOKENTRACE_PIPELINE"
ENV_PREFIX = "TOKENTRACE_"

# Stage name -> module defining ``Config`` and ``build``. The order is the default pipeline.
STAGES: dict[str, str] = {
    "normalise": "tokentrace.processor.stages.normalise",
    "enrich": "tokentrace.processor.stages.enrich",
    "flags": "tokentrace.processor.stages.flags",
    "redact": "tokentrace.processor.stages.redact",
    "span_metrics": "tokentrace.processor.stages.span_metrics",
    "sample": "tokentrace.processor.sampling.stage",
}


class ConfigError(ValueError):
    """The processor configuration is invalid; the message says where and why."""


def _read_file(path: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _from_environment(environ: Mapping[str, str], data: dict[str, Any]) -> dict[str, Any]:
    import yaml

    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in data.items()}
    if PIPELINE_ENV in environ:  # set but empty (or "none"): no stages, spans pass straight through
        names = [name.strip() for name in environ[PIPELINE_ENV].split(",") if name.strip()]
        merged["pipeline"] = [] if names == ["none"] else names
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        stage, _, setting = key[len(ENV_PREFIX) :].partition("__")
        stage = stage.lower()
        if stage not in STAGES:
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        merged.setdefault(stage, {})[setting.lower()] = value
    return merged


def load(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective configuration: file, then environment on top."""
    env = os.environ if environ is None else environ
    path = env.get(CONFIG_FILE_ENV)
    return _from_environment(env, _read_file(path) if path else {})


def build_pipeline(config: Mapping[str, Any] | None = None, *, meter_provider: Any = None) -> Pipeline:
    """A :class:`Pipeline` from a configuration mapping (``load()`` when omitted)."""
    data = dict(load() if config is None else config)
    order = data.pop("pipeline", list(STAGES))
    if not isinstance(order, list) or not all(isinstance(name, str) for name in order):
        raise ConfigError("'pipeline' must be a list of stage names")
    unknown = [name for name in list(order) + list(data) if name not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; known: {sorted(STAGES)}")
    if "sample" in order and order[-1] != "sample":
        raise ConfigError("'sample' must be the last stage: it holds spans back until their trace is decided")
    stages = []
    for name in order:
        module = importlib.import_module(STAGES[name])
        settings = data.get(name) or {}
        if not isinstance(settings, dict):
            raise ConfigError(f"{name}: expected a mapping of settings")
        try:
            stage_config = module.Config.from_mapping(settings)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name}: {exc}") from exc
        if getattr(stage_config, "enabled", True) is False:
            continue
        build = module.build
        if "meter_provider" in inspect.signature(build).parameters:
            stages.append(build(stage_config, meter_provider=meter_provider))
        else:
            stages.append(build(stage_config))
    return Pipeline(stages)
