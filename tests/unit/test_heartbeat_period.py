"""The slaves' heartbeat period: what the master answers, and how long a slave waits for it.

The master's answer (``next_seconds``) spreads its budget, ``heartbeats_per_second``, over the
computers online: HEARTBEAT_MIN_SECONDS at least, HEARTBEAT_MAX_SECONDS at most.  The slave waits that long give
or take HEARTBEAT_JITTER.  A real slave and master: tests/integration/test_heartbeat_period.py.
"""

from __future__ import annotations

import random

import pytest
from _api import AUTH, in_process_api
from farm import start_master_refused

from drqueue.api_types import HEARTBEAT_MAX_SECONDS, HEARTBEAT_MIN_SECONDS, HeartbeatAnswer
from drqueue.config import Config, load_config
from drqueue.errors import ConfigError
from drqueue.master.api.farm import heartbeat_period
from drqueue.master.tokens import create_token
from drqueue.slave.launcher import CHECK_SECONDS, HEARTBEAT_JITTER, heartbeat_wait

# -- the master's period ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("online", "budget", "seconds"),
    [
        (0, 100, HEARTBEAT_MIN_SECONDS),  # a master with no engines yet
        (1, 100, HEARTBEAT_MIN_SECONDS),
        (200, 100, 2.0),
        (250, 100, 2.5),
        (4000, 100, 40.0),  # issue 14's fleet: 100 heartbeats a second in all
        (6000, 100, 60.0),
        (32000, 100, HEARTBEAT_MAX_SECONDS),  # capped
        (1, 0.2, 5.0),
        (2, 0.2, 10.0),
        (4000, 1000, 4.0),
    ],
)
def test_the_period_is_the_slaves_online_over_the_budget_from_the_floor_to_the_cap(
    online, budget, seconds
):
    assert heartbeat_period(online, budget) == seconds


def test_the_period_grows_with_the_slaves_online_and_keeps_them_within_the_budget():
    budget = 100.0
    periods = [heartbeat_period(online, budget) for online in range(0, 10_001, 50)]
    assert periods == sorted(periods)
    for online in range(200, 6001, 100):
        # the heartbeats a second the slaves make at that period: the budget, not more
        assert online / heartbeat_period(online, budget) == pytest.approx(budget, rel=0.01)


# -- the answer, through the API -----------------------------------------------------------------


def test_a_heartbeat_answer_says_when_to_call_again_and_the_farm_counts_it(tmp_path):
    with in_process_api(tmp_path, heartbeats_per_second=0.5) as (http, _store):
        slave = create_token(Config(root=tmp_path), "slave", "render01")
        before = http.get("/api/v1/farm", headers=AUTH).json()
        assert before["heartbeats"] == 0
        for _ in range(3):
            beat = http.post(
                "/api/v1/slaves/render01/heartbeat",
                json={"engines": ["a", "b"]},
                headers={"Authorization": f"Bearer {slave}"},
            )
            assert beat.status_code == 200, beat.text
            # no dispatcher, so no computer online: the floor, whatever the budget
            assert beat.json() == {
                "instance": "",
                "registered": [],
                "next_seconds": HEARTBEAT_MIN_SECONDS,
            }
        after = http.get("/api/v1/farm", headers=AUTH).json()
        assert after["heartbeats"] == 3
        assert after["heartbeat_seconds"] == HEARTBEAT_MIN_SECONDS


def test_an_answer_without_next_seconds_an_older_masters_means_every_second():
    answer = HeartbeatAnswer.from_json({"instance": "abc", "registered": ["x"]})
    assert answer.next_seconds == 1.0
    assert heartbeat_wait(answer.next_seconds, random.Random(1)) == CHECK_SECONDS


# -- the setting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf")])
def test_a_heartbeat_budget_that_is_not_a_positive_number_is_refused_in_one_line(bad):
    with pytest.raises(ConfigError, match="heartbeats_per_second must be a finite number above 0"):
        Config(heartbeats_per_second=bad).check_heartbeat_budget()
    Config(heartbeats_per_second=0.01).check_heartbeat_budget()


def test_the_heartbeat_budget_comes_from_the_environment_and_a_word_is_refused(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DRQUEUE_ROOT", str(tmp_path))
    monkeypatch.setenv("DRQUEUE_HEARTBEATS_PER_SECOND", "250")
    assert load_config().heartbeats_per_second == 250.0
    monkeypatch.setenv("DRQUEUE_HEARTBEATS_PER_SECOND", "lots")
    with pytest.raises(ConfigError, match="heartbeats_per_second wants a float, not 'lots'"):
        load_config()


def test_drqueue_master_refuses_a_zero_heartbeat_budget_before_it_starts(tmp_path):
    result = start_master_refused(tmp_path, DRQUEUE_HEARTBEATS_PER_SECOND="0")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "heartbeats_per_second must be a finite number above 0" in lines[0]
    assert not (tmp_path / "etc" / "token").exists()


# -- the slave's wait ------------------------------------------------------------------------------


def test_a_slave_waits_the_period_give_or_take_the_jitter_and_keeps_its_average():
    rng = random.Random(14)
    waits = [heartbeat_wait(40.0, rng) for _ in range(20_000)]
    assert min(waits) >= 40.0 * (1 - HEARTBEAT_JITTER)
    assert max(waits) <= 40.0 * (1 + HEARTBEAT_JITTER)
    assert sum(waits) / len(waits) == pytest.approx(40.0, rel=0.01)  # the master's budget holds
    # spread out: slaves told 40 s in the same second do not call back in the same second
    assert len({round(wait) for wait in waits}) >= 15


@pytest.mark.parametrize(
    ("told", "least", "most"),
    [
        (1.0, CHECK_SECONDS, CHECK_SECONDS),
        (0.2, CHECK_SECONDS, CHECK_SECONDS),  # never more often than a check
        (-3.0, CHECK_SECONDS, CHECK_SECONDS),
        (float("nan"), CHECK_SECONDS, CHECK_SECONDS),
        (1.1, CHECK_SECONDS, 1.1 * (1 + HEARTBEAT_JITTER)),
        (1e9, HEARTBEAT_MAX_SECONDS * 0.8, HEARTBEAT_MAX_SECONDS * 1.2),  # a master gone wrong
        (float("inf"), CHECK_SECONDS, CHECK_SECONDS),
    ],
)
def test_a_slave_bounds_whatever_the_master_answers(told, least, most):
    rng = random.Random(3)
    for _ in range(200):
        assert least <= heartbeat_wait(told, rng) <= most
