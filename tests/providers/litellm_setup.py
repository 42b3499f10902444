"""What every LiteLLM test module needs: ``litellm`` imported with its local cost map (or the module
skipped where LiteLLM is not installed), and LiteLLM's cached clients and aiohttp sessions dropped
around each test. A test module imports ``litellm`` and the autouse fixtures from here (before anything
else imports LiteLLM):

    from tests.providers.litellm_setup import (  # noqa: F401  (autouse fixtures)
        close_litellm_sessions, collect_litellm_sessions, fresh_litellm_clients, litellm,
    )
"""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the cost map at import
litellm = pytest.importorskip("litellm")


def _close_leftover_sessions() -> None:
    """aiohttp sessions LiteLLM opened on event loops that are gone: closed now, quietly."""
    try:
        import aiohttp
    except ImportError:
        return
    for session in [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed]:
        try:
            asyncio.run(session.close())
        except Exception:
            session._connector = None  # its loop is closed: nothing left to release


@pytest.fixture(scope="module", autouse=True)
def collect_litellm_sessions() -> Any:
    """LiteLLM keeps an aiohttp session per event loop the tests ran; collected here, while pytest
    still captures output, rather than at interpreter exit after the summary."""
    yield
    litellm.in_memory_llm_clients_cache.flush_cache()
    gc.collect()
    _close_leftover_sessions()


@pytest.fixture(autouse=True)
async def close_litellm_sessions() -> Any:
    """Close LiteLLM's cached aiohttp sessions while the test's event loop still runs (else they are
    reported unclosed at interpreter exit, after pytest's summary)."""
    yield
    close = getattr(litellm, "close_litellm_async_clients", None)
    if close is not None:
        await close()


@pytest.fixture(autouse=True)
def fresh_litellm_clients() -> Any:
    """LiteLLM caches its openai clients per endpoint; a client bound while instrumented would keep
    the traced method after ``uninstrument()``, so every test starts with none."""
    litellm.in_memory_llm_clients_cache.flush_cache()
    yield
    litellm.in_memory_llm_clients_cache.flush_cache()
