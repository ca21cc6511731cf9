"""Failure classes and their actions on a real farm (issue #15, docs/jobs.md "When a task fails").

One master and two one-slot slaves, real processes, shared by the module:

* ``small`` reports 2,000 MB of RAM (``--ram-mb``) and runs under an address-space limit of
  2,000 MB (RLIMIT_AS, set on the slave process, so on its engine and renders): an allocation
  past it fails there;
* ``big`` has neither.

The farm blocks a host after one failure of a job (``block_after_failures`` 1), so a failure
counted against a host shows at once, and backs a licence failure off for 0.5 s.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from farm import Farm, start_master_refused, wait_for

SMALL_MB = 2000


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    farm = Farm(
        tmp_path_factory.mktemp("failures"),
        block_after_failures=1,
        licence_backoff_seconds=0.5,
        info_cache_seconds=3,
    )
    farm.start_master()
    farm.add_slave("small", ram_mb=SMALL_MB, address_space_mb=SMALL_MB)
    farm.add_slave("big")
    farm.wait_engines(2)
    wait_for(
        lambda: {c.name: c.ram_mb for c in farm.client.computers()}.get("small") == SMALL_MB,
        30,
        what="small to report its --ram-mb",
    )
    yield farm
    farm.stop()


def submit_shell(farm: Farm, script: str, **options) -> int:
    """A shell job running *script* under sh (the shell renderer runs no shell itself)."""
    options.setdefault("owner", "ann")
    cmd = f"sh -c {shlex.quote(script)}"
    return farm.client.submit("shell", None, params={"cmd": cmd}, **options)["id"]


def events(farm: Farm, job_id: int, kind: str) -> list[str]:
    return [e.message for e in farm.client.all_events(job_id) if e.kind == kind]


def test_a_frame_out_of_memory_on_a_small_slave_finishes_on_a_big_one_without_a_human(farm):
    """The render maps 2,100 MB: past small's limit it fails with the kernel's ENOMEM
    ("Cannot allocate memory"), so the task is out of memory there; it asks for more than
    small has, and big renders it.  Neither a failure of the task (retries 0) nor of small."""
    farm.client.computer_action("big", "disable")  # so the first attempt is small's
    try:
        allocate = "import mmap; m = mmap.mmap(-1, 2100 * 2**20); m[-1] = 1; print('allocated')"
        job_id = submit_shell(
            farm, f"{shlex.quote(sys.executable)} -c {shlex.quote(allocate)}", start=1, end=1,
            retries=0,
        )  # fmt: skip
        task = wait_for(
            lambda: (t := farm.client.tasks(job_id)[0]).failure_class == "oom" and t,
            60,
            0.2,
            "the task to fail out of memory on small",
        )
        assert task.computer == "small"
        assert task.min_ram_mb == SMALL_MB + 1
        assert task.state in ("queued", "dispatched", "running")  # never an error
    finally:
        farm.client.computer_action("big", "enable")
    job = farm.wait_job(job_id, 60)
    assert job.status == "finished", farm.client.tasks(job_id)[0].reason
    [task] = farm.client.tasks(job_id)
    assert (task.computer, task.failures, task.failure_class) == ("big", 0, None)
    assert job.blocked_hosts == []  # small is not blocked for it
    [failed] = events(farm, job_id, "task.failed")
    assert "failed on small (oom)" in failed and "Cannot allocate memory" in failed


def test_tasks_waiting_for_a_bigger_slave_leave_the_small_one_to_other_jobs(farm):
    """While big is busy, out-of-memory tasks wait for it, and small runs another job's tasks
    meanwhile, though their job comes second (hostile review: small sat idle, every round
    planned for the job whose tasks it cannot take)."""
    busy = submit_shell(farm, "sleep 300", start=1, end=1, requirements={"hosts": ["big"]})
    needy = other = None
    try:
        wait_for(lambda: farm.client.job(busy).counts.running == 1, 60, 0.2, "big to be busy")
        needy = submit_shell(farm, "echo 'out of memory'; exit 1", start=1, end=3, priority=100)
        wait_for(
            lambda: all(t.min_ram_mb == SMALL_MB + 1 for t in farm.client.tasks(needy)),
            60,
            0.2,
            "every task of the needy job to need more than small",
        )
        other = submit_shell(farm, "true", start=1, end=2)
        assert farm.wait_job(other, 60).status == "finished"
        assert {t.computer for t in farm.client.tasks(other)} == {"small"}
        assert farm.client.job(busy).counts.running == 1  # big was busy all along
        assert farm.client.job(needy).counts.queued == 3
    finally:
        for job_id in (busy, needy, other):
            if job_id is not None:
                farm.client.delete_job(job_id, force=True)


def test_an_out_of_memory_task_no_slave_can_hold_ends_in_error_saying_so(farm):
    """Disabled or not, big is known: a task whose peak needs more than every known slave
    has ends at once, with the memory it needs in its reason."""
    big = {c.name: c.ram_mb for c in farm.client.computers()}["big"]
    script = "echo 'terminate called after throwing an instance of std::bad_alloc'; exit 134"
    job_id = submit_shell(farm, script, start=1, end=1, retries=3, requirements={"hosts": ["big"]})
    job = farm.wait_job(job_id, 60)
    [task] = farm.client.tasks(job_id)
    assert (job.status, task.failure_class) == ("error", "oom")
    needs = f"needs {big + 1} MB: no slave is that big"
    assert task.reason.startswith(needs), task.reason
    assert task.attempts == 1 and job.blocked_hosts == []


def test_a_licence_failure_backs_off_and_counts_against_nobody(farm, tmp_path):
    """A fake licensed program that finds no licence its first three runs (a file counts
    them), with Nuke's wording: the task is requeued after a back-off, the job is held a
    moment, no host is blocked (one failure would block it), and retries 0 is not spent."""
    counter = tmp_path / "runs"
    script = (
        f"n=$(($(cat {counter} 2>/dev/null || echo 0) + 1)); echo $n > {counter}; "
        'if [ "$n" -le 3 ]; then echo "No licenses available for nuke_r" >&2; exit 1; fi; '
        "echo rendered"
    )
    job_id = submit_shell(farm, script, start=1, end=1, retries=0)
    job = farm.wait_job(job_id, 90)
    [task] = farm.client.tasks(job_id)
    assert job.status == "finished", task.reason
    assert counter.read_text().strip() == "4"
    assert (task.failures, job.blocked_hosts) == (0, [])
    failed = events(farm, job_id, "task.failed")
    assert len(failed) == 3 and all("(licence)" in message for message in failed)
    [held] = events(farm, job_id, "job.held")
    assert "licence failure: No licenses available for nuke_r" in held


def test_a_job_can_choose_to_treat_a_licence_failure_as_any_failure(farm, tmp_path):
    """--on-failure licence=retry: today's rule, so retries 0 ends it and the host is blocked."""
    script = 'echo "No licenses available for nuke_r" >&2; exit 1'
    job_id = submit_shell(farm, script, start=1, end=1, retries=0, on_failure={"licence": "retry"})
    job = farm.wait_job(job_id, 60)
    [task] = farm.client.tasks(job_id)
    assert (job.status, task.failure_class, task.failures) == ("error", "licence", 1)
    assert job.blocked_hosts == [task.computer]


