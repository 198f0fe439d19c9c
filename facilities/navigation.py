"""Navigation links to a facility that a phone in China can open.

The registry stores WGS-84 coordinates (GPS, what OpenStreetMap and the import files use). The
maps common in China draw on GCJ-02 (Amap, Tencent) or BD-09 (Baidu) and each offers a
parameter that says which datum the caller's coordinates are in; we pass it and let the
provider convert, rather than carrying a datum conversion of our own. Without it a marker
lands some hundreds of metres off, which at a hospital can be the wrong gate.

What each provider documents for its web "marker" link (the link opens the app where it is
installed, else the mobile web map), as read in their URI API guides:

- ``geo:`` (RFC 5870, with Android's ``q=lat,lon(label)`` for a labelled pin): Android opens a
  chooser of the installed map apps. iPhones ignore it, hence the web links below.
- Amap / 高德 ``https://uri.amap.com/marker``: ``position=lon,lat`` (longitude first), ``name``,
  ``src`` (caller), ``coordinate=wgs84`` (default ``gaode``, i.e. GCJ-02), ``callnative=1`` to
  try the app on a phone.
- Baidu ``https://api.map.baidu.com/marker``: ``location=lat,lng``, ``title`` and ``content``
  (both required), ``output=html`` (required for the web map), ``coord_type`` one of
  ``bd09ll`` (default), ``bd09mc``, ``gcj02``, ``wgs84``; ``src`` required, shaped
  ``webapp.companyName.appName``.
- Tencent ``https://apis.map.qq.com/uri/v1/marker``: ``marker=coord:lat,lng;title:…;addr:…``
  (``;`` between attributes, ``:`` inside each, ``|`` between markers; ``addr`` required),
  ``coord_type=1`` for GPS (2, Tencent's GCJ-02, is the default), ``referer`` required.

Names and addresses are percent-encoded as UTF-8. The few ASCII characters that are syntax
inside a value (``( )`` of the geo label, ``; : |`` of Tencent's marker) are replaced by their
full-width forms, which read the same in a Chinese name and cannot break the link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from facilities.models import Facility

#: Who is calling, for the providers that ask (``src``, ``referer``).
SOURCE = "greenchannel"

_FULL_WIDTH = str.maketrans({"(": "（", ")": "）", ";": "；", ":": "：", "|": "｜"})


@dataclass(frozen=True)
class NavigationLink:
    key: str
    label_zh: str
    label_en: str
    url: str

    def label(self, language: str) -> str:
        return self.label_en if language == "en" else self.label_zh


def _label(text: str) -> str:
    return " ".join(text.split()).translate(_FULL_WIDTH)


def _coordinate(value: float) -> str:
    # Six decimals are ~0.1 m: enough for a gate, and never an exponent like 1e-05.
    return f"{value:.6f}"


def _query(params: dict[str, str], *, safe: str = ",") -> str:
    # %20 rather than "+" for spaces: every provider's decoder reads %20 as a space.
    return urlencode(params, quote_via=quote, safe=safe)


def navigation_links(
    *, lat: float, lon: float, name: str, address: str = "", source: str = SOURCE
) -> list[NavigationLink]:
    """The links to show for a place at WGS-84 ``lat``, ``lon``: geo:, Amap, Baidu, Tencent.

    ``name`` labels the pin; ``address`` (may be empty) is the detail the Baidu and Tencent
    pins show, the name standing in for it when there is none.
    """
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):  # also refuses NaN
        raise ValueError(f"not a WGS-84 position: {lat}, {lon}")
    title = _label(name) or f"{_coordinate(lat)},{_coordinate(lon)}"
    detail = _label(address) or title
    la, lo = _coordinate(lat), _coordinate(lon)
    geo = f"geo:{la},{lo}?q=" + quote(f"{la},{lo}({title})", safe=",()")
    amap = "https://uri.amap.com/marker?" + _query(
        {
            "position": f"{lo},{la}",
            "name": title,
            "src": source,
            "coordinate": "wgs84",
            "callnative": "1",
        }
    )
    baidu = "https://api.map.baidu.com/marker?" + _query(
        {
            "location": f"{la},{lo}",
            "title": title,
            "content": detail,
            "output": "html",
            "coord_type": "wgs84",
            "src": f"webapp.{source}.referral",
        }
    )
    tencent = "https://apis.map.qq.com/uri/v1/marker?" + _query(
        {
            "marker": f"coord:{la},{lo};title:{title};addr:{detail}",
            "coord_type": "1",
            "referer": source,
        },
        safe=",:;",
    )
    return [
        NavigationLink("geo", "地图应用", "Map app", geo),
        NavigationLink("amap", "高德地图", "Amap", amap),
        NavigationLink("baidu", "百度地图", "Baidu Maps", baidu),
        NavigationLink("tencent", "腾讯地图", "Tencent Maps", tencent),
    ]


def facility_links(facility: Facility, *, source: str = SOURCE) -> list[NavigationLink]:
    """:func:`navigation_links` for a registry facility (its name, address and position)."""
    return navigation_links(
        lat=facility.lat,
        lon=facility.lon,
        name=facility.name,
        address=facility.address,
        source=source,
    )
