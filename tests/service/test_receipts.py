from __future__ import annotations

import json

import jwt
import pytest
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet as JoseKeySet

from trickle import keys
from trickle.db import transaction
from trickle.receipts import ReceiptClaims, ReceiptSigner, new_stream_id
from trickle.runtime import Runtime
from trickle_verifier import KeySet, Verifier

NOW = 1_795_000_000


def _claims(**changes: object) -> ReceiptClaims:
    values: dict[str, object] = {
        "iss": "https://trickle.test",
        "aud": "https://blog.example",
        "pay": "https://trickle.test/p/alice",
        "sid": new_stream_id(),
        "seq": 1,
        "amount_minor": 333_333,
        "total_minor": 333_333,
        "currency": "USD",
        "scale": 9,
        "issued_at": NOW,
        "expires_at": NOW + 300,
    }
    values.update(changes)
    return ReceiptClaims(**values)  # type: ignore[arg-type]


def _verifier(runtime: Runtime) -> Verifier:
    return Verifier(
        issuer="https://trickle.test",
        audience="https://blog.example",
        payees=["https://trickle.test/p/alice"],
        keys=KeySet.from_jwks(runtime.key_ring.current.jwks),
        clock=lambda: NOW + 1,
    )


def test_a_signed_receipt_verifies_with_the_trickle_verifier(runtime: Runtime) -> None:
    token = ReceiptSigner(runtime.key_ring.current.active).sign(
        _claims(seq=3, amount_minor=5, total_minor=15, binding="visitor-42")
    )
    receipt = _verifier(runtime).verify(token, binding="visitor-42")
    assert (receipt.seq, receipt.amount_minor, receipt.total_minor) == (3, 5, 15)
    assert receipt.binding == "visitor-42"


def test_a_signed_receipt_carries_exactly_the_documented_claims(runtime: Runtime) -> None:
    token = ReceiptSigner(runtime.key_ring.current.active).sign(_claims())
    header = jwt.get_unverified_header(token)
    assert header == {
        "alg": "EdDSA",
        "kid": runtime.key_ring.current.active.kid,
        "typ": "trickle-receipt+jwt",
    }
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {
        "iss",
        "aud",
        "pay",
        "sid",
        "seq",
        "amt",
        "tot",
        "cur",
        "scale",
        "iat",
        "exp",
        "jti",
    }
    assert payload["amt"] == "333333" and isinstance(payload["amt"], str)


def test_pyjwt_verifies_service_receipts_against_the_jwks(runtime: Runtime) -> None:
    token = ReceiptSigner(runtime.key_ring.current.active).sign(_claims())
    (jwk,) = runtime.key_ring.current.jwks["keys"]
    key = jwt.PyJWK(jwk)
    claims = jwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        audience="https://blog.example",
        issuer="https://trickle.test",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["tot"] == "333333"


def test_joserfc_verifies_service_receipts_against_the_jwks(runtime: Runtime) -> None:
    token = ReceiptSigner(runtime.key_ring.current.active).sign(_claims())
    key_set = JoseKeySet.import_key_set(json.loads(json.dumps(runtime.key_ring.current.jwks)))
    # joserfc warns that RFC 9864 deprecates the name "EdDSA" (for "Ed25519"); today's libraries,
    # PyJWT and panva/jose included, all speak "EdDSA", which is why receipts use it.
    with pytest.warns(SecurityWarning, match="RFC 9864"):
        obj = jws.deserialize_compact(token, key_set, algorithms=["EdDSA"])
    assert json.loads(obj.payload)["pay"] == "https://trickle.test/p/alice"


def test_receipts_signed_before_a_rotation_still_verify(runtime: Runtime) -> None:
    before = ReceiptSigner(runtime.key_ring.current.active).sign(_claims())
    with transaction(runtime.sessions) as session:
        rotation = keys.rotate(session, runtime.kek, runtime.settings, runtime.clock())
    runtime.clock = lambda: rotation.activates_at  # the new key signs from then on
    runtime.reload_keys()
    assert runtime.key_ring.current.active.kid == rotation.kid
    after = ReceiptSigner(runtime.key_ring.current.active).sign(_claims())
    verifier = _verifier(runtime)
    assert verifier.verify(before).total_minor == verifier.verify(after).total_minor


@pytest.mark.parametrize(
    "changes",
    [
        {"amount_minor": -1},
        {"amount_minor": 5, "total_minor": 4},
        {"total_minor": 2**63},
        {"sid": "has space"},
        # Python's "$" also matches before a final newline: the rules match whole strings
        {"sid": "abc\n"},
        {"order_ref": "article-1\n"},
        {"seq": 0},
        {"expires_at": NOW},
    ],
)
def test_the_signer_refuses_claims_no_verifier_would_accept(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _claims(**changes)


def test_stream_ids_are_random_and_url_safe() -> None:
    ids = {new_stream_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 22 and i.replace("-", "").replace("_", "").isalnum() for i in ids)
