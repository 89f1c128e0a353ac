"""CoRE Link Format (RFC 6690) as LwM2M uses it: registration object lists and Discover.

``</>;rt="oma.lwm2m";ct=110,</1/0>,</3>;ver=1.1,</3/0>`` <-> a list of :class:`Link`.
Standard library only (runs on devices).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class LinkFormatError(ValueError):
    """A payload that is not valid link format."""


@dataclass(frozen=True)
class Link:
    target: str
    attrs: dict[str, str | None] = field(default_factory=dict)

    def __str__(self) -> str:
        out = f"<{self.target}>"
        for k, v in self.attrs.items():
            if v is None:
                out += f";{k}"
            elif v.replace(".", "").replace("-", "").isdigit():
                out += f";{k}={v}"
            else:
                out += f';{k}="{v}"'
        return out


def format_links(links: list[Link]) -> str:
    return ",".join(str(link) for link in links)


def parse_links(text: str) -> list[Link]:
    """Parse link format; quoted values may contain ``,`` and ``;``."""
    links: list[Link] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if text[i] != "<":
            raise LinkFormatError(f"expected '<' at offset {i} of {text[:60]!r}")
        end = text.find(">", i)
        if end < 0:
            raise LinkFormatError("unterminated '<' in link format")
        target = text[i + 1:end]
        i = end + 1
        attrs: dict[str, str | None] = {}
        while i < n and text[i] == ";":
            i += 1
            j = i
            while j < n and text[j] not in "=;,":
                j += 1
            key = text[i:j].strip()
            if not key:
                raise LinkFormatError(f"empty attribute name at offset {i}")
            if j < n and text[j] == "=":
                j += 1
                if j < n and text[j] == '"':
                    close = text.find('"', j + 1)
                    if close < 0:
                        raise LinkFormatError("unterminated quoted attribute value")
                    attrs[key] = text[j + 1:close]
                    i = close + 1
                else:
                    k = j
                    while k < n and text[k] not in ";,":
                        k += 1
                    attrs[key] = text[j:k].strip()
                    i = k
            else:
                attrs[key] = None
                i = j
        links.append(Link(target, attrs))
        if i < n:
            if text[i] != ",":
                raise LinkFormatError(f"expected ',' at offset {i}")
            i += 1
    return links
