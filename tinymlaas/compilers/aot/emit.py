"""Writing the planned, lowered model as one C99 source and its header.

The source depends on <stdint.h> and <string.h> only; kernels come from the
``runtime/`` fragments, each included once and only when a step uses it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

from tinymlaas.compilers.aot.graph import Graph, Tensor
from tinymlaas.compilers.aot.lower import CTYPES, SUFFIX, Buf, Lowered, PtrList, Struct

_REQUIRES = re.compile(r"/\* aot:requires ([a-z0-9_. ]+) \*/\n")
_SPECIALISE = "/* aot:specialise */\n"
DATA_ELIDED = "/* model data */"


@dataclass
class Placement:
    """Where each tensor's bytes live: the arena, the caller's inputs or outputs."""

    arena_bytes: int
    offsets: dict[int, int]        # alias root -> arena offset
    input_roots: list[int]
    output_roots: list[int]


@dataclass
class Source:
    c: str
    h: str
    graph_sha256: str


_CTYPE_OF_SUFFIX = {v: CTYPES[k] for k, v in SUFFIX.items()}


def _fragment(name: str) -> str:
    """A runtime fragment; ``base.sfx`` instantiates a templated one for one dtype."""
    base, _, sfx = name.partition(".")
    text = resources.files("tinymlaas.compilers.aot").joinpath(f"runtime/{base}.c").read_text()
    if sfx:
        text = text.replace("$T", _CTYPE_OF_SUFFIX[sfx]).replace("$S", sfx)
    return text


def c_function(kernel: str) -> str:
    """The C function a kernel name calls (``addsub.s16`` -> ``aot_addsub_s16``)."""
    return "aot_" + kernel.replace(".", "_")


def _kernels(names: list[str]) -> str:
    order: list[str] = []

    def visit(n: str) -> None:
        if n in order:
            return
        m = _REQUIRES.search(_fragment(n))
        for dep in (m.group(1).split() if m else []):
            visit(dep)
        order.append(n)

    for n in names:
        visit(n)
    return "\n".join(_REQUIRES.sub("", _fragment(n)).replace(_SPECIALISE, "") for n in order)


def _specialised(kernel: str) -> list[str] | None:
    """The parameter declarations of a kernel instantiated per layer structure, else None."""
    text = _fragment(kernel)
    if _SPECIALISE not in text:
        return None
    m = re.search(rf"void {c_function(kernel)}\(([^)]*)\)", text)
    assert m, f"runtime/{kernel}.c does not define {c_function(kernel)}"
    return [" ".join(p.split()) for p in m.group(1).split(",")]


def _literal(v: float | int, ctype: str) -> str:
    if ctype == "float":
        f = float(np.float32(v))
        if np.isinf(f):
            return "-3.40282347e+38f" if f < 0 else "3.40282347e+38f"
        return f"{f!r}f".replace("inf", "INFINITY")
    return str(int(v))


def _array(values: np.ndarray, ctype: str, indent: str = "        ") -> str:
    items = [_literal(v, ctype) for v in values.tolist()]
    lines, line = [], ""
    for it in items:
        if len(line) + len(it) + 2 > 92:
            lines.append(line.rstrip())
            line = ""
        line += it + ", "
    lines.append(line.rstrip().rstrip(","))
    return "{\n" + "\n".join(indent + ln for ln in lines) + "\n" + indent[:-4] + "}"


def _float_macro(v: float) -> str:
    return f"{float(np.float32(v))!r}f"


def packed(tensors: list[Tensor]) -> tuple[list[int], int]:
    """Offsets of tensors one after another, each at the next multiple of its element
    size, and the total: the layout of the one-buffer ``NAME_invoke`` of a model with
    several inputs or outputs."""
    at, offsets = 0, []
    for t in tensors:
        at = -(-at // t.itemsize) * t.itemsize
        offsets.append(at)
        at += t.nbytes
    return offsets, at


@dataclass(frozen=True)
class Identity:
    """Model-data members (``d->…`` references) that say which model the section holds."""

    scales: str
    zero_points: str
    sha256: str


def emit(g: Graph, low: Lowered, place: Placement, *, name: str, model_sha256: str,
         identity: Identity, state: list[int], state_init: dict[int, str]) -> Source:
    p, P = name.lower(), name.upper()
    single = len(place.input_roots) == 1 and len(place.output_roots) == 1
    n_in = len(g.inputs)
    used: set[str] = set()

    def ptr(b: Buf) -> str:
        root = g.root(b.tensor)
        t = g.t(b.tensor)
        ctype = CTYPES[t.dtype]
        if root in place.input_roots:
            used.add("input")
            if not single:
                return f"(const {ctype} *)inputs[{place.input_roots.index(root)}]"
            return "input" if ctype == "int8_t" else f"(const {ctype} *)(const void *)input"
        if root in place.output_roots:
            used.add("output")
            if not single:
                return f"({ctype} *)outputs[{place.output_roots.index(root)}]"
            return "output" if ctype == "int8_t" else f"({ctype} *)(void *)output"
        if g.t(root).is_const:
            raise AssertionError(f"constant {t.name} used as an activation")
        off = place.offsets[root]
        base = f"A + {off}" if off else "A"
        return f"({base})" if ctype == "int8_t" else f"({ctype} *)(void *)({base})"

    struct_values = {name: (ctype, tuple(vals)) for name, ctype, vals in low.structs}
    instances: dict[tuple[object, ...], str] = {}
    instance_defs: list[str] = []
    calls = []
    for s in low.steps:
        args = []
        for a in s.args:
            if isinstance(a, Buf):
                args.append(ptr(a))
            elif isinstance(a, PtrList):
                items = [ptr(i) if isinstance(i, Buf) else i for i in a.items]
                kind = "const void *const" if a.const else "void *const"
                args.append(f"({kind}[]){{{', '.join(items)}}}")
            elif isinstance(a, Struct):
                args.append(f"{p}_{a.name}")
            else:
                args.append(str(a))
        fn = c_function(s.kernel)
        params = _specialised(s.kernel)
        if params is not None:
            # Shapes (ints, structure arrays) become constants of one instance per
            # distinct structure; tensors and model data stay parameters.
            fixed = [isinstance(a, int | Struct) for a in s.args]
            key = (s.kernel, *(struct_values[a.name] if isinstance(a, Struct) else
                               a if f else None for a, f in zip(s.args, fixed, strict=True)))
            if key not in instances:
                instances[key] = f"{p}_{s.kernel}_{len(instances)}"
                names = [decl.split()[-1].lstrip("*") for decl in params]
                body = ", ".join(arg if f else n for arg, f, n in
                                 zip(args, fixed, names, strict=True))
                decls = ", ".join(d for d, f in zip(params, fixed, strict=True) if not f)
                instance_defs.append(f"static void {instances[key]}({decls})\n{{\n"
                                     f"    {fn}({body});\n}}\n")
            fn = instances[key]
            args = [a for a, f in zip(args, fixed, strict=True) if not f]
        calls.append(f"    /* {s.comment} */\n    {fn}({', '.join(args)});")

    members = low.data.ordered()
    struct_body = "\n".join(f"    {m.ctype} {m.name}[{m.values.size}];" for m in members)
    init = ",\n".join(f"    /* {m.name} */ {_array(m.values, m.ctype)}" for m in members)
    # Only the structure arrays some call or instance names: an instance shared by layers
    # of one structure names the first layer's.
    referenced = "".join(instance_defs) + "".join(calls)
    structs = "\n".join(
        f"static const {ctype} {p}_{sname}[{len(vals)}] = "
        f"{{{', '.join(str(v) for v in vals)}}};" for sname, ctype, vals in low.structs
        if re.search(rf"\b{p}_{sname}\b", referenced))
    kernels = _kernels(sorted({s.kernel for s in low.steps}))
    arena = ""
    if place.arena_bytes:
        arena = (f"/* The planned arena: every intermediate tensor at a fixed offset. */\n"
                 f"static int32_t {p}_arena[{P}_ARENA_BYTES / 4];\n")
    prologue = f"    int8_t *const A = (int8_t *){p}_arena;\n" if place.arena_bytes else ""
    if single:
        io_cast = "".join(f"    (void){v};\n" for v in ("input", "output") if v not in used)
    else:
        io_cast = "".join(f"    (void){v}s;\n" for v in ("input", "output") if v not in used)
    has_data = bool(members)
    data_decl = ""
    if has_data:
        data_decl = (
            "/* All per-model numbers, in one object of the model-data section. */\n"
            f"struct {p}_data {{\n{struct_body}\n}};\n"
            f"typedef char {p}_data_size_check[sizeof(struct {p}_data) == {low.data.nbytes}"
            " ? 1 : -1];\n"
            f"static const struct {p}_data D {P}_SECTION = {{\n{{INIT}}\n}};\n"
            "/* The code reads the model data through a pointer the compiler cannot see\n"
            " * through: a weight or a multiplier folded into the instructions would\n"
            " * break model-only updates, which replace the section's bytes. */\n"
            f"static const struct {p}_data *{p}_data_ref(void)\n{{\n"
            f"    const struct {p}_data *d = &D;\n"
            "#if defined(__GNUC__)\n"
            '    __asm__("" : "+r"(d));\n'
            "#else\n"
            f"    const struct {p}_data *volatile opaque = d;\n"
            "    d = opaque;\n"
            "#endif\n"
            "    return d;\n}\n")
        prologue += f"    const struct {p}_data *const d = {p}_data_ref();\n"
        if not any("d->" in c for c in calls):
            prologue += "    (void)d;\n"
        idn = identity
        data_decl += (
            "\n/* What the model-data section holds now: these follow a model-only\n"
            " * update, where the header's macros keep the values compiled in. */\n"
            f"float {p}_input_scale(void)\n{{\n    const struct {p}_data *d = {p}_data_ref();\n"
            f"    return {idn.scales}[0];\n}}\n"
            f"float {p}_output_scale(void)\n{{\n    const struct {p}_data *d = {p}_data_ref();\n"
            f"    return {idn.scales}[{n_in}];\n}}\n"
            f"int32_t {p}_input_zero_point(void)\n{{\n"
            f"    const struct {p}_data *d = {p}_data_ref();\n    return {idn.zero_points}[0];\n}}\n"
            f"int32_t {p}_output_zero_point(void)\n{{\n"
            f"    const struct {p}_data *d = {p}_data_ref();\n    return {idn.zero_points}[{n_in}];\n}}\n"
            f"const uint8_t *{p}_model_sha256(void)\n{{\n"
            f"    const struct {p}_data *d = {p}_data_ref();\n    return {idn.sha256};\n}}\n")
        if not single:
            n_io = n_in + len(g.outputs)
            data_decl += (
                f"float {p}_tensor_scale(int32_t k)\n{{\n"
                f"    const struct {p}_data *d = {p}_data_ref();\n"
                f"    return k >= 0 && k < {n_io} ? {idn.scales}[k] : 0.0f;\n}}\n"
                f"int32_t {p}_tensor_zero_point(int32_t k)\n{{\n"
                f"    const struct {p}_data *d = {p}_data_ref();\n"
                f"    return k >= 0 && k < {n_io} ? {idn.zero_points}[k] : 0;\n}}\n")
    ins = [g.t(r) for r in g.inputs]
    outs = [g.t(r) for r in g.outputs]
    in_at, in_bytes = packed(ins)
    out_at, out_bytes = packed(outs)
    reset = ""
    if state:
        # Variables start from their initial values (model data); TFLM resets variable
        # tensors to the zero point (int8) or zero.
        fills = "".join(
            f"    memcpy({p}_A + {place.offsets[r]}, {state_init[r]}, {g.t(r).nbytes});\n"
            if r in state_init else
            f"    memset({p}_A + {place.offsets[r]}, {g.t(r).zp if g.t(r).dtype == 'int8' else 0}"
            f", {g.t(r).nbytes});\n" for r in state)
        data_ref = (f"    const struct {p}_data *d = {p}_data_ref();\n" if state_init else "")
        reset = (f"/* State kept between invokes (recurrent and streaming layers). */\n"
                 f"static uint8_t {p}_state_ready;\n\n"
                 f"void {p}_reset(void)\n{{\n    int8_t *const {p}_A = (int8_t *){p}_arena;\n"
                 f"{data_ref}{fills}    {p}_state_ready = 1;\n}}\n\n")
        prologue += f"    if (!{p}_state_ready) {{\n        {p}_reset();\n    }}\n"
    if single:
        entry = (f"int {p}_invoke(const int8_t *input, int8_t *output)\n{{\n"
                 f"{prologue}{io_cast}" + "\n".join(calls) + "\n    return 0;\n}\n")
    else:
        entry = (f"int {p}_invoke_tensors(const void *const *inputs, void *const *outputs)\n"
                 f"{{\n{prologue}{io_cast}" + "\n".join(calls) + "\n    return 0;\n}\n\n"
                 f"int {p}_invoke(const int8_t *input, int8_t *output)\n{{\n"
                 f"    const void *const inputs[{len(ins)}] = "
                 f"{{{', '.join(f'input + {o}' for o in in_at)}}};\n"
                 f"    void *const outputs[{len(outs)}] = "
                 f"{{{', '.join(f'output + {o}' for o in out_at)}}};\n"
                 f"    return {p}_invoke_tensors(inputs, outputs);\n}}\n")
    body = (
        "/* Generated by the TinyMLaaS aot compiler from model sha256 {MODEL}.\n"
        f" * Bit-exact with TFLM's reference kernels. C99; no malloc; not reentrant. */\n"
        f'#include <stdint.h>\n#include <string.h>\n#include "{p}.h"\n\n'
        f"{data_decl}\n{structs}\n\n{arena}\n{kernels}\n{''.join(instance_defs)}\n{reset}"
        f"{entry}")
    # The code's identity: without the model data and without the model's hash in the
    # header comment, so two models of one structure (a model-only update into the model
    # region) share it.
    graph_sha = hashlib.sha256(
        body.replace("{INIT}", DATA_ELIDED).replace("{MODEL}", "").encode()).hexdigest()
    c = body.replace("{INIT}", init).replace("{MODEL}", model_sha256)
    if "memcpy" not in c and "memset" not in c:
        c = c.replace("#include <string.h>\n", "")

    x, y = ins[0], outs[0]
    in_scale = x.scale if x.quantized else 0.0
    out_scale = y.scale if y.quantized else 0.0
    per_tensor = "".join(
        f"#define {P}_{kind}{k}_BYTES {t.nbytes}\n#define {P}_{kind}{k}_ELEMENTS {t.size}\n"
        f"#define {P}_{kind}{k}_OFFSET {at}\n#define {P}_{kind}{k}_DTYPE \"{t.dtype}\"\n"
        for kind, ts, ats in (("INPUT", ins, in_at), ("OUTPUT", outs, out_at))
        for k, (t, at) in enumerate(zip(ts, ats, strict=True)))
    if single:
        api = f"""/* Runs one inference: reads {P}_INPUT_BYTES from input, writes
 * {P}_OUTPUT_BYTES to output (float tensors travel as their bytes).
 * Returns 0 on success. Uses a static arena: not reentrant. */
