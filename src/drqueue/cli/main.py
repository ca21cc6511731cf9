"""The ``drqueue`` command.

Every command but ``master``, ``slave`` and ``up`` talks to the master's HTTP
API through :class:`drqueue.Client`, so it works from any machine with
``DRQUEUE_MASTER=http://host:port`` and ``DRQUEUE_TOKEN``.  Errors print one
line on stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from drqueue.client import Client
from drqueue.config import load_config
from drqueue.errors import DrQueueError, InvalidJob
from drqueue.models import parse_env
from drqueue.renderers import all_renderers

console = Console()
err_console = Console(stderr=True)

#: Job states after which nothing more happens without a user's action.
ENDED = ("finished", "error", "cancelled")


def _client() -> Client:
    return Client(config=load_config())


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _ago(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    seconds = max(0, time.time() - timestamp)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class DrQueueGroup(click.Group):
    """Turns every DrQueueError into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DrQueueError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)


@click.group(cls=DrQueueGroup)
@click.version_option(package_name="drqueue")
def cli() -> None:
    """DrQueue: a render farm manager.  See `drqueue COMMAND --help`."""


# -- processes -------------------------------------------------------------------------------------


@cli.command()
@click.option("--ip", help="address the API and controller listen on (default 127.0.0.1)")
@click.option("--port", type=int, help="API port (default 7680)")
def master(ip: str | None, port: int | None) -> None:
    """Run the master: controller, store, dispatcher and HTTP API."""
    from drqueue.master.service import run_master

    overrides: dict[str, Any] = {"api_port": port}
    if ip:
        overrides.update(api_host=ip, controller_ip=ip)
    run_master(load_config(**overrides))


@cli.command()
@click.option(
    "--master",
    "master_url",
    help="master URL, e.g. http://render-master:7680 (fetches the engine file)",
)
@click.option("--name", help="slave name (default: the hostname)")
@click.option(
    "--slots", type=click.IntRange(0, 1024), default=1, show_default=True, help="CPU engines"
)
@click.option(
    "--pool",
    "pools",
    multiple=True,
    help="pool to join (repeatable, or comma-separated); also DRQUEUE_POOL",
)
@click.option(
    "--gpus",
    default="0",
    show_default=True,
    help="GPU slots: a number, or 'auto' to count NVIDIA GPUs",
)
def slave(
    master_url: str | None, name: str | None, slots: int, pools: tuple[str, ...], gpus: str
) -> None:
    """Run a slave: N engines that render tasks."""
    import logging
    import os

    from drqueue.slave.launcher import Slave, detect_gpus

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = load_config(master=master_url)
    names = [
        p.strip()
        for spec in pools or (os.environ.get("DRQUEUE_POOL", ""),)
        for p in spec.split(",")
    ]
    if gpus == "auto":
        gpu_count = detect_gpus()
    else:
        try:
            gpu_count = int(gpus)
        except ValueError:
            raise click.BadParameter("wants a number or 'auto'", param_hint="--gpus") from None
    Slave(config, name=name, slots=slots, pools=[n for n in names if n], gpus=gpu_count).run()


