"""The printed referral form (转诊单) as a PDF: a real PDF with the case code and the Chinese
text in an embedded CJK font, English on ``?lang=en``, and the access of the case itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.world import PPH_REQUEST, World

pytestmark = pytest.mark.skipif(
    # .ci/run installs the tools and sets GREENCHANNEL_REQUIRE_TOOLS: there, missing ones fail.
    not os.environ.get("GREENCHANNEL_REQUIRE_TOOLS")
    and (shutil.which("pdftotext") is None or shutil.which("pdffonts") is None),
    reason="poppler-utils (pdftotext, pdffonts) not installed",
)


def referred(world: World) -> dict[str, Any]:
    body = {
        **PPH_REQUEST,
        "case": {
            "conditions": ["PPH"],
            "gestation_weeks": 39,
            "delivered": True,
            "blood_loss_ml": 1200,
            "vitals": {"sbp": 80, "hr": 128},
            "treatments": ["oxytocin"],
        },
    }
    answer = world.post("clinic", "/api/v1/referrals", body)
    assert answer.status_code == 201
    case: dict[str, Any] = answer.get_json()
    offer = case["offers"][0]
    accepted = world.post(
        offer["facility"], f"/api/v1/referrals/{case['id']}/offers/{offer['id']}/accept",
        {"eta_minutes": 10},
    )  # fmt: skip
    assert accepted.status_code == 200, accepted.get_json()
    return case


def pdf_text(tmp_path: Path, body: bytes) -> tuple[str, str]:
    path = tmp_path / "form.pdf"
    path.write_bytes(body)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout
    fonts = subprocess.run(
        ["pdffonts", str(path)], capture_output=True, check=True, text=True
    ).stdout
    return text, fonts


def test_the_referral_form_is_a_pdf_with_the_code_and_chinese_text(
    world: World, tmp_path: Path
) -> None:
    case = referred(world)
    answer = world.get("clinic", f"/api/v1/referrals/{case['id']}/referral-form.pdf?lang=zh")
    assert answer.status_code == 200
    assert answer.mimetype == "application/pdf"
    body = answer.get_data()
    assert body.startswith(b"%PDF-")
    text, fonts = pdf_text(tmp_path, body)
    assert case["code"] in text
    for words in ("转诊单", "产后出血", "转出机构", "接收医生", "签名"):
        assert words in text, words
    assert "T1-2026-0042" in text  # the referring clinic's own register number
    cjk = [line.split() for line in fonts.splitlines() if "Noto-Sans-CJK" in line]
    assert cjk and all("yes" in columns for columns in cjk)  # the CJK font is embedded
    assert "2026-11-24 16:00" in text  # the decision's date and time, in the region's zone


def test_the_form_is_in_english_on_lang_en_and_de_identified_for_a_coordinator(
    world: World, tmp_path: Path
) -> None:
    case = referred(world)
    answer = world.get("coordinator", f"/api/v1/referrals/{case['id']}/referral-form.pdf?lang=en")
    assert answer.status_code == 200
    text, _ = pdf_text(tmp_path, answer.get_data())
    assert "Referral form" in text and "Signatures" in text and case["code"] in text
    assert "T1-2026-0042" not in text


def test_the_form_has_the_access_of_the_case(world: World) -> None:
    case = referred(world)
    url = f"/api/v1/referrals/{case['id']}/referral-form.pdf"
    assert world.get("outsider", url).status_code == 404
    assert world.get("outsider", url).get_json()["field"] == "id"
    assert world.client.get(url).status_code == 401
    assert world.get("admin", "/api/v1/referrals/999999/referral-form.pdf").status_code == 404
