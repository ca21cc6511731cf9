def test_shell_job_runs_every_frame_once(farm, tmp_path):
    out = tmp_path / "frames"
    job = farm.client.submit(
        "shell",
        None,
        start=1,
        end=6,
        block_size=2,
        params={"cmd": f"sh -c 'echo $DRQUEUE_FRAME >> {out}-$DRQUEUE_FRAME'"},
    )
    done = farm.wait_job(job["id"])
    assert done["status"] == "finished"
