"""Test session setup: a private artifact cache unless KEIR_CACHE_DIR is already set (CI sets one)."""

import os
import tempfile

if "KEIR_CACHE_DIR" not in os.environ:
    os.environ["KEIR_CACHE_DIR"] = tempfile.mkdtemp(prefix="keir-test-cache-")
