"""Every module imports on its own: no import cycle can hide behind an import order."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import revoker

# One interpreter; before each module, every revoker module is forgotten, so each
# import starts from that module alone, as `python -c "import revoker.X"` would.
PROBE = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "revoker" or m.startswith("revoker.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=1).strip().splitlines()[-1])
print("\\n".join(failed))
"""


def all_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.walk_packages(revoker.__path__, prefix="revoker."))


def test_every_module_imports_on_its_own() -> None:
    modules = all_modules()
    assert "revoker.cli.ops" in modules
    assert "revoker.engine.run" in modules
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout
