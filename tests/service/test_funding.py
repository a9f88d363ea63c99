from __future__ import annotations

import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.factories import asset, create_user
from trickle import funding, money
from trickle.cli import main
from trickle.db import transaction
from trickle.errors import InvalidAmount, VoucherAlreadyRedeemed
from trickle.models import Voucher
from trickle.runtime import Runtime


def _mint(runtime: Runtime, amount_minor: int = 5_000_000_000, count: int = 1) -> list[str]:
    with transaction(runtime.sessions) as session:
        return funding.create_vouchers(
            session, amount_minor=amount_minor, currency="USD", count=count, now=runtime.clock()
        )


def _redeem(client: TestClient, token: str, code: str, key: str) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/api/v1/vouchers/redeem",
        json={"code": code},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )
    return response.status_code, response.json()


def test_a_reader_redeems_a_voucher_into_their_balance(
    runtime: Runtime, client: TestClient
) -> None:
    reader = create_user(runtime)
    (code,) = _mint(runtime)
    status, body = _redeem(client, reader.token, code, "redeem-0001")
    assert status == 200
    assert body == {
        "amount_minor": "5000000000",
        "balance_minor": "5000000000",
        "currency": "USD",
        "scale": 9,
    }
    balance = client.get("/api/v1/balance", headers=reader.auth).json()
    assert balance == {"balance_minor": "5000000000", "currency": "USD", "scale": 9}


def test_codes_are_stored_only_as_hashes(runtime: Runtime) -> None:
    (code,) = _mint(runtime)
    with transaction(runtime.sessions) as session:
        (row,) = session.query(Voucher).all()
    assert code not in row.code_hash and row.code_hash == funding.code_hash(code)


def test_codes_forgive_case_spaces_and_dashes(runtime: Runtime, client: TestClient) -> None:
    reader = create_user(runtime)
    (code,) = _mint(runtime)
    sloppy = code.lower().replace("-", " ")
    assert _redeem(client, reader.token, sloppy, "redeem-0002")[0] == 200


def test_a_voucher_redeems_once_even_for_another_reader(
    runtime: Runtime, client: TestClient
) -> None:
    first, second = create_user(runtime), create_user(runtime)
    (code,) = _mint(runtime)
    assert _redeem(client, first.token, code, "redeem-0003")[0] == 200
    status, body = _redeem(client, second.token, code, "redeem-0004")
    assert (status, body["error"]["code"]) == (409, "voucher_already_redeemed")  # type: ignore[index]
    status, body = _redeem(client, first.token, code, "redeem-0005")
    assert status == 409


def test_a_retried_request_replays_the_first_answer(runtime: Runtime, client: TestClient) -> None:
    reader = create_user(runtime)
    (code,) = _mint(runtime)
    first = _redeem(client, reader.token, code, "redeem-0006")
    again = client.post(
        "/api/v1/vouchers/redeem",
        json={"code": code},
        headers={**reader.auth, "Idempotency-Key": "redeem-0006"},
    )
    assert again.status_code == 200 and again.json() == first[1]
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post(
        "/api/v1/vouchers/redeem",
        json={"code": "TRK-OTHER-CODE"},
        headers={**reader.auth, "Idempotency-Key": "redeem-0006"},
    )
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")
    balance = client.get("/api/v1/balance", headers=reader.auth).json()
    assert balance["balance_minor"] == "5000000000"


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, {"code": "TRK-AAAA"}, 400, "idempotency_key_required"),
        ({"Idempotency-Key": "k-000001"}, {"code": "TRK-NOPE-NOPE"}, 404, "voucher_invalid"),
        ({"Idempotency-Key": "k-000002"}, {"code": 5}, 422, "validation_failed"),
        ({"Idempotency-Key": "k-000003"}, {"code": "TRK-AAAA", "x": 1}, 422, "validation_failed"),
        ({"Idempotency-Key": "short"}, {"code": "TRK-AAAA"}, 422, "validation_failed"),
    ],
)
def test_bad_redemptions_get_typed_errors(
    runtime: Runtime,
    client: TestClient,
    headers: dict[str, str],
    body: object,
    status: int,
    code: str,
) -> None:
    reader = create_user(runtime)
    response = client.post("/api/v1/vouchers/redeem", json=body, headers={**reader.auth, **headers})
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


def test_two_readers_racing_for_one_code_exactly_one_wins(runtime: Runtime) -> None:
    readers = [create_user(runtime) for _ in range(10)]
    (code,) = _mint(runtime)
    barrier = threading.Barrier(len(readers))
    outcomes: list[str] = []

    def redeem(user_id: int) -> None:
        barrier.wait()
        try:
            with transaction(runtime.sessions) as session:
                funding.redeem_voucher(
                    session, code=code, user_id=user_id, asset=asset(runtime), now=runtime.clock()
                )
            outcomes.append("won")
        except VoucherAlreadyRedeemed:
            outcomes.append("lost")

    threads = [threading.Thread(target=redeem, args=(r.id,)) for r in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost"] * 9 + ["won"]
    with transaction(runtime.sessions) as session:
        total = sum(
            funding.reader_balance(session, r.id, asset(runtime), runtime.clock()) for r in readers
        )
    assert total == 5_000_000_000


def test_a_webhook_delivered_twice_tops_up_once(runtime: Runtime) -> None:
    reader = create_user(runtime)
    for _ in range(2):
        with transaction(runtime.sessions) as session:
            topup = funding.record_topup(
                session,
                provider="card",
                external_id="evt_123",
                user_id=reader.id,
                amount_minor=700,
                asset=asset(runtime),
                now=runtime.clock(),
            )
    assert topup.replayed and topup.balance_minor == 700


def test_cli_mints_codes_that_redeem(
    runtime: Runtime,
    client: TestClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = runtime.settings
    args = ["--database-url", settings.resolved_database_url, "--data-dir", str(tmp_path)]
    out = tmp_path / "codes.txt"
    monkeypatch.setenv("TRICKLE_KEY_ENCRYPTION_KEY", settings.key_encryption_key)
    assert (
        main(
            ["vouchers", "create", "--amount", "2.50", "--count", "3", "--output", str(out), *args]
        )
        == 0
    )
    assert out.stat().st_mode & 0o077 == 0
    codes = out.read_text().split()
    assert len(codes) == 3 and len(set(codes)) == 3
    reader = create_user(runtime)
    status, body = _redeem(client, reader.token, codes[0], "redeem-cli-1")
    assert (status, body["amount_minor"]) == (200, "2500000000")
    assert main(["ledger", "check", *args]) == 0
    assert "ledger check passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "scale", "minor"),
    [("5.00", 9, 5_000_000_000), ("0.6", 9, 600_000_000), ("7", 2, 700), ("0.01", 2, 1)],
)
def test_decimal_amounts_parse_exactly(text: str, scale: int, minor: int) -> None:
    assert money.parse_decimal(text, scale) == minor


@pytest.mark.parametrize("text", ["-1", "0", "1.001", "1e3", "abc", "", "1.", ".5", "99999999999"])
def test_bad_decimal_amounts_are_refused(text: str) -> None:
    with pytest.raises(InvalidAmount):
        money.parse_decimal(text, 2 if text != "99999999999" else 9)


def test_amounts_format_for_people() -> None:
    assert money.format_minor(5_000_000_000, 9) == "5.00"
    assert money.format_minor(333_333, 9) == "0.000333333"
    assert money.format_minor(-150, 2) == "-1.50"
    assert money.format_minor(7, 0) == "7"
