"""RFC 9497 VOPRF (mode 0x01, suite ristretto255-SHA512): the cryptography of private payments.

Written against RFC 9497 (and RFC 9380 section 5.3.1 for ``expand_message_xmd``) on libsodium's
ristretto255 primitives through ``pysodium``. A leaf: it imports nothing from the rest of Trickle.
Everything that crosses the wire is ``bytes``; what this module has checked is an ``Element`` (the
canonical encoding of a group element other than the identity) or a ``Scalar`` (a canonical
little-endian scalar), so a caller cannot hand unchecked wire bytes to the group arithmetic.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, NewType

try:
    import pysodium
except (OSError, ValueError, AttributeError) as error:
    # pysodium loads the system libsodium when imported; say which package is missing.
    raise ImportError(
        "trickle.voprf needs the system libsodium >= 1.0.18 (Debian: apt-get install libsodium23)"
    ) from error

__all__ = [
    "CONTEXT_STRING",
    "ELEMENT_BYTES",
    "GENERATOR",
    "GROUP_ORDER",
    "MAX_BATCH_SIZE",
    "MAX_INPUT_BYTES",
    "OUTPUT_BYTES",
    "PROOF_BYTES",
    "SCALAR_BYTES",
    "SEED_BYTES",
    "SUITE",
    "BatchEvaluation",
    "BlindedInput",
    "Element",
    "PublicKey",
    "Scalar",
    "ScalarSource",
    "SecretKey",
    "VoprfError",
    "VoprfErrorCode",
    "blind",
    "blind_evaluate_batch",
    "deserialize_element",
    "deserialize_proof",
    "deserialize_scalar",
    "evaluate",
    "expand_message_xmd",
    "finalize_batch",
    "generate_proof",
    "hash_to_group",
    "hash_to_scalar",
    "serialize_proof",
    "verify_proof",
]

SUITE: Final = "ristretto255-SHA512"
MODE_VOPRF: Final = 0x01
#: RFC 9497 section 3.1: "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier.
CONTEXT_STRING: Final = b"OPRFV1-" + bytes([MODE_VOPRF]) + b"-" + SUITE.encode()

ELEMENT_BYTES: Final = 32  # Ne
SCALAR_BYTES: Final = 32  # Ns
PROOF_BYTES: Final = 2 * SCALAR_BYTES  # c || s
OUTPUT_BYTES: Final = 64  # Nh, SHA-512
SEED_BYTES: Final = SCALAR_BYTES  # DeriveKeyPair's seed is Ns bytes
#: Inputs and key info are length-prefixed with two bytes (I2OSP(len, 2)).
MAX_INPUT_BYTES: Final = 0xFFFF
#: ComputeComposites numbers the elements with I2OSP(i, 2).
MAX_BATCH_SIZE: Final = 0x10000

#: The order of the ristretto255 group (RFC 9496 section 4.1).
GROUP_ORDER: Final = 2**252 + 27742317777372353535851937790883648493

_HASH_TO_GROUP_DST: Final = b"HashToGroup-" + CONTEXT_STRING
_HASH_TO_SCALAR_DST: Final = b"HashToScalar-" + CONTEXT_STRING
_DERIVE_KEY_PAIR_DST: Final = b"DeriveKeyPair" + CONTEXT_STRING
_SEED_DST: Final = b"Seed-" + CONTEXT_STRING
# The identity's canonical ristretto255 encoding: all zeros (RFC 9496 section 4.3.2).
_IDENTITY: Final = bytes(ELEMENT_BYTES)
_SHA512_BLOCK_BYTES: Final = 128

Element = NewType("Element", bytes)
"""The canonical 32-byte encoding of a ristretto255 element that is not the identity."""
Scalar = NewType("Scalar", bytes)
"""A canonical 32-byte little-endian scalar, below the group order."""
ScalarSource = Callable[[], bytes]
"""Returns a serialized non-zero scalar; tests inject the RFC's blinds and proof randomness."""

