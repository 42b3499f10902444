"""Tail sampling: keep whole traces by error, latency, cost, flags, per-model rate and OTEP 235 probability."""

from tokentrace.processor.sampling.buffer import TraceBuffer
from tokentrace.processor.sampling.policies import (
    CostPolicy,
    Decision,
    ErrorPolicy,
    FlaggedPolicy,
    LatencyPolicy,
    Policy,
    ProbabilisticPolicy,
    RateLimitPolicy,
    Verdict,
    combine,
    encode_threshold,
    threshold_for,
)
from tokentrace.processor.sampling.stage import Config, SamplingConfig, TailSamplingStage, build

__all__ = [
    "Config",
    "CostPolicy",
    "Decision",
    "ErrorPolicy",
    "FlaggedPolicy",
    "LatencyPolicy",
    "Policy",
    "ProbabilisticPolicy",
    "RateLimitPolicy",
    "SamplingConfig",
    "TailSamplingStage",
    "TraceBuffer",
    "Verdict",
    "build",
    "combine",
    "encode_threshold",
    "threshold_for",
]
