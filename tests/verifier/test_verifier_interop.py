"""Receipts are plain JWS (docs/receipts.md §6): PyJWT-made tokens verify with our verifier, and
our valid vectors verify with PyJWT and joserfc against the JWK Set."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwt as joserfc_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet as JoseKeySet
from joserfc.jws import JWSRegistry

from trickle_verifier import ReceiptError, Verifier

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "receipts.json").read_text("utf-8")
)
PYJWT_OPTIONS = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}


def _private_key(generator: ModuleType) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(generator._seed("test-key-1"))


def _pyjwt_token(generator: ModuleType, claims: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(
        claims,
        _private_key(generator),
        algorithm="EdDSA",
        headers={"kid": "test-key-1", "typ": "trickle-receipt+jwt", **headers},
    )


def test_pyjwt_token_verifies(verifier: Verifier, generator: ModuleType) -> None:
    claims = generator.claims(seq=7, amt="700", tot="4900", bnd="session-42")
    token = _pyjwt_token(generator, claims)
    receipt = verifier.verify(token, binding="session-42")
    assert (receipt.seq, receipt.amount_minor, receipt.total_minor) == (7, 700, 4900)
    assert receipt.binding == "session-42"


def test_pyjwt_token_with_json_number_amount_is_rejected(
    verifier: Verifier, generator: ModuleType
) -> None:
    token = _pyjwt_token(generator, generator.claims(amt=100))
    with pytest.raises(ReceiptError) as caught:
        verifier.verify(token)
    assert caught.value.code == "invalid_amount"


def test_pyjwt_token_without_our_typ_is_rejected(verifier: Verifier, generator: ModuleType) -> None:
    token = _pyjwt_token(generator, generator.claims(), typ="JWT")
    with pytest.raises(ReceiptError) as caught:
        verifier.verify(token)
    assert caught.value.code == "wrong_type"


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda vector: vector["name"])
def test_valid_vector_verifies_with_pyjwt(vector: dict[str, Any]) -> None:
    key_set = jwt.PyJWKSet.from_dict(VECTORS["jwks"])
    kid = jwt.get_unverified_header(vector["token"])["kid"]
    decoded = jwt.decode(
        vector["token"],
        key_set[kid].key,
        algorithms=["EdDSA"],
        audience=VECTORS["verifier"]["audience"],
        issuer=VECTORS["verifier"]["issuer"],
        options=PYJWT_OPTIONS,  # type: ignore[arg-type]
    )
    assert decoded == vector["claims"]


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda vector: vector["name"])
def test_valid_vector_verifies_with_joserfc(vector: dict[str, Any]) -> None:
    key_set = JoseKeySet.import_key_set(VECTORS["jwks"])
    # joserfc flags the "EdDSA" name as deprecated by RFC 9864 (in favour of "Ed25519"); the
    # receipt profile pins "EdDSA", which every JOSE library still verifies.
    with pytest.warns(SecurityWarning, match="RFC 9864"):
        token = joserfc_jwt.decode(
            vector["token"],
            key_set,
            algorithms=["EdDSA"],
            # joserfc rejects header members it does not know; the profile ignores them.
            registry=JWSRegistry(algorithms=["EdDSA"], strict_check_header=False),
        )
    assert token.claims == vector["claims"]
    assert token.header["typ"] == "trickle-receipt+jwt"


def test_bad_signature_vectors_fail_with_pyjwt() -> None:
    key_set = jwt.PyJWKSet.from_dict(VECTORS["jwks"])
    for vector in VECTORS["invalid"]:
        if vector["code"] != "bad_signature":
            continue
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(
                vector["token"],
                key_set["test-key-1"].key,
                algorithms=["EdDSA"],
                options={"verify_signature": True, "verify_aud": False, **PYJWT_OPTIONS},  # type: ignore[arg-type]
            )
