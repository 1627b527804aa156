"""Old flat module paths (`poco_core.preprocess`, `poco_core.io.suite2p`, `poco_core.train`, ...)
kept for one release, by one import hook instead of a file per old module.

Importing an old path warns (DeprecationWarning) and gives the module at its new home, the
same object, so classes and monkeypatches agree. The four old modules that share a name with
a public function (`train`, `evaluate`, `finetune`, `forecast`) come back as a callable module,
so `poco_core.train(...)` still calls the function after `import poco_core.train`; and
`torchrun -m poco_core.train` still runs the DDP entry point (now `poco_core.cli.train`).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings
from typing import Any

# old first component under poco_core -> new dotted path under poco_core
MOVED = {
    "errors": "base.errors", "events": "base.events", "device": "base.device", "allocator": "base.allocator",
    "recording": "data.recording", "io": "data.io", "preprocess": "data.preprocess", "filters": "data.filters",
    "windows": "data.windows", "simulate": "data.simulate", "inference": "models.inference",
    "sampling": "training.sampling", "loop": "training.loop", "train": "training.train",
    "finetune": "training.finetune", "checkpoint": "training.checkpoint", "restore": "training.restore",
    "distributed": "training.distributed", "jobspec": "training.jobs", "evaluate": "analysis.evaluate",
    "forecast": "analysis.forecast", "embedding": "analysis.embedding",
    "region_similarity": "analysis.region_similarity", "live_sources": "live.sources",
    "online": "live", "commands": "cli",
}
CALLABLE = {"train", "evaluate", "finetune", "forecast"}
DDP_ENTRY = "import sys\nfrom poco_core.cli.train import main\nsys.exit(main())\n"


def new_path(old: str) -> str | None:
    """`poco_core.io.suite2p` -> `poco_core.data.io.suite2p`; None for a path that did not move."""
    parts = old.split(".")
    if len(parts) < 2 or parts[0] != "poco_core" or parts[1] not in MOVED:
        return None
    return ".".join(["poco_core", MOVED[parts[1]], *parts[2:]])


class _CallableModule(types.ModuleType):
    """An old module path that is also its public function (see the module docstring)."""

    def __init__(self, name: str, target: types.ModuleType, function: str):
        super().__init__(name, target.__doc__)
        self.__dict__["_target"], self.__dict__["_function"] = target, function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._target, self._function)(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_target"], name)


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self) -> None:
        self._own_specs: dict[str, tuple] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        new = new_path(fullname)
        if new is None:
            return None
        spec = importlib.util.spec_from_loader(fullname, self)
        if importlib.util.find_spec(new).submodule_search_locations is not None:
            spec.submodule_search_locations = []  # a package: its old submodules resolve through here too
        return spec

    def create_module(self, spec):
        new = new_path(spec.name)
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in the next release",
                      DeprecationWarning, stacklevel=2)
        target = importlib.import_module(new)
        short = spec.name.split(".", 1)[1]
        if short in CALLABLE:
            return _CallableModule(spec.name, target, short)
        self._own_specs[new] = target.__spec__, target.__loader__
        return target

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run; give the aliased module back its own spec, which the import overwrote."""
        own = self._own_specs.pop(module.__name__, None)
        if own is not None:
            module.__spec__, module.__loader__ = own

    def get_code(self, fullname: str):
        """`python -m poco_core.train` (torchrun): run the DDP entry point."""
        if fullname == "poco_core.train":
            return compile(DDP_ENTRY, "<poco_core.train>", "exec")
        return None


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())
