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


# -- shared state and GitHub's documented answers (issue 14) ----------------------------------------------------
def test_two_instances_share_one_budget_through_the_store(clock: FakeClock) -> None:
    """Two Functions instances (two pacers) over one store: writes are spaced across both, and a penalty one
    of them records holds the other back too."""
    from shared.store.memory import MemoryStore

    store = MemoryStore()
    first = GitHubPacer(clock, clock.sleep, store=store)
    second = GitHubPacer(clock, clock.sleep, store=store)
    assert first.acquire(5) == 0.0
    assert second.acquire(5) == pytest.approx(1.0)  # the other instance's write counts
    assert first.penalize(5, None) == 60.0
    assert second.next_slot(5) == pytest.approx(60.0)
    assert second.penalize(5, None) == 120.0  # exponential across instances
    assert store.read("pacer:5", "pacer:5")["strikes"] == 2


def test_a_primary_limit_blocks_until_reset(pacer: GitHubPacer, clock: FakeClock) -> None:
    reset = clock.now + 900
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(reset))}
    assert pacer.wait_for_answer(3, 403, headers, "API rate limit exceeded for installation ID 3.") == pytest.approx(
        900, abs=1)
    with pytest.raises(PacerWouldWait):
        pacer.acquire(3, max_wait=10)


@pytest.mark.parametrize(("status", "headers", "message", "expected"), [
    (403, {"retry-after": "30"}, "", ("secondary", 30.0)),
    (429, {"Retry-After": "5", "x-ratelimit-remaining": "0"}, "", ("secondary", 5.0)),  # retry-after wins
    (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000000"}, "API rate limit exceeded",
     ("primary", 1700000000.0)),
    (403, {"x-ratelimit-remaining": "0"}, "You have exceeded a secondary rate limit.", ("secondary", None)),
    (403, {"x-ratelimit-remaining": "4999"}, "You have exceeded a secondary rate limit. Please wait",
     ("secondary", None)),  # githubkit raises a plain RequestFailed for this one
    (429, {}, "", ("secondary", None)),
    (403, {}, "Resource not accessible by integration", (None, None)),
    (502, {"retry-after": "30"}, "", (None, None)),
])
def test_github_answers_are_classified_as_github_documents_them(status: int, headers: dict[str, str], message: str,
                                                                expected: tuple[str | None, float | None]) -> None:
    from shared.platforms.github.pacer import github_wait

    assert github_wait(status, headers, message) == expected


def test_a_secondary_limit_without_retry_after_waits_a_minute_then_doubles(pacer: GitHubPacer) -> None:
    waits = [pacer.wait_for_answer(1, 403, {}, "You have exceeded a secondary rate limit.") for _ in range(3)]
    assert waits == [60.0, 120.0, 240.0]
