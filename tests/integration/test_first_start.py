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


def test_a_second_master_on_the_same_root_refuses_and_the_first_runs_on(tmp_path):
    """A wrangler typing `drqueue master` beside a running one once killed its controller and
    requeued its running tasks; now the second refuses before touching anything."""
    from farm import wait_for

    farm = Farm(tmp_path)
    try:
        farm.start_master()
        farm.add_slave("alpha")
        farm.wait_engines(1)
        gate = tmp_path / "gate"
        job = farm.client.submit(
            "shell",
            None,
            start=1,
            end=1,
            params={"cmd": f"sh -c 'while ! test -e {gate}; do sleep 0.05; done'"},
        )
        wait_for(lambda: farm.client.job(job["id"])["counts"]["running"] == 1, 60, 0.1, "running")
        second = farm.cli("master", timeout=60)
        assert second.returncode == 1, second
        assert second.stderr.strip().splitlines() == [
            f"error: a master already runs on {tmp_path} (pid {farm.master_proc.pid}): stop it "
            "first, or give this one its own DRQUEUE_ROOT"
        ]
        assert farm.master_proc.poll() is None
        assert farm.controller_pids(), "the first master's controller was killed"
        gate.touch()
        assert farm.wait_job(job["id"], 60)["status"] == "finished"
        task = farm.client.tasks(job["id"])[0]
        assert task["attempts"] == 1, task  # never requeued by the second master
        farm.master_proc.terminate()
        farm.master_proc.wait(30)
        farm.start_master()
        assert farm.client.farm()
    finally:
        farm.stop()


def test_an_api_port_in_use_is_one_line_before_anything_starts(tmp_path):
    """The master binds its API port first: one taken by another program is the master's only
    line, with no controller started and nothing written to the store."""
    import socket

    farm = Farm(tmp_path)
    port = int(farm.env["DRQUEUE_API_PORT"])
    with socket.create_server(("127.0.0.1", port)):
        refused = farm.cli("master", timeout=60)
    assert refused.returncode == 1, refused
    assert refused.stderr.strip().splitlines() == [
        f"error: cannot serve the API on 127.0.0.1:{port}: Address already in use (another "
        "master or program has the port? set api_port in drqueue.toml or --port)"
    ]
    assert not (tmp_path / "logs" / "controller.log").exists()
    assert not list((tmp_path / "db").glob("*.sqlite"))
    try:
        farm.start_master()  # the port free again: the same root starts
        assert farm.client.farm()
    finally:
        farm.stop()
