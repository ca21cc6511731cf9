"""A farm with CurveZMQ on: every ZeroMQ connection encrypted and authenticated."""

import json

from farm import Farm


def test_farm_runs_a_job_with_curve_encryption(tmp_path):
    farm = Farm(tmp_path / "farm", curve="true")
    try:
        farm.start_master()
        engine_file = json.loads(farm.config.engine_file.read_text())
        assert engine_file.get("curve_serverkey"), "the engine connection file carries no Curve key"
        assert farm.config.engine_file.stat().st_mode & 0o777 == 0o600
        assert farm.config.client_file.stat().st_mode & 0o777 == 0o600
        assert farm.config.token_file.stat().st_mode & 0o777 == 0o600
        farm.add_slave("curvy")
        farm.wait_engines(1)
        job = farm.client.submit("shell", None, start=1, end=3, params={"cmd": "echo {frame}"})
        assert farm.wait_job(job["id"])["status"] == "finished"
        assert (
            "Not using CurveZMQ"
            not in (tmp_path / "farm" / "logs" / "slave-curvy-0.log").read_text()
        )
    finally:
        farm.stop()
