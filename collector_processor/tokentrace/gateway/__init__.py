"""The standalone OTLP gateway: receivers in front of the processor pipeline, a persistent queue and
an OTLP exporter behind it (``tokentrace gateway``). The engine (:class:`Gateway`) is what receivers call."""

from tokentrace.gateway.engine import Gateway, IngestResult, Overloaded
from tokentrace.gateway.settings import EngineSettings, ExporterSettings, QueueSettings

__all__ = ["EngineSettings", "ExporterSettings", "Gateway", "IngestResult", "Overloaded", "QueueSettings"]
