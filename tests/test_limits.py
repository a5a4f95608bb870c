"""The batch scheduler's limits without I/O: TokenBucket and Throttle on explicit clocks.

Both take ``now`` from their caller, so these tests drive them with made-up
times and a seeded ``random.Random``: nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest
from sent_calls import most_in_any_window

from lro_grpc._batch._limits import Throttle, TokenBucket

# -- TokenBucket ---------------------------------------------------------------------------------------


def grant_at_random_asks(bucket: TokenBucket, rng: random.Random, until: float, mean_gap: float) -> list[float]:
    """Ask at random instants up to ``until``; take a call whenever the bucket allows one then."""
    granted: list[float] = []
    now = 0.0
    while now < until:
        if bucket.available_at(now) <= now:
            bucket.take(now)
            granted.append(now)
        now += rng.expovariate(1 / mean_gap)
    return granted


def grant_as_soon_as_allowed(bucket: TokenBucket, until: float) -> list[float]:
    """A caller that always waits exactly until :meth:`TokenBucket.available_at`."""
    granted: list[float] = []
    now = 0.0
    while now < until:
        now = bucket.available_at(now)
        bucket.take(now)
        granted.append(now)
    return granted


def test_a_full_bucket_grants_one_call_at_once_then_one_per_interval() -> None:
    bucket = TokenBucket(rate=10.0, now=100.0)
    assert bucket.available_at(100.0) == 100.0
    bucket.take(100.0)
    assert bucket.available_at(100.0) == pytest.approx(100.1)
    assert bucket.available_at(100.05) == pytest.approx(100.1)  # half a token is not a call
    bucket.take(100.1)
    assert bucket.available_at(100.1) == pytest.approx(100.2)


def test_idle_time_buys_no_burst() -> None:
    bucket = TokenBucket(rate=10.0, now=0.0)
    # An hour idle: the bucket holds one call, not 36,000.
    bucket.take(3600.0)
    assert bucket.available_at(3600.0) == pytest.approx(3600.1)
    assert bucket.tokens == pytest.approx(0.0)


@pytest.mark.parametrize("rate", [1.0, 40.0, 100.0, 333.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_window_holds_more_than_one_plus_rate_times_its_length(rate: float, seed: int) -> None:
    rng = random.Random(seed)
    until = max(2.0, 50 / rate)
    for granted in (
        grant_as_soon_as_allowed(TokenBucket(rate=rate, now=0.0), until),
        grant_at_random_asks(TokenBucket(rate=rate, now=0.0), rng, until, mean_gap=0.2 / rate),
        grant_at_random_asks(TokenBucket(rate=rate, now=0.0), rng, until, mean_gap=2.0 / rate),
    ):
        assert len(granted) >= 10
        for window in (0.0, 0.01, 0.05, 0.1, 0.5, 1.0):
            assert most_in_any_window(granted, window) <= 1 + rate * window + 1e-6, window
        gaps = [later - earlier for earlier, later in itertools.pairwise(granted)]
        assert min(gaps) >= 1 / rate - 1e-9


def test_a_saturated_bucket_gives_its_whole_rate() -> None:
    granted = grant_as_soon_as_allowed(TokenBucket(rate=100.0, now=0.0), until=1.0)
    assert len(granted) == 101  # at 0, 0.01, ..., 1.0
    assert granted[-1] == pytest.approx(1.0)


def test_available_at_does_not_spend() -> None:
    bucket = TokenBucket(rate=2.0, now=0.0)
    for _ in range(5):
        assert bucket.available_at(0.0) == 0.0
    bucket.take(0.0)
    assert bucket.available_at(0.0) == pytest.approx(0.5)


def test_a_clock_that_goes_back_does_not_refill() -> None:
    bucket = TokenBucket(rate=10.0, now=5.0)
    bucket.take(5.0)
    assert bucket.available_at(4.0) == pytest.approx(4.1)  # one interval from "now", nothing credited
    assert bucket.updated == 5.0 and bucket.tokens == pytest.approx(0.0)


# -- Throttle ------------------------------------------------------------------------------------------


def test_a_fresh_throttle_pauses_nothing() -> None:
    throttle = Throttle()
    assert throttle.resume_at == -math.inf and throttle.refusals == 0


def test_retry_info_delay_is_the_pause_as_given() -> None:
    throttle = Throttle()
    rng = random.Random(1)
    throttle.refused(now=10.0, rpc_started=9.9, retry_delay=2.5, rng=rng)
    assert throttle.resume_at == 12.5 and throttle.refusals == 1
    assert rng.random() == random.Random(1).random()  # no randomness spent on a given delay


def test_backoff_doubles_from_one_second_up_to_thirty_with_up_to_half_off() -> None:
    throttle = Throttle()
    rng = random.Random(7)
    expected = random.Random(7)
    now = 0.0
    for refusal in range(1, 9):
        rpc_started = throttle.resume_at if refusal > 1 else now  # each call started after the last pause began
        now = max(now, rpc_started) + 0.01
        throttle.refused(now=now, rpc_started=rpc_started, retry_delay=None, rng=rng)
        base = min(30.0, 2.0 ** (refusal - 1))
        assert throttle.refusals == refusal
        assert throttle.resume_at == pytest.approx(now + base * (0.5 + 0.5 * expected.random()))
        assert now + base / 2 <= throttle.resume_at <= now + base


def test_jitter_spreads_pauses_over_the_upper_half() -> None:
    pauses = []
    for seed in range(200):
        throttle = Throttle()
        throttle.refused(now=0.0, rpc_started=0.0, retry_delay=None, rng=random.Random(seed))
        pauses.append(throttle.resume_at)
    assert all(0.5 <= pause <= 1.0 for pause in pauses)
    assert min(pauses) < 0.55 and max(pauses) > 0.95  # the whole range is used, not a constant


def test_refusals_of_calls_already_in_flight_extend_the_pause_without_growing_it() -> None:
    throttle = Throttle()
    rng = random.Random(3)
    throttle.refused(now=1.0, rpc_started=0.9, retry_delay=None, rng=rng)
    assert throttle.refusals == 1 and throttle.paused_at == 1.0
    first_resume = throttle.resume_at
    # Ten calls sent before the pause began come back refused, one after another.
    for index in range(10):
        now = 1.0 + 0.02 * (index + 1)
        throttle.refused(now=now, rpc_started=0.95, retry_delay=None, rng=rng)
        assert throttle.refusals == 1 and throttle.paused_at == 1.0  # the backoff did not grow
        assert throttle.resume_at >= first_resume  # a later refusal never shortens the pause
        assert throttle.resume_at <= now + 1.0  # each extension is at most one first-step backoff
    # A call started after the pause began is a new refusal: the backoff doubles.
    throttle.refused(now=5.0, rpc_started=4.0, retry_delay=None, rng=rng)
    assert throttle.refusals == 2 and throttle.paused_at == 5.0
    assert 6.0 <= throttle.resume_at <= 7.0


def test_a_shorter_retry_info_delay_never_cuts_a_pause_short() -> None:
    throttle = Throttle()
    throttle.refused(now=0.0, rpc_started=0.0, retry_delay=5.0, rng=random.Random(0))
    throttle.refused(now=1.0, rpc_started=0.5, retry_delay=0.1, rng=random.Random(0))
    assert throttle.resume_at == 5.0


def test_success_resets_the_backoff() -> None:
    throttle = Throttle()
    rng = random.Random(11)
    for started in (0.0, 2.0, 6.0):
        throttle.refused(now=started + 0.01, rpc_started=started, retry_delay=None, rng=rng)
    assert throttle.refusals == 3
    throttle.succeeded()
    assert throttle.refusals == 0
    throttle.refused(now=20.0, rpc_started=19.0, retry_delay=None, rng=rng)
    assert throttle.refusals == 1
    assert 20.5 <= throttle.resume_at <= 21.0  # back to the first step, not the fourth
