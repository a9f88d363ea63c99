"""Private-payment tokens: parsing, epochs, the key ring's checks, the key document, and the
ledger's token spends (on SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import importlib.util
import json
import secrets
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from tests.conftest import REPO
from tests.factories import buy_tokens, charge_accounts, fund_reader
from trickle import ledger, money, tokens, voprf
from trickle.api.tokens import PrivatePaymentIn
from trickle.db import transaction
from trickle.errors import (
    EpochExpired,
    InvalidAmount,
    InvalidToken,
    TooManyTokens,
    UnknownEpoch,
)
from trickle.keys import b64url
from trickle.ledger import AccountKind, TransferKind
from trickle.ledger.tokens import SpendGroups, TokenSpend, post_token_spends
from trickle.models import SpentToken, TokenKey, Transfer
from trickle.runtime import Runtime, bootstrap, load_token_keys
from trickle.settings import Settings

VALUE = 1_000_000  # the default TRICKLE_TOKEN_VALUE_MINOR


def wire(token: tokens.Token) -> dict[str, Any]:
    return {"epoch": token.epoch, "input": b64url(token.input), "output": b64url(token.output)}


# --- parsing ---------------------------------------------------------------------------------


def some_token(epoch: int = 202612) -> tokens.Token:
    return tokens.Token(epoch, secrets.token_bytes(32), secrets.token_bytes(64))


def test_parse_tokens_reads_the_wire_form() -> None:
    sent = [some_token(), some_token(202701)]
    assert tokens.parse_tokens([wire(t) for t in sent], limit=2) == sent


@pytest.mark.parametrize(
    ("raw", "index"),
    [
        ("not a list", None),
        ([], None),
        ([{"epoch": 202612, "input": "x"}], 0),
        ([{"epoch": True, "input": b64url(bytes(32)), "output": b64url(bytes(64))}], 0),
        ([{"epoch": "202612", "input": b64url(bytes(32)), "output": b64url(bytes(64))}], 0),
        ([{"epoch": 202612, "input": b64url(bytes(31)), "output": b64url(bytes(64))}], 0),
        ([{"epoch": 202612, "input": b64url(bytes(32)) + "=", "output": b64url(bytes(64))}], 0),
        ([{"epoch": 202612, "input": b64url(bytes(32)), "output": b64url(bytes(65))}], 0),
        # a non-canonical spelling: the last character's unused bits set
        ([{"epoch": 202612, "input": "A" * 42 + "B", "output": b64url(bytes(64))}], 0),
        ([{"epoch": 202612, "input": b64url(bytes(32)), "output": 7}], 0),
        ([{"epoch": 202612, "input": b64url(bytes(32)), "output": b64url(bytes(64)), "x": 1}], 0),
    ],
)
def test_parse_tokens_refuses_malformed_tokens_naming_the_index(
    raw: object, index: int | None
) -> None:
    with pytest.raises(InvalidToken) as caught:
        tokens.parse_tokens(raw, limit=4)
    assert caught.value.index == index
    assert caught.value.code == "invalid_token"


def test_parse_tokens_refuses_a_token_twice_and_more_than_the_limit() -> None:
    token = some_token()
    with pytest.raises(InvalidToken, match="token 2 repeats token 0") as caught:
        tokens.parse_tokens([wire(token), wire(some_token()), wire(token)], limit=4)
    assert caught.value.index == 2
    with pytest.raises(TooManyTokens):
        tokens.parse_tokens([wire(some_token()) for _ in range(3)], limit=2)


def test_a_token_prints_no_secret() -> None:
    token = some_token()
    assert token.input.hex() not in repr(token) and "input" not in repr(token)


# --- epochs ------------------------------------------------------------------------------------


def test_epochs_are_utc_months() -> None:
    assert tokens.epoch_of(dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)) == 202612
    assert tokens.epoch_of(dt.datetime(2027, 1, 1, tzinfo=dt.UTC)) == 202701
    start, end = tokens.epoch_bounds(202612)
    assert (start, end) == (
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
    )


# --- the key ring --------------------------------------------------------------------------------


def made_by(key: tokens.TokenKey, epoch: int | None = None) -> tokens.Token:
    """A token as the key's holder would compute it (Evaluate), labelled with ``epoch``."""
    data = secrets.token_bytes(32)
    return tokens.Token(epoch or key.epoch, data, voprf.evaluate(key.secret_key, data))


