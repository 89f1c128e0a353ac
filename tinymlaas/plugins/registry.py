"""Entry-point discovery of plugins, checked at registration.

Built-in plugins are registered through the same entry-point groups as
third-party ones, so there is exactly one way in.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import TypeVar

from tinymlaas.errors import NotFound, PluginError, UnsupportedModel
from tinymlaas.models import Board
from tinymlaas.plugins.base import Builder, Compiler, Emulator, Orchestrator, Plugin

GROUPS: dict[str, type[Plugin]] = {
    "compilers": Compiler,
    "builders": Builder,
    "emulators": Emulator,
    "orchestrators": Orchestrator,
}

P = TypeVar("P", bound=Plugin)


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


def get(kind: str, name: str, base: type[P]) -> type[P]:
    available = plugins(kind)
    if name not in available:
        raise NotFound(f"no {kind[:-1]} named '{name}'; available: {', '.join(sorted(available))}")
    cls = available[name]
    assert issubclass(cls, base)
    return cls


def compiler_for(board: Board, name: str | None = None) -> type[Compiler]:
    """The compiler to use for a board, refusing chains that cannot fit together."""
    chosen = name or board.default_compiler
    cls = get("compilers", chosen, Compiler)
    if chosen not in board.compilers or cls.output_kind != board.module_kind:
        raise UnsupportedModel(
            f"compiler '{chosen}' writes '{cls.output_kind}' modules but board '{board.name}' "
            f"builds '{board.module_kind}' modules; use one of: {', '.join(board.compilers)}"
        )
    return cls
