"""Failure signatures: the normaliser pinned on log excerpts as the tools print them."""

from __future__ import annotations

import pytest

from shared.learning.signatures import breaker_text, error_lines, normalise, poison_text, signature

# Two runs of one pytest failure on GitHub-hosted runners: other run ids, times, temp dirs, durations, ports.
PYTEST_RUN_1 = """\
2026-12-06T10:14:02.5510231Z ============================= test session starts ==============================
2026-12-06T10:14:02.5512000Z platform linux -- Python 3.12.7, pytest-8.3.3, pluggy-1.5.0
2026-12-06T10:14:09.0012345Z \x1b[31mFAILED\x1b[0m tests/test_api.py::test_health - AssertionError: \
GET http://127.0.0.1:53127/api/health took 5.21s (> 5s) in /tmp/pytest-of-runner/pytest-0/test_health0/app.log
2026-12-06T10:14:09.0015000Z ========================= 1 failed, 211 passed in 34.52s =========================
2026-12-06T10:14:09.1000000Z ##[error]Process completed with exit code 1.
"""
PYTEST_RUN_2 = """\
2026-12-07T23:59:58.0000001Z ============================= test session starts ==============================
2026-12-07T23:59:58.0000002Z platform linux -- Python 3.12.7, pytest-8.3.3, pluggy-1.5.0
2026-12-08T00:00:04.9999999Z \x1b[31mFAILED\x1b[0m tests/test_api.py::test_health - AssertionError: \
GET http://127.0.0.1:40411/api/health took 6.02s (> 5s) in /tmp/pytest-of-runner/pytest-3/test_health0/app.log
2026-12-08T00:00:05.0000000Z ========================= 1 failed, 211 passed in 29.10s =========================
2026-12-08T00:00:05.1000000Z ##[error]Process completed with exit code 1.
"""
PYTEST_OTHER_TEST = PYTEST_RUN_1.replace("test_health - AssertionError", "test_ready - AssertionError")

TRACEBACK = """\
Traceback (most recent call last):
  File "/home/runner/work/_temp/8c0e1f2a-3b4c-4d5e-8f90-a1b2c3d4e5f6/run.py", line 17, in <module>
    main()
  File "/home/runner/work/app/app/tools/migrate.py", line 88, in main
    client.upsert(doc)
azure.cosmos.exceptions.CosmosHttpResponseError: (TooManyRequests) Message: {"Errors":["Request rate is large. \
More Request Units may be needed, so no changes were made. Please retry this request later."]}
ActivityId: 0b3c4d5e-6f70-4182-93a4-b5c6d7e8f901, Request charge: 0.38, RetryAfterInMs: 1200
"""

NPM_1 = """\
npm ERR! code ELIFECYCLE
npm ERR! errno 1
npm ERR! app@1.4.2 build: `tsc -p tsconfig.json`
npm ERR! Exit status 1
npm ERR! A complete log of this run can be found in:
npm ERR!     /home/runner/.npm/_logs/2026-12-06T10_14_09_551Z-debug-0.log
"""
NPM_2 = NPM_1.replace("2026-12-06T10_14_09_551Z", "2026-12-07T22_01_44_004Z")

DURABLE_1 = ("Orchestrator function 'orchestrate_task' failed: Activity function 'run_specialist' failed: "
             "ModelThrottled: 429 Too Many Requests, retry after 7 s (request 3141592, "
             "at 2026-12-06T10:14:09Z)")
DURABLE_2 = ("Orchestrator function 'orchestrate_task' failed: Activity function 'run_specialist' failed: "
             "ModelThrottled: 429 Too Many Requests, retry after 31 s (request 2718281, "
             "at 2026-12-07T08:00:00Z)")

COSMOS_503_1 = ("(ServiceUnavailable) Service is currently unavailable. ActivityId: "
                "9d1c2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d, Microsoft.Azure.Documents.Common/2.14.0, "
                "Date: Tue, 08 Dec 2026 02:36:06 GMT")
COSMOS_503_2 = ("(ServiceUnavailable) Service is currently unavailable. ActivityId: "
                "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d, Microsoft.Azure.Documents.Common/2.14.0, "
                "Date: Wed, 09 Dec 2026 17:02:44 GMT")


def test_the_same_pytest_failure_in_two_runs_has_one_signature() -> None:
    one, two = signature("workflow-run", PYTEST_RUN_1), signature("workflow-run", PYTEST_RUN_2)
    assert one == two
    assert one.head == ("FAILED tests/test_api.py::test_health - AssertionError: GET http://127.0.0.1:<port>"
                        "/api/health took <duration> (> <duration>) in <tmp>")
    assert len(one.digest) == 16
    assert one.key == f"workflow-run:{one.digest}"


