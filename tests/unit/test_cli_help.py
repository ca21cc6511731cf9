"""Every `drqueue` command says what it does, in `drqueue ... --help` and in its group's list."""

from __future__ import annotations

import click
from click.testing import CliRunner

from drqueue.cli.main import cli


def every_command(group: click.Group, ctx: click.Context, path: tuple[str, ...] = ()):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from every_command(command, click.Context(command, parent=ctx), (*path, name))


def test_every_command_has_help_text():
    ctx = click.Context(cli)
    commands = dict(every_command(cli, ctx))
    assert ("pool", "delete") in commands and ("submit", "blender") in commands
    missing = [" ".join(path) for path, c in commands.items() if not (c.help or "").strip()]
    assert missing == []
    for path, command in commands.items():
        assert command.get_short_help_str().strip(), path


def test_help_of_the_pool_group_lists_what_each_command_does():
    result = CliRunner().invoke(cli, ["pool", "--help"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("  ")}
    for name in ("create", "delete", "add", "remove"):
        assert len(lines[name].split()) > 1, result.output


def test_a_slave_name_or_pool_that_needs_quoting_is_refused_before_anything_starts(tmp_path):
    from click.testing import CliRunner

    from drqueue.cli.main import cli

    for args in (["--name", "render 07"], ["--name", "gpu?old"], ["--pool", "fx#2"]):
        result = CliRunner().invoke(cli, ["slave", *args], env={"DRQUEUE_ROOT": str(tmp_path)})
        assert result.exit_code == 2, result.output
        assert "names are 1 to 100 letters" in result.output
    assert not (tmp_path / "ipython").exists()
