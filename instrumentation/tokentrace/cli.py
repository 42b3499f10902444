"""The ``tokentrace`` command."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: tokentrace <command> [options]

commands:
  demo      run a real OpenAI SDK workload against a local simulator, instrumented, and print
            each call's model, tokens, cost and latency with the totals
  gateway   run the standalone OTLP gateway: receive OTLP (gRPC 4317, HTTP 4318), run the processor
            pipeline, queue durably and forward to any OTLP backend or the local store
            (`tokentrace gateway --help`)
  report    cost, latency, failures, quality and what-ifs from the local store
            (tokentrace report --help)
  version   print the version
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command == "demo":
        from tokentrace.demo.run import main as demo_main

        return demo_main(rest)
    if command == "report":
        from tokentrace.report.cli import main as report_main

        return report_main(rest)
    if command == "gateway":
        from tokentrace.gateway.server import main as gateway_main

        return gateway_main(rest)
    if command == "version":
        from tokentrace.version import __version__

        sys.stdout.write(f"tokentrace {__version__}\n")
        return 0
    sys.stderr.write(f"tokentrace: unknown command {command!r}\n{USAGE}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
