"""GitHubPacer on a fake clock: limits per minute/hour, spacing, secondary-limit penalties, threads."""

from __future__ import annotations

import threading

import pytest

from shared.platforms.github.pacer import GitHubPacer, PacerWouldWait


class FakeClock:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the pacer never sleeps for nothing"
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pacer(clock: FakeClock) -> GitHubPacer:
    return GitHubPacer(clock, clock.sleep)


def test_first_write_goes_at_once_and_writes_are_a_second_apart(pacer: GitHubPacer, clock: FakeClock) -> None:
    assert pacer.acquire(1) == 0.0
    assert pacer.acquire(1) == pytest.approx(1.0)
    clock.now += 5
    assert pacer.acquire(1) == 0.0


def test_installations_are_independent(pacer: GitHubPacer) -> None:
    assert pacer.acquire(1) == 0.0
    assert pacer.acquire(2) == 0.0
    assert pacer.acquire("1") == pytest.approx(1.0)  # ids are normalised to text


def test_at_most_80_per_minute(clock: FakeClock) -> None:
    pacer = GitHubPacer(clock, clock.sleep, min_interval=0.1)
    start = clock.now
    times = []
    for _ in range(81):
        pacer.acquire(7)
        times.append(clock.now)
    assert times[79] - start == pytest.approx(7.9)
    assert times[80] - times[0] == pytest.approx(60.0)  # the 81st waits for the first to leave the window
    for i in range(len(times) - 80):
        assert times[i + 80] - times[i] >= 60.0 - 1e-9


def test_at_most_500_per_hour(clock: FakeClock) -> None:
    pacer = GitHubPacer(clock, clock.sleep)
    times = []
    for _ in range(501):
        pacer.acquire(7)
        times.append(clock.now)
    assert times[500] - times[0] >= 3600.0 - 1e-9
    # Nowhere did more than 80 fall into one minute.
    for i in range(len(times) - 80):
        assert times[i + 80] - times[i] >= 60.0 - 1e-9


def test_penalty_waits_retry_after_then_backs_off(pacer: GitHubPacer, clock: FakeClock) -> None:
    pacer.acquire(1)
    assert pacer.penalize(1, 30) == 30
    assert pacer.acquire(1) == pytest.approx(30)
    assert pacer.penalize(1, 30) == 60  # repeated limit: doubled
    assert pacer.penalize(1, None) == 240  # third strike: 60 × 2², never less than retry-after
    assert pacer.next_slot(1) == pytest.approx(240)


def test_penalty_without_retry_after_waits_a_minute(pacer: GitHubPacer) -> None:
    assert pacer.penalize(1, None) == 60
    assert pacer.acquire(1) == pytest.approx(60)


def test_penalty_is_capped_and_success_resets(pacer: GitHubPacer, clock: FakeClock) -> None:
    for _ in range(12):
        wait = pacer.penalize(1, None)
    assert wait == 3600
    pacer.record_success(1)
    clock.now += 4000
    assert pacer.penalize(1, None) == 60


def test_old_strikes_are_forgotten(pacer: GitHubPacer, clock: FakeClock) -> None:
    pacer.penalize(1, None)
    clock.now += 3601
    assert pacer.penalize(1, None) == 60


def test_a_long_retry_after_is_honoured_beyond_the_cap(pacer: GitHubPacer) -> None:
    assert pacer.penalize(1, 7200) == 7200


def test_max_wait_raises_instead_of_blocking(pacer: GitHubPacer, clock: FakeClock) -> None:
    pacer.penalize(1, 120)
    with pytest.raises(PacerWouldWait) as raised:
        pacer.acquire(1, max_wait=10)
    assert raised.value.wait_seconds == pytest.approx(120)
    assert clock.sleeps == []


def test_threads_get_distinct_spaced_slots(clock: FakeClock) -> None:
    pacer = GitHubPacer(clock, clock.sleep)
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(5):
            pacer.acquire(9)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    writes = list(pacer._local["9"]["writes"])
    assert len(writes) == 40
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(writes, writes[1:], strict=False))


def test_limits_must_be_positive(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="positive"):
        GitHubPacer(clock, clock.sleep, per_minute=0)
