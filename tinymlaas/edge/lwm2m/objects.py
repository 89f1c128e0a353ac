"""LwM2M object definitions, read from the object XML files kept in the package.

The same definitions drive both ends: the server decodes TLV and plain text by
resource type and names resources for people; the client refuses operations a
resource does not allow. Standard library only (this module runs on devices).
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cache
from importlib import resources


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
    """The object XML files shipped in ``tinymlaas/edge/lwm2m/objects`` (works from a zipapp)."""
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
