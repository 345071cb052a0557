"""The CEL engine (cel-rust through the `cel` package), without its interactive shell.

`import cel` runs the package's `__init__`, which imports its REPL and with it
prompt_toolkit and rich: a quarter of a second and several MiB the function never uses.
The engine itself is one extension module, loaded here under the name the package gives
it, so a later `import cel` reuses it instead of initialising it twice.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

NAME = "cel.cel"


def _engine() -> ModuleType:
    if NAME in sys.modules:
        return sys.modules[NAME]
    package = importlib.util.find_spec("cel")
    if package is None or not package.submodule_search_locations:
        raise ImportError("the common-expression-language package is not installed")
    folder = Path(next(iter(package.submodule_search_locations)))
    (path,) = (p for p in folder.iterdir() if p.name.startswith("cel.") and p.suffix == ".so")
    loader = importlib.machinery.ExtensionFileLoader(NAME, str(path))
    spec = importlib.util.spec_from_file_location(NAME, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[NAME] = module
    return module


def compile_rule(source: str) -> Any:
    """A compiled CEL program; `.execute({"self": value})` evaluates it."""
    return _engine().compile(source)
