"""Why a task failed, and what the farm does about it (issue #15).

A failed attempt gets one *failure class* (:class:`FailureClass`), decided on the slave by
:func:`classify` from the facts the runner holds: how the render ended (its exit code or the
signal that killed it, a time-out, a missing output), its peak memory against the memory it
was allowed, and the last lines of its log.  The lines are matched against rules, the farm's
own first (``failure_rules`` in the master's config, sent with each task), then the renderer's
(``Renderer.failure_patterns``), then the built-in ones of this module (:data:`BUILT_IN_RULES`).
A rule's regex may name a group ``path``: that is the missing file a wrangler must fix.

Each class has an *action* (:class:`FailureAction`), the farm's (``failure_actions``) unless
the job names its own (``drqueue submit --on-failure``); :data:`DEFAULT_ACTIONS` are the
defaults.  The master applies it when it records the result (``drqueue.master.dispatcher`` and
``drqueue.store.policy.after_failed_result``):

- ``retry-bigger`` (out of memory): requeued for a host with more memory than the measured peak
  x :data:`OOM_RAM_FACTOR` and than the host it failed on; an error at once when no known slave
  is that big; neither a failure of the task nor of the host;
- ``backoff`` (licence): requeued, and the job gets no new task for ``licence_backoff_seconds``,
  doubling to 16 times that while it lasts; not a failure of the task nor of the host;
- ``fail`` (missing asset): the task is an error at once, and so are the job's queued tasks
  (every frame would fail the same way);
- ``retry`` (crash, time-out, missing output, unknown): today's rule, a failure of the task
  (``retries``) and of the host (``block_after_failures``).

It imports nothing of DrQueue's, so the slave, the master and the config all use it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


class FailureClass(enum.StrEnum):
    """Why an attempt failed, as far as DrQueue can tell."""

    OOM = "oom"
    LICENCE = "licence"
    MISSING_ASSET = "missing-asset"
    CRASH = "crash"
    TIMEOUT = "timeout"
    OUTPUT_MISSING = "output-missing"
    UNKNOWN = "unknown"


class FailureAction(enum.StrEnum):
    """What the master does with a failed attempt of a class."""

    RETRY = "retry"
    RETRY_BIGGER = "retry-bigger"
    BACKOFF = "backoff"
    FAIL = "fail"


#: Each class's action when neither the farm nor the job names one.
DEFAULT_ACTIONS: dict[FailureClass, FailureAction] = {
    FailureClass.OOM: FailureAction.RETRY_BIGGER,
    FailureClass.LICENCE: FailureAction.BACKOFF,
    FailureClass.MISSING_ASSET: FailureAction.FAIL,
    FailureClass.CRASH: FailureAction.RETRY,
    FailureClass.TIMEOUT: FailureAction.RETRY,
    FailureClass.OUTPUT_MISSING: FailureAction.RETRY,
    FailureClass.UNKNOWN: FailureAction.RETRY,
}

#: An out-of-memory task is requeued for a host with at least its peak times this.
OOM_RAM_FACTOR = 1.25
#: A SIGKILLed render whose peak reached this share of its memory limit was the kernel's OOM kill.
OOM_KILL_SHARE = 0.8
#: Log lines a rule is matched against: the runner's tail (its last lines, each cut at 500
#: characters), so a render that prints gigabytes costs the classification nothing more.
LINES_MATCHED = 30
#: The longest missing path or matched line kept as a failure's detail.
DETAIL_CHARS = 500


class FailureRuleError(ValueError):
    """A failure rule or action that cannot be used (an unknown class, a regex that does not
    compile); its text is the one line the master refuses to start with."""


@dataclass(frozen=True, slots=True)
class FailureRule:
    """A regex that, found in a line of a failed render's log, gives the failure its class."""

    pattern: re.Pattern[str]
    failure_class: FailureClass

    @classmethod
    def of(cls, pattern: str, failure_class: str, *, flags: int = 0) -> FailureRule:
        """A rule from strings, or a FailureRuleError saying what is wrong with them."""
        try:
            klass = FailureClass(failure_class)
        except ValueError:
            raise FailureRuleError(
                f"unknown failure class {failure_class!r}: use one of "
                f"{', '.join(c.value for c in FailureClass)}"
            ) from None
        try:
            compiled = re.compile(pattern, flags)
        except (re.error, TypeError) as exc:
            raise FailureRuleError(f"the regex {pattern!r} does not compile: {exc}") from None
        return cls(compiled, klass)


def _rules(pairs: Iterable[tuple[str, FailureClass]]) -> tuple[FailureRule, ...]:
    return tuple(FailureRule.of(pattern, klass, flags=re.IGNORECASE) for pattern, klass in pairs)


