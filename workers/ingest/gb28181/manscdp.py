"""MANSCDP XML bodies (GB/T 28181 A.2): parse any document; build queries, controls and notifies; read paged
lists (Catalog, RecordInfo) and catalog change notifications.

Bodies are decoded as GB18030 (a superset of GB2312, mandatory in 2022) unless the XML declaration
names another known encoding; element names are matched case-insensitively (2022 devices and
documents vary); we always emit ``CmdType`` spelled as in 2016.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

MAX_BODY = 1 << 20
_DECL = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9_-]+)[\"']", re.IGNORECASE)
_NOT_CAMERA_TYPES = {"200", "215", "216"}


class ManscdpError(ValueError):
    """Not a MANSCDP document we understand."""


@dataclass
class Document:
    root: str  # "query", "notify", "response", "control" (lower-case)
    cmd_type: str  # lower-case
    sn: str
    device_id: str
    fields: dict[str, str]
    element: ET.Element


def _decode(body: bytes) -> str:
    m = _DECL.match(body)
    encoding = (m.group(1).decode("ascii").lower() if m else "gb18030")
    if encoding in ("gb2312", "gbk", "gb18030"):
        encoding = "gb18030"
    try:
        return body.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        return body.decode("gb18030", errors="replace")


def _lower_tags(elem: ET.Element) -> None:
    for node in elem.iter():
        if isinstance(node.tag, str):
            node.tag = node.tag.split("}")[-1].lower()


def parse(body: bytes) -> Document:
    if len(body) > MAX_BODY:
        msg = "MANSCDP body too large"
        raise ManscdpError(msg)
    text = _decode(body).strip()
    text = re.sub(r"^<\?xml[^>]*\?>", "", text).strip()
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        msg = "DTDs and entities are not allowed in MANSCDP bodies"
        raise ManscdpError(msg)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        msg = f"malformed XML: {exc}"
        raise ManscdpError(msg) from None
    _lower_tags(root)
    cmd = (root.findtext("cmdtype") or "").strip()
    if not cmd:
        msg = "no CmdType"
        raise ManscdpError(msg)
    fields = {child.tag: (child.text or "").strip() for child in root if len(child) == 0}
    return Document(root.tag, cmd.lower(), (root.findtext("sn") or "").strip(),
                    (root.findtext("deviceid") or "").strip(), fields, root)


@dataclass
class CatalogItem:
    channel_id: str
    name: str = ""
    manufacturer: str = ""
    model: str = ""
    civil_code: str = ""
    parent_id: str = ""
    parental: bool = False
    status: str = ""
    longitude: float | None = None
    latitude: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def type_code(self) -> str:
        return self.channel_id[10:13] if len(self.channel_id) == 20 else ""

    @property
    def is_camera(self) -> bool:
        """Video channels, not tree nodes (business groups, virtual organisations, servers, parents)."""
        return len(self.channel_id) == 20 and self.type_code not in _NOT_CAMERA_TYPES and not self.parental

    @property
    def online(self) -> bool:
        return self.status.upper() in ("ON", "ONLINE", "OK", "")


@dataclass
class CatalogPage:
    sn: str
    device_id: str
    sum_num: int
    items: list[CatalogItem]


def _coord(text: str, limit: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if -limit <= value <= limit and value != 0.0 else None


def catalog_page(doc: Document) -> CatalogPage:
    if doc.cmd_type != "catalog" or doc.root != "response":
        msg = "not a Catalog response"
        raise ManscdpError(msg)
    items = [_catalog_item(values) for values in list_items(doc, "devicelist") if values.get("deviceid")]
    return CatalogPage(doc.sn, doc.device_id, sum_num(doc), items)


def _catalog_item(values: dict[str, str]) -> CatalogItem:
    return CatalogItem(
        channel_id=values.get("deviceid", ""),
        name=values.get("name", ""),
        manufacturer=values.get("manufacturer", ""),
        model=values.get("model", ""),
        civil_code=values.get("civilcode", ""),
        parent_id=values.get("parentid", ""),
        parental=values.get("parental", "0") == "1",
        status=values.get("status", ""),
        longitude=_coord(values.get("longitude", ""), 180),
        latitude=_coord(values.get("latitude", ""), 90),
        extra={k: v for k, v in values.items() if k in ("address", "owner", "block", "ipaddress", "port", "ptztype")},
    )


def catalog_query(sn: int, device_id: str) -> bytes:
    return document("Query", "Catalog", sn, device_id)


def document(root: str, cmd_type: str, sn: int | str, device_id: str, fields: Sequence[tuple[str, str]] = (), *,
             xml_fragments: str = "") -> bytes:
    """A MANSCDP document: ``<root><CmdType/><SN/><DeviceID/>`` then ``fields`` (escaped text) and
    ``xml_fragments`` (already XML), GB18030-encoded with the GB2312 declaration devices expect."""
    parts = [f'<?xml version="1.0" encoding="GB2312"?>\r\n<{root}>\r\n<CmdType>{escape(cmd_type)}</CmdType>\r\n',
             f"<SN>{escape(str(sn))}</SN>\r\n<DeviceID>{escape(device_id)}</DeviceID>\r\n"]
    parts += [f"<{name}>{escape(value)}</{name}>\r\n" for name, value in fields]
    parts += [xml_fragments, f"</{root}>\r\n"]
    return "".join(parts).encode("gb18030", errors="replace")


def item_xml(values: dict[str, str]) -> str:
    """``<Item><K>v</K>…</Item>`` with escaped values (element names are ours, in GB spelling)."""
    return "<Item>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in values.items()) + "</Item>\r\n"


def list_items(doc: Document, list_tag: str) -> list[dict[str, str]]:
    """The ``<Item>`` children of ``<list_tag>`` as flat dicts (lower-case keys, nested ``<Info>`` merged)."""
    node = doc.element.find(list_tag.lower())
    out = []
    for item in node.findall("item") if node is not None else []:
        values = {child.tag: (child.text or "").strip() for child in item if len(child) == 0}
        for info in item.findall("info"):
            values.update({child.tag: (child.text or "").strip() for child in info if len(child) == 0})
        out.append(values)
    return out


def sum_num(doc: Document) -> int:
    value = doc.fields.get("sumnum", "0") or "0"
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        msg = f"bad SumNum {value[:20]!r}"
        raise ManscdpError(msg)
    return int(value)


@dataclass
class CatalogChange:
    """One item of a catalog NOTIFY: ``event`` is ON, OFF, VLOST, DEFECT, ADD, DEL or UPDATE (upper case)."""

    event: str
    item: CatalogItem


def catalog_changes(doc: Document) -> list[CatalogChange]:
    """Items of a Catalog NOTIFY (2016 9.11.2 / A.2.4.? ``<Event>`` per item); an item without an event is an UPDATE."""
    return [CatalogChange((values.get("event") or "UPDATE").upper()[:16], _catalog_item(values))
            for values in list_items(doc, "devicelist") if values.get("deviceid")]
