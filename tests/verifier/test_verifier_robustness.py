"""Whatever arrives, the verifier returns a Receipt or raises a ReceiptError: bit flips at every
position of a valid receipt, and hypothesis-generated tokens, mutations and signed payloads."""

from __future__ import annotations

import base64
import json
import sys
from types import FrameType, ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trickle_verifier import Receipt, ReceiptError, Verifier
from trickle_verifier._jws import _nesting_depth

NOW = 1795000100
SETTINGS = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TOKEN_CHARS = st.sampled_from(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \n\u00e9\x00"
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
CLAIM_NAMES = st.sampled_from(
    [
        *("iss", "aud", "pay", "sid", "seq", "amt", "tot", "cur", "scale", "iat", "exp", "jti"),
        *("bnd", "otp", "extra"),
    ]
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _outcome(verifier: Verifier, token: Any, binding: str | None = None) -> Receipt | None:
    """Verify; a ReceiptError is the only acceptable failure."""
    try:
        receipt = verifier.verify(token, binding=binding, now=NOW)
    except ReceiptError as exc:
        assert exc.code and isinstance(exc.code, str)
        return None
    assert isinstance(receipt, Receipt)
    _check_receipt_invariants(receipt)
    return receipt


def _check_receipt_invariants(receipt: Receipt) -> None:
    assert type(receipt.amount_minor) is int and type(receipt.total_minor) is int
    assert 0 <= receipt.amount_minor <= receipt.total_minor < 2**63
    assert type(receipt.seq) is int and receipt.seq >= 1
    assert type(receipt.scale) is int and 0 <= receipt.scale <= 18
    assert receipt.expires_at > receipt.issued_at
    if receipt.one_time:
        assert receipt.seq == 1 and receipt.amount_minor == receipt.total_minor


def test_every_bit_flip_is_rejected(verifier: Verifier, vectors: dict[str, Any]) -> None:
    for vector in vectors["valid"][:3]:
        original = vector["token"].encode("ascii")
        for position in range(len(original)):
            for bit in range(8):
                flipped = bytearray(original)
                flipped[position] ^= 1 << bit
                token = flipped.decode("latin-1")
                with pytest.raises(ReceiptError):
                    verifier.verify(token, now=NOW)


@SETTINGS
@given(text=st.text(max_size=600))
def test_arbitrary_text(verifier: Verifier, text: str) -> None:
    assert _outcome(verifier, text) is None


@SETTINGS
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes(verifier: Verifier, data: bytes) -> None:
    assert _outcome(verifier, data) is None
    assert _outcome(verifier, data.decode("latin-1")) is None


@SETTINGS
@given(
    parts=st.lists(st.text(TOKEN_CHARS, max_size=120), min_size=1, max_size=5),
)
def test_token_shaped_text(verifier: Verifier, parts: list[str]) -> None:
    assert _outcome(verifier, ".".join(parts)) is None


@SETTINGS
@given(data=st.data())
def test_mutated_receipts(verifier: Verifier, vectors: dict[str, Any], data: st.DataObject) -> None:
    token: str = data.draw(st.sampled_from([vector["token"] for vector in vectors["valid"]]))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        position = data.draw(st.integers(min_value=0, max_value=len(token)))
        action = data.draw(st.sampled_from(["insert", "delete", "substitute"]))
        char = data.draw(TOKEN_CHARS)
        if action == "insert":
            token = token[:position] + char + token[position:]
        elif action == "delete":
            token = token[:position] + token[position + 1 :]
        else:
            token = token[:position] + char + token[position + 1 :]
    receipt = _outcome(verifier, token)
    if receipt is not None:  # only a harmless no-op mutation (e.g. substituting the same char)
        assert token in {vector["token"] for vector in vectors["valid"]}


@SETTINGS
@given(data=st.data())
def test_signed_payload_mutations(
    verifier: Verifier, generator: ModuleType, data: st.DataObject
) -> None:
    claims: dict[str, Any] = generator.claims()
    for _ in range(data.draw(st.integers(min_value=0, max_value=4))):
        name = data.draw(CLAIM_NAMES)
        if data.draw(st.booleans()):
            claims.pop(name, None)
        else:
            claims[name] = data.draw(JSON_VALUES)
    binding = data.draw(st.none() | st.just("session-42"))
    receipt = _outcome(verifier, generator.token(body=claims), binding)
    if receipt is not None:
        assert receipt.total_minor == int(claims["tot"])
        assert receipt.amount_minor == int(claims["amt"])


@SETTINGS
@given(
    header=st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4),
    body=st.binary(max_size=300),
)
def test_signed_arbitrary_header_and_payload_bytes(
    verifier: Verifier, generator: ModuleType, header: dict[str, Any], body: bytes
) -> None:
    token = generator.token(dict(generator.header(), **header), body)
    assert _outcome(verifier, token) is None


@SETTINGS
@given(body=JSON_VALUES)
def test_signed_arbitrary_json_payload(
    verifier: Verifier, generator: ModuleType, body: Any
) -> None:
    raw = json.dumps(body).encode("utf-8")
    assert _outcome(verifier, generator.token(body=raw)) is None


def test_deeply_nested_payload_is_malformed(verifier: Verifier, generator: ModuleType) -> None:
    for depth in (500, 1200):
        with pytest.raises(ReceiptError) as caught:
            verifier.verify(generator.token(body=b"[" * depth + b"]" * depth), now=NOW)
        assert caught.value.code == "malformed_payload"


def _at_stack_depth(frames: int, call: Any) -> Any:
    return call() if frames <= 0 else _at_stack_depth(frames - 1, call)


def _frames_in_use() -> int:
    frames = 0
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        frames, frame = frames + 1, frame.f_back
    return frames


@pytest.mark.parametrize(
    ("levels", "code"), [(31, None), (32, "malformed_payload"), (500, "malformed_payload")]
)
def test_the_nesting_limit_does_not_depend_on_the_callers_stack(
    verifier: Verifier, generator: ModuleType, levels: int, code: str | None
) -> None:
    """An unknown claim ``levels`` deep (the payload object adds one level): the same answer
    near the top of the stack and 60 frames below the recursion limit."""
    token = generator.token(
        body=generator.with_member(generator.claims(), b'"deep":' + generator.nested(levels))
    )
    deep = sys.getrecursionlimit() - _frames_in_use() - 60
    for frames in (0, deep):
        try:
            _at_stack_depth(frames, lambda: verifier.verify(token, now=NOW))
            outcome = None
        except ReceiptError as exc:
            outcome = exc.code
        assert outcome == code, f"{frames} frames down"


@SETTINGS
@given(value=JSON_VALUES)
def test_nesting_depth_without_recursion_matches_the_structure(value: Any) -> None:
    def depth(item: Any) -> int:
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, (dict, list)):
            return 1 + max((depth(child) for child in children), default=0)
        return 0

    text = json.dumps({"v": value, "s": '[{\\"[{'})
    assert _nesting_depth(text) == depth({"v": value})
