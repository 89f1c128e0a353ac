"""LwM2M content formats and link format: round trips, known encodings, bad input."""

from __future__ import annotations

import json

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinymlaas.edge.lwm2m import codec
from tinymlaas.edge.lwm2m.codec import CodecError, ObjLink
from tinymlaas.edge.lwm2m.links import Link, LinkFormatError, format_links, parse_links
from tinymlaas.edge.lwm2m.objects import ResType, builtin_objects
from tinymlaas.edge.lwm2m.vocab import Obj

DEVICE: codec.Content = {
    (3, 0, 0): "Open Mobile Alliance",
    (3, 0, 3): "1.0.0",
    (3, 0, 9): 95,
    (3, 0, 11, 0): 0,
    (3, 0, 11, 1): 5,
    (3, 0, 13): 1367491215,
    (3, 0, 21): -1,
}


def test_object_xml_is_package_data_and_typed() -> None:
    objs = builtin_objects()
    assert {1, 3, 5, 9, Obj.TINYML} <= set(objs)
    tinyml = objs[Obj.TINYML]
    assert 32769 <= tinyml.id <= 42768  # OMNA's private range
    assert tinyml.resources[0].name == "RAM" and tinyml.resources[0].type is ResType.integer
    assert tinyml.resources[14].executable
    assert objs[5].resources[5].type is ResType.integer
    # 3/0/10 and 3/0/21 are storage in kB, not RAM
    assert objs[3].resources[21].units == "KiB" and objs[3].resources[10].units == "KiB"


@pytest.mark.parametrize("fmt", [codec.TLV, codec.SENML_JSON, codec.SENML_CBOR])
def test_instance_round_trip(fmt: int) -> None:
    assert codec.decode(fmt, codec.encode(fmt, DEVICE, (3, 0)), (3, 0)) == DEVICE


def test_tlv_known_bytes() -> None:
    # Resource 0 (string, 8 bytes with an 8-bit length), resource 9 (1-byte int).
    data = codec.encode_tlv({(3, 0, 0): "TinyMLaa", (3, 0, 9): 95}, (3, 0))
    assert data == bytes([0xC8, 0x00, 0x08]) + b"TinyMLaa" + bytes([0xC1, 0x09, 95])
    # A multiple resource: type 10 wrapping resource instances (type 01).
    multi = codec.encode_tlv({(3, 0, 11, 0): 1, (3, 0, 11, 1): 2}, (3, 0, 11))
    assert multi == bytes([0x86, 0x0B, 0x41, 0x00, 0x01, 0x41, 0x01, 0x02])
    # 16-bit identifiers and the TinyML object (unknown types fall back to the declared ones)
    assert codec.decode_tlv(codec.encode_tlv({(Obj.TINYML, 0, 300): b"x"}, (Obj.TINYML, 0)),
                            (Obj.TINYML, 0)) == {(Obj.TINYML, 0, 300): b"x"}


def test_object_level_tlv_has_instances() -> None:
    content = {(9, 0, 0): "a", (9, 1, 0): "b"}
    assert codec.decode_tlv(codec.encode_tlv(content, (9,)), (9,)) == content


def test_senml_json_shape_follows_lwm2m() -> None:
    recs = json.loads(codec.encode_senml_json({(3, 0, 0): "OMA", (3, 0, 9): 95}, (3, 0)))
    assert recs == [{"bn": "/3/0", "n": "/0", "vs": "OMA"}, {"n": "/9", "v": 95}]
    opaque = json.loads(codec.encode_senml_json({(5, 0, 0): b"\xff\xfe"}, (5, 0, 0)))
    assert opaque == [{"bn": "/5/0/0", "vd": "__4"}]


def test_senml_cbor_uses_integer_labels_and_byte_strings() -> None:
    recs = cbor2.loads(codec.encode_senml_cbor({(33100, 0, 10): b"\x01\x02", (33100, 0, 11): 3},
                                               (33100, 0)))
    assert recs[0] == {-2: "/33100/0", 0: "/10", 8: b"\x01\x02"}
    assert recs[1] == {0: "/11", 2: 3}


