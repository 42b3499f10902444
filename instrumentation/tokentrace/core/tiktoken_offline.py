"""Offline tiktoken encodings for machines that cannot download them.

tiktoken fetches its BPE files on first use and caches them in ``TIKTOKEN_CACHE_DIR`` under the
SHA-1 of the download URL. The ``bpe-openai`` package bundles the same files (byte-identical; the
hash tiktoken checks matches), so copying them into a cache folder gives exact estimates with no
network. The demo and the test suite use this; applications normally let tiktoken download.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

ENCODING_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
DEFAULT_CACHE = Path.home() / ".cache" / "tokentrace" / "tiktoken"


def install_offline_encodings(cache_dir: Path = DEFAULT_CACHE) -> Path | None:
    """Fill ``cache_dir`` from ``bpe-openai``'s bundled files; None when that package is absent."""
    try:
        import bpe_openai.data
    except ImportError:
        return None
    source = Path(bpe_openai.data.__file__).parent
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, url in ENCODING_URLS.items():
        target = cache_dir / hashlib.sha1(url.encode()).hexdigest()
        bundled = source / f"{name}.tiktoken.gz"
        if not target.exists() and bundled.exists():
            partial = target.with_suffix(".partial")
            partial.write_bytes(gzip.decompress(bundled.read_bytes()))
            partial.replace(target)
    return cache_dir


def use_offline_encodings_if_needed() -> Path | None:
    """Point this process's tiktoken at offline encodings, unless the user already chose a cache."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return Path(os.environ["TIKTOKEN_CACHE_DIR"])
    cache = install_offline_encodings()
    if cache is not None:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    return cache
