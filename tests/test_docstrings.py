"""Every public function and class in kgan shows an `Example:` in its docstring.

House rule: a user reading `help(kgan.x.y)` sees a short runnable example. This
static check (it only imports kgan) keeps new public callables from slipping in
without one. Skipped: the CLI, private helpers, the dataset build scripts, the
benchmark recipes (documented by their module docstrings), exception classes
and `main` entry points.
"""

import importlib
import inspect
import pkgutil

import kgan

SKIPPED_MODULES = ("kgan.cli", "kgan._checks")
SKIPPED_PACKAGES = ("kgan.datasets", "kgan.benchmarks")


def _public_callables():
    for info in pkgutil.walk_packages(kgan.__path__, prefix="kgan."):
        name = info.name
        if name in SKIPPED_MODULES or name.startswith(SKIPPED_PACKAGES):
            continue
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue
            if inspect.isfunction(obj) and attr == "main":
                continue
            yield f"{name}:{attr}", obj


def test_every_public_callable_has_an_example():
    found = dict(_public_callables())
    assert len(found) > 100, f"only {len(found)} callables found; is the walk broken?"
    missing = sorted(key for key, obj in found.items()
                     if "Example:" not in (obj.__doc__ or ""))
    assert not missing, "Add an `Example:` section to:\n" + "\n".join(missing)
