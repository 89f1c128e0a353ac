"""Entry-point discovery of plugins, checked at registration.

Built-in plugins are registered through the same entry-point groups as
third-party ones, so there is exactly one way in.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from tinymlaas.errors import NotFound, PluginError, UnsupportedModel
from tinymlaas.models import Board
from tinymlaas.plugins.base import Builder, Compiler, Emulator, Orchestrator, Plugin

GROUPS: dict[str, type[Plugin]] = {
    "compilers": Compiler,
    "builders": Builder,
    "emulators": Emulator,
    "orchestrators": Orchestrator,
}


@cache
def plugins(kind: str) -> dict[str, type[Plugin]]:
    """All plugins of one kind by name; raises PluginError on a bad plugin."""
    if kind not in GROUPS:
        raise PluginError(f"unknown plugin kind '{kind}'; kinds: {', '.join(GROUPS)}")
    base = GROUPS[kind]
    found: dict[str, type[Plugin]] = {}
    for ep in entry_points(group=f"tinymlaas.{kind}"):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken third-party plugin must name itself
            raise PluginError(f"{kind} plugin '{ep.name}' ({ep.value}) failed to load: {exc}") from exc
        verify(base, cls, ep.name)
        if cls.name in found:
            raise PluginError(f"two {kind} plugins are named '{cls.name}'")
        found[cls.name] = cls
    return found


def verify(base: type[Plugin], cls: object, entry_name: str) -> None:
    """Check a plugin class against its contract before anyone uses it."""
    if not isinstance(cls, type) or not issubclass(cls, base):
        raise PluginError(f"plugin '{entry_name}' is not a subclass of {base.__name__}")
    if getattr(cls, "name", None) != entry_name:
        raise PluginError(
            f"plugin '{entry_name}' declares name {getattr(cls, 'name', None)!r}; "
            "the entry-point name and the class name must agree"
        )
    if cls.__abstractmethods__:
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise PluginError(f"plugin '{entry_name}' does not implement {missing}")
    if issubclass(cls, Compiler):
        for attr in ("output_kind", "supported_ops", "supported_dtypes", "target_arches"):
            if not hasattr(cls, attr):
                raise PluginError(f"compiler '{entry_name}' does not declare {attr}")


def get(kind: str, name: str) -> type[Plugin]:
    """A plugin of one kind by name; NotFound lists the names there are."""
    available = plugins(kind)
    if name not in available:
        raise NotFound(f"no {kind[:-1]} named '{name}'; available: {', '.join(sorted(available))}")
    return available[name]


def compiler_plugin(name: str) -> type[Compiler]:
    cls = get("compilers", name)
    assert issubclass(cls, Compiler)  # verified at discovery
    return cls


def builder_plugin(name: str) -> type[Builder]:
    cls = get("builders", name)
    assert issubclass(cls, Builder)
    return cls


def emulator_plugin(name: str) -> type[Emulator]:
    cls = get("emulators", name)
    assert issubclass(cls, Emulator)
    return cls


def orchestrator_plugin(name: str) -> type[Orchestrator]:
    cls = get("orchestrators", name)
    assert issubclass(cls, Orchestrator)
    return cls


def compiler_for(board: Board, name: str | None = None) -> type[Compiler]:
    """The compiler to use for a board, refusing chains that cannot fit together."""
    chosen = name or board.default_compiler
    cls = compiler_plugin(chosen)
    if chosen not in board.compilers or cls.output_kind != board.module_kind:
        raise UnsupportedModel(
            f"compiler '{chosen}' writes '{cls.output_kind}' modules but board '{board.name}' "
            f"builds '{board.module_kind}' modules; use one of: {', '.join(board.compilers)}"
        )
    return cls
