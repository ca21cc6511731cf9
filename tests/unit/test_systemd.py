"""contrib/systemd's units and docs/deploy.md's systemd section name the same user, paths and
variables, so following the doc gives the units what they expect."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "contrib" / "systemd"


def section(heading: str) -> str:
    text = (REPO / "docs" / "deploy.md").read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end >= 0 else None]


def unit(name: str) -> dict[str, list[str]]:
    """The [Service] keys of a unit file, each with its values (a key may repeat)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes="#")
    parser.optionxform = str  # systemd keys are case-sensitive
    service: dict[str, list[str]] = {}
    text = (UNITS / name).read_text()
    for line in text.split("[Service]", 1)[1].split("\n[", 1)[0].splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            service.setdefault(key.strip(), []).append(value.strip())
    parser.read_string(text)  # the file parses as a unit at all
    return service


def environment(service: dict[str, list[str]]) -> dict[str, str]:
    pairs = [p for value in service.get("Environment", []) for p in shlex.split(value)]
    return dict(pair.split("=", 1) for pair in pairs)


def doc_commands(doc: str) -> list[list[str]]:
    return [
        shlex.split(line)
        for block in re.findall(r"```sh\n(.*?)```", doc, re.S)
        for line in block.splitlines()
        if line.startswith("sudo ")
    ]


def test_the_units_run_as_the_user_the_doc_creates_from_the_doc_s_virtualenv():
    doc = section("## systemd")
    (useradd,) = [c for c in doc_commands(doc) if c[1] == "useradd"]
    user = useradd[-1]
    (venv,) = [c for c in doc_commands(doc) if c[1:4] == ["python3", "-m", "venv"]]
    prefix = venv[4]
    for name in ("drqueue-master.service", "drqueue-slave@.service"):
        service = unit(name)
        assert service["User"] == [user] and service["Group"] == [user], name
        assert service["ExecStart"][0].startswith(f"{prefix}/bin/drqueue "), name


def test_the_doc_copies_both_units_and_creates_each_drqueue_root_for_the_user():
    doc = section("## systemd")
    commands = doc_commands(doc)
    (copy,) = [c for c in commands if c[1] == "cp"]
    assert {Path(p).name for p in copy[2:-1]} == {p.name for p in UNITS.glob("*.service")}
    user = unit("drqueue-master.service")["User"][0]
    created = {c[-1]: c for c in commands if c[1:3] == ["install", "-d"]}
    for name in ("drqueue-master.service", "drqueue-slave@.service"):
        root = environment(unit(name))["DRQUEUE_ROOT"]
        assert root in created, f"the doc never creates {root} ({name})"
        assert ["-o", user, "-g", user] == created[root][3:7], created[root]
        assert root in doc.split("| `DRQUEUE_ROOT` |", 1)[1].splitlines()[0]


def test_the_slave_environment_file_is_created_private_and_sets_what_the_unit_uses():
    doc = section("## systemd")
    service = unit("drqueue-slave@.service")
    (env_file,) = service["EnvironmentFile"]
    assert not env_file.startswith("-"), "a missing environment file must stop the slave"
    commands = doc_commands(doc)
    assert ["sudo", "install", "-m", "0600", "/dev/null", env_file] in commands
    assert any(
        c[:2] == ["sudo", "install"] and c[-1] == str(Path(env_file).parent) for c in commands
    )
    blocks = re.findall(r"```sh\n(.*?)```", doc, re.S)
    (settings,) = [b for b in blocks if b.startswith("DRQUEUE_MASTER=")]
    documented = {line.split("=", 1)[0] for line in settings.splitlines() if "=" in line}
    used = set(re.findall(r"\$\{?(\w+)\}?", service["ExecStart"][0]))
    assert used - set(environment(service)) <= documented, used
    assert {"DRQUEUE_MASTER", "DRQUEUE_TOKEN"} <= documented
    assert "--role slave" in doc
