"""Claims and payouts: a claim moves exactly what is available, once per key, never below the
minimum nor above what is there (10 racing claims pay once, on both databases); the operator
marks payouts paid or failed (from the CLI too) and the ledger follows."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.factories import add_site, asset, create_payee, create_user
from tests.service.test_earnings import NOW, earn
from trickle import earnings, ledger, payouts
from trickle.cli import main
from trickle.db import transaction
from trickle.errors import (
    ClaimBelowMinimum,
    IdempotencyConflict,
    InsufficientFunds,
    PayoutAlreadySettled,
    PayoutNotFound,
    ValidationFailed,
)
from trickle.ledger import AccountKind
from trickle.models import Payee, Payout, Transfer
from trickle.runtime import Runtime
from trickle.settings import Settings

UNIT = 1_000_000_000  # 1.00 USD at scale 9: the default minimum claim


@pytest.fixture(autouse=True)
def frozen_clock(runtime: Runtime) -> None:
    runtime.clock = lambda: NOW


def _balance(runtime: Runtime, kind: AccountKind, owner: str) -> int:
    with transaction(runtime.sessions) as session:
        account = ledger.account(session, kind, owner, asset(runtime), runtime.clock())
        return ledger.balance(session, account.id)


def _payee_balance(runtime: Runtime, payee: Payee) -> int:
    return _balance(runtime, AccountKind.PAYEE, f"payee:{payee.id}")


def _clearing(runtime: Runtime) -> int:
    return _balance(runtime, AccountKind.PAYOUT_CLEARING, "manual")


def _settled(runtime: Runtime) -> int:
    return _balance(runtime, AccountKind.PAYOUT_SETTLED, "manual")


def _claim(
    runtime: Runtime, user_id: int, payee: str, key: str, amount_minor: int | None = None
) -> payouts.Claimed:
    with transaction(runtime.sessions) as session:
        return payouts.claim(
            session,
            user_id=user_id,
            payee_name=payee,
            amount_minor=amount_minor,
            idempotency_key=key,
            settings=runtime.settings,
            now=runtime.clock(),
        )


def _mark(runtime: Runtime, payout_id: int, outcome: str, note: str) -> Payout:
    with transaction(runtime.sessions) as session:
        if outcome == "paid":
            return payouts.mark_paid(
                session, payout_id, reference=note, settings=runtime.settings, now=runtime.clock()
            )
        return payouts.mark_failed(
            session, payout_id, reason=note, settings=runtime.settings, now=runtime.clock()
        )


def _earning_creator(runtime: Runtime, name: str, available: int, held: int = 0) -> Payee:
    creator = create_user(runtime)
    payee = create_payee(runtime, creator.id, name)
    earn(runtime, payee.id, available, "https://a.example", at=NOW - dt.timedelta(days=1))
    if held:
        earn(runtime, payee.id, held, "https://a.example", at=NOW - dt.timedelta(seconds=30))
    return payee


def _claim_request(
    client: TestClient, auth: dict[str, str], key: str, body: dict[str, object]
) -> tuple[int, dict[str, object], dict[str, str]]:
    response = client.post("/api/v1/claims", json=body, headers={**auth, "Idempotency-Key": key})
    return response.status_code, response.json(), dict(response.headers)


# --- claims ---------------------------------------------------------------------------------


def test_a_claim_moves_exactly_the_available_earnings(runtime: Runtime) -> None:
    payee = _earning_creator(runtime, "claimer", available=3 * UNIT, held=UNIT // 2)
    claimed = _claim(runtime, payee.user_id, "claimer", "claim-0001")
    assert not claimed.replayed
    payout = claimed.payout
    assert (payout.amount_minor, payout.state, payout.provider) == (3 * UNIT, "pending", "manual")
    assert _payee_balance(runtime, payee) == UNIT // 2  # the held part stays
    assert _clearing(runtime) == 3 * UNIT
    with transaction(runtime.sessions) as session:
        transfer = session.query(Transfer).filter_by(kind="claim").one()
    assert (transfer.amount_minor, transfer.idempotency_key) == (3 * UNIT, f"payout:{payout.id}")
    with pytest.raises(ClaimBelowMinimum, match="is available"):
        _claim(runtime, payee.user_id, "claimer", "claim-0002")


def test_a_claim_of_part_of_the_earnings(runtime: Runtime) -> None:
    payee = _earning_creator(runtime, "partial", available=5 * UNIT)
    assert _claim(runtime, payee.user_id, "partial", "part-0001", 2 * UNIT).payout.amount_minor == (
        2 * UNIT
    )
    assert _payee_balance(runtime, payee) == 3 * UNIT
    with pytest.raises(InsufficientFunds, match=r"only 3\.00 is available"):
        _claim(runtime, payee.user_id, "partial", "part-0002", 4 * UNIT)
    with pytest.raises(ClaimBelowMinimum, match="was asked"):
        _claim(runtime, payee.user_id, "partial", "part-0003", UNIT - 1)
    assert _payee_balance(runtime, payee) == 3 * UNIT


def test_held_earnings_cannot_be_claimed(runtime: Runtime) -> None:
    creator = create_user(runtime)
    payee = create_payee(runtime, creator.id, "all-held")
    earn(runtime, payee.id, 5 * UNIT, "https://a.example", at=NOW - dt.timedelta(seconds=30))
    with pytest.raises(ClaimBelowMinimum, match=r"0\.00 is available"):
        _claim(runtime, creator.id, "all-held", "held-0001")
    with pytest.raises(InsufficientFunds):
        _claim(runtime, creator.id, "all-held", "held-0002", UNIT)
    runtime.clock = lambda: NOW + dt.timedelta(hours=1)
    assert _claim(runtime, creator.id, "all-held", "held-0003").payout.amount_minor == 5 * UNIT


def test_a_verified_sites_earnings_can_be_claimed_sooner(runtime: Runtime) -> None:
    assert (runtime.settings.claim_hold_s, runtime.settings.claim_hold_verified_s) == (3600, 600)
    creator = create_user(runtime)
    payee = create_payee(runtime, creator.id, "verified-claims")
    add_site(runtime, payee.id, "https://mine.example")
    quarter_hour_ago = NOW - dt.timedelta(minutes=15)
    earn(runtime, payee.id, 2 * UNIT, "https://mine.example", at=quarter_hour_ago)
    earn(runtime, payee.id, 5 * UNIT, "https://not-proven.example", at=quarter_hour_ago)
    earn(runtime, payee.id, 3 * UNIT, "https://mine.example", at=NOW - dt.timedelta(minutes=5))
    with pytest.raises(InsufficientFunds, match=r"only 2\.00 is available.*600 s from verified"):
        _claim(runtime, creator.id, "verified-claims", "verified-0001", 3 * UNIT)
    assert _claim(runtime, creator.id, "verified-claims", "verified-0002").payout.amount_minor == (
        2 * UNIT
    )
    runtime.clock = lambda: NOW + dt.timedelta(minutes=5)
    assert _claim(runtime, creator.id, "verified-claims", "verified-0003").payout.amount_minor == (
        3 * UNIT
    )
    runtime.clock = lambda: quarter_hour_ago + dt.timedelta(hours=1)
    assert _claim(runtime, creator.id, "verified-claims", "verified-0004").payout.amount_minor == (
        5 * UNIT
    )
    assert _payee_balance(runtime, payee) == 0


def test_below_the_minimum_nothing_moves(runtime: Runtime) -> None:
    payee = _earning_creator(runtime, "tiny", available=UNIT - 1)
    with pytest.raises(ClaimBelowMinimum, match=r"at least 1\.00 USD"):
        _claim(runtime, payee.user_id, "tiny", "tiny-0001")
    assert _payee_balance(runtime, payee) == UNIT - 1
    with transaction(runtime.sessions) as session:
        assert session.query(Payout).count() == 0


def test_the_same_key_claims_once(runtime: Runtime) -> None:
    payee = _earning_creator(runtime, "replayed", available=2 * UNIT)
    first = _claim(runtime, payee.user_id, "replayed", "same-key-1")
    earn(runtime, payee.id, 7 * UNIT, None, at=NOW - dt.timedelta(days=1))
    again = _claim(runtime, payee.user_id, "replayed", "same-key-1")
    assert again.replayed and again.payout.id == first.payout.id
    assert again.payout.amount_minor == 2 * UNIT
    with pytest.raises(IdempotencyConflict):
        _claim(runtime, payee.user_id, "replayed", "same-key-1", 3 * UNIT)
    assert _payee_balance(runtime, payee) == 7 * UNIT


def test_claims_need_your_own_payee_and_a_sane_key(runtime: Runtime) -> None:
    payee = _earning_creator(runtime, "not-yours", available=2 * UNIT)
    stranger = create_user(runtime)
    with pytest.raises(Exception, match="you have no payee") as caught:
        _claim(runtime, stranger.id, "not-yours", "steal-0001")
    assert caught.value.__class__.__name__ == "PayeeNotFound"
    with pytest.raises(ValidationFailed):
        _claim(runtime, payee.user_id, "not-yours", "")
    assert _payee_balance(runtime, payee) == 2 * UNIT


def _race(runtime: Runtime, user_id: int, payee: str, keys: list[str]) -> list[object]:
    barrier = threading.Barrier(len(keys))
    outcomes: list[object] = []
    lock = threading.Lock()

    def claim(key: str) -> None:
        barrier.wait()
        try:
            result: object = _claim(runtime, user_id, payee, key)
        except ClaimBelowMinimum as exc:
            result = exc
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=claim, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_ten_racing_claims_with_different_keys_pay_once(runtime: Runtime) -> None:
    payee = _earning_creator(runtime, "racer", available=4 * UNIT)
    # The clearing account exists already: its creation must not serialize the racers by luck.
    assert _clearing(runtime) == 0
    outcomes = _race(runtime, payee.user_id, "racer", [f"race-key-{i:02}" for i in range(10)])
    won = [o for o in outcomes if isinstance(o, payouts.Claimed)]
    lost = [o for o in outcomes if isinstance(o, ClaimBelowMinimum)]
    assert (len(won), len(lost)) == (1, 9)
    assert won[0].payout.amount_minor == 4 * UNIT
    with transaction(runtime.sessions) as session:
        assert session.query(Payout).count() == 1
        assert session.query(Transfer).filter_by(kind="claim").count() == 1
    assert (_payee_balance(runtime, payee), _clearing(runtime)) == (0, 4 * UNIT)


def test_ten_racing_retries_of_one_key_pay_once(runtime: Runtime) -> None:
    payee = _earning_creator(runtime, "retrier", available=4 * UNIT)
    assert _clearing(runtime) == 0
    outcomes = _race(runtime, payee.user_id, "retrier", ["one-key-01"] * 10)
    claims = [o for o in outcomes if isinstance(o, payouts.Claimed)]
    assert len(claims) == 10
    assert len({c.payout.id for c in claims}) == 1
    assert sum(not c.replayed for c in claims) == 1
    assert (_payee_balance(runtime, payee), _clearing(runtime)) == (0, 4 * UNIT)


# --- the operator ---------------------------------------------------------------------------


def test_marking_paid_settles_the_money(runtime: Runtime) -> None:
    payee = _earning_creator(runtime, "paid-out", available=2 * UNIT)
    payout = _claim(runtime, payee.user_id, "paid-out", "pay-0001").payout
    paid = _mark(runtime, payout.id, "paid", "  SEPA   2026-0042 ")
    assert (paid.state, paid.external_reference, paid.settled_at) == ("paid", "SEPA 2026-0042", NOW)
    assert (_clearing(runtime), _settled(runtime), _payee_balance(runtime, payee)) == (
        0,
        2 * UNIT,
        0,
    )
    with transaction(runtime.sessions) as session:
        transfer = session.query(Transfer).filter_by(kind="payout_paid").one()
    assert (transfer.idempotency_key, transfer.reference) == (
        f"payout:{payout.id}",
        "SEPA 2026-0042",
    )
    for outcome in ("paid", "failed"):
        with pytest.raises(PayoutAlreadySettled, match="already paid"):
            _mark(runtime, payout.id, outcome, "again")
    assert (_clearing(runtime), _settled(runtime)) == (0, 2 * UNIT)


def test_a_failed_payout_returns_the_money_to_the_earnings(runtime: Runtime) -> None:
    payee = _earning_creator(runtime, "bounced", available=2 * UNIT)
    payout = _claim(runtime, payee.user_id, "bounced", "fail-0001").payout
    failed = _mark(runtime, payout.id, "failed", "IBAN closed")
    assert (failed.state, failed.external_reference) == ("failed", "IBAN closed")
    assert (_clearing(runtime), _settled(runtime), _payee_balance(runtime, payee)) == (
        0,
        0,
        2 * UNIT,
    )
    with pytest.raises(PayoutAlreadySettled, match="already failed"):
        _mark(runtime, payout.id, "paid", "late")
    # Returned money is not "recent earnings": it may be claimed again at once.
    with transaction(runtime.sessions) as session:
        (found,) = earnings.for_creator(
            session, payee.user_id, days=1, settings=runtime.settings, now=NOW
        )
    assert found.standing.available_minor == 2 * UNIT
    (today,) = found.days
    assert (today.claimed_minor, today.returned_minor) == (2 * UNIT, 2 * UNIT)
    again = _claim(runtime, payee.user_id, "bounced", "fail-0002")
    assert again.payout.amount_minor == 2 * UNIT and again.payout.id != payout.id


def test_marking_needs_a_known_payout_and_a_note(runtime: Runtime) -> None:
    with pytest.raises(PayoutNotFound):
        _mark(runtime, 999, "paid", "x")
    payee = _earning_creator(runtime, "noted", available=2 * UNIT)
    payout = _claim(runtime, payee.user_id, "noted", "note-0001").payout
    for note in ("", "   ", "x" * 201, "bell\u0007"):
        with pytest.raises(ValidationFailed):
            _mark(runtime, payout.id, "paid", note)
    assert _mark(runtime, payout.id, "paid", "ok").state == "paid"


def test_racing_marks_settle_once(runtime: Runtime) -> None:
    payee = _earning_creator(runtime, "double-mark", available=2 * UNIT)
    payout = _claim(runtime, payee.user_id, "double-mark", "mark-0001").payout
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def mark(outcome: str) -> None:
        barrier.wait()
        try:
            outcomes.append(_mark(runtime, payout.id, outcome, f"op {outcome}").state)
        except PayoutAlreadySettled:
            outcomes.append("refused")

    threads = [threading.Thread(target=mark, args=(o,)) for o in ["paid", "failed"] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("refused") == 5
    assert _clearing(runtime) == 0
    assert _settled(runtime) + _payee_balance(runtime, payee) == 2 * UNIT


# --- the API --------------------------------------------------------------------------------


def test_claiming_through_the_api_is_idempotent(runtime: Runtime, client: TestClient) -> None:
    payee = _earning_creator(runtime, "api-claim", available=2 * UNIT)
    user = create_user(runtime)
    with transaction(runtime.sessions) as session:  # hand the payee to a user with a token
        row = session.get(Payee, payee.id)
        assert row is not None
        row.user_id = user.id
    status, body, _ = _claim_request(client, user.auth, "api-claim-1", {"payee": "api-claim"})
    assert status == 201, body
    assert body == {
        "id": body["id"],
        "payee": "api-claim",
        "amount_minor": str(2 * UNIT),
        "currency": "USD",
        "scale": 9,
        "state": "pending",
        "provider": "manual",
        "external_reference": None,
        "created_at": "2026-03-10T12:00:00Z",
        "settled_at": None,
    }
    status, again, headers = _claim_request(
        client, user.auth, "api-claim-1", {"payee": "api-claim"}
    )
    assert (status, again, headers.get("idempotent-replayed")) == (201, body, "true")
    status, error, _ = _claim_request(
        client, user.auth, "api-claim-1", {"payee": "api-claim", "amount_minor": "1"}
    )
    assert (status, error["error"]["code"]) == (422, "idempotency_key_reused")  # type: ignore[index]
    status, error, _ = _claim_request(client, user.auth, "api-claim-2", {"payee": "api-claim"})
    assert (status, error["error"]["code"]) == (409, "claim_below_minimum")  # type: ignore[index]

    listed = client.get("/api/v1/payouts", headers=user.auth).json()
    assert listed == {"payouts": [body]}
    stranger = create_user(runtime)
    assert client.get("/api/v1/payouts", headers=stranger.auth).json() == {"payouts": []}


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"payee": "api-bad"}, {}, 400, "idempotency_key_required"),
        ({"payee": "api-bad", "amount_minor": 5}, None, 422, "validation_failed"),
        ({"payee": "api-bad", "amount_minor": "1.5"}, None, 422, "validation_failed"),
        ({"payee": "api-bad", "amount_minor": "0"}, None, 422, "invalid_amount"),
        (
            {"payee": "api-bad", "amount_minor": "99999999999999999999"},
            None,
            422,
            "validation_failed",
        ),
        ({"payee": "api-bad", "amount_minor": str(10 * UNIT)}, None, 409, "insufficient_funds"),
        ({"payee": "api-bad", "extra": True}, None, 422, "validation_failed"),
        ({"payee": "someone-elses"}, None, 404, "payee_not_found"),
        ({"payee": "no-such-payee"}, None, 404, "payee_not_found"),
    ],
)
def test_bad_claims_are_typed_errors(
    runtime: Runtime,
    client: TestClient,
    body: dict[str, object],
    headers: dict[str, str] | None,
    status: int,
    code: str,
) -> None:
    user = create_user(runtime)
    mine = create_payee(runtime, user.id, "api-bad")
    earn(runtime, mine.id, 2 * UNIT, None, at=NOW - dt.timedelta(days=1))
    other = _earning_creator(runtime, "someone-elses", available=2 * UNIT)
    sent = {**user.auth, "Idempotency-Key": "bad-claim-1"} if headers is None else user.auth
    response = client.post("/api/v1/claims", json=body, headers=sent)
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code
    assert _payee_balance(runtime, mine) == 2 * UNIT
    assert _payee_balance(runtime, other) == 2 * UNIT


# --- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The common arguments that point ``trickle`` at the test database."""
    monkeypatch.setenv("TRICKLE_KEY_ENCRYPTION_KEY", settings.key_encryption_key)
    return ["--database-url", settings.database_url, "--data-dir", str(settings.data_dir)]


