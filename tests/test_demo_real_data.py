"""The real-data path the README gives a region, worked on Andorra: roads from an OpenStreetMap
extract, facilities and contacts from CSV, then road ETAs (not estimates) from the route command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

ANDORRA = Path(__file__).resolve().parents[2] / "shared" / "data" / "andorra.osm.pbf"

PPH_CAPS = "caesarean_24h;blood_transfusion;massive_transfusion"
FACILITY_ROWS = [
    # code, name, kind, lat, lon, M, N, capabilities, phone, name_en, county
    ("AD-HNSM", "Hospital Nostra Senyora de Meritxell", "county_hospital", 42.5098, 1.5390,
     "M3", "N2", PPH_CAPS + ";adult_icu;neonatal_cpap", "+376871000", "Meritxell Hospital",
     "Escaldes-Engordany"),
    ("AD-SJL", "Clínica de Sant Julià", "county_mch_hospital", 42.4650, 1.4905, "M2", "N1",
     PPH_CAPS, "+376741000", "Sant Julia Clinic", "Sant Julià de Lòria"),
    ("AD-ALV", "CAP Andorra la Vella", "community_health_centre", 42.5063, 1.5218, "M1", "N1",
     "", "+376806000", "Andorra la Vella primary care", "Andorra la Vella"),
    ("AD-ENC", "CAP Encamp", "community_health_centre", 42.5347, 1.5800, "M1", "N1", "",
     "+376831000", "Encamp primary care", "Encamp"),
    ("AD-LMA", "CAP La Massana", "community_health_centre", 42.5451, 1.5148, "M1", "N1", "",
     "+376835000", "La Massana primary care", "La Massana"),
    ("AD-CAN", "CAP Canillo", "community_health_centre", 42.5667, 1.5986, "M1", "N1", "",
     "+376851000", "Canillo primary care", "Canillo"),
]  # fmt: skip
FACILITIES = (
    "code,name,kind,lat,lon,maternal_level,neonatal_level,capabilities,phone,name_en,county\n"
    + "".join(",".join(str(value) for value in row) + "\n" for row in FACILITY_ROWS)
)

CONTACTS = """\
facility_code,name,team,phone,language,priority
AD-HNSM,Obstetrics on call,obstetrics,+37661100001,en,1
AD-HNSM,Obstetrics second on call,obstetrics,+37661100002,en,2
AD-HNSM,Anaesthesia on call,anaesthesia,+37661100003,en,1
AD-HNSM,Blood bank,blood_bank,+37661100004,en,1
AD-HNSM,Bed manager,capacity,+37661100005,en,1
AD-SJL,Obstetrics on call,obstetrics,+37661100011,en,1
AD-SJL,Anaesthesia on call,anaesthesia,+37661100012,en,1
AD-SJL,Blood bank,blood_bank,+37661100013,en,1
AD-ENC,Duty doctor,obstetrics,+37661100021,en,1
"""


def test_a_region_loads_roads_facilities_and_contacts_and_gets_road_etas(
    database_url: str,
    session: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not ANDORRA.exists():
        pytest.skip(f"Andorra extract not found at {ANDORRA} (shared test data absent)")
    from greenchannel.cli import main

    roads = tmp_path / "roads.npz"
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.setenv("GREENCHANNEL_ROADS", str(roads))
    (tmp_path / "facilities.csv").write_text(FACILITIES)
    (tmp_path / "contacts.csv").write_text(CONTACTS)
    runner = CliRunner()

    imported = runner.invoke(main, ["roads", "import", str(ANDORRA)])
    assert imported.exit_code == 0, imported.output
    assert roads.exists() and "road network:" in imported.output
    facilities = runner.invoke(main, ["facilities", "import", str(tmp_path / "facilities.csv")])
    assert facilities.exit_code == 0, facilities.output
    assert "imported 6 new" in facilities.output
    contacts = runner.invoke(main, ["contacts", "import", str(tmp_path / "contacts.csv")])
    assert contacts.exit_code == 0, contacts.output
    assert "imported 9 new" in contacts.output

    routed = runner.invoke(
        main, ["route", "--from", "42.5347,1.5800", "--condition", "PPH", "--json"]
    )
    assert routed.exit_code == 0, routed.output
    answer = json.loads(routed.output)
    assert answer["warnings"] == []
    candidates = {c["facility"]: c for c in answer["candidates"]}
    assert set(candidates) == {"AD-HNSM", "AD-SJL"}
    assert [c["facility"] for c in answer["candidates"]] == ["AD-HNSM", "AD-SJL"]
    for candidate in candidates.values():
        assert candidate["estimate"] is False
    # Encamp to Escaldes is about 6 km down the valley road; Sant Julià is past Andorra la Vella.
    assert 4 < candidates["AD-HNSM"]["eta_minutes"] < 20
    assert candidates["AD-HNSM"]["eta_minutes"] < candidates["AD-SJL"]["eta_minutes"] < 40
    excluded = {e["facility"] for e in answer["excluded"]}
    assert {"AD-ALV", "AD-LMA", "AD-CAN"} <= excluded

    shocked = runner.invoke(
        main, ["route", "--from-facility", "AD-LMA", "--condition", "PPH", "--shock"]
    )
    assert shocked.exit_code == 0, shocked.output
    lines = shocked.output.splitlines()
    assert lines[0].startswith("Best choice: ")  # the decision comes first
    first = next(line for line in lines if line.lstrip().startswith("1."))
    assert first.split()[:2] == ["1.", "AD-HNSM"] and "(estimate)" not in first
    assert "AD-SJL" in shocked.output.split("excluded:")[1]  # M2 is not enough in shock
