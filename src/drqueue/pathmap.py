"""Path mapping: the same file seen from Linux, Windows and macOS slaves.

A farm's shared storage is mounted at a different place on each OS.  Each rule
names one share's prefix per OS (``drqueue.toml``)::

    [[path_map]]
    linux = "/mnt/projects"
    windows = 'P:\\projects'
    darwin = "/Volumes/projects"

:func:`map_path` finds the rule whose prefix, for any OS, starts the path, and
puts the target OS's prefix in its place with that OS's separators.  Matching
rules:

* the longest matching prefix wins, across all rules and all OSes;
* a prefix matches only up to a separator: ``/mnt/projects`` matches
  ``/mnt/projects/a.blend`` but not ``/mnt/projects2/a.blend``;
* Windows prefixes match case-insensitively and with either separator
  (``p:/Projects/a.blend`` matches ``P:\\projects``); Linux and macOS
  prefixes match exactly;
* a path no rule matches, or whose rule names no prefix for the target OS,
  is returned unchanged.

The functions are pure: the slave's runner calls :func:`map_params` with the
master's rules and its own OS before it builds a renderer's commands.
"""

from __future__ import annotations

from typing import Any

from drqueue.errors import ConfigError

#: The OS names rules may use, as DrQueue names OSes everywhere.
OS_NAMES = ("linux", "windows", "darwin")


def check_rules(rules: list[dict[str, str]]) -> None:
    """Raise ConfigError unless *rules* is a list of {os: non-empty prefix} tables."""
    if not isinstance(rules, list):
        raise ConfigError("path_map must be a list of [[path_map]] tables")
    for number, rule in enumerate(rules, 1):
        if not isinstance(rule, dict) or not rule:
            raise ConfigError(
                f"path_map rule {number} must be a table like {{linux = \"/mnt/p\", windows = 'P:\\\\'}}"
            )
        for os_name, prefix in rule.items():
            if os_name not in OS_NAMES:
                raise ConfigError(
                    f"path_map rule {number}: {os_name!r} is not one of {', '.join(OS_NAMES)}"
                )
            if not isinstance(prefix, str) or not prefix.strip():
                raise ConfigError(
                    f"path_map rule {number}: the {os_name} prefix must be a non-empty string"
                )


def map_path(path: str, rules: list[dict[str, str]], target_os: str) -> str:
    """*path* as seen on *target_os*, by the rule with the longest matching prefix.

    >>> rules = [{"linux": "/mnt/projects", "windows": "P:\\\\projects"}]
    >>> map_path("/mnt/projects/shot/a.blend", rules, "windows")
    'P:\\\\projects\\\\shot\\\\a.blend'
    >>> map_path("p:\\\\Projects\\\\shot\\\\a.blend", rules, "linux")
    '/mnt/projects/shot/a.blend'
    >>> map_path("/mnt/projects2/a.blend", rules, "windows")
    '/mnt/projects2/a.blend'
    """
    if target_os not in OS_NAMES:
        raise ValueError(f"target OS must be one of {', '.join(OS_NAMES)}, not {target_os!r}")
    best: tuple[int, str, dict[str, str]] | None = None  # (prefix length, rest of path, rule)
    for rule in rules:
        for os_name, prefix in rule.items():
            rest = _rest_after_prefix(path, prefix, windows=os_name == "windows")
            if rest is not None and (best is None or len(_strip(prefix)) > best[0]):
                best = (len(_strip(prefix)), rest, rule)
    if best is None:
        return path
    _, rest, rule = best
    target = rule.get(target_os)
    if not target:
        return path
    if not rest:
        return target
    separator = "\\" if target_os == "windows" else "/"
    return _strip(target) + rest.replace("/", separator)


def map_params(
    renderer_cls: Any,
    params: dict[str, Any],
    scene: str | None,
    rules: list[dict[str, str]],
    target_os: str,
) -> tuple[str | None, dict[str, Any]]:
    """The scene and the parameters with every "path" parameter mapped to *target_os*.

    *renderer_cls* is a Renderer class; its ``path_params()`` name the parameters
    to map.  Returns new values and leaves the arguments untouched.
    """
    mapped = dict(params)
    for name in renderer_cls.path_params():
        value = mapped.get(name)
        if isinstance(value, str) and value:
            mapped[name] = map_path(value, rules, target_os)
    if scene:
        scene = map_path(scene, rules, target_os)
    return scene, mapped


def _strip(prefix: str) -> str:
    """The prefix without trailing separators ("/" and "P:\\" keep nothing after them)."""
    return prefix.rstrip("/\\")


def _rest_after_prefix(path: str, prefix: str, *, windows: bool) -> str | None:
    """What follows *prefix* in *path* ("" or starting with "/"), or None if it does not match."""
    core = _strip(prefix)
    if windows:
        path, core = path.replace("\\", "/"), core.replace("\\", "/")
    head, rest = path[: len(core)], path[len(core) :]
    same = head.casefold() == core.casefold() if windows else head == core
    if same and (not rest or rest.startswith("/")):
        return rest
    return None
