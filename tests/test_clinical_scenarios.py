"""Clinical scenarios (issue 15): cases as a clinician describes them, on real road networks.

Each scenario is one patient told in plain words, with what a clinician expects the service to
require of the receiving hospital (written from the guidelines of docs/domain.md: WHO/ACOG levels
of maternal care, the AAP neonatal bands, the Chinese 2017 critical-care centre rules) and the
kind of answer expected. The expectations were written before running the service; a case where
the service and the clinician disagree is marked ``xfail(strict=True)`` with the clinician's
objection, so the disagreement stays visible and is noticed the day it is resolved.

The scenarios run on the demo region 云州市 with the road network ``greenchannel demo`` builds,
and (where they make sense there) on the real Andorra road network with a small facility set of
its own: one M3/N3 designated centre, one M2/N2 clinic and primary-care posts (no M4, no N4, no
infectious isolation, so that every kind of answer happens there too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

import routing
from facilities import registry
from facilities.models import Channel, Diversion, Facility
from facilities.status import report_status
from greenchannel.demo.region import build_demo_region, demo_road_network
from greenchannel.demo.roads import save_network
from referral.decision import Decision, decide
from referral.placement import beds_needed, router_for, snapshots
from referral.rules import Need, Rules, load_rules
from referral.triage import Case, Vitals
from tests.conftest import _wipe
from tests.world import NOW

ANDORRA = Path(__file__).resolve().parents[2] / "shared" / "data" / "andorra.osm.pbf"
UTC_OFFSET = dt.timedelta(hours=8)  # the rules' working-hours zone: the clock the clinic reads

CAPABLE, BEYOND, PASSED = "capable", "beyond_window", "window_passed"
PARTIAL, SAFETY_NET, OUTREACH = "partial", "safety_net", "outreach"
KINDS = {CAPABLE, BEYOND, PASSED, PARTIAL, SAFETY_NET, OUTREACH}


# ---------------------------------------------------------------------------- the scenarios


@dataclass(frozen=True)
class Tweak:
    """Tonight's state of one hospital, for this scenario only (rolled back afterwards)."""

    facility: str
    diversion: str | None = None
    beds_nicu: int | None = None
    beds_maternal_icu: int | None = None


@dataclass(frozen=True)
class Andorra:
    """The same patient in Andorra: where she is, and the kind of answer expected there."""

    origin: str | None
    kind: str
    near: str | None = None
    tweaks: tuple[Tweak, ...] = ()


@dataclass(frozen=True)
class Scenario:
    id: str
    says: str
    conditions: tuple[str, ...]
    origin: str | None  # the facility the patient is at; None: not at a registered facility
    requires: tuple[str, str, frozenset[str]]  # ("M3", "N2", {capabilities}), exactly
    kind: str
    delivered: bool | None = None
    weeks: float | None = None
    fetal_weight_g: float | None = None
    birth_weight_g: float | None = None
    born_min_ago: float | None = None
    onset_min_ago: float | None = None
    hr: float | None = None
    sbp: float | None = None
    blood_loss_ml: float | None = None
    in_shock: bool = False
    ventilated: bool = False
    do_not_move: bool | None = None
    colour: str | None = None
    purple: bool = False
    near: str | None = None  # where a patient outside any facility is (that facility's spot)
    first: str | None = None  # the hospital a clinician who knows the demo region would name
    tweaks: tuple[Tweak, ...] = ()
    warning: str | None = None
    andorra: Andorra | None = None
    disagrees: str = ""  # the clinician's objection when the service answers otherwise

    def case(self, now: dt.datetime) -> Case:
        def ago(minutes: float | None) -> dt.datetime | None:
            return None if minutes is None else now - dt.timedelta(minutes=minutes)

        return Case(
            conditions=self.conditions,
            risk_colour=self.colour,
            purple=self.purple,
            gestation_weeks=self.weeks,
            birth_weight_g=self.birth_weight_g,
            estimated_fetal_weight_g=self.fetal_weight_g,
            in_shock=self.in_shock,
            ventilated=self.ventilated,
            do_not_move=self.do_not_move,
            delivered=self.delivered,
            born_at=ago(self.born_min_ago),
            onset_at=ago(self.onset_min_ago),
            vitals=Vitals(hr=self.hr, sbp=self.sbp),
            blood_loss_ml=self.blood_loss_ml,
        )


def needs(maternal: str, neonatal: str, *capabilities: str) -> tuple[str, str, frozenset[str]]:
    return maternal, neonatal, frozenset(capabilities)


CAES, BLOOD, MASSIVE, ICU = "caesarean_24h", "blood_transfusion", "massive_transfusion", "adult_icu"
CPAP, VENT, COOLING = "neonatal_cpap", "neonatal_ventilation", "therapeutic_hypothermia"
CENTRE_CLOSED = (Tweak("YZ-CENTRE", diversion="closed"),)