def test_the_ring_holds_this_epoch_and_the_next_published(runtime: Runtime) -> None:
    now = runtime.clock()
    ring = runtime.token_keys.current
    this = tokens.epoch_of(now)
    following = tokens.epoch_of(tokens.epoch_bounds(this)[1])
    assert set(ring.keys) == {this, following}
    document = tokens.key_document(ring, now)
    assert [k["epoch"] for k in document["keys"]] == [following, this]
    current = document["keys"][1]
    assert current["value_minor"] == str(VALUE)
    assert current["currency"] == "USD" and current["scale"] == 9
    assert current["public_key"] == b64url(ring.keys[this].public_key.to_bytes())
    assert "secret_key" not in repr(ring.keys[this])
    assert ring.issuing(this, now).epoch == this
    with pytest.raises(UnknownEpoch):
        ring.issuing(following, now)  # published ahead, not issuing yet


def test_racing_processes_make_one_key_per_epoch(runtime: Runtime) -> None:
    before = runtime.token_keys.current
    again = load_token_keys(runtime.sessions, runtime.kek, runtime.settings, runtime.clock())
    assert {e: k.public_key for e, k in again.keys.items()} == {
        e: k.public_key for e, k in before.keys.items()
    }
    with transaction(runtime.sessions) as session:
        assert len(session.scalars(select(TokenKey)).all()) == 2


def test_check_accepts_a_token_of_the_key_and_refuses_every_other(runtime: Runtime) -> None:
    now = runtime.clock()
    ring = runtime.token_keys.current
    this = ring.keys[tokens.epoch_of(now)]
    following = next(k for e, k in ring.keys.items() if e != this.epoch)
    assert ring.check(made_by(this), now) is this
    forged = dataclasses.replace(made_by(this), output=secrets.token_bytes(64))
    with pytest.raises(InvalidToken):
        ring.check(forged, now, index=3)
    # made under the next epoch's key, shown as this epoch's (and the other way round)
    with pytest.raises(InvalidToken, match="token 1: "):
        ring.check(made_by(following, this.epoch), now, index=1)
    with pytest.raises(InvalidToken):
        ring.check(made_by(this, following.epoch), now)
    with pytest.raises(UnknownEpoch):
        ring.check(made_by(this, 202001), now)
    with pytest.raises(EpochExpired):
        ring.check(made_by(this), this.spend_until)
    assert ring.check_refundable(made_by(this)) is this  # refundable at any age


def test_a_token_of_another_currencys_key_is_refused(runtime: Runtime) -> None:
    now = runtime.clock()
    euro = dataclasses.replace(runtime.settings, currency="EUR")
    with transaction(runtime.sessions) as session:
        tokens.ensure_keys(session, runtime.kek, euro, now)
    with transaction(runtime.sessions) as session:
        euro_ring = tokens.load_ring(session, runtime.kek, euro, now)
    ring = runtime.token_keys.current
    epoch = tokens.epoch_of(now)
    assert euro_ring.keys[epoch].public_key != ring.keys[epoch].public_key
    with pytest.raises(InvalidToken):
        ring.check(made_by(euro_ring.keys[epoch]), now)


# --- the ledger's token spends -------------------------------------------------------------------


def spend_of(
    runtime: Runtime, bought: list[tokens.Token], payee: int, fee: int, fee_bps: int = 0
) -> TokenSpend:
    amount = VALUE * len(bought)
    return TokenSpend(
        currency="USD",
        epoch=bought[0].epoch,
        nullifiers=tuple(t.nullifier for t in bought),
        payee_account_id=payee,
        fee_account_id=fee,
        amount_minor=amount,
        fee_minor=money.fee_of(amount, fee_bps),
        origin="https://blog.example",
    )


def test_a_token_pays_once_and_the_float_pays_the_payee_and_the_fee(runtime: Runtime) -> None:
    accounts = charge_accounts(runtime, 10 * VALUE, "tokens-payee")
    bought = buy_tokens(runtime, accounts.user_id, 5)
    now = runtime.clock()
    first = spend_of(runtime, bought[:2], accounts.payee, accounts.fee, fee_bps=1000)
    repeat = spend_of(runtime, bought[1:3], accounts.payee, accounts.fee)  # bought[1] again
    other = spend_of(runtime, bought[3:4], accounts.payee, accounts.fee)
    with transaction(runtime.sessions) as session:
        assert post_token_spends(session, [first, repeat, other], now) == [True, False, True]
    with transaction(runtime.sessions) as session:
        assert post_token_spends(session, [first], now) == [False]
        assert ledger.balance(session, accounts.payee) == 3 * VALUE - 200_000
        assert ledger.balance(session, accounts.fee) == 200_000
        assert ledger.balance(session, accounts.reader) == 5 * VALUE
        rows = session.scalars(select(SpentToken)).all()
        assert {r.nullifier for r in rows} == {t.nullifier for t in (*bought[:2], bought[3])}
        assert {r.use for r in rows} == {"spend"} and {r.day for r in rows} == {now.date()}
        spent = session.scalars(select(Transfer).where(Transfer.kind == "token_spend")).all()
        assert sorted(t.amount_minor for t in spent) == [VALUE, 2 * VALUE]
        assert {t.origin for t in spent} == {"https://blog.example"}
        float_account = ledger.account(
            session, AccountKind.TOKEN_FLOAT, "tokens", ledger.Asset("USD", 9), now
        )
        assert ledger.balance(session, float_account.id) == 2 * VALUE
    with transaction(runtime.sessions) as session:
        # the spend that lost to a token spent before moves nothing, even with fresh tokens
        again = spend_of(runtime, [bought[0], bought[4]], accounts.payee, accounts.fee)
        assert post_token_spends(session, [again], now) == [False]
        fresh = spend_of(runtime, bought[4:], accounts.payee, accounts.fee)
        assert post_token_spends(session, [fresh], now) == [True]


