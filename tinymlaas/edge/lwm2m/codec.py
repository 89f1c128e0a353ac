"""LwM2M 1.1 content formats: TLV, SenML JSON, SenML CBOR, plain text and opaque.

Every format maps to and from one flat representation, :data:`Content`: a dict
from resource paths ``(obj, inst, res)`` (or resource-instance paths
``(obj, inst, res, riid)`` for multiple resources) to Python values (str, int,
float, bool, bytes, :class:`ObjLink`). TLV and plain text carry no types, so
decoding them asks the object definitions (:mod:`.objects`) for a resource's type.
Runs on devices: standard library plus cbor2.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from tinymlaas.edge.lwm2m.objects import ResType, is_multiple, resource_type

Path = tuple[int, ...]
Content = dict[Path, Any]
TypeOf = Callable[[Path], "ResType | None"]

# CoAP content-format numbers (IANA registry) the LwM2M 1.1 transport uses.
TEXT = 0
LINK_FORMAT = 40
OPAQUE = 42
SENML_JSON = 110
SENML_CBOR = 112
TLV = 11542
LWM2M_JSON = 11543  # the LwM2M 1.0 JSON format: recognised, refused (4.15)

NAMES = {TEXT: "text/plain", LINK_FORMAT: "application/link-format", OPAQUE: "application/octet-stream",
         SENML_JSON: "application/senml+json", SENML_CBOR: "application/senml+cbor",
         TLV: "application/vnd.oma.lwm2m+tlv"}
#: What :func:`encode` and :func:`decode` handle.
SUPPORTED = (SENML_CBOR, SENML_JSON, TLV, TEXT, OPAQUE)


class CodecError(ValueError):
    """A payload that does not parse as the format it claims, or cannot be expressed in it."""


class ObjLink(NamedTuple):
    obj: int
    inst: int

    def __str__(self) -> str:
        return f"{self.obj}:{self.inst}"


# -- paths --------------------------------------------------------------------

def parse_path(text: str | tuple[str, ...] | list[str]) -> Path:
    """``"/3/0/1"`` (or CoAP Uri-Path segments) -> ``(3, 0, 1)``; at most four ids."""
    if isinstance(text, str):  # SenML names repeat in every notification: parse each once
        return _parse_path_text(text)
    return _parse_parts(list(text), text)


@functools.lru_cache(maxsize=4096)
def _parse_path_text(text: str) -> Path:
    return _parse_parts([p for p in text.split("/") if p != ""], text)


def _parse_parts(parts: list[str], text: object) -> Path:
    if len(parts) > 4:
        raise CodecError(f"LwM2M paths have at most 4 levels: {text!r}")
    try:
        ids = tuple(int(p) for p in parts)
    except ValueError as exc:
        raise CodecError(f"not an LwM2M path: {text!r}") from exc
    if any(not 0 <= i <= 65534 for i in ids) or any(p != str(int(p)) for p in parts):
        raise CodecError(f"not an LwM2M path: {text!r}")
    return ids


def path_str(path: Path) -> str:
    return "/" + "/".join(str(i) for i in path)


def under(path: Path, base: Path) -> bool:
    return path[: len(base)] == base


def single_value(path: Path) -> bool:
    """Whether ``path`` names one value (plain text or opaque can carry it): a resource
    instance, or a resource the object definitions know as single."""
    return len(path) == 4 or (len(path) == 3 and is_multiple(path) is False)


def _type_for(types: TypeOf, path: Path) -> ResType | None:
    return types(path[:3]) if len(path) >= 3 else None


# -- value conversions shared by the formats ---------------------------------

def coerce(value: Any, rtype: ResType | None) -> Any:
    """A decoded JSON/CBOR/text value as the Python type its resource declares."""
    if rtype is None:
        return value
    try:
        if rtype in (ResType.integer, ResType.unsigned, ResType.time):
            if isinstance(value, float) and not value.is_integer():
                raise CodecError(f"{value} is not an integer")
            out = int(value)
            if rtype is ResType.unsigned and out < 0:
                raise CodecError(f"{value} is not an unsigned integer")
            return out
        if rtype is ResType.float:
            return float(value)
        if rtype is ResType.boolean:
            if isinstance(value, str):
                if value not in ("0", "1", "true", "false"):
                    raise CodecError(f"{value!r} is not a boolean")
                return value in ("1", "true")
            return bool(value)
        if rtype is ResType.string:
            return value if isinstance(value, str) else str(value)
        if rtype is ResType.objlnk and isinstance(value, str):
            a, _, b = value.partition(":")
            return ObjLink(int(a), int(b))
    except (TypeError, ValueError) as exc:
        raise CodecError(f"{value!r} is not a {rtype.value or 'value'}: {exc}") from exc
    return value


# -- plain text and opaque -----------------------------------------------------

def _single(content: Content, base: Path, fmt: str) -> Any:
    if len(base) < 3 or len(content) != 1:
        raise CodecError(f"{fmt} carries exactly one resource value; use SenML or TLV for {path_str(base)}")
    ((path, value),) = content.items()
    if len(base) == 3 and len(path) == 4:
        raise CodecError(f"{fmt} cannot carry the multiple resource {path_str(base)}")
    return value


def encode_text(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, bytes | bytearray):  # LwM2M 1.1 Appendix C: opaque as base64 text
        return base64.b64encode(value)
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def decode_text(data: bytes, rtype: ResType | None) -> Any:
    text = data.decode("utf-8")
    if rtype is ResType.opaque:  # LwM2M 1.1 Appendix C: base64, as other stacks send it
        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except ValueError as exc:
            raise CodecError(f"plain text for an opaque resource is base64; {text[:20]!r} is not") from exc
    if rtype in (ResType.integer, ResType.unsigned, ResType.time):
        return coerce(text.strip(), rtype) if text.strip().lstrip("-").isdigit() else _bad(text, rtype)
    if rtype is ResType.float:
        try:
            return float(text)
        except ValueError:
            return _bad(text, rtype)
    return coerce(text, rtype)


def _bad(text: str, rtype: ResType) -> Any:
    raise CodecError(f"{text!r} is not a {rtype.value}")


# -- TLV (OMA LwM2M TLV, content format 11542) -------------------------------

_OBJ_INST, _RES_INST, _MULTI_RES, _RES = 0, 1, 2, 3


def _tlv_header(kind: int, ident: int, length: int) -> bytes:
    t = kind << 6
    idb = struct.pack(">B", ident) if ident < 256 else struct.pack(">H", ident)
    if ident >= 256:
        t |= 0x20
    if length < 8:
        t |= length
        lenb = b""
    elif length < 1 << 8:
        t |= 0x08
        lenb = struct.pack(">B", length)
    elif length < 1 << 16:
        t |= 0x10
        lenb = struct.pack(">H", length)
    elif length < 1 << 24:
        t |= 0x18
        lenb = struct.pack(">I", length)[1:]
    else:
        raise CodecError("TLV values are limited to 16 MiB")
    return bytes([t]) + idb + lenb


def _tlv_value(value: Any, rtype: ResType | None) -> bytes:
    if isinstance(value, bool):
        return b"\x01" if value else b"\x00"
    if isinstance(value, ObjLink):
        return struct.pack(">HH", value.obj, value.inst)
    if isinstance(value, int):
        if rtype is ResType.unsigned and value >= 0:
            for size, fmt in ((1, ">B"), (2, ">H"), (4, ">I"), (8, ">Q")):
                if value < 1 << (8 * size):
                    return struct.pack(fmt, value)
        for size, fmt in ((1, ">b"), (2, ">h"), (4, ">i"), (8, ">q")):
            if -(1 << (8 * size - 1)) <= value < 1 << (8 * size - 1):
                return struct.pack(fmt, value)
        raise CodecError(f"integer {value} does not fit 64 bits")
    if isinstance(value, float):
        if math.isfinite(value) and struct.unpack(">f", struct.pack(">f", value))[0] == value:
            return struct.pack(">f", value)
        return struct.pack(">d", value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise CodecError(f"cannot encode {type(value).__name__} in TLV")


def _tlv_parse_value(raw: bytes, rtype: ResType | None) -> Any:
    if rtype in (ResType.integer, ResType.time):
        if len(raw) not in (1, 2, 4, 8):
            raise CodecError(f"a TLV integer has 1, 2, 4 or 8 bytes, not {len(raw)}")
        return int.from_bytes(raw, "big", signed=True)
    if rtype is ResType.unsigned:
        if len(raw) not in (1, 2, 4, 8):
            raise CodecError(f"a TLV unsigned integer has 1, 2, 4 or 8 bytes, not {len(raw)}")
        return int.from_bytes(raw, "big", signed=False)
    if rtype is ResType.float:
        if len(raw) == 4:
            return struct.unpack(">f", raw)[0]
        if len(raw) == 8:
            return struct.unpack(">d", raw)[0]
        raise CodecError(f"a TLV float has 4 or 8 bytes, not {len(raw)}")
    if rtype is ResType.boolean:
        if raw not in (b"\x00", b"\x01"):
            raise CodecError("a TLV boolean is one byte, 0 or 1")
        return raw == b"\x01"
    if rtype is ResType.objlnk:
        if len(raw) != 4:
            raise CodecError("a TLV object link has 4 bytes")
        return ObjLink(*struct.unpack(">HH", raw))
    if rtype in (ResType.string, ResType.corelnk):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError("a TLV string is not UTF-8") from exc
    return raw  # opaque, or a resource the definitions do not know


def _tlv_entries(data: bytes) -> list[tuple[int, int, bytes]]:
    out, i = [], 0
    while i < len(data):
        t = data[i]
        i += 1
        kind = t >> 6
        id_len = 2 if t & 0x20 else 1
        len_type = (t >> 3) & 0x03
        if i + id_len + len_type > len(data):
            raise CodecError("truncated TLV header")
        ident = int.from_bytes(data[i:i + id_len], "big")
        i += id_len
        if len_type == 0:
            length = t & 0x07
        else:
            length = int.from_bytes(data[i:i + len_type], "big")
            i += len_type
        if i + length > len(data):
            raise CodecError("truncated TLV value")
        out.append((kind, ident, data[i:i + length]))
        i += length
    return out


def encode_tlv(content: Content, base: Path, types: TypeOf = resource_type) -> bytes:
    def resources(oid: int, iid: int, items: Content) -> bytes:
        by_res: dict[int, Content] = {}
        for p, v in items.items():
            by_res.setdefault(p[2], {})[p] = v
        out = b""
        for rid in sorted(by_res):
            out += resource(oid, iid, rid, by_res[rid])
        return out

    def resource(oid: int, iid: int, rid: int, items: Content) -> bytes:
        rtype = types((oid, iid, rid))
        if any(len(p) == 4 for p in items):
            inner = b""
            for p in sorted(items):
                val = _tlv_value(items[p], rtype)
                inner += _tlv_header(_RES_INST, p[3], len(val)) + val
            return _tlv_header(_MULTI_RES, rid, len(inner)) + inner
        val = _tlv_value(items[(oid, iid, rid)], rtype)
        return _tlv_header(_RES, rid, len(val)) + val

    if len(base) == 0:
        raise CodecError("TLV payloads start at an object")
    if len(base) == 1:
        by_inst: dict[int, Content] = {}
        for p, v in content.items():
            by_inst.setdefault(p[1], {})[p] = v
        out = b""
        for iid in sorted(by_inst):
            inner = resources(base[0], iid, by_inst[iid])
            out += _tlv_header(_OBJ_INST, iid, len(inner)) + inner
        return out
    if len(base) == 2:
        return resources(base[0], base[1], content)
    if len(base) == 4:
        ((_, v),) = content.items()
        val = _tlv_value(v, types(base[:3]))
        return _tlv_header(_RES_INST, base[3], len(val)) + val
    return resource(base[0], base[1], base[2], content)


def decode_tlv(data: bytes, base: Path, types: TypeOf = resource_type) -> Content:
    out: Content = {}

    def into_resource(prefix: Path, kind: int, ident: int, raw: bytes) -> None:
        if kind == _RES:
            p = (*prefix, ident)
            out[p] = _tlv_parse_value(raw, types(p))
        elif kind == _MULTI_RES:
            p = (*prefix, ident)
            for k2, riid, raw2 in _tlv_entries(raw):
                if k2 != _RES_INST:
                    raise CodecError("a TLV multiple resource holds only resource instances")
                out[(*p, riid)] = _tlv_parse_value(raw2, types(p))
        else:
            raise CodecError(f"unexpected TLV entry kind {kind} under {path_str(prefix)}")

    entries = _tlv_entries(data)
    if len(base) == 1:
        for kind, ident, raw in entries:
            if kind == _OBJ_INST:
                for k2, i2, r2 in _tlv_entries(raw):
                    into_resource((base[0], ident), k2, i2, r2)
            else:  # a single instance may be sent without its wrapper (instance 0)
                into_resource((base[0], 0), kind, ident, raw)
    elif len(base) == 2:
        for kind, ident, raw in entries:
            if kind == _OBJ_INST:
                if ident != base[1]:
                    raise CodecError(f"TLV instance {ident} written to {path_str(base)}")
                for k2, i2, r2 in _tlv_entries(raw):
                    into_resource(base, k2, i2, r2)
            else:
                into_resource(base, kind, ident, raw)
    elif len(base) >= 3:
        for kind, ident, raw in entries:
            if kind == _RES_INST:
                if len(base) == 4 and ident != base[3]:
                    raise CodecError(f"TLV resource instance {ident} written to {path_str(base)}")
                out[(*base[:3], ident)] = _tlv_parse_value(raw, types(base[:3]))
            elif ident != base[2]:
                raise CodecError(f"TLV resource {ident} written to {path_str(base)}")
            else:
                into_resource(base[:2], kind, ident, raw)
    else:
        raise CodecError("TLV payloads start at an object")
    return out


# -- SenML (RFC 8428) as LwM2M 1.1 uses it: JSON and CBOR ------------------------

_CBOR_KEYS = {"bn": -2, "bt": -3, "n": 0, "v": 2, "vs": 3, "vb": 4, "t": 6, "vd": 8}
_CBOR_NAMES = {v: k for k, v in _CBOR_KEYS.items()}


def _records(content: Content, base: Path, binary: bool) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = []
    prefix = path_str(base) if base else ""
    for i, path in enumerate(sorted(content)):
        value = content[path]
        name = path_str(path)[len(prefix):]
        rec: dict[str, Any] = {"bn": prefix} if i == 0 and prefix else {}
        if name:
            rec["n"] = name
        if isinstance(value, bool):
            rec["vb"] = value
        elif isinstance(value, ObjLink):
            rec["vlo"] = str(value)
        elif isinstance(value, int | float):
            rec["v"] = value
        elif isinstance(value, str):
            rec["vs"] = value
        elif isinstance(value, bytes | bytearray):
            rec["vd"] = bytes(value) if binary else (
                base64.urlsafe_b64encode(value).rstrip(b"=").decode())
        else:
            raise CodecError(f"cannot encode {type(value).__name__} in SenML")
        recs.append(rec)
    return recs


def _from_records(recs: Any, base: Path, types: TypeOf, binary: bool) -> Content:
    if not isinstance(recs, list):
        raise CodecError("a SenML pack is an array of records")
    out: Content = {}
    bn = ""
    for rec in recs:
        if not isinstance(rec, dict):
            raise CodecError("a SenML record is a map")
        bn = rec.get("bn", bn)
        if not isinstance(bn, str):
            raise CodecError("SenML base name must be text")
        name = bn + rec.get("n", "")
        path = parse_path(name)
        if len(path) < 3 or not under(path, base):
            raise CodecError(f"SenML record {name!r} is not a resource under {path_str(base)}")
        rtype = _type_for(types, path)
        if "vb" in rec:
            value: Any = rec["vb"]
        elif "vlo" in rec:
            value = coerce(rec["vlo"], ResType.objlnk)
        elif "v" in rec:
            value = rec["v"]
        elif "vs" in rec:
            value = rec["vs"]
        elif "vd" in rec:
            value = rec["vd"]
            if not binary:
                try:
                    value = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
                except (ValueError, TypeError) as exc:
                    raise CodecError(f"bad base64url in {name}") from exc
            elif not isinstance(value, bytes):
                raise CodecError(f"vd of {name} is not a byte string")
        else:
            raise CodecError(f"SenML record {name!r} has no value")
        out[path] = coerce(value, rtype)
    return out


def encode_senml_json(content: Content, base: Path) -> bytes:
    return json.dumps(_records(content, base, binary=False), separators=(",", ":")).encode()


def decode_senml_json(data: bytes, base: Path, types: TypeOf = resource_type) -> Content:
    try:
        recs = json.loads(data)
    except ValueError as exc:
        raise CodecError(f"not SenML JSON: {exc}") from exc
    return _from_records(recs, base, types, binary=False)


def encode_senml_cbor(content: Content, base: Path) -> bytes:
    import cbor2

    recs = [{_CBOR_KEYS.get(k, k): v for k, v in r.items()} for r in _records(content, base, True)]
    return cbor2.dumps(recs)


def decode_senml_cbor(data: bytes, base: Path, types: TypeOf = resource_type) -> Content:
    import cbor2

    try:
        recs = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise CodecError(f"not SenML CBOR: {exc}") from exc
    if not isinstance(recs, list):
        raise CodecError("a SenML pack is an array of records")
    named = [{_CBOR_NAMES.get(k, k): v for k, v in r.items()} if isinstance(r, dict) else r
             for r in recs]
    return _from_records(named, base, types, binary=True)


# -- dispatch -------------------------------------------------------------------

def encode(fmt: int, content: Content, base: Path, types: TypeOf = resource_type) -> bytes:
    """``content`` (every path under ``base``) in content format ``fmt``."""
    if fmt == SENML_CBOR:
        return encode_senml_cbor(content, base)
    if fmt == SENML_JSON:
        return encode_senml_json(content, base)
    if fmt == TLV:
        return encode_tlv(content, base, types)
    if fmt == TEXT:
        return encode_text(_single(content, base, "text/plain"))
    if fmt == OPAQUE:
        value = _single(content, base, "application/octet-stream")
        if not isinstance(value, bytes | bytearray):
            raise CodecError(f"{path_str(base)} is not an opaque resource")
        return bytes(value)
    raise CodecError(f"content format {fmt} is not supported")


def decode(fmt: int | None, data: bytes, base: Path, types: TypeOf = resource_type) -> Content:
    """A payload in content format ``fmt`` addressed to ``base``, as :data:`Content`."""
    if fmt == SENML_CBOR:
        return decode_senml_cbor(data, base, types)
    if fmt == SENML_JSON:
        return decode_senml_json(data, base, types)
    if fmt == TLV:
        return decode_tlv(data, base, types)
    if fmt in (TEXT, None):
        if len(base) < 3:
            raise CodecError(f"plain text carries one resource, not {path_str(base)}")
        try:
            return {base: decode_text(data, types(base[:3]))}
        except UnicodeDecodeError as exc:
            raise CodecError("plain text is not UTF-8") from exc
    if fmt == OPAQUE:
        if len(base) < 3:
            raise CodecError(f"an opaque payload carries one resource, not {path_str(base)}")
        return {base: bytes(data)}
    raise CodecError(f"content format {fmt} is not supported")
