"""Rate breakers: the pure state machine and the store-backed service (concurrency-safe)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from shared.loop.breakers import BreakerConfig, BreakerService, BreakerState, step
from shared.store.memory import MemoryStore

CONFIG = BreakerConfig(window_seconds=3600, target_max_writes=5, counterpart_max_writes=3,
                       counterpart_max_repeats=2, cooldown_seconds=600)


def test_opens_at_the_limit_then_half_opens_after_cooldown() -> None:
    state = BreakerState(key="k")
    for t in range(3):
        assert step(state, float(t), 3, CONFIG, None).allowed
    tripped = step(state, 3.0, 3, CONFIG, None)
    assert not tripped.allowed
    assert tripped.opened
    again = step(state, 4.0, 3, CONFIG, None)
    assert not again.allowed
    assert not again.opened  # only the write that trips it says "opened": one note, not one per write
    # The cooldown is at least the breaker's window (3,600 s here): a loop paced inside it cannot outwait it.
    assert not step(state, 3.0 + 3599, 3, CONFIG, None).allowed
    probe = step(state, 3.0 + 3601, 3, CONFIG, None)
    assert probe.allowed  # half-open: one probe goes through
    assert state.state == "half_open"
    assert step(state, 3.0 + 3601 + 3700, 3, CONFIG, None).allowed  # quiet for a cooldown: closed again
    assert state.state == "closed"


def test_half_open_reopens_with_a_doubled_cooldown_when_the_loop_continues() -> None:
    state = BreakerState(key="k", state="open", opened_at=0.0, trips=1, writes=[0.0])
    assert not step(state, 100.0, 3, CONFIG, None).allowed
    assert step(state, 3700.0, 3, CONFIG, None).allowed  # the probe
    tripped = step(state, 3705.0, 3, CONFIG, None)  # the loop answers the probe at once
    assert not tripped.allowed
    assert state.trips == 2
    assert not step(state, 3705.0 + 7000, 3, CONFIG, None).allowed  # the cooldown doubled to 7,200 s
    assert state.state == "open"


def test_a_probe_does_not_reset_the_count() -> None:
    config = CONFIG.model_copy(update={"cooldown_seconds": 600})
    state = BreakerState(key="k")
    day = 86400
    for t in range(0, 3 * 7200, 7200):  # a slow bot, every 2 h, meets the daily limit of 3
        assert step(state, float(t), 3, config, None, window=day).allowed
    assert not step(state, 3 * 7200.0, 3, config, None, window=day).allowed
    assert step(state, 3 * 7200.0 + day, 3, config, None, window=day).allowed  # the probe, a day later
    # Its next answer, 2 h on, still has the probe and the day's writes in its window: open again.
    assert not step(state, 4 * 7200.0 + day, 3, config, None, window=day).allowed


def test_the_same_text_twice_opens_the_counterpart_breaker() -> None:
    state = BreakerState(key="k")
    assert step(state, 0.0, 10, CONFIG, "fp").allowed
    assert step(state, 1.0, 10, CONFIG, "other").allowed
    permit = step(state, 2.0, 10, CONFIG, "fp")
    assert not permit.allowed
    assert "same text" in permit.reason


def test_a_person_repeating_slowly_gets_one_repeat_more() -> None:
    state = BreakerState(key="k")
    assert step(state, 0.0, 10, CONFIG, "fp", automated=False).allowed
    assert step(state, 600.0, 10, CONFIG, "fp", automated=False).allowed  # twice, 10 min apart: a person
    permit = step(state, 1200.0, 10, CONFIG, "fp", automated=False)  # a third time within the hour: not
    assert not permit.allowed
    assert "3 times" in permit.reason


def test_window_forgets_old_writes() -> None:
    state = BreakerState(key="k")
    for t in range(3):
        step(state, float(t), 3, CONFIG, None)
    assert step(state, 3601.0 + 2, 3, CONFIG, None).allowed


def test_service_counts_exactly_under_concurrency_and_resets() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    service = BreakerService(MemoryStore(clock=lambda: now), BreakerConfig(target_max_writes=40,
                                                                          counterpart_max_writes=100))
    allowed: list[bool] = []
    lock = threading.Lock()

    def write(i: int) -> None:
        permit = service.permit(platform="github", target="o/r#1", counterpart=f"u{i % 3}", text_fp=None,
                                now=now + timedelta(seconds=i))
        with lock:
            allowed.append(permit.allowed)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 40
    state = service.state("br:github:o/r#1")
    assert state is not None
    assert state.state == "open"
    # Resume says which breakers held the thread (the target's; the counterparts' counted 40 of 100).
    assert service.reset(platform="github", target="o/r#1") == ["br:github:o/r#1"]
    assert service.state("br:github:o:actor:github:u0").targets == ["github:o/r#1"]  # type: ignore[union-attr]
    assert service.permit(platform="github", target="o/r#1", counterpart=None, text_fp=None, now=now).allowed


def test_a_bot_hopping_repositories_meets_its_organisation_breaker() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    service = BreakerService(MemoryStore(clock=lambda: now), CONFIG)
    allowed = [service.permit(platform="github", target=f"o/r{n}#1", counterpart="hopper", text_fp=None,
                              now=now + timedelta(seconds=10 * n), depth=2).allowed for n in range(6)]
    # A new repository each time: the per-target breakers never see a second write, the organisation's does.
    assert allowed == [True, True, True, False, False, False]
    # Resume on the thread the breaker last counted names the breaker, whichever issue it first counted.
    assert service.reset(platform="github", target="o/r5#1") == ["br:github:o:actor:github:hopper"]


def test_writes_answering_people_or_unprompted_events_are_never_counted() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    service = BreakerService(MemoryStore(clock=lambda: now), CONFIG)
    person = [service.permit(platform="github", target="o/r#1", counterpart="alice", text_fp="same",
                             now=now + timedelta(seconds=n), automated=False).allowed for n in range(50)]
    fan_out = [service.permit(platform="servicebus", target="reynolds-out", counterpart=None, text_fp=None,
                              now=now + timedelta(seconds=n), depth=1).allowed for n in range(50)]
    assert all(person)
    assert all(fan_out)
    assert service.state("br:github:o/r#1") is None
    assert service.state("br:servicebus:reynolds-out") is None


def test_answers_to_people_never_trip_the_target_breaker() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    service = BreakerService(MemoryStore(clock=lambda: now), CONFIG)
    allowed = [service.permit(platform="github", target="o/r#1", counterpart=f"person{n}", text_fp="same",
                              now=now + timedelta(seconds=n), automated=False).allowed for n in range(30)]
    assert all(allowed)  # 30 people on one busy issue: target limit 5 applies to automations only
