"""Every shared vector in tests/vectors/receipts.json, and that the file is reproducible."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from trickle_verifier import (
    RECEIPT_ERRORS,
    CreditTracker,
    MemoryCreditStore,
    Receipt,
    ReceiptError,
    Verifier,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "receipts.json").read_text("utf-8")
)
NOW = VECTORS["verifier"]["now"]


def _now(vector: dict[str, Any]) -> int:
    now: int = vector["now"] if vector["now"] is not None else NOW
    return now


def _expected_fields(claims: dict[str, Any]) -> dict[str, Any]:
    return {
        "iss": claims["iss"],
        "aud": claims["aud"],
        "pay": claims["pay"],
        "sid": claims["sid"],
        "seq": claims["seq"],
        "amount_minor": int(claims["amt"]),
        "total_minor": int(claims["tot"]),
        "currency": claims["cur"],
        "scale": claims["scale"],
        "issued_at": claims["iat"],
        "expires_at": claims["exp"],
        "jti": claims["jti"],
        "binding": claims.get("bnd"),
        "one_time": claims.get("otp", False),
        "order_ref": claims.get("ord"),
    }


def test_vector_file_is_what_the_generator_writes(generator: ModuleType) -> None:
    committed = (Path(__file__).resolve().parents[1] / "vectors" / "receipts.json").read_text(
        "utf-8"
    )
    assert committed == generator.render()


def test_vectors_cover_every_error_code() -> None:
    assert {vector["code"] for vector in VECTORS["invalid"]} == set(RECEIPT_ERRORS)
    assert len(VECTORS["invalid"]) >= 35


def test_vector_names_are_unique() -> None:
    for group in ("valid", "invalid", "credit"):
        names = [vector["name"] for vector in VECTORS[group]]
        assert len(names) == len(set(names)), group


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda vector: vector["name"])
def test_valid_vector(verifier: Verifier, vector: dict[str, Any]) -> None:
    receipt = verifier.verify(vector["token"], binding=vector["binding"], now=_now(vector))
    assert isinstance(receipt, Receipt)
    for name, expected in _expected_fields(vector["claims"]).items():
        actual = getattr(receipt, name)
        assert actual == expected and type(actual) is type(expected), name
    assert receipt.token == vector["token"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda vector: vector["name"])
def test_invalid_vector(verifier: Verifier, vector: dict[str, Any]) -> None:
    expected = RECEIPT_ERRORS[vector["code"]]
    with pytest.raises(ReceiptError) as caught:
        verifier.verify(vector["token"], binding=vector["binding"], now=_now(vector))
    assert caught.value.code == vector["code"]
    assert type(caught.value) is expected
    assert str(caught.value).startswith(f"{vector['code']}: ")


@pytest.mark.parametrize("sequence", VECTORS["credit"], ids=lambda sequence: sequence["name"])
def test_credit_sequence(verifier: Verifier, sequence: dict[str, Any]) -> None:
    tracker = CreditTracker(MemoryCreditStore())
    highest: dict[str, int] = {}
    credited_total = 0
    for step in sequence["steps"]:
        receipt = verifier.verify(step["token"])
        credited = tracker.credit(receipt)
        assert credited == int(step["credited"])
        credited_total += credited
        highest[receipt.sid] = max(highest.get(receipt.sid, 0), receipt.total_minor)
    # The ledger invariant of docs/receipts.md §4: what was credited is the highest tot seen.
    assert credited_total == sum(highest.values())


def test_verify_uses_the_clock_when_now_is_not_given(make_verifier: Any) -> None:
    token = VECTORS["valid"][0]["token"]
    assert make_verifier(clock=lambda: float(NOW)).verify(token).seq == 1
    with pytest.raises(ReceiptError) as caught:
        make_verifier(clock=lambda: float(NOW + 10**6)).verify(token)
    assert caught.value.code == "expired"


def test_leeway_is_configurable(make_verifier: Any) -> None:
    token = VECTORS["valid"][0]["token"]
    exp = VECTORS["valid"][0]["claims"]["exp"]
    strict = make_verifier(leeway_s=0)
    assert strict.verify(token, now=exp).expires_at == exp
    with pytest.raises(ReceiptError, match=r"^expired: "):
        strict.verify(token, now=exp + 1)


@pytest.mark.parametrize("token", [None, 1, b"a.b.c", ["a", "b", "c"], bytearray(b"x")])
def test_non_string_token_is_malformed(verifier: Verifier, token: Any) -> None:
    with pytest.raises(ReceiptError) as caught:
        verifier.verify(token)
    assert caught.value.code == "malformed_jws"


def test_token_size_counts_utf8_bytes(verifier: Verifier) -> None:
    with pytest.raises(ReceiptError) as caught:
        verifier.verify("\u00e9" * 2049)  # 2049 chars, 4098 bytes
    assert caught.value.code == "token_too_large"
    with pytest.raises(ReceiptError) as caught:
        verifier.verify("\ud800" * 2000)  # lone surrogates: 6000 bytes as UTF-8 would write them
    assert caught.value.code == "token_too_large"
    with pytest.raises(ReceiptError) as caught:
        verifier.verify("\u00e9" * 2048)
    assert caught.value.code == "malformed_jws"


def test_header_cache_does_not_change_results(make_verifier: Any) -> None:
    fresh = make_verifier()
    for _ in range(2):  # the second round hits the header cache
        for vector in VECTORS["invalid"]:
            with pytest.raises(ReceiptError) as caught:
                fresh.verify(vector["token"], binding=vector["binding"], now=_now(vector))
            assert caught.value.code == vector["code"], vector["name"]
        for vector in VECTORS["valid"]:
            fresh.verify(vector["token"], binding=vector["binding"], now=_now(vector))


def test_verifier_rejects_bad_configuration(make_verifier: Any) -> None:
    with pytest.raises(TypeError):
        make_verifier(payees="https://trickle.test/p/alice")
    with pytest.raises(TypeError):
        make_verifier(payees=[])
    with pytest.raises(TypeError):
        make_verifier(issuer="")
    with pytest.raises(TypeError):
        make_verifier(keys={"keys": []})
    with pytest.raises(ValueError):
        make_verifier(leeway_s=-1)


def test_receipt_is_frozen(verifier: Verifier) -> None:
    receipt = verifier.verify(VECTORS["valid"][0]["token"])
    with pytest.raises(AttributeError):
        receipt.total_minor = 10**9  # type: ignore[misc]