def test_the_group_commit_posts_fresh_groups_at_once_and_replays_one_by_one(
    runtime: Runtime,
) -> None:
    """``SpendGroups`` (the private stream's group commit): the same outcomes as
    ``post_token_spends``, by its fast path (every token fresh) and by its fallback."""
    accounts = charge_accounts(runtime, 10 * VALUE, "tokens-payee")
    bought = buy_tokens(runtime, accounts.user_id, 6)
    now = runtime.clock()
    groups = SpendGroups(runtime.engine, runtime.sessions)
    fresh = [spend_of(runtime, [t], accounts.payee, accounts.fee, 1000) for t in bought[:3]]
    assert groups.stage(fresh, now)() == [True, True, True]  # the fast path
    replayed = spend_of(runtime, bought[1:2], accounts.payee, accounts.fee)  # spent just now
    new = spend_of(runtime, bought[3:4], accounts.payee, accounts.fee)
    assert groups.stage([replayed, new], now)() == [False, True]  # rolled back, one by one
    twice = spend_of(runtime, bought[4:5], accounts.payee, accounts.fee)
    assert groups.stage([twice, twice], now)() == [True, False]  # one token twice in a group
    last = spend_of(runtime, bought[5:], accounts.payee, accounts.fee)
    if runtime.engine.dialect.name == "postgresql":  # its statements run in ``finish``:
        staged = groups.stage([last], now)
        with transaction(runtime.sessions) as session:  # a racer spends the token before
            assert post_token_spends(session, [last], now) == [True]
        assert staged() == [False]
    else:  # SQLite wrote the nullifiers in ``stage``, under the write lock: no racer between
        assert groups.stage([last], now)() == [True]
        assert groups.stage([last], now)() == [False]
    wrong = dataclasses.replace(new, amount_minor=2 * VALUE)
    with pytest.raises(InvalidAmount):
        groups.stage([wrong], now)
    with transaction(runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(SpentToken)) == 6
        assert ledger.balance(session, accounts.payee) == 6 * VALUE - 3 * 100_000
        assert ledger.balance(session, accounts.fee) == 3 * 100_000
        assert not ledger.check(session)


def test_a_spend_must_be_worth_its_tokens(runtime: Runtime) -> None:
    accounts = charge_accounts(runtime, 10 * VALUE, "tokens-payee")
    bought = buy_tokens(runtime, accounts.user_id, 2)
    wrong = dataclasses.replace(
        spend_of(runtime, bought, accounts.payee, accounts.fee), amount_minor=3 * VALUE
    )
    with transaction(runtime.sessions) as session, pytest.raises(InvalidAmount):
        post_token_spends(session, [wrong], runtime.clock())
    unknown = dataclasses.replace(
        spend_of(runtime, bought, accounts.payee, accounts.fee), epoch=202001
    )
    with transaction(runtime.sessions) as session, pytest.raises(InvalidAmount):
        post_token_spends(session, [unknown], runtime.clock())


def test_spent_tokens_are_append_only(runtime: Runtime) -> None:
    accounts = charge_accounts(runtime, 10 * VALUE, "tokens-payee")
    bought = buy_tokens(runtime, accounts.user_id, 1)
    with transaction(runtime.sessions) as session:
        spend = spend_of(runtime, bought, accounts.payee, accounts.fee)
        assert post_token_spends(session, [spend], runtime.clock()) == [True]
    with pytest.raises(Exception, match="append-only"), transaction(runtime.sessions) as session:
        session.execute(delete(SpentToken))


def test_issued_tokens_verify_against_the_published_key(runtime: Runtime) -> None:
    user = charge_accounts(runtime, 10 * VALUE, "tokens-payee").user_id
    bought = buy_tokens(runtime, user, 3)
    ring = runtime.token_keys.current
    for token in bought:
        assert ring.check(token, runtime.clock()).epoch == token.epoch
    fund_reader(runtime, user, VALUE)
    with transaction(runtime.sessions) as session:
        issued = session.scalars(
            select(Transfer).where(Transfer.kind == TransferKind.TOKEN_ISSUE.value)
        ).all()
        assert [t.amount_minor for t in issued] == [3 * VALUE]


