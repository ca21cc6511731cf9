"""A render cannot squat a later job's log folder or log on a real farm.

Renders share the slave's user and job ids are sequential, so an artist's render can put a
symbolic link, a file or a FIFO where the next jobs' log folders will be, and a file where
their first log used to be named (``<task>.log``).  The runner replaces what is not a folder,
and each attempt's log is a new file named by its random attempt id: the later jobs run, their
logs hold only their own output, and nothing is written through the link.

The farm is conftest's: a master and two one-slot slaves for the module.
"""

from __future__ import annotations

from pathlib import Path

from farm import Farm


def test_a_render_cannot_squat_the_next_jobs_log_folders(farm: Farm, tmp_path):
    logs = Path(farm.config.logs_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Job A's three frames squat the folders of the three jobs submitted after it.
    plant = (
        "next=$((DRQUEUE_JOBID + DRQUEUE_FRAME)); case $DRQUEUE_FRAME in "
        f"1) echo squatter > {elsewhere}/0.log; ln -s {elsewhere} {logs}/$next ;; "
        f"2) echo squatter > {logs}/$next ;; "
        f"3) mkfifo {logs}/$next ;; esac"
    )
    squatter = farm.client.submit(
        "shell", None, start=1, end=3, params={"cmd": f"sh -c '{plant}'"}
    )["id"]
    job = farm.wait_job(squatter)
    assert job["status"] == "finished", (job, farm.client.tasks(squatter))
    assert (logs / str(squatter + 1)).is_symlink()
    assert (logs / str(squatter + 2)).is_file()
    assert (logs / str(squatter + 3)).is_fifo()
    victims = [
        farm.client.submit("shell", None, start=1, end=1, params={"cmd": f"echo rendered-by-{n}"})[
            "id"
        ]
        for n in range(3)
    ]
    assert victims == [squatter + 1, squatter + 2, squatter + 3]
    for n, job_id in enumerate(victims):
        job = farm.wait_job(job_id, 120)
        assert job["status"] == "finished", (job, farm.client.tasks(job_id))
        task = farm.client.tasks(job_id)[0]
        assert task["attempts"] == 1, task  # not held, not re-dispatched
        log = farm.client.log(job_id, 1)
        assert log.count("# drqueue: job") == 1, log
        assert log.endswith(f"\nrendered-by-{n}\n"), log
        assert "squatter" not in log
        folder = logs / str(job_id)
        assert folder.is_dir() and not folder.is_symlink()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["0.log"], "written through the link"
    assert (elsewhere / "0.log").read_text() == "squatter\n"
