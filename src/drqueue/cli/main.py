"""The ``drqueue`` command.

Every command but ``master``, ``slave`` and ``up`` talks to the master's HTTP
API through :class:`drqueue.Client`, so it works from any machine with
``DRQUEUE_MASTER=http://host:port`` and ``DRQUEUE_TOKEN``.  Errors print one
line on stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shlex
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drqueue.api_types import APIObject
from drqueue.client import JOB_STATUSES, JOBS_PAGE_MAX, Client
from drqueue.config import load_config
from drqueue.errors import DrQueueError, InvalidJob, UnknownRenderer
from drqueue.failures import FailureRuleError, parse_on_failure
from drqueue.models import MAX_ID, TASK_ORDERS, parse_env
from drqueue.renderers import all_renderers
from drqueue.waiting import ENDED, wait_for_end

if TYPE_CHECKING:
    from drqueue.config import Config
    from drqueue.store import Store

console = Console()
err_console = Console(stderr=True)


def printable(value: object) -> str:
    """*value* as text that prints as itself: a name, reason or log line is anyone's words, so
    a control character (an ANSI escape, a bidi override) is shown escaped, never obeyed."""
    text = str(value)
    return text if text.isprintable() else "".join(map(_printable_char, text))


def _printable_char(ch: str) -> str:
    if ch.isprintable():
        return ch
    if ch in "\n\t":
        return " "
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def _add_row(table: Table, *cells: object) -> None:
    """A table row of plain text: rich markup in a job's name is shown, not rendered."""
    table.add_row(*(Text(printable(cell)) for cell in cells))


def _print_field(key: str, value: object, width: int) -> None:
    console.print(Text.assemble((f"{key:>{width}}", "bold"), "  ", printable(value)))


#: Settings of the commands whose number arguments may be negative (`log ID -4`, `job priority
#: ID -10`): such an argument is not taken for an unknown option.  Their own options still work.
NEGATIVE_NUMBERS = {"ignore_unknown_options": True}


def _client() -> Client:
    return Client(config=load_config())


