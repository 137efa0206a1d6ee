"""MANSCDP XML bodies (GB/T 28181 A.2): Keepalive, Catalog query and paged Catalog responses.

Bodies are decoded as GB18030 (a superset of GB2312, mandatory in 2022) unless the XML declaration
names another known encoding; element names are matched case-insensitively (2022 devices and
documents vary); we always emit ``CmdType`` spelled as in 2016.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

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
    try:
        sum_num = int(doc.fields.get("sumnum", "0") or 0)
    except ValueError:
        msg = f"bad SumNum {doc.fields.get('sumnum')!r}"
        raise ManscdpError(msg) from None
    items = []
    device_list = doc.element.find("devicelist")
    for node in device_list.findall("item") if device_list is not None else []:
        values = {child.tag: (child.text or "").strip() for child in node if len(child) == 0}
        cid = values.get("deviceid", "")
        if not cid:
            continue
        items.append(CatalogItem(
            channel_id=cid,
            name=values.get("name", ""),
            manufacturer=values.get("manufacturer", ""),
            model=values.get("model", ""),
            civil_code=values.get("civilcode", ""),
            parent_id=values.get("parentid", ""),
            parental=values.get("parental", "0") == "1",
            status=values.get("status", ""),
            longitude=_coord(values.get("longitude", ""), 180),
            latitude=_coord(values.get("latitude", ""), 90),
            extra={k: v for k, v in values.items() if k in ("address", "owner", "block", "ipaddress", "port")},
        ))
    return CatalogPage(doc.sn, doc.device_id, max(0, sum_num), items)


def catalog_query(sn: int, device_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="GB2312"?>\r\n<Query>\r\n<CmdType>Catalog</CmdType>\r\n'
        f"<SN>{sn}</SN>\r\n<DeviceID>{device_id}</DeviceID>\r\n</Query>\r\n"
    ).encode("gb18030")
