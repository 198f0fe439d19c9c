"""The lock (requirements/constraints.txt) and setup.cfg agree.

setup.cfg keeps the compatible ranges for people who install greenchannel as a library; the lock
pins one tested version of everything, runtime and test tools, and is what the README's commands
and .ci/run install from. A requirement of setup.cfg that the lock does not pin, or pins outside
its range, means the lock was not refreshed after setup.cfg changed: run ``requirements/refresh``.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
SETUP_CFG = ROOT / "setup.cfg"
LOCK = ROOT / "requirements" / "constraints.txt"
EXTRAS = ("test",)


def declared_requirements(setup_cfg: str) -> list[Requirement]:
    """install_requires and the extras the lock covers, as setup.cfg declares them."""
    parser = configparser.ConfigParser()
    parser.read_string(setup_cfg)
    lines = parser.get("options", "install_requires").splitlines()
    for extra in EXTRAS:
        lines += parser.get("options.extras_require", extra).splitlines()
    return [Requirement(line) for line in (raw.strip() for raw in lines) if line]


def locked_pins(lock: str) -> list[Requirement]:
    """Every ``name==version ; marker`` line of the lock (comments and options left out)."""
    pins = []
    for raw in lock.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        pin = Requirement(line)
        specifiers = list(pin.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"not a pin: {raw!r}"
        pins.append(pin)
    return pins


def pinned_version(pin: Requirement) -> Version:
    return Version(next(iter(pin.specifier)).version)


def disagreements(setup_cfg: str, lock: str) -> list[str]:
    """What setup.cfg asks for that the lock does not pin, or pins outside setup.cfg's range."""
    pins: dict[str, list[Requirement]] = {}
    for pin in locked_pins(lock):
        pins.setdefault(canonicalize_name(pin.name), []).append(pin)
    problems = []
    for requirement in declared_requirements(setup_cfg):
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement}: not in the lock")
            continue
        for pin in pins[name]:
            version = pinned_version(pin)
            if not requirement.specifier.contains(version, prereleases=True):
                problems.append(f"{requirement}: the lock pins {pin}")
    return problems


def test_every_requirement_in_setup_cfg_is_pinned_in_the_lock_within_its_range() -> None:
    problems = disagreements(SETUP_CFG.read_text(), LOCK.read_text())
    message = "setup.cfg and the lock disagree (run requirements/refresh):"
    assert not problems, "\n".join([message, *problems])


def test_the_lock_pins_exactly_one_version_of_each_package_for_this_python() -> None:
    versions: dict[str, list[str]] = {}
    for pin in locked_pins(LOCK.read_text()):
        if pin.marker is None or pin.marker.evaluate():
            versions.setdefault(canonicalize_name(pin.name), []).append(str(pin.specifier))
    assert versions
    assert {name: v for name, v in versions.items() if len(v) > 1} == {}


SETUP_CFG_SAMPLE = """
[options]
install_requires =
    flask>=3.1,<4
    psycopg[binary]>=3.1,<4

[options.extras_require]
test =
    pytest>=8,<10
"""


def test_a_requirement_missing_from_the_lock_is_a_disagreement() -> None:
    lock = "flask==3.1.3\n    # via greenchannel (setup.cfg)\npsycopg==3.3.9\n"
    problems = disagreements(SETUP_CFG_SAMPLE, lock)
    assert len(problems) == 1
    assert problems[0].startswith("pytest") and problems[0].endswith("not in the lock")


def test_a_locked_version_outside_the_range_of_setup_cfg_is_a_disagreement() -> None:
    lock = (
        "flask==4.0.0\npsycopg==3.3.9\n"
        "pytest==8.4.2 ; python_full_version < '3.12'\n"
        "pytest==10.0.0 ; python_full_version >= '3.12'\n"
    )
    problems = disagreements(SETUP_CFG_SAMPLE, lock)
    assert len(problems) == 2
    assert problems[0].startswith("flask") and problems[0].endswith("flask==4.0.0")
    assert problems[1].startswith("pytest") and "pytest==10.0.0" in problems[1]


def test_a_lock_that_agrees_with_setup_cfg_has_no_disagreement() -> None:
    lock = "flask==3.1.3\npsycopg==3.3.9\npsycopg-binary==3.3.9\npytest==9.2.0\n"
    assert disagreements(SETUP_CFG_SAMPLE, lock) == []