def test_the_operator_workflow_from_the_cli(
    runtime: Runtime, cli: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = _earning_creator(runtime, "cli-first", available=2 * UNIT + 5)
    second = _earning_creator(runtime, "cli-second", available=3 * UNIT)
    one = _claim(runtime, first.user_id, "cli-first", "cli-0001").payout
    two = _claim(runtime, second.user_id, "cli-second", "cli-0002").payout
    capsys.readouterr()

    assert main(["payouts", "list", *cli]) == 0
    listed = capsys.readouterr().out
    assert "cli-first" in listed and "2.000000005 USD" in listed and "2 payout(s)" in listed

    out = tmp_path / "pending.csv"
    assert main(["payouts", "export", "--csv", str(out), *cli]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["id"], r["payee"], r["amount"], r["amount_minor"], r["state"]) for r in rows] == [
        (str(one.id), "cli-first", "2.000000005", str(2 * UNIT + 5), "pending"),
        (str(two.id), "cli-second", "3.00", str(3 * UNIT), "pending"),
    ]
    capsys.readouterr()

    assert main(["payouts", "mark", str(one.id), "paid", "--reference", "BANK-1", *cli]) == 0
    assert "marked paid" in capsys.readouterr().out
    assert main(["payouts", "mark", str(two.id), "failed", "--reason", "no IBAN", *cli]) == 0
    assert "marked failed" in capsys.readouterr().out
    assert main(["payouts", "mark", str(one.id), "failed", "--reason", "oops", *cli]) == 2
    assert "payout_already_settled" in capsys.readouterr().err
    assert main(["payouts", "mark", "424242", "paid", "--reference", "x", *cli]) == 2
    assert "payout_not_found" in capsys.readouterr().err

    assert main(["payouts", "list", *cli]) == 0
    assert "0 payout(s)" in capsys.readouterr().out
    assert main(["payouts", "export", "--state", "all", *cli]) == 0
    exported = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["state"], r["external_reference"]) for r in exported] == [
        ("paid", "BANK-1"),
        ("failed", "no IBAN"),
    ]
    assert (_settled(runtime), _clearing(runtime)) == (2 * UNIT + 5, 0)
    assert _payee_balance(runtime, second) == 3 * UNIT
    assert main(["ledger", "check", *cli]) == 0


def test_the_csv_export_defuses_formulas(runtime: Runtime) -> None:
    payee = _earning_creator(runtime, "formula", available=2 * UNIT)
    payout = _claim(runtime, payee.user_id, "formula", "csv-0001").payout
    _mark(runtime, payout.id, "paid", '=HYPERLINK("http://evil.example")')
    with transaction(runtime.sessions) as session:
        rows = payouts.listing(session, None)
        out = io.StringIO()
        payouts.write_csv(rows, out, runtime.settings)
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert row["external_reference"].startswith("'=")


def test_mark_needs_its_note(cli: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["payouts", "mark", "1", "paid", *cli])
    assert "--reference" in capsys.readouterr().err
