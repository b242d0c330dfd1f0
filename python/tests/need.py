"""The project's rule for tests that need an environment: skip with a message, or fail when
CI is set to anything (so that CI never passes by skipping)."""

import importlib
import os

import pytest


def need(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        msg = f"needs {module} ({e}); install it into the interop venv: bash tools/interop/setup.sh main"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg, allow_module_level=True)