def test_another_failing_test_is_another_signature() -> None:
    assert signature("workflow-run", PYTEST_OTHER_TEST) != signature("workflow-run", PYTEST_RUN_1)


def test_where_and_kind_keep_equal_messages_apart() -> None:
    assert signature("workflow-run", PYTEST_RUN_1, where="ci / test") != \
        signature("workflow-run", PYTEST_RUN_1, where="nightly / test")
    assert signature("subtask", DURABLE_1) != signature("orchestration", DURABLE_1)


def test_a_traceback_signs_by_its_final_exception_with_guids_folded() -> None:
    other = TRACEBACK.replace("8c0e1f2a-3b4c-4d5e-8f90-a1b2c3d4e5f6", "11111111-2222-4333-8444-555555555555") \
        .replace("0b3c4d5e-6f70-4182-93a4-b5c6d7e8f901", "fedcba98-7654-4321-8fed-cba987654321") \
        .replace("line 88", "line 91")
    one = signature("workflow-run", TRACEBACK)
    assert one == signature("workflow-run", other)
    assert one.head.startswith("azure.cosmos.exceptions.CosmosHttpResponseError: (TooManyRequests)")
    assert "line <n>" in normalise(TRACEBACK)
    assert "<tmp>" in normalise(TRACEBACK)


def test_npm_errors_sign_by_their_code_not_their_log_file() -> None:
    one = signature("workflow-run", NPM_1)
    assert one == signature("workflow-run", NPM_2)
    assert error_lines(NPM_1) == ["npm ERR! code ELIFECYCLE", "npm ERR! errno 1"]


def test_durable_failures_keep_the_activity_and_type_and_fold_ids_and_durations() -> None:
    one = signature("orchestration", DURABLE_1)
    assert one == signature("orchestration", DURABLE_2)
    assert one.head == ("Orchestrator function 'orchestrate_task' failed: Activity function 'run_specialist' "
                        "failed: ModelThrottled: 429 Too Many Requests, retry after <duration> (request <n>, "
                        "at <time>)")
    other_activity = DURABLE_1.replace("run_specialist", "post_report")
    assert signature("orchestration", other_activity) != one


def test_cosmos_outages_fold_activity_ids_and_rfc1123_dates_but_keep_the_status() -> None:
    assert signature("store", COSMOS_503_1) == signature("store", COSMOS_503_2)
    throttled = COSMOS_503_1.replace("(ServiceUnavailable) Service is currently unavailable",
                                     "(TooManyRequests) Request rate is large")
    assert signature("store", throttled) != signature("store", COSMOS_503_1)


def test_breakers_and_poisoned_items_sign_by_their_reason() -> None:
    one = {"key": "counterpart:github:octo/app:echo[bot]", "state": "open", "opened_at": 1765161366.2,
           "reason": "counterpart echo[bot] answered 12 times within 3600 s"}
    two = {**one, "opened_at": 1765247766.9}
    assert signature("breaker", breaker_text(one), where="counterpart") == \
        signature("breaker", breaker_text(two), where="counterpart")
    poisoned = {"source": "github", "generation": 144, "poison_reason": "PoisonMessage: "
                "MaxDeliveryCountExceeded: delivery 7e3f2a1b-0c9d-4e8f-a7b6-c5d4e3f2a1b0 could not be decided"}
    again = {**poisoned, "poison_reason": str(poisoned["poison_reason"]).replace("7e3f2a1b-0c9d-4e8f-a7b6-c5d4e3f2a1b0",
                                                                             "00000000-1111-4222-8333-444444444444")}
    assert signature("poison", poison_text(poisoned)) == signature("poison", poison_text(again))


@pytest.mark.parametrize(("text", "folded"), [
    ("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 broke it", "commit <hex> broke it"),
    ("abort at 0x7f3a2c10", "abort at <hex>"),
    ("see https://github.com/octo/app/actions/runs/12345678/job/98765432", "see https://github.com/octo/app/actions/runs/<run>/job/<job>"),
    ("error in src/app.ts:42:7", "error in src/app.ts:<line>"),
    ("done in 1500 ms", "done in <duration>"),
    ("C:\\Users\\runneradmin\\AppData\\Local\\Temp\\tmp9x8y7z\\out.txt missing", "<tmp> missing"),
    ("/tmp/tmpab12cd/out.json missing", "<tmp> missing"),
    ("assert 1 == 2", "assert 1 == 2"),  # small numbers tell failures apart
    ("issue #123456 closed", "issue #<n> closed"),
    ("a decade", "a decade"),  # words made of hex letters only are words
])
def test_normalise_folds_volatile_parts(text: str, folded: str) -> None:
    assert normalise(text) == folded


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown failure kind"):
        signature("weather", "error")
    with pytest.raises(ValueError, match="needs a text"):
        signature("subtask", " \n ")
