"""LwM2M object definitions, read from the object XML files kept in the package.

The same definitions drive both ends: the server decodes TLV and plain text by
resource type and names resources for people; the client refuses operations a
resource does not allow. Standard library only (this module runs on devices).
"""

from __future__ import annotations

import enum
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

#: The private object (range 32769-42768) describing a TinyML device and its model.
TINYML_OBJECT = 33100
#: Device object (3) resources, by the capability they report (10 and 21 are storage, in KiB).
DEVICE_CAPABILITIES = {
    0: "manufacturer", 1: "model", 2: "serial", 3: "firmware_version", 10: "storage_free_kb",
    17: "device_type", 18: "hardware_version", 19: "software_version", 21: "storage_total_kb",
}
#: Its resources that describe the device and its model, by the capability they report
#: (Accelerators is multi-instance; Tensors is JSON).
TINYML_CAPABILITIES = {
    0: "ram_bytes", 1: "flash_bytes", 2: "cpu", 3: "clock_hz", 4: "accelerators", 5: "runtime",
    6: "model_sha256", 7: "model_name", 8: "arena_bytes", 11: "inference_count", 12: "latency_us",
    13: "instructions", 15: "tensors", 16: "board",
}


def named_capabilities(device: dict[int, Any], tinyml: dict[int, Any]) -> dict[str, Any]:
    """Device and TinyML object values (by resource id) as capability fields."""
    caps = {name: device.get(rid) for rid, name in DEVICE_CAPABILITIES.items()}
    caps.update({name: tinyml.get(rid) for rid, name in TINYML_CAPABILITIES.items()})
    tensors = caps["tensors"]
    caps["tensors"] = json.loads(tensors) if isinstance(tensors, str) and tensors else None
    accel = caps["accelerators"]
    caps["accelerators"] = [accel[k] for k in sorted(accel)] if isinstance(accel, dict) else list(accel or [])
    return caps


class ResType(enum.StrEnum):
    string = "String"
    integer = "Integer"
    unsigned = "Unsigned Integer"
    float = "Float"
    boolean = "Boolean"
    opaque = "Opaque"
    time = "Time"
    objlnk = "Objlnk"
    corelnk = "Corelnk"
    none = ""


@dataclass(frozen=True)
class ResourceDef:
    id: int
    name: str
    operations: str  # "", "R", "W", "RW", "E"
    multiple: bool
    mandatory: bool
    type: ResType
    units: str = ""

    @property
    def readable(self) -> bool:
        return "R" in self.operations

    @property
    def writable(self) -> bool:
        return "W" in self.operations

    @property
    def executable(self) -> bool:
        return self.operations == "E"


@dataclass(frozen=True)
class ObjectDef:
    id: int
    name: str
    urn: str
    version: str
    multiple: bool
    mandatory: bool
    resources: dict[int, ResourceDef] = field(default_factory=dict)

    def resource(self, rid: int) -> ResourceDef | None:
        return self.resources.get(rid)


def parse_object_xml(text: str | bytes) -> ObjectDef:
    """One ``<Object>`` of an OMA-style DDF file."""
    root = ET.fromstring(text)
    obj = root.find("Object") if root.tag != "Object" else root
    if obj is None:
        raise ValueError("no <Object> element in the object definition")

    def txt(el: ET.Element, tag: str, default: str = "") -> str:
        found = el.find(tag)
        return (found.text or "").strip() if found is not None else default

    res: dict[int, ResourceDef] = {}
    items = obj.find("Resources")
    for item in items if items is not None else []:
        rid = int(item.attrib["ID"])
        res[rid] = ResourceDef(
            id=rid,
            name=txt(item, "Name"),
            operations=txt(item, "Operations"),
            multiple=txt(item, "MultipleInstances") == "Multiple",
            mandatory=txt(item, "Mandatory") == "Mandatory",
            type=ResType(txt(item, "Type")),
            units=txt(item, "Units"),
        )
    return ObjectDef(
        id=int(txt(obj, "ObjectID")),
        name=txt(obj, "Name"),
        urn=txt(obj, "ObjectURN"),
        version=txt(obj, "ObjectVersion", "1.0"),
        multiple=txt(obj, "MultipleInstances") == "Multiple",
        mandatory=txt(obj, "Mandatory") == "Mandatory",
        resources=res,
    )


@cache
def builtin_objects() -> dict[int, ObjectDef]:
    """The object XML files shipped in ``tinymlaas/lwm2m/objects`` (works from a zipapp)."""
    found: dict[int, ObjectDef] = {}
    for entry in resources.files(__package__).joinpath("objects").iterdir():
        if entry.name.endswith(".xml"):
            d = parse_object_xml(entry.read_bytes())
            found[d.id] = d
    return found


def object_def(oid: int) -> ObjectDef | None:
    return builtin_objects().get(oid)


def resource_type(path: tuple[int, ...]) -> ResType | None:
    """The declared type of the resource a path (of 3 or 4 ids) points into."""
    if len(path) < 3:
        return None
    d = object_def(path[0])
    r = d.resource(path[2]) if d else None
    return r.type if r else None


def is_multiple(path: tuple[int, ...]) -> bool | None:
    if len(path) < 3:
        return None
    d = object_def(path[0])
    r = d.resource(path[2]) if d else None
    return r.multiple if r else None
