"""The GenAI span processor (normalise, enrich, flag, redact, tail-sample) lives here.

This half of the ``tokentrace`` namespace is installed from ``collector_processor/``; the
package exists now so both halves are proven to install side by side (wheel and editable).
"""

__all__: list[str] = []
