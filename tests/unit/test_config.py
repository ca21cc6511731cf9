"""Settings: the controller port range, the default drqueue.toml, and the docs that list them.

The default file and docs/operations.md's table are both checked against the Config dataclass
itself, so a setting added there and forgotten elsewhere fails here.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from drqueue.config import (
    MIN_CONTROLLER_PORTS,
    Config,
    default_config_text,
    load_config,
    setting_groups,
)
from drqueue.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(autouse=True)
def no_drqueue_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("DRQUEUE_"):
            monkeypatch.delenv(name)


def defaults() -> dict:
    return {
        f.name: f.default if f.default is not MISSING else f.default_factory()
        for f in fields(Config)
        if f.name != "root"
    }


# -- controller ports ------------------------------------------------------------------------------


def test_a_controller_port_range_below_the_minimum_is_refused_naming_the_minimum():
    config = Config(controller_ports=f"7681-{7681 + MIN_CONTROLLER_PORTS - 2}")
    with pytest.raises(ConfigError, match=f"at least {MIN_CONTROLLER_PORTS}"):
        config.port_list()
    exact = Config(controller_ports=f"7681-{7681 + MIN_CONTROLLER_PORTS - 1}")
    assert len(exact.port_list()) == MIN_CONTROLLER_PORTS


def test_a_port_named_twice_counts_once_and_ports_must_exist():
    twice = ",".join(["7681"] * MIN_CONTROLLER_PORTS)
    with pytest.raises(ConfigError, match="has 1 ports"):
        Config(controller_ports=twice).port_list()
    with pytest.raises(ConfigError, match="outside 1-65535"):
        Config(controller_ports="65530-65560").port_list()
    with pytest.raises(ConfigError, match="is not like"):
        Config(controller_ports="7681-77x").port_list()


# -- the default drqueue.toml ----------------------------------------------------------------------


def test_every_setting_has_a_one_line_meaning():
    grouped = [name for names, _ in setting_groups() for name in names]
    assert grouped == [f.name for f in fields(Config)]
    for names, meaning in setting_groups():
        assert meaning, f"{names} have no #: comment in Config"


def test_the_default_file_shows_every_setting_commented_out_with_its_default():
    text = default_config_text()
    assert tomllib.loads(text) == {}, "a setting is not commented out"
    uncommented = "\n".join(
        line[2:] if re.match(r"# \w+ = ", line) else line for line in text.splitlines()
    )
    assert tomllib.loads(uncommented) == defaults()


def test_a_fresh_root_gets_the_default_file_private_and_it_loads_as_the_defaults(tmp_path):
    config = Config(root=tmp_path / "root")
    assert config.ensure_config_file() is True
    assert config.config_file == tmp_path / "root" / "etc" / "drqueue.toml"
    assert config.config_file.stat().st_mode & 0o777 == 0o600
    assert config.config_file.read_text() == default_config_text()
    assert load_config(root=config.root) == Config(root=config.root)


def test_an_existing_settings_file_is_never_touched(tmp_path):
    config = Config(root=tmp_path)
    config.ensure_dirs()
    config.config_file.write_text("max_lost = 7\n")
    os.chmod(config.config_file, 0o640)
    assert config.ensure_config_file() is False
    assert config.config_file.read_text() == "max_lost = 7\n"
    assert config.config_file.stat().st_mode & 0o777 == 0o640
    assert load_config(root=tmp_path).max_lost == 7


# -- the docs that list settings and job fields ----------------------------------------------------


def _section(page: str, heading: str) -> str:
    text = (DOCS / page).read_text()
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start : end if end >= 0 else None]


def test_operations_md_lists_every_setting_and_no_other():
    table = [
        line
        for line in _section("operations.md", "## Configuration").splitlines()
        if line.startswith("| `")
    ]
    documented = {key for line in table for key in re.findall(r"`(\w+)`", line.split("|")[1])}
    assert documented == {f.name for f in fields(Config)}


def test_api_md_names_every_field_of_a_job_submission():
    from drqueue.models import JobIn, JobSpec

    (row,) = [
        line
        for line in (DOCS / "api.md").read_text().splitlines()
        if line.startswith("| `POST /jobs`")
    ]
    body = row.split("(body:", 1)[1].split(")", 1)[0]
    named = set(re.findall(r"\w+", body))
    wanted = {f.name for f in fields(JobSpec)} | set(JobIn.model_fields)
    assert wanted <= named, f"docs/api.md's POST /jobs body lacks {sorted(wanted - named)}"


# -- artist_renderers ------------------------------------------------------------------------------


def test_artist_renderers_come_from_the_file_or_a_comma_list_in_the_environment(
    tmp_path, monkeypatch
):
    config = Config(root=tmp_path)
    config.ensure_dirs()
    config.config_file.write_text('artist_renderers = ["blender", "povray"]\n')
    assert load_config(root=tmp_path).artist_renderers == ["blender", "povray"]
    monkeypatch.setenv("DRQUEUE_ARTIST_RENDERERS", "blender, nuke")
    assert load_config(root=tmp_path).artist_renderers == ["blender", "nuke"]
    assert load_config(root=tmp_path / "fresh").artist_renderers == ["blender", "nuke"]
    monkeypatch.delenv("DRQUEUE_ARTIST_RENDERERS")
    assert load_config(root=tmp_path / "fresh").artist_renderers == ["*"]


def test_artist_renderers_naming_no_renderer_is_refused(tmp_path):
    config = Config(root=tmp_path)
    config.ensure_dirs()
    config.config_file.write_text("artist_renderers = 5\n")
    with pytest.raises(ConfigError, match="wants a list of names"):
        load_config(root=tmp_path)
    with pytest.raises(ConfigError, match="'blendr', which is no renderer"):
        Config(artist_renderers=["blendr"]).check_artist_renderers()
    Config(artist_renderers=["*", "blender", "shell"]).check_artist_renderers()


@pytest.mark.parametrize("line", ["heartbeats_per_second = true", "api_port = false"])
def test_a_toml_true_or_false_is_no_number(tmp_path, line):
    """TOML's booleans are Python's, and int(True) is 1: `api_port = true` made port 1."""
    config = Config(root=tmp_path)
    config.ensure_dirs()
    config.config_file.write_text(line + "\n")
    name = line.split()[0]
    with pytest.raises(ConfigError, match=f"setting {name} wants an? (number|integer|float|int)"):
        load_config(root=tmp_path)