#: The built-in rules, for every renderer, after the farm's and the renderer's own.  Licence
#: wordings, as the vendors print them:
#: - Arnold (RLM): "[rlm] could not connect to any license server", "[rlm] error checking out
#:   license for arnold", "[rlm] wrong license version for arnold" (arnoldsupport.com, "RLM: the
#:   curious case of the missing log entries", 2014), and "ERROR: no license" / "[ai] license";
#: - FlexLM/FlexNet (V-Ray's older servers, RenderMan's, Autodesk's): "checkout failed: License
#:   server machine is down or not responding", "FLEXnet Licensing checkout error";
#: - V-Ray: "Could not obtain a license", "Failed to obtain a license";
#: - Nuke (RLM, foundry ISV): "No licenses available", "RLM ... license error";
#: - Houdini/Mantra (sesinetd/hserver): "No licenses could be found to run this application";
#: - RenderMan (PixarLicenseServer): "License checkout failed", "license error".
BUILT_IN_RULES: tuple[FailureRule, ...] = _rules(
    [
        # out of memory: the renderer's or the runtime's own words
        (r"\bout of memory\b", FailureClass.OOM),
        (r"\bMemoryError\b", FailureClass.OOM),
        (r"std::bad_alloc", FailureClass.OOM),
        (r"Cannot allocate memory", FailureClass.OOM),
        (r"\b[mc]alloc(\(\))? (returns null|failed)", FailureClass.OOM),
        (r"not enough memory", FailureClass.OOM),
        # licence
        (r"\[rlm\].*(could not connect|error checking out|wrong license version)", "licence"),
        (r"no licen[cs]es? (available|found|could be found)", FailureClass.LICENCE),
        (r"no licen[cs]es could be found", FailureClass.LICENCE),
        (r"(could not|failed to|unable to) (obtain|check ?out|get) a?\s*licen[cs]e", "licence"),
        (r"licen[cs]e (checkout|check-out|check out) (failed|error)", FailureClass.LICENCE),
        (r"checkout failed: licen[cs]e server", FailureClass.LICENCE),
        (r"flex(lm|net) licensing (checkout )?error", FailureClass.LICENCE),
        (r"\bERROR: no licen[cs]e\b", FailureClass.LICENCE),
        (r"\[ai\] licen[cs]e.*(fail|error|not)", FailureClass.LICENCE),
        (r"licen[cs]e server (is )?(down|not responding|unreachable)", FailureClass.LICENCE),
        # missing asset: the path in quotes where the renderer gives it
        (r"""unable to open (image |file )?['"]?(?P<path>[^'":]+)""", FailureClass.MISSING_ASSET),
        (r"""cannot find (file|texture|image)\s*:?\s*['"]?(?P<path>[^'"]+)""", "missing-asset"),
        (
            r"""(texture|image) file ['"]?(?P<path>[^'"]+?)['"]? (not found|does not exist)""",
            "missing-asset",
        ),
        (r"""missing (texture|file|image)s?\s*:\s*['"]?(?P<path>[^'"]+)""", "missing-asset"),
        # crash
        (r"segmentation fault|\bSIGSEGV\b|core dumped", FailureClass.CRASH),
        (r"\bAborted\b|\bSIGABRT\b|\bSIGBUS\b|illegal instruction", FailureClass.CRASH),
    ]
)


@dataclass(frozen=True, slots=True)
class Classification:
    """A failed attempt's class and its detail (the missing path, else the line matched)."""

    failure_class: FailureClass
    detail: str | None = None


def parse_rules(tables: Sequence[Mapping[str, object]]) -> tuple[FailureRule, ...]:
    """The farm's ``failure_rules`` (``[[failure_rules]]`` tables of ``pattern`` and ``class``)
    as rules, or a FailureRuleError naming the first bad one.  Case-insensitive, as the
    built-in rules are."""
    if isinstance(tables, (str, bytes, Mapping)) or not isinstance(tables, Sequence):
        raise FailureRuleError(
            "failure_rules must be a list of tables ([[failure_rules]] with a pattern and a "
            f"class), not {tables!r}"
        )
    rules = []
    for number, table in enumerate(tables, 1):
        if not isinstance(table, Mapping) or set(table) != {"pattern", "class"}:
            raise FailureRuleError(
                f"failure_rules entry {number} must have exactly a pattern and a class, "
                f"not {table!r}"
            )
        pattern, klass = table["pattern"], table["class"]
        if not isinstance(pattern, str) or not isinstance(klass, str):
            raise FailureRuleError(f"failure_rules entry {number}: pattern and class are strings")
        try:
            rules.append(FailureRule.of(pattern, klass, flags=re.IGNORECASE))
        except FailureRuleError as exc:
            raise FailureRuleError(f"failure_rules entry {number}: {exc}") from None
    return tuple(rules)