int {p}_invoke(const int8_t *input, int8_t *output);

/* The same with arrays of tensor pointers, as models with several tensors take it. */
static inline int {p}_invoke_tensors(const void *const *inputs, void *const *outputs)
{{
    return {p}_invoke((const int8_t *)inputs[0], (int8_t *)outputs[0]);
}}
"""
    else:
        api = f"""/* Runs one inference on {P}_INPUTS input and {P}_OUTPUTS output tensors, each
 * pointer aligned to its element type (float tensors travel as their bytes).
 * Returns 0 on success. Uses a static arena: not reentrant. */
int {p}_invoke_tensors(const void *const *inputs, void *const *outputs);

/* The same with every input packed in one buffer and every output in another, in
 * the model's order, each tensor at {P}_INPUTk_OFFSET / {P}_OUTPUTk_OFFSET (the next
 * multiple of its element size); both buffers 4-byte aligned. */
int {p}_invoke(const int8_t *input, int8_t *output);
"""
    if single:
        tensor_quant = f"""static inline float {p}_tensor_scale(int32_t k)
{{
    return k == 0 ? {p}_input_scale() : k == 1 ? {p}_output_scale() : 0.0f;
}}
static inline int32_t {p}_tensor_zero_point(int32_t k)
{{
    return k == 0 ? {p}_input_zero_point() : k == 1 ? {p}_output_zero_point() : 0;
}}
"""
    else:
        tensor_quant = (f"float {p}_tensor_scale(int32_t k);\n"
                        f"int32_t {p}_tensor_zero_point(int32_t k);\n")
    state_api = (f"""
