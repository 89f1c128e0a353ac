"""Which of a model's ops the ``aot`` compiler and the TFLM interpreter take, and why not.

The answer for ``aot`` is the compiler's own: each op is lowered on its own
(as compiling the model would), so the reason given is the refusal the
compiler raises. For ``tflm`` it is TFLM's builtin op list (the interpreter
checks dtypes itself when it loads the model).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinymlaas.compilers.aot import graph as graph_mod
from tinymlaas.compilers.aot.lower import ELSEWHERE, Ctx, Declared, _registry, lower_op
from tinymlaas.errors import UnsupportedModel

__all__ = ["CoverageRow", "coverage"]


@dataclass(frozen=True)
class CoverageRow:
    """One op kind with one dtype signature in a model."""

    op: str
    dtype: str
    count: int
    aot: bool
    aot_reason: str
    tflm: bool
    tflm_reason: str


def _signature(g: graph_mod.Graph, op: graph_mod.Op) -> str:
    decl = _registry().get(op.kind)
    if decl is None:
        decl = Declared(lambda ctx, o: [], frozenset(), 0, False)
    return decl.signature(g, op)


def _tflm(op: graph_mod.Op) -> tuple[bool, str]:
    from tinymlaas.compilers.tflm import TFLM_OPS

    if op.kind == "CUSTOM":
        return False, (f"custom op '{op.custom_code}': runs where the interpreter has its "
                       f"registration (e.g. TFLM's signal library on {ELSEWHERE.split(',')[0]})")
    if op.kind in TFLM_OPS:
        return True, "builtin in TFLM's op resolver"
    return False, "not in TFLM's op resolver"


def coverage(model: bytes) -> list[CoverageRow]:
    """Per op kind and dtype of ``model``: whether ``aot`` and ``tflm`` take it, and why not.

    Rows come in the order the ops first appear in the model.
    """
    raw = graph_mod.read(model, main_only=True)
    keyed: dict[tuple[str, str], list[graph_mod.Op]] = {}
    for op in raw.ops:
        keyed.setdefault((op.kind, _signature(raw, op)), []).append(op)
    whole_model: str | None = None
    outcome: dict[int, str] = {}   # op index -> refusal ("" = taken)
    try:
        g = graph_mod.simplify(graph_mod.read(model))
    except UnsupportedModel as exc:
        whole_model = exc.message
    else:
        kept = {op.index: op for op in g.ops}
        for op in raw.ops:
            lowered = kept.get(op.index)
            if lowered is None or lowered.kind == "ALIAS":
                outcome[op.index] = ""  # folded at compile time or an alias of its input
                continue
            try:
                lower_op(Ctx(g), lowered)
                outcome[op.index] = ""
            except UnsupportedModel as exc:
                outcome[op.index] = exc.message
    rows = []
    for (kind, sig), ops in keyed.items():
        reasons = [whole_model if whole_model is not None else outcome[o.index] for o in ops]
        refused = next((r for r in reasons if r), "")
        tflm, why = _tflm(ops[0])
        rows.append(CoverageRow(op=kind if kind != "CUSTOM" else f"CUSTOM {ops[0].custom_code}",
                                dtype=sig, count=len(ops), aot=not refused,
                                aot_reason=refused or "compiled", tflm=tflm, tflm_reason=why))
    return rows