SCENARIOS: tuple[Scenario, ...] = (
    # -- the baby inside: an undelivered mother below 37 weeks is two patients
    Scenario(
        "eclampsia-30w",
        "G2 at 30 weeks, undelivered, eclamptic fit at Qingshi township health centre",
        ("ECLAMPSIA",), "LH-T01", needs("M3", "N3", ICU), CAPABLE,
        delivered=False, weeks=30, first="LH-CH", andorra=Andorra("AD-ENC", CAPABLE),
    ),
    Scenario(
        "sepsis-33w",
        "Chorioamnionitis with septic shock (HR 128, SBP 82) at 33 weeks, undelivered, at a "
        "township centre",
        ("SEPSIS",), "LH-T05", needs("M3", "N2", ICU), CAPABLE,
        delivered=False, weeks=33, hr=128, sbp=82, first="LH-CH",
        andorra=Andorra("AD-CAN", CAPABLE),
    ),
    Scenario(
        "severe-pe-31w",
        "Severe pre-eclampsia, BP 170/112 with headache, at 31 weeks, undelivered, in Shishan "
        "county (its county hospital is closed to new cases)",
        ("SEVERE_PE",), "SS-T03", needs("M2", "N3"), CAPABLE,
        delivered=False, weeks=31, first="YZ-CENTRE", andorra=Andorra("AD-LMA", CAPABLE),
    ),
    Scenario(
        "rupture-34w",
        "Scar rupture in labour at 34 weeks, undelivered, at a Baiwan township centre",
        ("UTERINE_RUPTURE",), "BW-T07", needs("M2", "N2", CAES, MASSIVE), CAPABLE,
        delivered=False, weeks=34, first="BW-CH", andorra=Andorra("AD-ALV", CAPABLE),
    ),
    Scenario(
        "cardiac-32w",
        "Peripartum cardiomyopathy, breathless lying flat, at 32 weeks, undelivered",
        ("CARDIAC",), "LH-T01", needs("M4", "N2", ICU, "cardiac_surgery"), CAPABLE,
        delivered=False, weeks=32, first="YZ-CENTRE",
        andorra=Andorra("AD-ENC", SAFETY_NET),  # no M4 in Andorra: the centre is assigned
    ),
    Scenario(
        "anaemia-29w",
        "Hb 52 g/L at 29 weeks, breathless, undelivered",
        ("SEVERE_ANAEMIA",), "SS-T03", needs("M2", "N3", BLOOD), CAPABLE,
        delivered=False, weeks=29, first="YZ-CENTRE", andorra=Andorra("AD-SJL", CAPABLE),
    ),
    Scenario(
        "accreta-33w",
        "Placenta praevia with suspected accreta on scan at 33 weeks: planned transfer from the "
        "county MCH hospital",
        ("PAS",), "LH-MCH", needs("M3", "N2", "interventional_radiology"), CAPABLE,
        weeks=33, first="YZ-CENTRE", andorra=Andorra("AD-SJL", CAPABLE),
    ),
    Scenario(
        "fetal-weight-at-term",
        "Severe pre-eclampsia at 38 weeks with severe growth restriction, estimated fetal weight "
        "1400 g: the small baby counts although she is at term",
        ("SEVERE_PE",), "LH-T01", needs("M2", "N3"), CAPABLE,
        delivered=False, weeks=38, fetal_weight_g=1400, first="LH-CH",
        andorra=Andorra("AD-ORD", CAPABLE),
    ),
    Scenario(
        "fetal-weight-preterm",
        "Threatened preterm labour at 33 weeks with an estimated fetal weight of 950 g",
        ("PRETERM_LABOUR",), "SS-MCH", needs("M2", "N4"), CAPABLE,
        weeks=33, fetal_weight_g=950, onset_min_ago=30, first="YZ-CENTRE",
        andorra=Andorra("AD-SJL", SAFETY_NET),  # urgent, no N4: a final offer to the centre
    ),
    Scenario(
        "eclampsia-after-birth",
        "Eclampsia two hours after a normal birth at 34 weeks: the baby is out, nothing is added "
        "for it",
        ("ECLAMPSIA",), "LH-T01", needs("M3", "N0", ICU), CAPABLE,
        delivered=True, weeks=34, first="LH-CH", andorra=Andorra("AD-CAN", CAPABLE),
    ),
    Scenario(
        "severe-pe-term",
        "Severe pre-eclampsia at 39 weeks, undelivered: a term baby adds nothing",
        ("SEVERE_PE",), "BW-T07", needs("M2", "N0"), CAPABLE,
        delivered=False, weeks=39, first="BW-CH",  # BW-MCH is 1 min further and unconfirmed
        andorra=Andorra("AD-SJL", CAPABLE),  # the clinic itself can: she stays
    ),
    Scenario(
        "pph-after-31w-birth",
        "PPH of 600 ml after a birth at 31 weeks, HR 92, SBP 118: PPH adds nothing for the baby",
        ("PPH",), "LH-T01", needs("M2", "N0", CAES, MASSIVE), CAPABLE,
        weeks=31, hr=92, sbp=118, blood_loss_ml=600, onset_min_ago=15, first="LH-CH",
        andorra=Andorra("AD-LMA", CAPABLE),
    ),
    Scenario(
        "sepsis-delivery-unknown",
        "Fever and hypotension at 30 weeks; the form does not say whether she has delivered, so "
        "the baby is counted",
        ("SEPSIS",), "LH-T05", needs("M3", "N3", ICU), CAPABLE,
        weeks=30, first="LH-CH", andorra=Andorra("AD-ENC", CAPABLE),
    ),
    Scenario(
        "abruption-29w",
        "Painful bleeding from an abruption at 29 weeks, began 20 minutes ago, stable",
        ("APH",), "LH-T01", needs("M2", "N3", CAES, BLOOD), CAPABLE,
        weeks=29, onset_min_ago=20, hr=96, sbp=118, first="LH-CH",
        andorra=Andorra("AD-CAN", CAPABLE),
    ),
    Scenario(
        "abruption-in-shock",
        "Abruption at 36 weeks, HR 125, SBP 85: haemorrhagic shock before birth",
        ("APH",), "BW-T07", needs("M3", "N1", CAES, BLOOD, MASSIVE), CAPABLE,
        weeks=36, onset_min_ago=10, hr=125, sbp=85,
    ),
    Scenario(
        "sepsis-previable-21w",
        "Sepsis at 21 weeks, undelivered (infected threatened miscarriage): the fetus is not "
        "viable, so the mother's need alone decides",
        ("SEPSIS",), "LH-T05", needs("M3", "N0", ICU), CAPABLE,
        delivered=False, weeks=21, first="LH-CH",
    ),
    Scenario(
        "severe-pe-island-31w",
        "Severe pre-eclampsia at 31 weeks on the island; magnesium and nifedipine started there: "
        "go to the N3 unit, there is no 60-minute deadline for arriving",
        ("SEVERE_PE",), "HXD", needs("M2", "N3"), CAPABLE,
        delivered=False, weeks=31, first="YZ-CENTRE",
    ),
    Scenario(
        "preterm-labour-26w",
        "Regular contractions at 26 weeks: in-utero transfer to an N4 unit",
        ("PRETERM_LABOUR",), "BW-T07", needs("M2", "N4"), CAPABLE,
        weeks=26, first="YZ-CENTRE", andorra=Andorra("AD-PAS", SAFETY_NET),
    ),
    # -- the new rows: cord prolapse, obstructed labour, fetal distress
    Scenario(
        "cord-prolapse-term",
        "Cord prolapse at 38 weeks, 5 minutes ago, at a township centre 15 minutes from theatre",
        ("CORD_PROLAPSE",), "LH-T01", needs("M2", "N0", CAES), CAPABLE,
        weeks=38, onset_min_ago=5, first="LH-CH", andorra=Andorra("AD-ENC", CAPABLE),
    ),
    Scenario(
        "cord-prolapse-island",
        "Cord prolapse at 38 weeks, 5 minutes ago, on the island: no theatre within 25 minutes",
        ("CORD_PROLAPSE",), "HXD", needs("M2", "N0", CAES), BEYOND,
        weeks=38, onset_min_ago=5, andorra=Andorra("AD-PAS", BEYOND),
    ),
    Scenario(
        "cord-prolapse-30w",
        "Cord prolapse at 30 weeks, 5 minutes ago: theatre and an N3 unit for the baby",
        ("CORD_PROLAPSE",), "LH-T01", needs("M2", "N3", CAES), CAPABLE,
        weeks=30, onset_min_ago=5, first="LH-CH", andorra=Andorra("AD-ENC", CAPABLE),
    ),
    Scenario(
        "obstructed-labour",
        "Obstructed labour at 39 weeks after two days of labour at home, now at a township centre",
        ("OBSTRUCTED_LABOUR",), "BW-T07", needs("M2", "N0", CAES), CAPABLE,
        weeks=39, first="BW-CH", andorra=Andorra("AD-LMA", CAPABLE),
    ),
    Scenario(
        "fetal-distress-35w",
        "Fetal bradycardia at 35 weeks for 10 minutes, in the county whose hospital is closed",
        ("FETAL_DISTRESS",), "SS-T03", needs("M2", "N1", CAES), CAPABLE,
        weeks=35, onset_min_ago=10, first="SS-MCH", andorra=Andorra("AD-ALV", CAPABLE),
    ),
    # -- the newborn's own band, without ticking "preterm"
    Scenario(
        "resp-27w-900g",
        "Baby born at 27 weeks weighing 900 g, grunting, on CPAP at the county MCH hospital",
        ("NB_RESP",), "LH-MCH", needs("M0", "N4", CPAP), CAPABLE,
        weeks=27, birth_weight_g=900, born_min_ago=40, first="YZ-CENTRE",
        andorra=Andorra("AD-SJL", SAFETY_NET),
    ),
    Scenario(
        "resp-term",
        "Term baby (39 weeks, 3400 g) grunting with recession at a township centre",
        ("NB_RESP",), "LH-T01", needs("M0", "N2", CPAP), CAPABLE,
        weeks=39, birth_weight_g=3400, first="LH-CH", andorra=Andorra("AD-CAN", CAPABLE),
    ),
    Scenario(
        "resp-ventilated-34w",
        "Baby at 34 weeks, 2100 g, intubated and ventilated at the county MCH hospital",
        ("NB_RESP",), "SS-MCH", needs("M0", "N3", CPAP, VENT), CAPABLE,
        weeks=34, birth_weight_g=2100, ventilated=True, first="YZ-CENTRE",
        andorra=Andorra("AD-SJL", CAPABLE),
    ),
    Scenario(
        "nb-sepsis-30w",
        "Baby at 30 weeks, 1300 g, septic on day 3 at a county MCH hospital",
        ("NB_SEPSIS",), "BW-MCH", needs("M0", "N3"), CAPABLE,
        weeks=30, birth_weight_g=1300, first="YZ-CENTRE", andorra=Andorra("AD-SJL", CAPABLE),
    ),
    Scenario(
        "jaundice-term",
        "Term baby on day 4 with bilirubin near the exchange line",
        ("NB_JAUNDICE",), "LH-T01", needs("M0", "N3", "exchange_transfusion"), CAPABLE,
        weeks=39, birth_weight_g=3200, first="LH-CH", andorra=Andorra("AD-ENC", CAPABLE),
    ),
    Scenario(
        "seizure-36w",
        "Baby at 36 weeks, 2600 g, fitting",
        ("NB_SEIZURE",), "BW-T07", needs("M0", "N3"), CAPABLE,
        weeks=36, birth_weight_g=2600, first="YZ-CENTRE", andorra=Andorra("AD-PAS", CAPABLE),
    ),
    Scenario(
        "preterm-31w-1600g",
        "Baby born before arrival at 31 weeks, 1600 g",
        ("NB_PRETERM",), "LH-T05", needs("M0", "N3"), CAPABLE,
        weeks=31, birth_weight_g=1600, first="LH-CH", andorra=Andorra("AD-LMA", CAPABLE),
    ),
    Scenario(
        "small-36w-1450g",
        "Small baby at 36 weeks weighing 1450 g: the weight decides",
        ("NB_PRETERM",), "SS-MCH", needs("M0", "N3"), CAPABLE,
        weeks=36, birth_weight_g=1450, first="YZ-CENTRE", andorra=Andorra("AD-SJL", CAPABLE),
    ),
    Scenario(
        "gastroschisis-island",
        "Term baby with gastroschisis born on the island",
        ("NB_SURGICAL",), "HXD", needs("M0", "N4", "neonatal_surgery"), CAPABLE,
        weeks=39, birth_weight_g=3000, first="YZ-CENTRE", andorra=Andorra("AD-CAN", SAFETY_NET),
    ),
    # -- windows from birth
    Scenario(
        "asphyxia-born-1h",
        "Term baby, Apgar 2 at 5 minutes, born 1 hour ago: cooling must start within 6 hours",
        ("NB_ASPHYXIA",), "LH-T01", needs("M0", "N3", COOLING), CAPABLE,
        weeks=40, birth_weight_g=3300, born_min_ago=60, first="YZ-CENTRE",
        andorra=Andorra("AD-ENC", CAPABLE),
    ),
    Scenario(
        "asphyxia-born-7h",
        "The same baby, but the family came 7 hours after the birth: the window has closed",
        ("NB_ASPHYXIA",), "LH-T01", needs("M0", "N3", COOLING), PASSED,
        weeks=40, birth_weight_g=3300, born_min_ago=420, first="YZ-CENTRE",
        andorra=Andorra("AD-PAS", PASSED),
    ),
    Scenario(
        "asphyxia-birth-time-unknown",
        "Asphyxiated baby whose time of birth nobody wrote down",
        ("NB_ASPHYXIA",), "LH-T05", needs("M0", "N3", COOLING), CAPABLE,
        weeks=39, birth_weight_g=3100, first="YZ-CENTRE", warning="born_at_unknown",
        andorra=Andorra("AD-LMA", CAPABLE),
    ),
    Scenario(
        "asphyxia-island-late",
        "Asphyxiated baby born 5 h 45 min ago on the island: cooling cannot be reached in time",
        ("NB_ASPHYXIA",), "HXD", needs("M0", "N3", COOLING), BEYOND,
        weeks=39, birth_weight_g=3100, born_min_ago=345, andorra=Andorra("AD-PAS", BEYOND),
    ),
    # -- shock from the vital signs
    Scenario(
        "pph-shock-index",
        "PPH after a term birth, HR 130, SBP 80 (shock index 1.6), nobody ticked shock",
        ("PPH",), "LH-T05", needs("M3", "N0", CAES, MASSIVE), CAPABLE,
        delivered=True, weeks=39, hr=130, sbp=80, onset_min_ago=20, first="LH-CH",
        andorra=Andorra("AD-SJL", CAPABLE),
    ),
    Scenario(
        "pph-blood-loss-1600",
        "PPH with 1600 ml weighed, vital signs not yet taken",
        ("PPH",), "SS-T03", needs("M3", "N0", CAES, MASSIVE), CAPABLE,
        delivered=True, blood_loss_ml=1600, onset_min_ago=20, first="YZ-CENTRE",
        andorra=Andorra("AD-ALV", CAPABLE),
    ),
    Scenario(
        "pph-stable",
        "PPH of 500 ml, HR 90, SBP 120: no shock, M2 is enough",
        ("PPH",), "SS-T03", needs("M2", "N0", CAES, MASSIVE), CAPABLE,
        delivered=True, hr=90, sbp=120, blood_loss_ml=500, onset_min_ago=20, first="YZ-CENTRE",
        andorra=Andorra("AD-ORD", CAPABLE),
    ),
    Scenario(
        "pph-shock-island",
        "PPH in shock (ticked) on the island, began 10 minutes ago: the ferry still makes it",
        ("PPH",), "HXD", needs("M3", "N0", CAES, MASSIVE), CAPABLE,
        in_shock=True, onset_min_ago=10, first="BW-CH", andorra=Andorra("AD-PAS", CAPABLE),
    ),
    # -- nobody fits: the safety net, partial matches, never an empty answer
    Scenario(
        "cardiac-centre-icu-full",
        "Mitral stenosis in pulmonary oedema the day after birth; the city centre's maternal ICU "
        "is full tonight: the designated centre is assigned (兜底)",
        ("CARDIAC",), "LH-T01", needs("M4", "N0", ICU, "cardiac_surgery"), SAFETY_NET,
        delivered=True, tweaks=(Tweak("YZ-CENTRE", beds_maternal_icu=0),),
    ),
    Scenario(
        "surgical-centre-nicu-full",
        "Baby with duodenal atresia; the city centre's NICU is full: a final offer to it",
        ("NB_SURGICAL",), "LH-T05", needs("M0", "N4", "neonatal_surgery"), SAFETY_NET,
        weeks=38, birth_weight_g=2900, tweaks=(Tweak("YZ-CENTRE", beds_nicu=0),),
    ),
    Scenario(
        "accreta-centre-closed",
        "Accreta at 30 weeks for a planned transfer; the city centre is closed for theatre works: "
        "no safety net for planned care, the best partial matches for the coordinator",
        ("PAS",), "LH-MCH", needs("M3", "N3", "interventional_radiology"), PARTIAL,
        weeks=30, tweaks=CENTRE_CLOSED,
    ),
    Scenario(
        "home-birth-no-n4",
        "Baby born at home in a village at 26 weeks, 800 g, breathing badly; the only N4 unit is "
        "closed: the best partial is the N3 unit, and the area of the nearest clinic gives the "
        "designated centre its final offer (the safety net covers a home birth too)",
        ("NB_RESP",), None, needs("M0", "N4", CPAP), SAFETY_NET,
        weeks=26, birth_weight_g=800, born_min_ago=30, near="LH-T05", tweaks=CENTRE_CLOSED,
        andorra=Andorra(None, SAFETY_NET, near="AD-CAN"),
    ),
    Scenario(
        "born-at-best-partial",
        "Baby born at 26 weeks, 800 g, at the county hospital (N3) while the city centre is "
        "closed: the county hospital is not told to refer to itself",
        ("NB_PRETERM",), "LH-CH", needs("M0", "N4"), SAFETY_NET,
        weeks=26, birth_weight_g=800, born_min_ago=20, tweaks=CENTRE_CLOSED,
        andorra=Andorra("AD-HNSM", SAFETY_NET),
    ),
    # -- patients who must not be moved
    Scenario(
        "collapse-in-labour",
        "Collapse with suspected amniotic fluid embolism in labour at 38 weeks: resuscitate "
        "there and bring the team",
        ("AFE_ARREST",), "LH-T01", needs("M3", "N0", ICU, MASSIVE), OUTREACH,
        delivered=False, weeks=38, first="LH-CH", andorra=Andorra("AD-ENC", OUTREACH),
    ),
    Scenario(
        "collapse-clinician-moves",
        "The same woman after return of circulation and a perimortem caesarean; the clinician "
        "insists on moving her",
        ("AFE_ARREST",), "LH-T01", needs("M3", "N0", ICU, MASSIVE), CAPABLE,
        delivered=True, do_not_move=False, first="LH-CH", andorra=Andorra("AD-CAN", CAPABLE),
    ),
    Scenario(
        "collapse-island-moved",
        "Postpartum collapse on the island, clinician insists on moving: beyond the 30 minutes",
        ("AFE_ARREST",), "HXD", needs("M3", "N0", ICU, MASSIVE), BEYOND,
        delivered=True, do_not_move=False,
    ),
    Scenario(
        "pph-not-moved",
        "PPH in shock on the island with the ferry stopped by a storm: the clinician marks do "
        "not move",
        ("PPH",), "HXD", needs("M3", "N0", CAES, MASSIVE), OUTREACH,
        in_shock=True, onset_min_ago=10, do_not_move=True, first="BW-CH",
        andorra=Andorra("AD-PAS", OUTREACH),
    ),
    # -- the five colours and purple
    Scenario(
        "red-30w",
        "Red-risk pregnancy (pulmonary hypertension) at 30 weeks, planned referral",
        (), "LH-MCH", needs("M4", "N3"), CAPABLE,
        colour="red", weeks=30, first="YZ-CENTRE",
        andorra=Andorra("AD-LMA", PARTIAL),  # planned, nobody at M4: the coordinator decides
    ),
    Scenario(
        "orange-purple",
        "Orange-risk (previous classical caesarean) with open pulmonary TB (purple) at 38 weeks",
        (), "BW-MCH", needs("M3", "N0", "infectious_isolation"), CAPABLE,
        colour="orange", purple=True, weeks=38, first="YZ-CENTRE",
        andorra=Andorra("AD-ENC", PARTIAL),
    ),
    Scenario(
        "pph-purple",
        "PPH after birth in a mother with open pulmonary TB (purple)",
        ("PPH",), "LH-T01", needs("M2", "N0", CAES, MASSIVE, "infectious_isolation"), CAPABLE,
        delivered=True, purple=True, onset_min_ago=10, first="YZ-CENTRE",
        andorra=Andorra("AD-ALV", SAFETY_NET),  # critical, no isolation: assigned to the centre
    ),
    Scenario(
        "yellow-36w",
        "Yellow-risk (gestational diabetes on insulin) at 36 weeks, planned",
        (), "SS-T03", needs("M2", "N1"), CAPABLE,
        colour="yellow", weeks=36, first="SS-MCH", andorra=Andorra("AD-ORD", CAPABLE),
    ),
)  # fmt: skip