def parse_actions(actions: Mapping[str, object], where: str) -> dict[FailureClass, FailureAction]:
    """Actions by class from ``{"oom": "retry-bigger", ...}``, or a FailureRuleError saying
    which class or action is unknown (*where* names the setting or option)."""
    parsed: dict[FailureClass, FailureAction] = {}
    for name, action in actions.items():
        try:
            klass = FailureClass(name)
        except ValueError:
            raise FailureRuleError(
                f"{where}: unknown failure class {name!r}: use one of "
                f"{', '.join(c.value for c in FailureClass)}"
            ) from None
        try:
            parsed[klass] = FailureAction(action)
        except ValueError:
            raise FailureRuleError(
                f"{where}: unknown action {action!r} for {name}: use one of "
                f"{', '.join(a.value for a in FailureAction)}"
            ) from None
    return parsed


def parse_on_failure(text: str) -> dict[str, str]:
    """``--on-failure oom=retry,licence=fail`` as ``{"oom": "retry", "licence": "fail"}``,
    checked (FailureRuleError)."""
    pairs: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, action = part.partition("=")
        if not sep:
            raise FailureRuleError(f"--on-failure wants CLASS=ACTION pairs, not {part.strip()!r}")
        pairs[name.strip()] = action.strip()
    parse_actions(pairs, "--on-failure")
    return pairs


def action_for(
    failure_class: FailureClass,
    job_actions: Mapping[str, str] | None,
    farm_actions: Mapping[FailureClass, FailureAction],
) -> FailureAction:
    """The action for *failure_class*: the job's, else the farm's, else the default."""
    named = (job_actions or {}).get(failure_class.value)
    if named:
        try:
            return FailureAction(named)
        except ValueError:
            pass  # checked at submit; a stored value from elsewhere falls back to the farm's
    return farm_actions.get(failure_class, DEFAULT_ACTIONS[failure_class])


def match_lines(lines: Sequence[str], rules: Iterable[FailureRule]) -> Classification | None:
    """The first rule (in rule order) found in any of *lines*, the last line first for each
    rule; None when no rule matches."""
    kept = [line[: DETAIL_CHARS * 2] for line in lines[-LINES_MATCHED:]]
    for rule in rules:
        for line in reversed(kept):
            found = rule.pattern.search(line)
            if found is None:
                continue
            path = found.groupdict().get("path")
            detail = (path or line).strip()[:DETAIL_CHARS]
            return Classification(rule.failure_class, detail)
    return None


def classify(
    *,
    lines: Sequence[str],
    rules: Sequence[FailureRule] = (),
    exit_code: int | None = None,
    timed_out: bool = False,
    output_missing: str | None = None,
    peak_rss_kb: int = 0,
    memory_limit_kb: int | None = None,
    oom_killed: bool = False,
) -> Classification:
    """A failed attempt's class, from the facts the runner knows.

    *rules* are matched first (the farm's, then the renderer's, then :data:`BUILT_IN_RULES`
    are the caller's order), so a licence line explains even a time-out.  Then: a time-out; a
    kill by SIGKILL that the kernel counted as an OOM kill (*oom_killed*: the render's memory
    cgroup's ``oom_kill`` count grew) or whose peak reached :data:`OOM_KILL_SHARE` of
    *memory_limit_kb*; another fatal signal (SIGSEGV, SIGABRT...) is a crash; a missing output;
    else unknown.

    A render killed by a signal is never a missing asset: a missing asset ends its whole job,
    and a render of another job on the same slave (the same user) can write such a line into
    this one's log and kill it.
    """
    found = match_lines(lines, rules)
    killed = exit_code is not None and exit_code < 0
    if found is not None and not (killed and found.failure_class == FailureClass.MISSING_ASSET):
        return found
    if timed_out:
        return Classification(FailureClass.TIMEOUT)
    if exit_code is not None and exit_code < 0:
        signal_number = -exit_code
        if signal_number == 9 and (
            oom_killed or (memory_limit_kb and peak_rss_kb >= OOM_KILL_SHARE * memory_limit_kb)
        ):
            return Classification(FailureClass.OOM, f"killed by SIGKILL at {peak_rss_kb} KiB")
        if signal_number in (4, 6, 7, 8, 11):  # SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV
            return Classification(FailureClass.CRASH, f"killed by signal {signal_number}")
    if exit_code in (134, 139):  # a shell's report of SIGABRT, SIGSEGV in its child
        return Classification(FailureClass.CRASH, f"exit code {exit_code}")
    if output_missing:
        return Classification(FailureClass.OUTPUT_MISSING, output_missing[:DETAIL_CHARS])
    return Classification(FailureClass.UNKNOWN)


def oom_ram_mb(peak_rss_kb: int | None, host_ram_mb: int) -> int:
    """The memory an out-of-memory task asks for next: its peak x OOM_RAM_FACTOR, and always
    more than the host it failed on (a render refused memory early peaks low)."""
    peak_mb = (peak_rss_kb or 0) / 1024
    return max(int(peak_mb * OOM_RAM_FACTOR + 0.999), host_ram_mb + 1)