# --- the ledger check ----------------------------------------------------------------------------


def test_the_ledger_check_catches_a_float_out_of_step_with_its_tokens(settings: Settings) -> None:
    """(Its own runtime: the ``runtime`` fixture would fail on the violations made here.)"""
    runtime = bootstrap(settings)
    try:
        accounts = charge_accounts(runtime, 10 * VALUE, "checked-payee")
        buy_tokens(runtime, accounts.user_id, 2)
        now = runtime.clock()
        with transaction(runtime.sessions) as session:
            assert ledger.check(session) == []
            float_id = ledger.account(
                session, AccountKind.TOKEN_FLOAT, "tokens", ledger.Asset("USD", 9), now
            ).id
            # money into the float that no issued token stands for, and a kind that may not
            # touch the float at all
            for kind in (TransferKind.TOKEN_ISSUE, TransferKind.STREAM):
                ledger.post_transfer(
                    session,
                    ledger.TransferRequest(
                        accounts.reader, float_id, VALUE, "USD", kind, f"forged-{kind}"
                    ),
                    now,
                )
        with transaction(runtime.sessions) as session:
            rules = {violation.rule for violation in ledger.check(session)}
        assert rules == {
            "token_float_matches_tokens",
            "token_transfers_match_tokens",
            "token_float_transfers",
        }
    finally:
        runtime.close()


# --- the protocol's vectors (tests/vectors/token-protocol.json) ---------------------------------

PROTOCOL_PATH = REPO / "tests/vectors/token-protocol.json"
PROTOCOL: dict[str, Any] = json.loads(PROTOCOL_PATH.read_text())


def test_the_committed_protocol_vectors_are_a_fresh_generation() -> None:
    spec = importlib.util.spec_from_file_location(
        "trickle_token_protocol_generate", PROTOCOL_PATH.with_name("generate_token_protocol.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == PROTOCOL_PATH.read_text()


def test_the_service_computes_every_value_of_the_protocol_vectors() -> None:
    secret = voprf.SecretKey.from_bytes(bytes.fromhex(PROTOCOL["secret_key_hex"]))
    (entry,) = PROTOCOL["key_document"]["keys"]
    parse = dt.datetime.fromisoformat
    key = tokens.TokenKey(
        currency=entry["currency"],
        scale=entry["scale"],
        epoch=entry["epoch"],
        value_minor=int(entry["value_minor"]),
        public_key=secret.public_key,
        secret_key=secret,
        issue_from=parse(entry["issue_from"]),
        issue_until=parse(entry["issue_until"]),
        spend_until=parse(entry["spend_until"]),
    )
    assert key.published() == entry
    issuance = PROTOCOL["issuance"]
    blinded = [tokens.b64url_decode(b, 32) for b in issuance["request"]["blinded"]]
    randomness = bytes.fromhex(issuance["proof_randomness_hex"])
    evaluation = voprf.blind_evaluate_batch(secret, blinded, random_scalar=lambda: randomness)
    assert [b64url(e) for e in evaluation.evaluated_elements] == issuance["response"]["evaluated"]
    assert b64url(evaluation.proof) == issuance["response"]["proof"]
    # the client's side: the same blinded elements from its inputs and blinds, then Finalize
    blinds = [bytes.fromhex(b) for b in issuance["blinds_hex"]]
    states = [
        voprf.blind(bytes.fromhex(x), random_scalar=functools.partial(bytes, b))
        for x, b in zip(issuance["inputs_hex"], blinds, strict=True)
    ]
    assert [s.blinded_element for s in states] == blinded
    outputs = voprf.finalize_batch(
        voprf.PublicKey.from_bytes(tokens.b64url_decode(entry["public_key"], 32)),
        states,
        evaluation.evaluated_elements,
        evaluation.proof,
    )
    assert [o.hex() for o in outputs] == issuance["outputs_hex"]
    # the tokens as sent, their nullifiers, and the service's check of them
    sent = tokens.parse_tokens(PROTOCOL["tokens"], limit=2)
    assert [t.nullifier.hex() for t in sent] == PROTOCOL["nullifiers_hex"]
    ring = tokens.TokenKeyRing("USD", {key.epoch: key}, key.issue_from)
    for token in sent:
        assert ring.check(token, key.issue_from) is key
    payment = PROTOCOL["private_payment"]
    PrivatePaymentIn.model_validate(payment["request"])
    price = int(payment["request"]["amount_minor"])
    assert -(-price // key.value_minor) == payment["tokens_needed"] == len(sent)