def test_objlnk_and_booleans_and_floats() -> None:
    content = {(9, 0, 12): True, (9, 0, 5): ObjLink(3, 0), (9, 0, 30): 0.5}
    types = {(9, 0, 12): ResType.boolean, (9, 0, 5): ResType.objlnk, (9, 0, 30): ResType.float}
    for fmt in (codec.TLV, codec.SENML_JSON, codec.SENML_CBOR):
        out = codec.decode(fmt, codec.encode(fmt, content, (9, 0), types.get), (9, 0), types.get)
        assert out == content
    assert codec.decode(codec.TEXT, b"1", (9, 0, 12)) == {(9, 0, 12): True}
    assert codec.encode(codec.TEXT, {(3, 0, 3): "2.0"}, (3, 0, 3)) == b"2.0"


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_tlv_integers_round_trip(n: int) -> None:
    assert codec.decode_tlv(codec.encode_tlv({(3, 0, 9): n}, (3, 0, 9)), (3, 0, 9)) == {(3, 0, 9): n}


@given(st.binary(max_size=70000))
def test_tlv_opaque_of_any_length(data: bytes) -> None:
    path = (Obj.TINYML, 0, 9)
    assert codec.decode_tlv(codec.encode_tlv({path: data}, path), path) == {path: data}


@pytest.mark.parametrize(("fmt", "payload", "base", "reason"), [
    (codec.TLV, b"\xc8\x00\x09abc", (3, 0), "truncated"),
    (codec.SENML_JSON, b"{", (3, 0), "not SenML JSON"),
    (codec.SENML_JSON, b'[{"n":"/4/0/0","v":1}]', (3, 0), "not a resource under"),
    (codec.SENML_CBOR, b"\xff", (3, 0), "not SenML CBOR"),
    (codec.TEXT, b"abc", (3, 0, 9), "not a Integer"),
    (codec.TEXT, b"1", (3, 0), "one resource"),
    (codec.LWM2M_JSON, b"{}", (3, 0), "not supported"),
])
def test_bad_payloads_are_named(fmt: int, payload: bytes, base: tuple[int, ...], reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        codec.decode(fmt, payload, base)


def test_plain_text_refuses_structures_and_carries_opaque_as_base64() -> None:
    with pytest.raises(CodecError):
        codec.encode(codec.TEXT, DEVICE, (3, 0))
    assert codec.encode(codec.TEXT, {(5, 0, 0): b"\x00\xff"}, (5, 0, 0)) == b"AP8="
    # LwM2M 1.1 Appendix C: other stacks write opaque resources as base64 text
    assert codec.decode(codec.TEXT, b"AP8=", (5, 0, 0)) == {(5, 0, 0): b"\x00\xff"}
    assert codec.decode(None, b"AP8=\n", (33100, 0, 9)) == {(33100, 0, 9): b"\x00\xff"}
    with pytest.raises(CodecError, match="base64"):
        codec.decode(codec.TEXT, b"not base64!", (5, 0, 0))


def test_single_values_are_known_from_the_object_definitions() -> None:
    assert codec.single_value((3, 0, 1)) and codec.single_value((3, 0, 11, 0))
    assert not codec.single_value((3, 0, 11))  # Error Code is a multiple resource
    assert not codec.single_value((3, 0)) and not codec.single_value((4242, 0, 1))  # unknown object


@pytest.mark.parametrize("text", ["/3/0/1", "3/0/1/", ("3", "0", "1")])
def test_paths(text: str | tuple[str, ...]) -> None:
    assert codec.parse_path(text) == (3, 0, 1)


@pytest.mark.parametrize("text", ["/a", "/1/2/3/4/5", "/65535", "/01"])
def test_bad_paths(text: str) -> None:
    with pytest.raises(CodecError):
        codec.parse_path(text)


def test_link_format_round_trip_with_quotes() -> None:
    text = '</>;rt="oma.lwm2m";ct=110,</1/0>,</3>;ver=1.1,</3/0>,</5/0>;title="a,b;c"'
    links = parse_links(text)
    assert links[0] == Link("/", {"rt": "oma.lwm2m", "ct": "110"})
    assert links[2].attrs == {"ver": "1.1"}
    assert links[4].attrs["title"] == "a,b;c"
    assert parse_links(format_links(links)) == links


@pytest.mark.parametrize("text", ["/3/0", "</3/0", '</3>;x="open', "</3>x"])
def test_bad_link_format(text: str) -> None:
    with pytest.raises(LinkFormatError):
        parse_links(text)