VoprfErrorCode = Literal[
    "invalid_element",
    "invalid_scalar",
    "invalid_proof",
    "invalid_input",
    "invalid_batch",
    "invalid_seed",
    "derive_key_pair_failed",
]


class VoprfError(Exception):
    """Raised for every invalid input; ``code`` is stable and names the rule that was broken.

    - ``invalid_element``: not 32 bytes, not a canonical ristretto255 encoding, or the identity.
    - ``invalid_scalar``: not 32 bytes, not below the group order, or zero where a key or a blind
      must not be zero.
    - ``invalid_proof``: the proof is not 64 bytes, holds a non-canonical scalar, or does not verify
      against the public key (an evaluation under another key ends here).
    - ``invalid_input``: a PRF input or key info longer than 65535 bytes (or, with negligible
      probability, an input that hashes to the identity).
    - ``invalid_batch``: an empty or oversized batch, or lists of different lengths.
    - ``invalid_seed``: a DeriveKeyPair seed that is not 32 bytes.
    - ``derive_key_pair_failed``: 256 derivation attempts gave zero (RFC 9497 DeriveKeyPairError).
    """

    def __init__(self, code: VoprfErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: VoprfErrorCode = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# --- encodings --------------------------------------------------------------------------------


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def _length_prefixed(data: bytes) -> bytes:
    return _i2osp(len(data), 2) + data


def deserialize_element(data: bytes) -> Element:
    """RFC 9497 section 4.1 DeserializeElement: canonical, on the group, not the identity."""
    if len(data) != ELEMENT_BYTES:
        raise VoprfError(
            "invalid_element", f"an element is {ELEMENT_BYTES} bytes, got {len(data)} bytes"
        )
    if data == _IDENTITY:
        raise VoprfError("invalid_element", "the identity element is not accepted")
    # libsodium decodes with the RFC 9496 checks, non-canonical encodings included.
    if not pysodium.crypto_core_ristretto255_is_valid_point(bytes(data)):
        raise VoprfError("invalid_element", "not a canonical ristretto255 encoding")
    return Element(bytes(data))


def deserialize_scalar(data: bytes) -> Scalar:
    """RFC 9497 section 4.1 DeserializeScalar: 32 bytes, little-endian, below the group order."""
    if len(data) != SCALAR_BYTES:
        raise VoprfError(
            "invalid_scalar", f"a scalar is {SCALAR_BYTES} bytes, got {len(data)} bytes"
        )
    # libsodium has no canonical-scalar check; its arithmetic would silently reduce.
    if int.from_bytes(data, "little") >= GROUP_ORDER:
        raise VoprfError("invalid_scalar", "the scalar is not below the group order")
    return Scalar(bytes(data))


def _nonzero_scalar(data: bytes, what: str) -> Scalar:
    scalar = deserialize_scalar(data)
    if _is_zero(scalar):
        raise VoprfError("invalid_scalar", f"{what} must not be zero")
    return scalar


def serialize_proof(c: Scalar, s: Scalar) -> bytes:
    """A proof on the wire: SerializeScalar(c) || SerializeScalar(s), 64 bytes."""
    return c + s


def deserialize_proof(data: bytes) -> tuple[Scalar, Scalar]:
    """The proof's (c, s); any malformation is ``invalid_proof``."""
    if len(data) != PROOF_BYTES:
        raise VoprfError("invalid_proof", f"a proof is {PROOF_BYTES} bytes, got {len(data)} bytes")
    try:
        return deserialize_scalar(data[:SCALAR_BYTES]), deserialize_scalar(data[SCALAR_BYTES:])
    except VoprfError as error:
        raise VoprfError("invalid_proof", f"bad scalar in the proof: {error.message}") from None


# --- hashing (RFC 9380 section 5.3.1, RFC 9497 section 4.1) --------------------------------------


def expand_message_xmd(message: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 expand_message_xmd with SHA-512."""
    hash_bytes = hashlib.sha512().digest_size
    blocks = -(-length // hash_bytes)
    if blocks > 255 or length > 0xFFFF or len(dst) > 255:
        raise ValueError("expand_message_xmd: output or DST too long")
    dst_prime = dst + _i2osp(len(dst), 1)
    message_prime = (
        bytes(_SHA512_BLOCK_BYTES) + message + _i2osp(length, 2) + _i2osp(0, 1) + dst_prime
    )
    b_0 = hashlib.sha512(message_prime).digest()
    b_i = hashlib.sha512(b_0 + _i2osp(1, 1) + dst_prime).digest()
    uniform = [b_i]
    for i in range(2, blocks + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + _i2osp(i, 1) + dst_prime).digest()
        uniform.append(b_i)
    return b"".join(uniform)[:length]


def hash_to_group(data: bytes) -> Element:
    """HashToGroup: hash_to_ristretto255 (RFC 9380 appendix B) with DST "HashToGroup-" || ctx."""
    uniform = expand_message_xmd(data, _HASH_TO_GROUP_DST, 64)
    point: bytes = pysodium.crypto_core_ristretto255_from_hash(uniform)
    if point == _IDENTITY:
        raise VoprfError("invalid_input", "the input hashes to the identity element")
    return Element(point)


def hash_to_scalar(data: bytes, dst: bytes = _HASH_TO_SCALAR_DST) -> Scalar:
    """HashToScalar: 64 uniform bytes from expand_message_xmd, reduced modulo the group order."""
    reduced: bytes = pysodium.crypto_core_ristretto255_scalar_reduce(
        expand_message_xmd(data, dst, 64)
    )
    return Scalar(reduced)


# --- group arithmetic -----------------------------------------------------------------------------
# The identity appears only inside proofs (a zero scalar sent by a peer, a composite that cancels
# out); libsodium refuses to return it from a multiplication, so it is handled here by its encoding.


def _is_zero(data: bytes) -> bool:
    # Constant time: keys, blinds and the proof randomness pass through here.
    return hmac.compare_digest(data, bytes(len(data)))


def _mul(scalar: bytes, point: bytes) -> bytes:
    if _is_zero(scalar) or _is_zero(point):
        return _IDENTITY
    product: bytes = pysodium.crypto_scalarmult_ristretto255(scalar, point)
    return product


def _mul_base(scalar: bytes) -> bytes:
    if _is_zero(scalar):
        return _IDENTITY
    product: bytes = pysodium.crypto_scalarmult_ristretto255_base(scalar)
    return product


def _add(p: bytes, q: bytes) -> bytes:
    total: bytes = pysodium.crypto_core_ristretto255_add(p, q)
    return total


def _random_scalar() -> bytes:
    # libsodium draws uniformly from ]0, order[.
    scalar: bytes = pysodium.crypto_core_ristretto255_scalar_random()
    return scalar


#: The group's generator G (RFC 9496 section 4.4), encoded.
GENERATOR: Final = Element(_mul_base((1).to_bytes(SCALAR_BYTES, "little")))


# --- keys -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicKey:
    """The server's published token key, pkS = skS * G."""

    element: Element

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        return cls(deserialize_element(data))

    def to_bytes(self) -> bytes:
        return bytes(self.element)


class SecretKey:
    """The server's token key skS: never printed, never compared in variable time."""

    __slots__ = ("_scalar", "public_key")

    def __init__(self, scalar: bytes) -> None:
        self._scalar = _nonzero_scalar(scalar, "a secret key")
        self.public_key = PublicKey(Element(_mul_base(self._scalar)))

    @classmethod
    def from_bytes(cls, data: bytes) -> SecretKey:
        return cls(data)

    @classmethod
    def generate(cls, random_scalar: ScalarSource | None = None) -> SecretKey:
        """RFC 9497 section 3.2 GenerateKeyPair."""
        return cls((random_scalar or _random_scalar)())

    @classmethod
    def derive(cls, seed: bytes, info: bytes) -> SecretKey:
        """RFC 9497 section 3.2.1 DeriveKeyPair(seed, info)."""
        if len(seed) != SEED_BYTES:
            raise VoprfError("invalid_seed", f"a seed is {SEED_BYTES} bytes, got {len(seed)} bytes")
        if len(info) > MAX_INPUT_BYTES:
            raise VoprfError("invalid_input", f"key info is at most {MAX_INPUT_BYTES} bytes")
        derive_input = seed + _length_prefixed(info)
        for counter in range(256):
            scalar = hash_to_scalar(derive_input + _i2osp(counter, 1), _DERIVE_KEY_PAIR_DST)
            if not _is_zero(scalar):
                return cls(scalar)
        # Unreachable in practice (probability about 2**-2000), but the RFC defines the error.
        raise VoprfError("derive_key_pair_failed", "no non-zero key in 256 attempts")

    def to_bytes(self) -> bytes:
        """The serialized scalar, for sealing at rest; handle it as the secret it is."""
        return bytes(self._scalar)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return hmac.compare_digest(self._scalar, other._scalar)

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        return f"SecretKey(public_key={self.public_key.to_bytes().hex()})"

    def scalar(self) -> Scalar:
        """The key as a scalar, for the proof; named so that uses are easy to find."""
        return self._scalar


# --- DLEQ proofs (RFC 9497 section 2.2) -----------------------------------------------------------


def _composite_weights(b: Element, c: Sequence[Element], d: Sequence[Element]) -> list[Scalar]:
    """The d_i of ComputeComposites: one weight per (C[i], D[i]), all seeded by B."""
    seed = hashlib.sha512(_length_prefixed(b) + _length_prefixed(_SEED_DST)).digest()
    prefix = _length_prefixed(seed)
    return [
        hash_to_scalar(
            prefix + _i2osp(i, 2) + _length_prefixed(ci) + _length_prefixed(di) + b"Composite"
        )
        for i, (ci, di) in enumerate(zip(c, d, strict=True))
    ]


def _check_batch(c: Sequence[object], d: Sequence[object]) -> None:
    if not c:
        raise VoprfError("invalid_batch", "a batch holds at least one element")
    if len(c) > MAX_BATCH_SIZE:
        raise VoprfError("invalid_batch", f"a batch holds at most {MAX_BATCH_SIZE} elements")
    if len(c) != len(d):
        raise VoprfError(
            "invalid_batch", f"{len(c)} blinded elements but {len(d)} evaluated elements"
        )


def _challenge(b: Element, m: bytes, z: bytes, t2: bytes, t3: bytes) -> Scalar:
    transcript = b"".join(_length_prefixed(x) for x in (b, m, z, t2, t3)) + b"Challenge"
    return hash_to_scalar(transcript)


def generate_proof(
    k: Scalar,
    a: Element,
    b: Element,
    c: Sequence[Element],
    d: Sequence[Element],
    *,
    random_scalar: ScalarSource | None = None,
) -> bytes:
    """GenerateProof with ComputeCompositesFast: proves log_A(B) = log_C[i](D[i]) for all i."""
    _check_batch(c, d)
    m = _IDENTITY
    for weight, ci in zip(_composite_weights(b, c, d), c, strict=True):
        m = _add(m, _mul(weight, ci))
    z = _mul(k, m)
    r = _nonzero_scalar((random_scalar or _random_scalar)(), "the proof randomness")
    t2 = _mul(r, a)
    t3 = _mul(r, m)
    challenge = _challenge(b, m, z, t2, t3)
    s: bytes = pysodium.crypto_core_ristretto255_scalar_sub(
        r, pysodium.crypto_core_ristretto255_scalar_mul(challenge, k)
    )
    return serialize_proof(challenge, Scalar(s))


def verify_proof(
    a: Element, b: Element, c: Sequence[Element], d: Sequence[Element], proof: bytes
) -> None:
    """VerifyProof with ComputeComposites; returns only when the proof verifies."""
    _check_batch(c, d)
    challenge, s = deserialize_proof(proof)
    m = z = _IDENTITY
    for weight, ci, di in zip(_composite_weights(b, c, d), c, d, strict=True):
        m = _add(m, _mul(weight, ci))
        z = _add(z, _mul(weight, di))
    t2 = _add(_mul(s, a), _mul(challenge, b))
    t3 = _add(_mul(s, m), _mul(challenge, z))
    if not hmac.compare_digest(_challenge(b, m, z, t2, t3), challenge):
        raise VoprfError("invalid_proof", "the proof does not verify against the public key")


# --- the protocol (RFC 9497 section 3.3.2) --------------------------------------------------------


def _finalize_hash(data: bytes, element: bytes) -> bytes:
    return hashlib.sha512(_length_prefixed(data) + _length_prefixed(element) + b"Finalize").digest()


def _input_element(data: bytes) -> Element:
    if len(data) > MAX_INPUT_BYTES:
        raise VoprfError("invalid_input", f"an input is at most {MAX_INPUT_BYTES} bytes")
    return hash_to_group(data)


@dataclass(frozen=True, slots=True)
class BlindedInput:
    """What a client keeps between Blind and Finalize; only ``blinded_element`` is sent."""

    input: bytes = field(repr=False)
    # The blind links the blinded element to the output: it never leaves the client.
    blind: Scalar = field(repr=False)
    blinded_element: Element


@dataclass(frozen=True, slots=True)
class BatchEvaluation:
    """The server's answer to a batch: one evaluated element per blinded element, one proof."""

    evaluated_elements: tuple[Element, ...]
    proof: bytes


def blind(data: bytes, *, random_scalar: ScalarSource | None = None) -> BlindedInput:
    """Client Blind(input): blindedElement = blind * HashToGroup(input)."""
    blind_scalar = _nonzero_scalar((random_scalar or _random_scalar)(), "a blind")
    element = _mul(blind_scalar, _input_element(data))
    return BlindedInput(bytes(data), blind_scalar, Element(element))


def blind_evaluate_batch(
    secret_key: SecretKey,
    blinded_elements: Sequence[bytes],
    *,
    random_scalar: ScalarSource | None = None,
) -> BatchEvaluation:
    """Server BlindEvaluate for a batch: evaluated[i] = skS * blinded[i], one DLEQ proof for all.

    Every blinded element comes from the wire and is checked (``invalid_element`` names which).
    """
    _check_batch(blinded_elements, blinded_elements)
    checked: list[Element] = []
    for index, data in enumerate(blinded_elements):
        try:
            checked.append(deserialize_element(data))
        except VoprfError as error:
            raise VoprfError(error.code, f"blinded element {index}: {error.message}") from None
    k = secret_key.scalar()
    evaluated = [Element(_mul(k, element)) for element in checked]
    proof = generate_proof(
        k,
        GENERATOR,
        secret_key.public_key.element,
        checked,
        evaluated,
        random_scalar=random_scalar,
    )
    return BatchEvaluation(tuple(evaluated), proof)


def finalize_batch(
    public_key: PublicKey,
    blinded: Sequence[BlindedInput],
    evaluated_elements: Sequence[bytes],
    proof: bytes,
) -> list[bytes]:
    """Client Finalize for a batch: verify the proof against ``public_key``, unblind, hash.

    A server that evaluated with any key other than the published one fails here with
    ``invalid_proof``, and the client must then drop the whole batch.
    """
    _check_batch(blinded, evaluated_elements)
    evaluated: list[Element] = []
    for index, data in enumerate(evaluated_elements):
        try:
            evaluated.append(deserialize_element(data))
        except VoprfError as error:
            raise VoprfError(error.code, f"evaluated element {index}: {error.message}") from None
    verify_proof(
        GENERATOR,
        public_key.element,
        [state.blinded_element for state in blinded],
        evaluated,
        proof,
    )
    outputs = []
    for state, element in zip(blinded, evaluated, strict=True):
        inverse = pysodium.crypto_core_ristretto255_scalar_invert(state.blind)
        outputs.append(_finalize_hash(state.input, _mul(inverse, element)))
    return outputs


def evaluate(secret_key: SecretKey, data: bytes) -> bytes:
    """Server Evaluate(skS, input): the PRF output without the protocol, to check a spent token."""
    element = _mul(secret_key.scalar(), _input_element(data))
    return _finalize_hash(data, element)