MISSING_TEXTURE_SCENE = """
import bpy
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.render.resolution_x = scene.render.resolution_y = 16
material = bpy.data.materials.new("wood")
material.use_nodes = True
texture = material.node_tree.nodes.new("ShaderNodeTexImage")
image = bpy.data.images.new("wood", 4, 4)
image.source = "FILE"
image.filepath = {texture!r}
texture.image = image
bsdf = material.node_tree.nodes["Principled BSDF"]
material.node_tree.links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
bpy.ops.mesh.primitive_cube_add()
bpy.context.object.data.materials.append(material)
bpy.ops.wm.save_as_mainfile(filepath={scene!r})
"""


def test_a_missing_texture_ends_its_job_in_seconds_with_the_path_in_the_reason(farm, tmp_path):
    """A real .blend whose image texture's file is missing: Blender would render it pink
    with exit code 0.  The first task to load it fails as a missing asset, and the job's
    queued tasks end in error at once with the path; no task is tried twice."""
    scene, texture = tmp_path / "shot.blend", tmp_path / "textures" / "wood_diffuse.png"
    made = subprocess.run(
        ["blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python-expr",
         MISSING_TEXTURE_SCENE.format(texture=str(texture), scene=str(scene))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0 and scene.exists(), made.stdout[-2000:]
    submitted = time.monotonic()
    job_id = farm.client.submit(
        "blender",
        str(scene),
        start=1,
        end=12,
        owner="ann",
        params={"output": str(tmp_path / "out" / "f_####")},
    )["id"]
    job = farm.wait_job(job_id, 120)
    took = time.monotonic() - submitted
    tasks = farm.client.tasks(job_id)
    assert job.status == "error"
    assert all(t.state == "error" and t.attempts <= 1 for t in tasks), [t.reason for t in tasks]
    ran = [t for t in tasks if t.attempts]
    assert ran and len(ran) <= 2  # the first task of each slave, no more
    assert all(t.failure_class == "missing-asset" for t in ran)
    assert all(t.failure_detail == str(texture) for t in ran)
    assert all(str(texture) in t.reason for t in tasks)
    assert took < 60, f"the job took {took:.0f} s to end"
    assert not list((tmp_path / "out").glob("*.png"))  # nothing rendered pink
    assert job.blocked_hosts == []


def test_an_unknown_failure_class_or_a_bad_regex_refuses_the_masters_start(tmp_path):
    for rule, said in [
        ('pattern = "x"\nclass = "bogus"', "unknown failure class 'bogus'"),
        ('pattern = "(unclosed"\nclass = "crash"', "does not compile"),
    ]:
        root = tmp_path / said.split()[0]
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "drqueue.toml").write_text(f"[[failure_rules]]\n{rule}\n")
        done = start_master_refused(root, **Farm(root).env)
        assert done.returncode != 0
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and said in lines[0], done.stderr
        assert not Path(root / "db").exists() or not any((root / "db").iterdir())