@cli.command()
@click.option("--slaves", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option(
    "--frames",
    type=click.IntRange(1, 100_000),
    default=24,
    show_default=True,
    help="frames of the sample job",
)
@click.option("--exit-when-done", is_flag=True, help="stop the farm once the sample job has ended")
@click.option("--no-demo", is_flag=True, help="start the farm without the sample job")
def up(slaves: int, frames: int, exit_when_done: bool, no_demo: bool) -> None:
    """Start a whole local farm (master + N slaves) and render a sample job."""
    from drqueue.cli.local_farm import run_local_farm

    sys.exit(run_local_farm(load_config(), slaves, frames, exit_when_done, demo=not no_demo))


# -- submit ------------------------------------------------------------------------------------------


class SubmitCommand(click.Command):
    """`submit RENDERER ...` grows one option per parameter of that renderer (`--engine`, ...)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        renderer = next((a for a in args if not a.startswith("-")), None)
        known = {opt for p in self.params for opt in getattr(p, "opts", [])}
        if renderer in all_renderers():
            cls = all_renderers()[renderer]
            for param in cls.params:
                flag = "--" + param.name.replace("_", "-")
                if flag in known:
                    continue
                kind: Any = {"int": int, "float": float, "bool": bool}.get(param.type, str)
                help_text = param.help + (
                    f" [default: {param.default}]" if param.default not in (None, "") else ""
                )
                if param.choices:
                    kind = click.Choice([str(c) for c in param.choices])
                self.params.append(
                    click.Option(
                        [flag, f"renderer_{param.name}"], type=kind, default=None, help=help_text
                    )
                )
            self.help = f"Submit a {cls.name} job: {cls.description}"
        return super().parse_args(ctx, args)


def _parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidJob(f"--param wants KEY=VALUE, not {pair!r}")
        params[key] = value
    return params


@cli.command(cls=SubmitCommand, context_settings={"ignore_unknown_options": False})
@click.argument("renderer")
@click.argument("scene", required=False)
@click.option("-s", "--start", type=int, required=True, help="first frame")
@click.option("-e", "--end", type=int, required=True, help="last frame")
@click.option("--step", type=int, default=1, show_default=True, help="render every Nth frame")
@click.option("-b", "--block", type=int, default=1, show_default=True, help="frames per task")
@click.option("-n", "--name", default="", help="job name")
@click.option("-p", "--priority", type=int, default=50, show_default=True)
@click.option("--owner", default="", help="job owner (default: your user name)")
@click.option("--retries", type=int, default=3, show_default=True, help="retries of a failed task")
@click.option("--timeout", type=float, help="seconds a task may run before it fails")
@click.option(
    "--env", "env_pairs", multiple=True, help="NAME=VALUE for the render's environment (repeatable)"
)
@click.option(
    "--param", "param_pairs", multiple=True, help="renderer parameter KEY=VALUE (repeatable)"
)
@click.option(
    "--os", "os_name", type=click.Choice(["linux", "windows", "darwin"]), help="slave OS required"
)
@click.option("--min-ram", type=float, help="GB of RAM required")
@click.option("--min-cores", type=int, help="cores required (at least 1)")
@click.option("--pool", "pools", multiple=True, help="pool the slave must be in (repeatable)")
@click.option("--gpus", type=int, default=0, help="GPUs per task (runs on GPU slots only)")
@click.option(
    "--hosts", "hosts", multiple=True, help="run only on slaves matching this glob (repeatable)"
)
@click.option("--exclude-hosts", multiple=True, help="never run on slaves matching this glob")
@click.option(
    "--after", "after", type=int, multiple=True, help="wait for this job to finish (repeatable)"
)
@click.option("--max-parallel", type=int, help="at most this many tasks at once")
@click.option(
    "--no-scene-check", is_flag=True, help="do not check that the scene exists on the master"
)
@click.option(
    "--wait", is_flag=True, help="show a progress bar until the job ends; exit 1 if a task failed"
)
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
def submit(
    renderer: str,
    scene: str | None,
    start: int,
    end: int,
    step: int,
    block: int,
    name: str,
    priority: int,
    owner: str,
    retries: int,
    timeout: float | None,
    env_pairs: tuple[str, ...],
    param_pairs: tuple[str, ...],
    os_name: str | None,
    min_ram: float | None,
    min_cores: int | None,
    pools: tuple[str, ...],
    gpus: int,
    hosts: tuple[str, ...],
    exclude_hosts: tuple[str, ...],
    after: tuple[int, ...],
    max_parallel: int | None,
    no_scene_check: bool,
    wait: bool,
    as_json: bool,
    **renderer_options: Any,
) -> None:
    """Submit a job; prints its id.  `drqueue submit RENDERER --help` lists that renderer's options."""
    import getpass
    import os

    if renderer not in all_renderers():
        known = ", ".join(all_renderers())
        raise InvalidJob(f"unknown renderer {renderer!r} (known: {known})")
    params: dict[str, Any] = _parse_params(param_pairs)
    for key, value in renderer_options.items():
        if key.startswith("renderer_") and value is not None:
            params[key[len("renderer_") :]] = value
    if end < start:
        raise InvalidJob(f"end frame {end} is before start frame {start}")
    # Checked here so the message names the options typed, not the API's block_size field.
    if step < 1:
        raise InvalidJob(f"--step must be at least 1, not {step}")
    if block < 1:
        raise InvalidJob(f"--block must be at least 1 frame per task, not {block}")
    if min_cores is not None and min_cores < 1:
        raise InvalidJob(f"--min-cores must be at least 1, not {min_cores}")
    if min_ram is not None and min_ram < 0:
        raise InvalidJob(f"--min-ram must not be negative, not {min_ram:g}")
    if gpus < 0:
        raise InvalidJob(f"--gpus must not be negative, not {gpus}")
    if scene and not os.path.isabs(scene) and "://" not in scene:
        scene = os.path.abspath(scene)
    # Relative paths mean "from here", not from wherever the render happens to run.
    for name in all_renderers()[renderer].path_params():
        value = params.get(name)
        if isinstance(value, str) and value and not os.path.isabs(value) and "://" not in value:
            params[name] = os.path.abspath(value)
    body = {
        "step": step,
        "block_size": block,
        "name": name,
        "owner": owner or getpass.getuser(),
        "priority": priority,
        "retries": retries,
        "timeout": timeout,
        "env": parse_env(env_pairs),
        "params": params,
        "requirements": {
            "os": os_name,
            "min_ram_gb": min_ram or 0,
            "min_cores": min_cores or 0,
            "pools": list(pools),
            "gpus": gpus,
            "hosts": list(hosts),
            "exclude_hosts": list(exclude_hosts),
        },
        "after": list(after),
        "max_parallel": max_parallel,
        "check_scene": not no_scene_check,
    }
    client = _client()
    answer = client.submit(renderer, scene, start=start, end=end, **body)
    if as_json:
        _print_json(answer)
    else:
        click.echo(answer["id"])
    if wait:
        sys.exit(wait_for_job(client, answer["id"]))


def wait_for_job(client: Client, job_id: int, console_: Console | None = None) -> int:
    """A live progress bar until the job ends; returns 1 if any task ended in error."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out = console_ or err_console
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=out,
    ) as progress:
        bar = progress.add_task(f"job {job_id}", total=None, detail="")
        while True:
            job = client.job(job_id)
            counts = job["counts"]
            running_progress = 0.0
            if counts["running"]:
                running_progress = sum(
                    t["progress"]
                    for t in client.tasks(job_id)
                    if t["state"] in ("dispatched", "running")
                )
            detail = f"{counts['running']} running, {counts['error']} failed · {job['status']}"
            if job.get("waiting_reason"):
                detail += f" · {job['waiting_reason']}"
            progress.update(
                bar,
                total=counts["total"],
                completed=counts["finished"] + running_progress,
                detail=detail,
            )
            if job["status"] in ENDED:
                progress.update(bar, completed=counts["finished"])
                break
            time.sleep(0.5)
    out.print(
        f"job {job_id} {job['status']}: {counts['finished']}/{counts['total']} tasks finished, "
        f"{counts['error']} in error"
    )
    return 1 if job["status"] != "finished" else 0


# -- jobs --------------------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--owner", help="only this owner's jobs")
def jobs(as_json: bool, owner: str | None) -> None:
    """List jobs with their progress and ETA."""
    data = _client().jobs(owner=owner)
    if as_json:
        return _print_json(data)
    table = Table(box=None, header_style="bold")
    for column in (
        "ID",
        "NAME",
        "OWNER",
        "RENDERER",
        "PRI",
        "STATUS",
        "DONE",
        "RUN",
        "FAIL",
        "ETA",
    ):
        table.add_column(column)
    for job in data:
        c = job["counts"]
        status = job["status"] + (
            f" ({job['waiting_reason']})" if job.get("waiting_reason") else ""
        )
        eta = _duration(job["eta_seconds"]) if job["status"] not in ENDED else "-"
        table.add_row(
            str(job["id"]),
            job["name"],
            job["owner"],
            job["renderer"],
            str(job["priority"]),
            status,
            f"{c['finished']}/{c['total']}",
            str(c["running"]),
            str(c["error"]),
            eta,
        )
    console.print(table) if data else click.echo("no jobs")


@cli.group()
def job() -> None:
    """Show and control one job."""


@job.command("show")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def job_show(job_id: int, as_json: bool) -> None:
    """Everything about a job."""
    data = _client().job(job_id)
    if as_json:
        return _print_json(data)
    c = data["counts"]
    lines = [
        ("job", f"{data['id']} {data['name']}"),
        (
            "status",
            data["status"] + (f" — {data['waiting_reason']}" if data.get("waiting_reason") else ""),
        ),
        ("owner", data["owner"]),
        ("renderer", data["renderer"]),
        ("scene", data["scene"] or "-"),
        (
            "frames",
            f"{data['start']}-{data['end']} step {data['step']}, {data['block_size']} per task",
        ),
        (
            "tasks",
            f"{c['finished']}/{c['total']} finished, {c['running']} running, {c['queued']} queued, "
            f"{c['error']} error, {c['cancelled']} cancelled",
        ),
        ("priority", str(data["priority"])),
        ("retries", str(data["retries"])),
        ("timeout", f"{data['timeout']:g} s" if data["timeout"] else "none"),
        ("params", json.dumps(data["params"])),
        (
            "requirements",
            ", ".join(f"{k}={v}" for k, v in data["requirements"].items() if v) or "none",
        ),
        ("after", ", ".join(map(str, data["after"])) or "-"),
        ("blocked hosts", ", ".join(data["blocked_hosts"]) or "-"),
        ("submitted", time.ctime(data["submitted_at"])),
        ("ETA", _duration(data["eta_seconds"]) if data["status"] not in ENDED else "-"),
    ]
    for key, value in lines:
        console.print(f"[bold]{key:>14}[/]  {value}", highlight=False)


def _job_action(action: str):
    @click.argument("job_id", type=int)
    def command(job_id: int) -> None:
        data = _client().job_action(job_id, action)
        click.echo(f"job {job_id}: {data['status']}")

    command.__doc__ = {
        "stop": "Take no new tasks; running ones finish.",
        "continue": "Resume a stopped job.",
        "kill": "Stop the job and kill its running tasks (they go back to waiting).",
        "rerun": "Run every task again.",
        "requeue-failed": "Run the tasks in error (or cancelled) again.",
    }[action]
    return job.command(action)(command)


for _action in ("stop", "continue", "kill", "rerun", "requeue-failed"):
    _job_action(_action)


@job.command("delete")
@click.argument("job_id", type=int)
@click.option("--force", is_flag=True, help="delete even while tasks run (they are killed)")
def job_delete(job_id: int, force: bool) -> None:
    """Delete a job (refused while its tasks run, unless --force)."""
    _client().delete_job(job_id, force=force)
    click.echo(f"job {job_id} deleted")


@job.command("priority")
@click.argument("job_id", type=int)
@click.argument("priority", type=int)
def job_priority(job_id: int, priority: int) -> None:
    """Change a job's priority (higher runs first)."""
    data = _client().set_priority(job_id, priority)
    click.echo(f"job {job_id}: priority {data['priority']}")


@job.command("unblock")
@click.argument("job_id", type=int)
@click.argument("host")
def job_unblock(job_id: int, host: str) -> None:
    """Let a host blocked after repeated failures take the job again."""
    _client().unblock(job_id, host)
    click.echo(f"job {job_id}: {host} unblocked")


# -- tasks -------------------------------------------------------------------------------------------


@cli.command()
@click.argument("job_id", type=int)
@click.option(
    "--state",
    type=click.Choice(["queued", "dispatched", "running", "finished", "error", "cancelled"]),
    help="only the tasks in this state",
)
@click.option("--offset", type=click.IntRange(0), default=0, help="skip this many tasks first")
@click.option("--limit", type=click.IntRange(1), help="list at most this many tasks")
@click.option("--json", "as_json", is_flag=True)
def tasks(job_id: int, state: str | None, offset: int, limit: int | None, as_json: bool) -> None:
    """List a job's tasks (all, or one state, or a page)."""
    data = _client().tasks(job_id, state=state, offset=offset, limit=limit)
    if as_json:
        return _print_json(data)
    table = Table(box=None, header_style="bold")
    for column in (
        "TASK",
        "FRAMES",
        "STATE",
        "PROGRESS",
        "HOST",
        "TRIES",
        "EXIT",
        "TIME",
        "REASON",
    ):
        table.add_column(column)
    for t in data:
        frames = f"{t['start']}" if t["start"] == t["end"] else f"{t['start']}-{t['end']}"
        if t["step"] != 1:
            frames += f"/{t['step']}"
        took = t["ended_at"] - t["started_at"] if t["ended_at"] and t["started_at"] else None
        table.add_row(
            str(t["index"]),
            frames,
            t["state"],
            f"{t['progress'] * 100:.0f}%",
            t["computer"] or "-",
            str(t["attempts"]),
            "-" if t["exit_code"] is None else str(t["exit_code"]),
            _duration(took),
            (t["reason"] or "")[:80],
        )
    console.print(table)


@cli.group()
def task() -> None:
    """Control one task (TASK is its number in `drqueue tasks`)."""


@task.command("requeue")
@click.argument("job_id", type=int)
@click.argument("task_index", metavar="TASK", type=int)
def task_requeue(job_id: int, task_index: int) -> None:
    """Run a task again (killing it first if it runs)."""
    data = _client().task_action(job_id, task_index, "requeue")
    click.echo(f"job {job_id} task {task_index}: {data['state']}")


@task.command("kill")
@click.argument("job_id", type=int)
@click.argument("task_index", metavar="TASK", type=int)
def task_kill(job_id: int, task_index: int) -> None:
    """Kill a running task; it goes back to waiting."""
    data = _client().task_action(job_id, task_index, "kill")
    click.echo(f"job {job_id} task {task_index}: {data['state']}")


@cli.command()
@click.argument("job_id", type=int)
@click.argument("frame", type=int)
def log(job_id: int, frame: int) -> None:
    """Print the full log of the task that rendered FRAME."""
    click.echo(_client().log(job_id, frame), nl=False)


# -- computers and pools ---------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def computers(as_json: bool) -> None:
    """List slaves: online or not, resources, pools and current tasks."""
    data = _client().computers()
    if as_json:
        return _print_json(data)
    table = Table(box=None, header_style="bold")
    for column in (
        "NAME",
        "STATE",
        "OS",
        "CORES",
        "RAM",
        "LOAD",
        "SLOTS",
        "POOLS",
        "RUNNING",
        "SEEN",
    ):
        table.add_column(column)
    for c in data:
        state = ("online" if c["online"] else "offline") + ("" if c["enabled"] else ", disabled")
        running = (
            ", ".join(
                f"job {r['job_id']} task {r.get('task_index', r['task_id'])}" for r in c["running"]
            )
            or "-"
        )
        slots = str(c["slots"]) + (f" (max {c['max_tasks']})" if c["max_tasks"] is not None else "")
        table.add_row(
            c["name"],
            state,
            c["os"],
            str(c["cores"]),
            f"{c['ram_mb'] / 1024:.1f}G",
            f"{c['load']:.2f}",
            slots,
            ",".join(c["pools"]) or "-",
            running,
            _ago(c["last_seen"]),
        )
    console.print(table) if data else click.echo("no computers")


@cli.group()
def computer() -> None:
    """Show and control one slave (HOST is the slave's name)."""


@computer.command("show")
@click.argument("host")
@click.option("--json", "as_json", is_flag=True)
def computer_show(host: str, as_json: bool) -> None:
    """Everything about a slave."""
    data = _client().computer(host)
    if as_json:
        return _print_json(data)
    for key in (
        "name",
        "hostname",
        "online",
        "enabled",
        "os",
        "arch",
        "cores",
        "ram_mb",
        "free_ram_mb",
        "load",
        "gpus",
        "slots",
        "max_tasks",
        "pools",
        "renderers",
        "running",
    ):
        console.print(f"[bold]{key:>12}[/]  {data[key]}", highlight=False)
    console.print(f"[bold]{'last seen':>12}[/]  {_ago(data['last_seen'])}", highlight=False)


@computer.command("enable")
@click.argument("host")
def computer_enable(host: str) -> None:
    """Let a slave take tasks."""
    _client().computer_action(host, "enable")
    click.echo(f"{host} enabled")


@computer.command("disable")
@click.argument("host")
def computer_disable(host: str) -> None:
    """A disabled slave finishes its current task and takes no more."""
    _client().computer_action(host, "disable")
    click.echo(f"{host} disabled")


@computer.command("limit")
@click.argument("host")
@click.option(
    "--max-tasks", type=click.IntRange(0, 10_000), help="tasks at once (omit for no limit)"
)
def computer_limit(host: str, max_tasks: int | None) -> None:
    """Limit how many tasks a slave runs at once."""
    _client().computer_limit(host, max_tasks)
    click.echo(f"{host}: max tasks {'unlimited' if max_tasks is None else max_tasks}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def pools(as_json: bool) -> None:
    """List pools and their members."""
    data = _client().pools()
    if as_json:
        return _print_json(data)
    table = Table(box=None, header_style="bold")
    for column in ("POOL", "MEMBERS", "DESCRIPTION"):
        table.add_column(column)
    for pool in data:
        table.add_row(pool["name"], ", ".join(pool["members"]) or "-", pool["description"])
    console.print(table) if data else click.echo("no pools")


@cli.group()
def pool() -> None:
    """Create, delete and fill pools."""


@pool.command("create")
@click.argument("name")
@click.option("--description", default="")
def pool_create(name: str, description: str) -> None:
    _client().create_pool(name, description)
    click.echo(f"pool {name} created")


@pool.command("delete")
@click.argument("name")
def pool_delete(name: str) -> None:
    _client().delete_pool(name)
    click.echo(f"pool {name} deleted")


@pool.command("add")
@click.argument("name")
@click.argument("host")
def pool_add(name: str, host: str) -> None:
    _client().pool_member(name, host, True)
    click.echo(f"{host} added to {name}")


@pool.command("remove")
@click.argument("name")
@click.argument("host")
def pool_remove(name: str, host: str) -> None:
    _client().pool_member(name, host, False)
    click.echo(f"{host} removed from {name}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def renderers(as_json: bool) -> None:
    """List the renderers and their parameters."""
    rows = [
        {
            "name": cls.name,
            "description": cls.description,
            "executable": cls.executable,
            "installed_here": cls.available(),
            "params": [
                {"name": p.name, "type": p.type, "default": p.default, "help": p.help}
                for p in cls.params
            ],
        }
        for cls in all_renderers().values()
    ]
    if as_json:
        return _print_json(rows)
    table = Table(box=None, header_style="bold")
    for column in ("RENDERER", "PROGRAM", "HERE", "PARAMETERS"):
        table.add_column(column)
    for row in rows:
        params = ", ".join(f"{p['name']}:{p['type']}" for p in row["params"])
        table.add_row(
            row["name"],
            row["executable"] or "(built in)",
            "yes" if row["installed_here"] else "no",
            params,
        )
    console.print(table)


@cli.group()
def token() -> None:
    """Make, list and revoke API tokens (run on the master's machine)."""


@token.command("create")
@click.option(
    "--role", type=click.Choice(["artist", "admin", "slave"]), default="artist", show_default=True
)
@click.option(
    "--owner",
    "--name",
    "owner",
    required=True,
    help="whose token: artists control only this owner's jobs; a slave token is named after "
    "its slave, or 'slaves' for one shared by all",
)
def token_create(role: str, owner: str) -> None:
    """Print a new token; only its hash is kept, so copy it now."""
    from drqueue.master.tokens import create_token

    click.echo(create_token(load_config(), role, owner))


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
def token_list(as_json: bool) -> None:
    """List the tokens the master accepts: id, role, name; never the tokens themselves."""
    from drqueue.master.tokens import list_tokens

    rows = list_tokens(load_config())
    if as_json:
        return _print_json(rows)
    table = Table(box=None, header_style="bold")
    for column in ("ID", "ROLE", "NAME", "CREATED"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["id"], row["role"], row["name"], _ago(row["created"]))
    console.print(table)


@token.command("revoke")
@click.argument("which")
def token_revoke(which: str) -> None:
    """Revoke the token with id WHICH, or every token named WHICH; a running master refuses
    it at once."""
    from drqueue.master.tokens import revoke_tokens

    for gone in revoke_tokens(load_config(), which):
        click.echo(f"revoked {gone['role']} token {gone['id']} of {gone['name']}")


@token.command("rotate-admin")
def token_rotate_admin() -> None:
    """Replace the master's own admin token (etc/token) and print the new one; the old one is
    refused at once by a running master."""
    from drqueue.master.tokens import rotate_admin_token

    click.echo(rotate_admin_token(load_config()))


@cli.group()
def store() -> None:
    """Maintain the master's store (run on the master's machine)."""


@store.command("backup")
@click.argument("path", type=click.Path(dir_okay=False))
def store_backup(path: str) -> None:
    """Write an online, consistent copy of the store to PATH."""
    from drqueue.store import open_store

    open_store(load_config().store_url).backup(path)
    click.echo(f"store backed up to {path}")


@store.command("compact")
def store_compact() -> None:
    """Give back the space of deleted jobs: checkpoint the WAL into the store and VACUUM it."""
    from drqueue.store import open_store

    sizes = open_store(load_config().store_url).compact()
    click.echo(
        f"store compacted: {sizes['before'] / 1e6:.1f} MB before, {sizes['after'] / 1e6:.1f} MB "
        "after (store and WAL)"
    )


def main() -> None:
    cli(prog_name="drqueue")


if __name__ == "__main__":
    main()
