"""Local stand-ins for LLM providers, so the demo and the tests run without network or API keys."""