def _print_json(data: Any) -> None:
    """*data* as the API sent it: a typed answer prints as its JSON (``.raw``)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=_api_json))


def _api_json(value: Any) -> Any:
    if isinstance(value, APIObject):
        return value.raw
    raise TypeError(f"{type(value).__name__} is not JSON")


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
            err_console.print(
                Text.assemble(("error:", "bold red"), " ", printable(str(exc))),
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(1)


@click.group(cls=DrQueueGroup)
@click.version_option(package_name="drqueue")
def cli() -> None:
    """DrQueue: a render farm manager.  See `drqueue COMMAND --help`."""


# -- processes -------------------------------------------------------------------------------------


@cli.command()
@click.option("--ip", help="address the API and controller listen on (default 127.0.0.1)")
@click.option("--port", type=int, help="API port (default 7680)")
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="the store: sqlite:///path (default: under DRQUEUE_ROOT) or mongodb://host:port/db "
    "(credentials belong in drqueue.toml, not on a command line others can read)",
)
def master(ip: str | None, port: int | None, store_url: str | None) -> None:
    """Run the master: controller, store, dispatcher and HTTP API."""
    from drqueue.master.service import run_master

    overrides: dict[str, Any] = {"api_port": port}
    if store_url:
        overrides["store"] = store_url
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
@click.option(
    "--ram-mb",
    type=click.IntRange(1, None),
    help="memory renders may use here, in MB, when less than the host's RAM (reported to the "
    "master, matched against min_ram and out-of-memory retries)",
)
def slave(
    master_url: str | None,
    name: str | None,
    slots: int,
    pools: tuple[str, ...],
    gpus: str,
    ram_mb: int | None,
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
    import re
    import socket

    from drqueue.models import PATH_NAME_PATTERN

    for what, value in [("--name", name or socket.gethostname()), *(("--pool", n) for n in names)]:
        if value and not re.match(PATH_NAME_PATTERN, value):
            raise click.BadParameter(
                f"{value!r}: names are 1 to 100 letters, digits, '.', '_' or '-', starting with "
                "a letter or digit"
                + (
                    " (the hostname is the default: pass --name)"
                    if not name and what == "--name"
                    else ""
                ),
                param_hint=what,
            )
    if gpus == "auto":
        gpu_count = detect_gpus()
    else:
        try:
            gpu_count = int(gpus)
        except ValueError:
            raise click.BadParameter("wants a number or 'auto'", param_hint="--gpus") from None
    Slave(
        config, name=name, slots=slots, pools=[n for n in names if n], gpus=gpu_count, ram_mb=ram_mb
    ).run()


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


def _common_submit_options() -> list[click.Parameter]:
    """The options every renderer's submit takes; fresh objects for each command that gets them.

    They are accepted before the renderer name (as options of the `submit` group) and after it
    (of the renderer's own command), so `submit -s 1 -e 9 blender ...` and
    `submit blender ... -s 1 -e 9` are the same job."""
    return [
        click.Option(["-s", "--start"], type=int, help="first frame  [required]"),
        click.Option(["-e", "--end"], type=int, help="last frame  [required]"),
        click.Option(["--step"], type=int, default=1, show_default=True, help="every Nth frame"),
        click.Option(
            ["-b", "--block"], type=int, default=1, show_default=True, help="frames per task"
        ),
        click.Option(["-n", "--name"], default="", help="job name"),
        click.Option(["-p", "--priority"], type=int, default=50, show_default=True),
        click.Option(["--owner"], default="", help="job owner (default: your user name)"),
        click.Option(
            ["--retries"], type=int, default=3, show_default=True, help="retries of a failed task"
        ),
        click.Option(["--timeout"], type=float, help="seconds a task may run before it fails"),
        click.Option(
            ["--env", "env_pairs"],
            multiple=True,
            help="NAME=VALUE for the render's environment (repeatable)",
        ),
        click.Option(
            ["--param", "param_pairs"],
            multiple=True,
            help="renderer parameter KEY=VALUE (repeatable)",
        ),
        click.Option(
            ["--os", "os_name"],
            type=click.Choice(["linux", "windows", "darwin"]),
            help="slave OS required",
        ),
        click.Option(["--min-ram"], type=float, help="GB of RAM required"),
        click.Option(["--min-cores"], type=int, help="cores required (at least 1)"),
        click.Option(
            ["--pool", "pools"], multiple=True, help="pool the slave must be in (repeatable)"
        ),
        click.Option(
            ["--gpus"], type=int, default=0, help="GPUs per task (runs on GPU slots only)"
        ),
        click.Option(
            ["--hosts"], multiple=True, help="run only on slaves matching this glob (repeatable)"
        ),
        click.Option(
            ["--exclude-hosts"], multiple=True, help="never run on slaves matching this glob"
        ),
        click.Option(
            ["--after"],
            type=DependencyType(),
            multiple=True,
            help="wait for job ID to finish; ID:frames waits frame by frame, each task for the "
            "tasks of ID that render its frames (repeatable, mixable)",
        ),
        click.Option(
            ["--order"],
            type=click.Choice(TASK_ORDERS),
            default="sequential",
            show_default=True,
            help="the order tasks run in: preview runs the first, last and middle frames first, "
            "then bisects the gaps",
        ),
        click.Option(
            ["--first-frame-check"],
            is_flag=True,
            help="run the first task (of --order) alone; if it ends in error, stop the job",
        ),
        click.Option(["--max-parallel"], type=int, help="at most this many tasks at once"),
        click.Option(
            ["--on-failure"],
            help="what a failed task of each class does, over the farm's: CLASS=ACTION pairs, "
            "e.g. oom=retry,missing-asset=retry (classes: oom, licence, missing-asset, crash, "
            "timeout, output-missing, unknown; actions: retry, retry-bigger, backoff, fail)",
        ),
        click.Option(
            ["--notify", "notify_on"],
            help="mail when the job is finished, in error, or its first frame is done: "
            "some of finished,error,first-frame  [default: finished,error with --email]",
        ),
        click.Option(
            ["--email", "emails"],
            multiple=True,
            help="mail this address (repeatable; default: your address in the master's "
            "mail_addresses)",
        ),
        click.Option(
            ["--no-scene-check"],
            is_flag=True,
            help="do not check that the scene exists on the master",
        ),
        click.Option(
            ["--wait"],
            is_flag=True,
            help="show a progress bar until the job ends; exit 1 unless it finished",
        ),
        click.Option(["--json", "as_json"], is_flag=True, help="print the answer as JSON"),
    ]


def _renderer_options(cls: Any, taken: set[str]) -> list[click.Parameter]:
    """One option per parameter of the renderer (`--engine`), typed from its schema."""
    options: list[click.Parameter] = []
    for param in cls.params:
        flag = "--" + param.name.replace("_", "-")
        if flag in taken:  # a common option's name: the parameter is still --param NAME=VALUE
            continue
        kind: Any = {"int": int, "float": float, "bool": bool}.get(param.type, str)
        if param.choices:
            kind = click.Choice([str(c) for c in param.choices])
        default = f" [default: {param.default}]" if param.default not in (None, "") else ""
        options.append(
            click.Option(
                [flag, f"renderer_{param.name}"],
                type=kind,
                default=None,
                help=param.help + default,
            )
        )
    return options


def _parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidJob(f"--param wants KEY=VALUE, not {pair!r}")
        params[key] = value
    return params


def _notify_body(notify_on: str | None, emails: tuple[str, ...]) -> dict[str, Any]:
    """A job's notify from --notify finished,error,first-frame and --email (the API checks it)."""
    notify: dict[str, Any] = {}
    if notify_on is not None:
        notify["on"] = [part.strip() for part in notify_on.split(",") if part.strip()]
    if emails:
        notify["email"] = list(emails)
    return notify


def _given(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source is not click.core.ParameterSource.DEFAULT


def _submit_options(ctx: click.Context) -> dict[str, Any]:
    """The renderer command's options, with those typed before the renderer name merged in."""
    values = dict(ctx.params)
    group = ctx.parent
    assert group is not None
    for param in group.command.params:
        name = param.name
        if not name or not _given(group, name):
            continue
        if not _given(ctx, name):
            values[name] = group.params[name]
        elif getattr(param, "multiple", False):
            values[name] = tuple(group.params[name]) + tuple(values[name])
        else:
            flag = max(getattr(param, "opts", [name]), key=len)
            raise click.UsageError(f"{flag} given both before and after the renderer name")
    for name, flag in (("start", "-s/--start"), ("end", "-e/--end")):
        if values[name] is None:
            raise click.UsageError(f"missing option {flag}")
    return values


def _submit_renderer(renderer: str, scene: str | None, **options: Any) -> None:
    """Submit one job from the merged options of `drqueue submit [...] RENDERER [...]`."""
    import getpass
    import os

    ctx = click.get_current_context()
    o = _submit_options(ctx)
    params: dict[str, Any] = _parse_params(o["param_pairs"])
    for key, value in o.items():
        if key.startswith("renderer_") and value is not None:
            params[key[len("renderer_") :]] = value
    start, end, step, block = o["start"], o["end"], o["step"], o["block"]
    min_ram, min_cores, gpus = o["min_ram"], o["min_cores"], o["gpus"]
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
    try:
        on_failure = parse_on_failure(o["on_failure"] or "")
    except FailureRuleError as exc:
        raise InvalidJob(str(exc)) from None
    if scene and not os.path.isabs(scene) and "://" not in scene:
        scene = os.path.abspath(scene)
    # Relative paths mean "from here", not from wherever the render happens to run.
    for param_name in all_renderers()[renderer].path_params():
        value = params.get(param_name)
        if isinstance(value, str) and value and not os.path.isabs(value) and "://" not in value:
            params[param_name] = os.path.abspath(value)
    body = {
        "step": step,
        "block_size": block,
        "name": o["name"],
        "owner": o["owner"] or getpass.getuser(),
        "priority": o["priority"],
        "retries": o["retries"],
        "timeout": o["timeout"],
        "env": parse_env(o["env_pairs"]),
        "params": params,
        "requirements": {
            "os": o["os_name"],
            "min_ram_gb": min_ram or 0,
            "min_cores": min_cores or 0,
            "pools": list(o["pools"]),
            "gpus": gpus,
            "hosts": list(o["hosts"]),
            "exclude_hosts": list(o["exclude_hosts"]),
        },
        "after": [job for job, frames in o["after"] if not frames],
        "after_frames": [job for job, frames in o["after"] if frames],
        "order": o["order"],
        "first_frame_check": o["first_frame_check"],
        "max_parallel": o["max_parallel"],
        "on_failure": on_failure,
        "check_scene": not o["no_scene_check"],
        "notify": _notify_body(o["notify_on"], o["emails"]),
    }
    client = _client()
    answer = client.submit(renderer, scene, start=start, end=end, **body)
    if o["as_json"]:
        _print_json(answer)
    else:
        click.echo(answer["id"])
    if o["wait"]:
        sys.exit(wait_for_job(client, answer["id"]))


class DependencyType(click.ParamType):
    """``--after``: a job id (wait for the whole job) or ``ID:frames`` (frame by frame)."""

    name = "ID[:frames]"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, bool]:
        if isinstance(value, tuple):
            return value
        job, sep, kind = str(value).partition(":")
        if job.isdigit() and 1 <= int(job) <= MAX_ID and (not sep or kind == "frames"):
            return int(job), bool(sep)
        self.fail(f"{value!r} is not a job id (12) or a job id and :frames (12:frames)", param, ctx)


class SubmitGroup(click.Group):
    """`submit RENDERER`: one command per renderer, built once from its parameter schema."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._renderer_commands: dict[str, click.Command] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(all_renderers())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cls = all_renderers().get(cmd_name)
        if cls is None:
            return None
        if cmd_name not in self._renderer_commands:
            common = _common_submit_options()
            taken = {opt for p in common for opt in getattr(p, "opts", [])}
            self._renderer_commands[cmd_name] = click.Command(
                cmd_name,
                params=[
                    click.Argument(["scene"], required=False),
                    *common,
                    *_renderer_options(cls, taken),
                ],
                callback=functools.partial(_submit_renderer, cmd_name),
                help=f"Submit a {cls.name} job: {cls.description}  Prints the job's id.",
                short_help=cls.description,
            )
        return self._renderer_commands[cmd_name]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in all_renderers() and not args[0].startswith("-"):
            known = ", ".join(sorted(all_renderers()))
            raise UnknownRenderer(f"unknown renderer {args[0]!r} (known: {known})")
        return super().resolve_command(ctx, args)


@cli.group(cls=SubmitGroup, params=_common_submit_options())
def submit(**_options: Any) -> None:
    """Submit a job: `drqueue submit RENDERER [SCENE] -s START -e END [OPTIONS]`; prints its id.

    The options below may come before or after RENDERER; `drqueue submit RENDERER --help` also
    lists that renderer's own options (`--engine`, `--output`, ...).
    """


def wait_for_job(client: Client, job_id: int, console_: Console | None = None) -> int:
    """A live progress bar until the job ends, is stopped, or waits for a dependency that cannot
    finish (drqueue.waiting says when), then one line of how it ended; 0 if it finished, else 1."""
    out = console_ or err_console
    end = wait_for_end(client, job_id, console=out)
    out.print(end.summary, highlight=False, soft_wrap=True)
    return 0 if end.job.status == "finished" else 1


# -- jobs --------------------------------------------------------------------------------------------


#: Jobs `drqueue jobs` shows at once, by default (the API's page holds up to 500).
JOBS_SHOWN = 50
#: Tasks `drqueue tasks` shows at once, by default: a screenful, like `drqueue jobs` (rich lays
#: a table out at about 0.7 ms a row, so 100 rows alone took most of issue 14's 0.1 s).
TASKS_SHOWN = 50


def _next_page_hint(what: str, first: int, shown: int, total: int | None, command: str) -> None:
    """On stderr, so that stdout holds the table (or JSON) alone: which rows these were, and
    how to see the next ones."""
    if not shown:
        return
    of = f" of {total:,}" if total is not None else ""
    more = total is None or first + shown < total
    hint = f" — next: {command} --offset {first + shown}" if more else ""
    click.echo(f"{what} {first + 1:,}–{first + shown:,}{of}{hint}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--owner", help="only this owner's jobs")
@click.option(
    "--all", "every", is_flag=True, help="every job, ended ones too (default: the active ones)"
)
@click.option(
    "--state",
    type=click.Choice(JOB_STATUSES),
    help="only the jobs with this status (ended ones too)",
)
@click.option(
    "--limit",
    type=click.IntRange(1, JOBS_PAGE_MAX),
    default=JOBS_SHOWN,
    show_default=True,
    help="show at most this many jobs",
)
@click.option("--offset", type=click.IntRange(0), default=0, help="skip this many jobs first")
def jobs(
    as_json: bool, owner: str | None, every: bool, state: str | None, limit: int, offset: int
) -> None:
    """List jobs, newest first, with their progress and ETA.

    By default the active ones: those that have not ended (queued, waiting, running, stopping,
    stopped); --all adds finished, error and cancelled jobs.  One page at a time: stderr says
    which and how to see the next (--offset)."""
    page = _client().job_page(
        active=not every and state is None, state=state, owner=owner, offset=offset, limit=limit
    )
    data = page.jobs
    which = "jobs" if every or state else "active jobs"
    command = "drqueue jobs" + (" --all" if every else "") + (f" --state {state}" if state else "")
    if owner:
        command += f" --owner {shlex.quote(owner)}"
    if limit != JOBS_SHOWN:
        command += f" --limit {limit}"
    if as_json:
        _print_json(data)
        return _next_page_hint(which, offset, len(data), page.total, command)
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
        _add_row(
            table,
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
    if data:
        console.print(table)
        _next_page_hint(which, offset, len(data), page.total, command)
    elif page.total:
        click.echo(f"no {which} past the first {page.total:,}")
    else:
        click.echo(f"no {which}" + ("" if every or state else " (--all shows ended ones)"))


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
        (
            "after",
            ", ".join([*map(str, data["after"]), *(f"{j}:frames" for j in data["after_frames"])])
            or "-",
        ),
        ("order", data["order"] + (", first frame checked" if data["first_frame_check"] else "")),
        ("blocked hosts", ", ".join(data["blocked_hosts"]) or "-"),
        ("submitted", time.ctime(data["submitted_at"])),
        ("ETA", _duration(data["eta_seconds"]) if data["status"] not in ENDED else "-"),
    ]
    for key, value in lines:
        _print_field(key, value, 14)


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


@job.command("priority", context_settings=NEGATIVE_NUMBERS)
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
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=TASKS_SHOWN,
    show_default=True,
    help="list at most this many tasks",
)
@click.option("--all", "every", is_flag=True, help="every task from --offset on (no --limit)")
@click.option("--json", "as_json", is_flag=True)
def tasks(
    job_id: int, state: str | None, offset: int, limit: int, every: bool, as_json: bool
) -> None:
    """List a job's tasks by number, a page at a time (of one state with --state).

    stderr says which tasks these were and how to see the next (--offset); --all lists every
    one (a job of 100,000 tasks takes seconds)."""
    client = _client()
    data = client.tasks(job_id, state=state, offset=offset, limit=None if every else limit)
    total = None
    if not every and len(data) == limit:
        total = client.job(job_id).counts.total if state is None else None
    command = f"drqueue tasks {job_id}" + (f" --state {state}" if state else "")
    if limit != TASKS_SHOWN:
        command += f" --limit {limit}"
    if as_json:
        _print_json(data)
        if not every and len(data) == limit:
            _next_page_hint("tasks", offset, len(data), total, command)
        return None
    if not data:
        which = f" {state}" if state else ""
        where = f" from task {offset}" if offset else ""
        click.echo(f"job {job_id} has no{which} tasks{where}", err=True)
        return None
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
        "FAILURE",
        "REASON",
    ):
        table.add_column(column)
    for t in data:
        frames = f"{t['start']}" if t["start"] == t["end"] else f"{t['start']}-{t['end']}"
        if t["step"] != 1:
            frames += f"/{t['step']}"
        took = t["ended_at"] - t["started_at"] if t["ended_at"] and t["started_at"] else None
        _add_row(
            table,
            str(t["index"]),
            frames,
            t["state"],
            f"{t['progress'] * 100:.0f}%",
            t["computer"] or "-",
            str(t["attempts"]),
            "-" if t["exit_code"] is None else str(t["exit_code"]),
            _duration(took),
            t.get("failure_class") or "-",
            (t["reason"] or "")[:80],
        )
    console.print(table)
    if not every and len(data) == limit:
        _next_page_hint("tasks", offset, len(data), total, command)


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


@cli.command(context_settings=NEGATIVE_NUMBERS)
@click.argument("job_id", type=int)
@click.argument("frame", type=int)
def log(job_id: int, frame: int) -> None:
    """Print the full log of the last attempt of the task that rendered FRAME (a negative
    FRAME works as is; earlier attempts' logs stay beside it in logs/JOB/)."""
    out = sys.stdout.buffer  # the log's bytes as the render wrote them
    for chunk in _client().log_chunks(job_id, frame):
        out.write(chunk)
    out.flush()


# -- the desktop GUI --------------------------------------------------------------------------------


@cli.command()
def gui() -> None:
    """Open the desktop GUI on the master (DRQUEUE_MASTER, DRQUEUE_TOKEN, or its settings).

    It needs PySide6: pip install 'drqueue[gui]' (docs/gui.md)."""
    try:
        from drqueue.gui.app import run
    except ImportError as exc:
        if (exc.name or "").startswith("PySide6"):
            raise DrQueueError(
                "the desktop GUI needs PySide6, which is not installed: pip install 'drqueue[gui]'"
            ) from None
        raise DrQueueError(f"the desktop GUI cannot load Qt: {exc}") from None
    sys.exit(run())


@cli.command()
@click.option("--job", "job_id", type=click.IntRange(1, MAX_ID), help="only this job's events")
@click.option("--kind", help="one kind (task.failed) or a family (job, task, email, webhook)")
@click.option("--actor", help="only what this user did")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="the newest N events",
)
@click.option("--json", "as_json", is_flag=True)
def events(
    job_id: int | None, kind: str | None, actor: str | None, limit: int, as_json: bool
) -> None:
    """The audit trail, oldest first: who did what and when, and each mail and webhook sent."""
    data = _client().events(job_id, kind=kind, actor=actor, limit=limit)
    if as_json:
        return _print_json(data)
    table = Table(box=None, header_style="bold")
    for column in ("ID", "WHEN", "KIND", "JOB", "TASK", "COMPUTER", "BY", "WHAT"):
        table.add_column(column)
    for e in data:
        _add_row(
            table,
            str(e["id"]),
            _ago(e["at"]),
            e["kind"],
            "-" if e["job_id"] is None else str(e["job_id"]),
            "-" if e["task_index"] is None else str(e["task_index"]),
            e["computer"] or "-",
            e["actor"] or "-",
            e["message"],
        )
    console.print(table) if data else click.echo("no events")


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
        _add_row(
            table,
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
        _print_field(key, _shown(data[key]), 12)
    _print_field("last seen", _ago(data["last_seen"]), 12)


def _shown(value: Any) -> str:
    """A field as a person reads it: lists joined, nothing as '-', no Python reprs."""
    if value is None or value == []:
        return "-"
    if isinstance(value, list):
        return ", ".join(
            f"job {v['job_id']} task {v.get('task_index', v.get('task_id'))}"
            if isinstance(v, dict) and "job_id" in v
            else str(v)
            for v in value
        )
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


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
        _add_row(table, pool["name"], ", ".join(pool["members"]) or "-", pool["description"])
    console.print(table) if data else click.echo("no pools")


@cli.group()
def pool() -> None:
    """Create, delete and fill pools."""


@pool.command("create")
@click.argument("name")
@click.option("--description", default="", help="what the pool is for (shown by `drqueue pools`)")
def pool_create(name: str, description: str) -> None:
    """Create an empty pool; `pool add` puts slaves in it."""
    _client().create_pool(name, description)
    click.echo(f"pool {name} created")


@pool.command("delete")
@click.argument("name")
def pool_delete(name: str) -> None:
    """Delete a pool; its slaves stay, out of it."""
    _client().delete_pool(name)
    click.echo(f"pool {name} deleted")


@pool.command("add")
@click.argument("name")
@click.argument("host")
def pool_add(name: str, host: str) -> None:
    """Put slave HOST in pool NAME."""
    _client().pool_member(name, host, True)
    click.echo(f"{host} added to {name}")


@pool.command("remove")
@click.argument("name")
@click.argument("host")
def pool_remove(name: str, host: str) -> None:
    """Take slave HOST out of pool NAME."""
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
        _add_row(
            table,
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
        _add_row(table, row["id"], row["role"], row["name"], _ago(row["created"]))
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


def _existing_store(config: Config) -> Store:
    """The config's store, refused if it is a SQLite file that does not exist: opening it
    would make an empty store, which a backup or an export would then copy."""
    import os

    from drqueue.errors import ConfigError
    from drqueue.store.base import open_store, sqlite_path

    url = config.store_url
    source = sqlite_path(url) if url.startswith("sqlite:///") else None
    if source is not None and not os.path.isfile(source):
        raise ConfigError(f"no store at {source}: is DRQUEUE_ROOT the master's?")
    return open_store(url)


@contextlib.contextmanager
def _store_copied_to(config: Config, path: str) -> Iterator[Store]:
    """The config's store, which must exist, for a command that writes it to the file *path*:
    a folder that is not there, or a write that fails, is one line."""
    import os
    import sqlite3

    store_ = _existing_store(config)
    try:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise DrQueueError(f"cannot write {path}: there is no folder {folder}")
        yield store_
    except (OSError, sqlite3.Error) as exc:
        raise DrQueueError(
            f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    finally:
        store_.close()


@store.command("backup")
@click.argument("path", type=click.Path(dir_okay=False))
def store_backup(path: str) -> None:
    """Write an online, consistent copy of the store to PATH."""
    with _store_copied_to(load_config(), path) as store_:
        store_.backup(path)
    click.echo(f"store backed up to {path}")


@store.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
def store_export(path: str) -> None:
    """Write the whole farm to PATH, to move it to another store with `drqueue store import`:
    jobs, tasks, computers, pools, events, and the API tokens (their hashes).  One JSON object
    a line, mode 0600: it holds every job's env.  The master may run meanwhile."""
    from drqueue.master.tokens import token_entries
    from drqueue.store import transfer

    config = load_config()
    with _store_copied_to(config, path) as store_:
        counts = transfer.write(store_, path, token_entries(config))
    click.echo(f"exported {transfer.summary(counts)} to {path}")


@store.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
def store_import(path: str) -> None:
    """Write the farm exported to PATH into this root's store, which must be empty, and its
    tokens into etc/tokens.json: all of it, or nothing.  Refused while a master runs here."""
    from drqueue.errors import ConfigError, StoreError
    from drqueue.master.lock import take_master_lock
    from drqueue.master.service import master_id
    from drqueue.master.tokens import replace_token_entries, token_entries
    from drqueue.store import open_store, transfer

    export = transfer.check(path)  # a bad file is refused before anything is touched
    config = load_config()
    config.ensure_dirs()
    lock = take_master_lock(
        config, refusal="a master runs on {root} (pid {pid}): stop it before importing its store"
    )
    with contextlib.closing(lock):
        tokens_file = config.etc_dir / "tokens.json"
        kept = token_entries(config)
        if kept and export.tokens and _by_digest(kept) != _by_digest(export.tokens):
            raise ConfigError(
                f"{tokens_file} already holds other tokens than the file's: move it away to "
                "import them"
            )
        store_ = open_store(config.store_url)
        holder = master_id(config)
        try:
            # No master of another root may use a shared database (MongoDB) meanwhile.
            store_.claim_master(holder)
            if not store_.is_empty():
                raise StoreError(transfer.NOT_EMPTY)
            had_tokens_file = tokens_file.exists()
            add_tokens = bool(export.tokens) and not kept
            if add_tokens:
                replace_token_entries(config, export.tokens)
            try:
                counts = store_.import_records(transfer.read(export))
            except BaseException:
                if add_tokens and had_tokens_file:
                    replace_token_entries(config, kept)
                elif add_tokens:
                    tokens_file.unlink()
                raise
        finally:
            with contextlib.suppress(Exception):
                store_.release_master(holder)
            store_.close()
    click.echo(f"imported {transfer.summary(counts | {'token': len(export.tokens)})}")


@store.command("check")
def store_check() -> None:
    """Check the store and repair what a master killed mid-change can leave, as every master
    start does: counts recounted from the tasks, jobs cut short in their creation and the
    tasks of deleted jobs removed, impossible states requeued.  Refused while a master runs."""
    from drqueue.master.lock import take_master_lock
    from drqueue.master.service import master_id

    config = load_config()
    config.ensure_dirs()
    lock = take_master_lock(
        config,
        refusal="a master runs on {root} (pid {pid}): it checked the store as it started; "
        "stop it to check again",
    )
    with contextlib.closing(lock):
        store_ = _existing_store(config)
        try:
            holder = master_id(config)
            store_.claim_master(holder)  # no master of another root may use it meanwhile
            try:
                found = store_.check_integrity()
            finally:
                store_.release_master(holder)
        finally:
            store_.close()
    for line in found:
        click.echo(f"repaired: {line}")
    click.echo("the store is consistent" if not found else f"{len(found)} repairs made")


def _by_digest(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Token entries in one order, to tell whether two lists hold the same tokens."""
    return sorted(entries, key=lambda entry: str(entry.get("sha256")))


@store.command("compact")
def store_compact() -> None:
    """Give back the space of deleted jobs: checkpoint the WAL into the store and VACUUM it."""
    from drqueue.store import open_store

    url = load_config().store_url
    sizes = open_store(url).compact()
    what = "store and WAL" if url.startswith("sqlite:") else "the database's storage"
    click.echo(
        f"store compacted: {sizes['before'] / 1e6:.1f} MB before, {sizes['after'] / 1e6:.1f} MB "
        f"after ({what})"
    )


def main() -> None:
    cli(prog_name="drqueue")


if __name__ == "__main__":
    main()