/* The model keeps state between invokes ({P}_STATE_BYTES of the arena); the first
 * invoke starts from its reset value, this restores it. */
#define {P}_STATE_BYTES {sum(g.t(r).nbytes for r in state)}
void {p}_reset(void);
""" if state else "")
    h = f"""/* Generated by the TinyMLaaS aot compiler. Model sha256 {model_sha256}. */
#ifndef {P}_H
#define {P}_H

#include <stdint.h>

/* Per-model data (weights, biases, requantization, lookup tables) lives in
 * one const object placed with this attribute; firmware may define it, e.g.
 * __attribute__((section(".tinymlaas_model"))), for model-only updates. */
#ifndef {P}_SECTION
#define {P}_SECTION
#endif

#define {P}_SHA256 "{model_sha256}"
#define {P}_GRAPH_SHA256 "{graph_sha}"
#define {P}_INPUTS {len(ins)}
#define {P}_OUTPUTS {len(outs)}
#define {P}_INPUT_BYTES {in_bytes}
#define {P}_OUTPUT_BYTES {out_bytes}
#define {P}_INPUT_ELEMENTS {x.size}
#define {P}_OUTPUT_ELEMENTS {y.size}
#define {P}_INPUT_IS_FLOAT {int(x.dtype == "float32")}
#define {P}_OUTPUT_IS_FLOAT {int(y.dtype == "float32")}
#define {P}_INPUT_SCALE {_float_macro(in_scale)}
#define {P}_INPUT_ZERO_POINT {x.zp}
#define {P}_OUTPUT_SCALE {_float_macro(out_scale)}
#define {P}_OUTPUT_ZERO_POINT {y.zp}
{per_tensor}#define {P}_ARENA_BYTES {place.arena_bytes}
#define {P}_DATA_BYTES {low.data.nbytes}

/* The model the model-data section holds now (changes with a model-only
 * update, unlike the macros above): first input's and output's quantization,
 * tensor k's (every input, then every output; scale 0: a float tensor) and the
 * model's 32-byte hash. */
float {p}_input_scale(void);
int32_t {p}_input_zero_point(void);
float {p}_output_scale(void);
int32_t {p}_output_zero_point(void);
{tensor_quant}const uint8_t *{p}_model_sha256(void);

{api}{state_api}
#endif /* {P}_H */
"""
    return Source(c=c, h=h, graph_sha256=graph_sha)
