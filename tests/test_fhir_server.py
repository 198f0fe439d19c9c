"""The exports loaded into a FHIR server: Medplum's server core (its router and an in-memory
repository, from the npm registry: tests/fhir_server) takes the transaction bundle twice, the
second time updating what the first created, and stores Tasks whose references all resolve.

HAPI FHIR's JPA server would be the usual choice, but it comes from Maven Central, which cannot
be reached here (docs/interoperability.md). Needs ``npm ci --prefix tests/fhir_server``; without
it the test is skipped and says so.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from facilities import export, registry
from greenchannel.web.db import db
from referral import fhir
from referral.rules import load_rules
from tests.world import NOW, PPH_REQUEST, World, add_facility

CHECK = Path(__file__).parent / "fhir_server"
pytestmark = pytest.mark.skipif(
    # .ci/run installs the tools and sets GREENCHANNEL_REQUIRE_TOOLS: there, missing ones fail.
    not os.environ.get("GREENCHANNEL_REQUIRE_TOOLS")
    and (shutil.which("node") is None or not (CHECK / "node_modules" / "@medplum").is_dir()),
    reason="the FHIR server check needs node and `npm ci --prefix tests/fhir_server`",
)


def load_into_server(paths: list[Path]) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(CHECK / "check.cjs"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_a_fhir_server_loads_the_registry_and_the_referrals(world: World, tmp_path: Path) -> None:
    ids = [
        world.post(
            "clinic", "/api/v1/referrals", {**PPH_REQUEST, "patient": {"ref": f"P{n}"}}
        ).get_json()["id"]
        for n in range(2)
    ]
    files = []
    with world.app.app_context():
        add_facility(db.session, "X_1.a", phone="", capabilities=[])
        db.session.commit()
        facilities = registry.list_facilities(db.session)
        for kind in ("collection", "transaction"):
            path = tmp_path / f"{kind}.json"
            path.write_text(
                export.export_fhir(facilities, now=NOW, grace=dt.timedelta(hours=4), bundle=kind)
            )
            files.append(path)
        cases = fhir.load(db.session, ids)
    for case in cases:
        path = tmp_path / f"task-{case.id}.json"
        path.write_text(json.dumps(fhir.task(case, load_rules())))
        files.append(path)
    report = load_into_server(files)
    assert report["errors"] == []
    entries = 3 * len(facilities)
    first, second = report["posts"]
    assert first["outcome"] == second["outcome"] == "ok"
    assert first["statuses"] == ["201"] * entries  # created
    assert second["statuses"] == ["200"] * entries  # found by identifier and updated
    assert report["counts"] == {
        "Organization": len(facilities),
        "Location": len(facilities),
        "HealthcareService": len(facilities),
        "Task": 2,
    }
    assert report["unresolved"] == []
    assert [c["contained"] for c in report["created"]] == [2, 2]
