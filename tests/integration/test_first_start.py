"""A master's first start writes the commented default drqueue.toml; later starts leave it be."""

from __future__ import annotations

from farm import Farm

from drqueue.config import default_config_text


def test_the_first_master_start_writes_the_default_settings_and_a_restart_keeps_an_edited_one(
    tmp_path,
):
    settings = tmp_path / "etc" / "drqueue.toml"
    farm = Farm(tmp_path)
    try:
        farm.start_master()
        assert settings.read_text() == default_config_text()
        assert settings.stat().st_mode & 0o777 == 0o600
        farm.master_proc.terminate()
        farm.master_proc.wait(30)

        edited = default_config_text().replace("# max_lost = 5", "max_lost = 7")
        settings.write_text(edited)
        farm.start_master()
        assert settings.read_text() == edited
        assert farm.client.farm()  # the edited file loads
    finally:
        farm.stop()