ANDORRA_SCENARIOS = tuple(s for s in SCENARIOS if s.andorra is not None)


def _param(scenario: Scenario) -> Any:
    marks = (
        [pytest.mark.xfail(strict=True, reason=scenario.disagrees)] if scenario.disagrees else []
    )
    return pytest.param(scenario, id=scenario.id, marks=marks)


def _scenario(id: str) -> Scenario:
    return next(s for s in SCENARIOS if s.id == id)


# ---------------------------------------------------------------------------- the regions


@dataclass
class Region:
    name: str
    session: Session
    rules: Rules
    router: routing.Router
    centre: str  # the designated maternal and neonatal centre

    def facility(self, code: str) -> Facility:
        found = self.session.scalar(select(Facility).where(Facility.code == code))
        assert found is not None, code
        return found


def _region_session(engine: Engine) -> Iterator[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        yield session
    _wipe(engine)


@pytest.fixture(scope="class")
def demo_region(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    """The demo region, and its roads as ``greenchannel demo`` builds, saves and loads them."""
    rules = load_rules(None)
    roads = tmp_path_factory.mktemp("demo-roads") / "roads.npz"
    save_network(demo_road_network(speeds=rules.road_speeds_kmh).network, roads)
    for session in _region_session(engine):
        build_demo_region(session, now=NOW)
        session.commit()
        yield Region("demo", session, rules, router_for(str(roads)), "YZ-CENTRE")


AD_CAPS_CENTRE = ";".join(
    (CAES, BLOOD, MASSIVE, ICU, "interventional_radiology", CPAP, VENT, COOLING,
     "exchange_transfusion")
)  # fmt: skip
AD_FACILITIES = [
    # code, name, kind, lat, lon, M, N, capabilities, county (parish), designated
    ("AD-HNSM", "Hospital Nostra Senyora de Meritxell", "city_hospital", 42.5098, 1.5390, "M3",
     "N3", AD_CAPS_CENTRE, "Escaldes-Engordany", "maternal;neonatal"),
    ("AD-SJL", "Clínica de Sant Julià", "county_mch_hospital", 42.4650, 1.4905, "M2", "N2",
     f"{CAES};{BLOOD};{CPAP}", "Sant Julià de Lòria", ""),
    ("AD-ALV", "CAP Andorra la Vella", "township_health_centre", 42.5063, 1.5218, "M1", "N1", "",
     "Andorra la Vella", ""),
    ("AD-ENC", "CAP Encamp", "township_health_centre", 42.5347, 1.5800, "M1", "N1", "", "Encamp",
     ""),
    ("AD-LMA", "CAP La Massana", "township_health_centre", 42.5451, 1.5148, "M1", "N1", "",
     "La Massana", ""),
    ("AD-CAN", "CAP Canillo", "township_health_centre", 42.5667, 1.5986, "M1", "N1", "",
     "Canillo", ""),
    ("AD-ORD", "CAP Ordino", "township_health_centre", 42.5560, 1.5330, "M1", "N1", "", "Ordino",
     ""),
    ("AD-PAS", "CAP Pas de la Casa", "township_health_centre", 42.5426, 1.7334, "M1", "N1", "",
     "Encamp", ""),
]  # fmt: skip
AD_BEDS = {
    "AD-HNSM": {"obstetric": 6, "maternal_icu": 2, "nicu": 3},
    "AD-SJL": {"obstetric": 4, "maternal_icu": 0, "nicu": 2},
}


def andorra_csv() -> bytes:
    head = "code,name,kind,lat,lon,maternal_level,neonatal_level,capabilities,phone,province,"
    head += "city,county,designated\n"
    rows = [
        f"{code},{name},{kind},{lat},{lon},{m},{n},{caps},+37680{i:04d},Andorra,Andorra,"
        f"{parish},{designated}\n"
        for i, (code, name, kind, lat, lon, m, n, caps, parish, designated) in enumerate(
            AD_FACILITIES
        )
    ]
    return (head + "".join(rows)).encode()


@pytest.fixture(scope="class")
def andorra_region(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    """The Andorra extract compiled as ``greenchannel roads import`` does; facilities by CSV."""
    rules = load_rules(None)
    roads = tmp_path_factory.mktemp("andorra-roads") / "roads.npz"
    network = routing.RoadNetwork.from_pbf(
        ANDORRA, speeds={**routing.DEFAULT_SPEEDS, **rules.road_speeds_kmh}
    )
    save_network(network, roads)
    for session in _region_session(engine):
        summary = registry.import_facilities(session, data=andorra_csv(), fmt="csv", now=NOW)
        assert summary.created == len(AD_FACILITIES), summary
        for code, beds in AD_BEDS.items():
            facility = session.scalar(select(Facility).where(Facility.code == code))
            assert facility is not None
            report_status(
                session, facility=facility, beds=beds, diversion="normal", unavailable=[],
                reported_by="test", user_id=None, channel=Channel.IMPORT,
                now=NOW - dt.timedelta(minutes=20),
            )  # fmt: skip
        session.commit()
        yield Region("andorra", session, rules, router_for(str(roads)), "AD-HNSM")


# ---------------------------------------------------------------------------- the checks

REGISTRY_GAPS = ("maternal_level_below", "neonatal_level_below", "lacks_capability")


def _gaps(need: Need, patient: str, snap: routing.FacilitySnapshot) -> set[tuple[str, str]]:
    """What a facility lacks of a requirement, read from the facility data (not the router)."""
    gaps = set()
    if snap.maternal_level < need.maternal_level:
        gaps.add(
            (
                "maternal_level_below",
                f"maternal level M{snap.maternal_level} below required M{need.maternal_level}",
            )
        )
    if snap.neonatal_level < need.neonatal_level:
        gaps.add(
            (
                "neonatal_level_below",
                f"neonatal level N{snap.neonatal_level} below required N{need.neonatal_level}",
            )
        )
    for cap in need.capabilities:
        if cap not in snap.capabilities:
            gaps.add(("lacks_capability", f"lacks {cap}"))
        elif cap in snap.unavailable:
            gaps.add(("capability_unavailable", f"{cap} temporarily unavailable"))
    for bed in beds_needed(need, patient):
        if snap.beds.get(bed) == 0:
            gaps.add(("no_bed", bed))
    return gaps


def _lacks(reasons: tuple[routing.Reason, ...]) -> set[tuple[str, str]]:
    return {(r.code, r.params["bed_type"] if r.code == "no_bed" else r.text) for r in reasons}


def _open(snap: routing.FacilitySnapshot) -> bool:
    return snap.active and snap.diversion != "closed"


def _apply(region: Region, tweaks: tuple[Tweak, ...]) -> None:
    for tweak in tweaks:
        status = region.facility(tweak.facility).status
        assert status is not None, tweak.facility
        if tweak.diversion is not None:
            status.diversion = Diversion(tweak.diversion)
        if tweak.beds_nicu is not None:
            status.beds_nicu = tweak.beds_nicu
        if tweak.beds_maternal_icu is not None:
            status.beds_maternal_icu = tweak.beds_maternal_icu
    region.session.flush()


def check_scenario(
    region: Region,
    scenario: Scenario,
    *,
    origin_code: str | None,
    near: str | None,
    kind: str,
    tweaks: tuple[Tweak, ...],
    first: str | None,
) -> Decision:
    """Decide the scenario in ``region`` and check the answer against the facility data."""
    try:
        _apply(region, tweaks)
        place = region.facility(origin_code or near or "")
        origin = (place.lat, place.lon)
        decision = decide(
            region.session,
            rules=region.rules,
            router=region.router,
            origin=origin,
            case=scenario.case(NOW),
            now=NOW,
            origin_facility=place if origin_code else None,
        )
        _check(region, scenario, decision, origin, origin_code, kind, first)
        return decision
    finally:
        region.session.rollback()  # tonight's tweaks were for this scenario only


def _check(
    region: Region,
    scenario: Scenario,
    decision: Decision,
    origin: tuple[float, float],
    origin_code: str | None,
    kind: str,
    first: str | None,
) -> None:
    rules, t = region.rules, decision.triage
    answer = decision.to_dict("en")
    maternal, neonatal, capabilities = scenario.requires
    requirements = answer["requirements"]
    assert {k: requirements[k] for k in ("maternal_level", "neonatal_level", "capabilities")} == {
        "maternal_level": maternal,
        "neonatal_level": neonatal,
        "capabilities": sorted(capabilities),
    }, scenario.says
    assert decision.kind == kind, (scenario.says, decision.summary("en"))
    assert answer["decision"] == {"kind": kind, "text": decision.summary("en")}

    snaps = {s.code: s for s in snapshots(region.session, rules=rules, now=NOW)}
    need, patient = t.need, t.patient
    candidates = {c.facility for c in decision.ranking.candidates}
    for code in candidates:  # never a candidate lacking anything
        assert _open(snaps[code]) and not _gaps(need, patient, snaps[code]), code
    capable = {code for code, s in snaps.items() if _open(s) and not _gaps(need, patient, s)}
    for partial in decision.partial:  # exactly its gaps; never a capable one, never the origin
        assert partial.facility not in candidates and partial.facility not in capable
        assert partial.facility != origin_code
        gaps = _gaps(need, patient, snaps[partial.facility])
        assert partial.lacks and _lacks(partial.lacks) == gaps, partial.facility

    nearest = _nearest(region, origin, capable, snaps)
    if kind in (CAPABLE, BEYOND, PASSED):
        assert decision.first is not None and decision.first.facility == nearest
        assert not decision.first.estimate
        assert first is None or nearest == first, (nearest, first)
    if kind == CAPABLE:
        assert t.window is None or decision.reachable_in_time is True
    if kind in (BEYOND, PASSED):
        assert t.window is not None and decision.reachable_in_time is False
        assert answer["beyond_window"] is True
        assert answer["window_advice"] == list(t.window.advice.get("en", ()))
        assert decision.ranking.stabilise_at is not None  # somewhere to stabilise meanwhile
    if kind == BEYOND:
        assert t.window is not None and not t.window.closed(NOW)
    if kind == PASSED:
        assert scenario.born_min_ago is not None and t.window is not None
        closes = NOW - dt.timedelta(minutes=scenario.born_min_ago) + dt.timedelta(hours=6)
        assert t.window.start == "birth" and t.window.closes_at == closes
        assert answer["window"]["closed"] is True
        assert answer["window"]["closes_at"] == closes.isoformat()
        assert f"closed at {(closes + UTC_OFFSET):%H:%M}" in decision.summary("en")
    if kind == PARTIAL:
        assert decision.first is None and decision.safety_net is None
        assert 1 <= len(decision.partial) <= rules.clinical.partial_matches
        assert [p["facility"] for p in answer["partial"]] == [p.facility for p in decision.partial]
    if kind == SAFETY_NET:
        assert decision.first is None and decision.safety_net is not None
        assert decision.safety_net.facility == region.centre
        centre = region.facility(region.centre)
        assert ("neonatal" if patient == "newborn" else "maternal") in centre.designated
        assert decision.safety_net.rule == rules.safety_net[t.urgency]
        assert _lacks(decision.safety_net.lacks) == {  # what it lacks by its registry data
            gap for gap in _gaps(need, patient, snaps[region.centre]) if gap[0] in REGISTRY_GAPS
        }
    elif t.urgency == "planned" or origin_code is None:
        assert decision.safety_net is None  # planned care, or no registered origin: no 兜底
    if kind == OUTREACH:
        outreach = answer["outreach"]
        assert outreach["facility"] == (nearest or decision.partial[0].facility)
        assert outreach["name"] and outreach["text"] and outreach["advice"]
    else:
        assert not t.do_not_move
    if scenario.warning:
        assert scenario.warning in {w.code for w in t.warnings}


def _nearest(
    region: Region,
    origin: tuple[float, float],
    capable: set[str],
    snaps: dict[str, routing.FacilitySnapshot],
) -> str | None:
    """The capable facility nearest by road, an unconfirmed one counted the region's tolerance
    further (routed one by one, not by the ranking under test)."""
    best: tuple[float, str] | None = None
    for code in sorted(capable):
        s = snaps[code]
        route = region.router.route(origin, (s.lat, s.lon))
        assert not route.estimate, code
        unconfirmed = s.stale or s.diversion == "advisory"
        key = route.eta_minutes + (region.rules.tolerance_minutes if unconfirmed else 0.0)
        if best is None or key < best[0]:
            best = (key, code)
    return best[1] if best else None


# ---------------------------------------------------------------------------- the tests


def test_the_suite_has_forty_cases_and_every_kind_of_answer_in_both_regions() -> None:
    assert len(SCENARIOS) >= 40 and len({s.id for s in SCENARIOS}) == len(SCENARIOS)
    assert {s.kind for s in SCENARIOS} == KINDS
    assert {s.andorra.kind for s in ANDORRA_SCENARIOS if s.andorra is not None} == KINDS


class TestDemoRegion:
    """云州市 with the roads ``greenchannel demo`` generates."""

    @pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
    def test_each_scenario_gets_the_requirement_and_the_kind_of_answer_a_clinician_expects(
        self, demo_region: Region, scenario: Scenario
    ) -> None:
        check_scenario(
            demo_region,
            scenario,
            origin_code=scenario.origin,
            near=scenario.near,
            kind=scenario.kind,
            tweaks=scenario.tweaks,
            first=scenario.first,
        )

    def test_a_home_birth_partial_names_the_n3_unit_with_exactly_its_level_gap(
        self, demo_region: Region
    ) -> None:
        decision = check_scenario(
            demo_region, _scenario("home-birth-no-n4"), origin_code=None, near="LH-T05",
            kind=SAFETY_NET, tweaks=CENTRE_CLOSED, first=None,
        )  # fmt: skip
        best = decision.partial[0]
        assert best.facility == "LH-CH"
        assert [r.text for r in best.lacks] == ["neonatal level N3 below required N4"]

    def test_the_safety_net_assigns_for_critical_offers_for_urgent_and_is_off_for_planned(
        self, demo_region: Region
    ) -> None:
        found: dict[str, str | None] = {}
        for id in ("cardiac-centre-icu-full", "surgical-centre-nicu-full", "accreta-centre-closed"):
            scenario = _scenario(id)
            decision = check_scenario(
                demo_region, scenario, origin_code=scenario.origin, near=None,
                kind=scenario.kind, tweaks=scenario.tweaks, first=None,
            )  # fmt: skip
            net = decision.safety_net
            found[decision.triage.urgency] = net.rule if net else None
        assert found == {"critical": "assign", "urgent": "offer", "planned": None}

    def test_a_collapsed_mother_is_not_moved_unless_the_clinician_insists(
        self, demo_region: Region
    ) -> None:
        stay = check_scenario(
            demo_region, _scenario("collapse-in-labour"), origin_code="LH-T01", near=None,
            kind=OUTREACH, tweaks=(), first=None,
        )  # fmt: skip
        moved = check_scenario(
            demo_region, _scenario("collapse-clinician-moves"), origin_code="LH-T01", near=None,
            kind=CAPABLE, tweaks=(), first=None,
        )  # fmt: skip
        assert stay.triage.do_not_move and not moved.triage.do_not_move
        assert stay.ranking.outreach is not None and moved.first is not None
        assert stay.ranking.outreach.facility == moved.first.facility == "LH-CH"


@pytest.mark.skipif(not ANDORRA.exists(), reason=f"Andorra extract not found at {ANDORRA}")
class TestAndorra:
    """The real Andorra road network (OpenStreetMap) with a small facility set of its own."""

    @pytest.mark.parametrize("scenario", [_param(s) for s in ANDORRA_SCENARIOS])
    def test_each_scenario_gets_the_same_requirement_and_the_kind_its_facilities_allow(
        self, andorra_region: Region, scenario: Scenario
    ) -> None:
        andorra = scenario.andorra
        assert andorra is not None
        check_scenario(
            andorra_region,
            scenario,
            origin_code=andorra.origin,
            near=andorra.near,
            kind=andorra.kind,
            tweaks=andorra.tweaks,
            first=None,
        )

    def test_a_region_without_n4_still_answers_a_26_week_baby_with_its_n3_unit(
        self, andorra_region: Region
    ) -> None:
        decision = check_scenario(
            andorra_region, _scenario("home-birth-no-n4"), origin_code=None, near="AD-CAN",
            kind=SAFETY_NET, tweaks=(), first=None,
        )  # fmt: skip
        best = decision.partial[0]
        assert best.facility == "AD-HNSM"
        assert [r.text for r in best.lacks] == ["neonatal level N3 below required N4"]
