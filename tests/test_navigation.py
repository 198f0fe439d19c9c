"""Navigation links to a facility: a geo: URI and the map apps common in China, each told that
the position is WGS-84, with the name and address percent-encoded."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy.orm import Session

from facilities.navigation import NavigationLink, facility_links, navigation_links
from tests.world import add_facility

NAME = "云州市危重孕产妇和新生儿救治中心（市中心医院）"
ADDRESS = "云州市城中区人民路128号"


def links(**changes: object) -> dict[str, NavigationLink]:
    values: dict[str, object] = {"lat": 29.6, "lon": 106.5, "name": NAME, "address": ADDRESS}
    values.update(changes)
    return {link.key: link for link in navigation_links(**values)}  # type: ignore[arg-type]


def query(url: str) -> dict[str, str]:
    parsed = parse_qs(urlsplit(url).query, strict_parsing=True)
    assert all(len(values) == 1 for values in parsed.values()), parsed
    return {key: values[0] for key, values in parsed.items()}


def test_there_is_a_geo_uri_and_a_link_for_each_map_app_in_order() -> None:
    found = navigation_links(lat=29.6, lon=106.5, name=NAME)
    assert [link.key for link in found] == ["geo", "amap", "baidu", "tencent"]
    assert [link.label("zh") for link in found] == ["地图应用", "高德地图", "百度地图", "腾讯地图"]
    assert found[1].label("en") == "Amap"


def test_every_link_is_plain_ascii_with_the_name_percent_encoded() -> None:
    for link in links().values():
        assert link.url.isascii() and " " not in link.url, link.url
        assert NAME in unquote(link.url), link.key


def test_the_geo_uri_pins_the_labelled_position() -> None:
    url = links()["geo"].url
    assert url.startswith("geo:29.600000,106.500000?q=")
    assert unquote(url.split("?q=", 1)[1]) == f"29.600000,106.500000({NAME})"


def test_amap_gets_longitude_first_and_is_told_the_position_is_wgs84() -> None:
    url = links()["amap"].url
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "uri.amap.com", "/marker")
    assert query(url) == {
        "position": "106.500000,29.600000",
        "name": NAME,
        "src": "greenchannel",
        "coordinate": "wgs84",
        "callnative": "1",
    }


def test_baidu_gets_latitude_first_a_title_content_and_the_wgs84_coordinate_type() -> None:
    url = links()["baidu"].url
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "api.map.baidu.com", "/marker")
    assert query(url) == {
        "location": "29.600000,106.500000",
        "title": NAME,
        "content": ADDRESS,
        "output": "html",
        "coord_type": "wgs84",
        "src": "webapp.greenchannel.referral",
    }


def test_tencent_gets_one_marker_with_title_and_address_and_the_gps_coordinate_type() -> None:
    url = links()["tencent"].url
    parts = urlsplit(url)
    assert (parts.netloc, parts.path) == ("apis.map.qq.com", "/uri/v1/marker")
    assert query(url) == {
        "marker": f"coord:29.600000,106.500000;title:{NAME};addr:{ADDRESS}",
        "coord_type": "1",
        "referer": "greenchannel",
    }


def test_without_an_address_the_name_stands_in_for_it() -> None:
    found = links(address="")
    assert query(found["baidu"].url)["content"] == NAME
    assert query(found["tencent"].url)["marker"].endswith(f";addr:{NAME}")


def test_characters_that_are_syntax_in_a_link_cannot_break_it() -> None:
    name = "Clinic (east); wing: A|B & C=D?#"
    found = links(name=name, address="")
    label = "Clinic （east）； wing： A｜B & C=D?#"
    assert unquote(found["geo"].url.split("?q=", 1)[1]) == f"29.600000,106.500000({label})"
    assert query(found["amap"].url)["name"] == label
    assert query(found["baidu"].url)["title"] == label
    marker = query(found["tencent"].url)["marker"]
    assert marker.split(";") == ["coord:29.600000,106.500000", f"title:{label}", f"addr:{label}"]


def test_a_nameless_place_is_labelled_with_its_position() -> None:
    assert query(links(name="  ", address="")["amap"].url)["name"] == "29.600000,106.500000"


def test_small_coordinates_are_written_without_an_exponent() -> None:
    assert links(lat=0.00001, lon=-0.00001)["geo"].url.startswith("geo:0.000010,-0.000010?")


@pytest.mark.parametrize(("lat", "lon"), [(91.0, 0.0), (0.0, 181.0), (float("nan"), 0.0)])
def test_a_position_off_the_globe_is_refused(lat: float, lon: float) -> None:
    with pytest.raises(ValueError, match="WGS-84"):
        navigation_links(lat=lat, lon=lon, name="x")


def test_a_facilitys_links_use_its_name_address_and_position(session: Session) -> None:
    facility = add_facility(
        session,
        "H-1",
        name="临河县人民医院",
        address="临河县城关镇人民路88号",
        lat=29.88,
        lon=106.18,
    )
    found = {link.key: link for link in facility_links(facility)}
    assert query(found["baidu"].url)["location"] == "29.880000,106.180000"
    assert query(found["baidu"].url)["title"] == "临河县人民医院"
    assert query(found["baidu"].url)["content"] == "临河县城关镇人民路88号"
