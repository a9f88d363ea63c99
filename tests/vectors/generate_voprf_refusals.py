"""Generate tests/vectors/voprf-refusals.json: what a VOPRF client must refuse, and with which code.

Every case starts from RFC 9497's batch-of-two vector (rfc9497-voprf-ristretto255-sha512.json,
"Test Vector 3"): the client holds its inputs and blinds and has sent its blinded elements; the case
says what came back (public key, evaluated elements, proof) and the code ``finalize`` must raise.
Deterministic (fixed keys and proof randomness), so a test checks the committed file equals a fresh
generation. Both trickle.voprf (Python) and extension/shared/voprf.js (JS) pass every case.
Run: python tests/vectors/generate_voprf_refusals.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from trickle import voprf

HERE = Path(__file__).resolve().parent
RFC = json.loads((HERE / "rfc9497-voprf-ristretto255-sha512.json").read_text())
OUTPUT = HERE / "voprf-refusals.json"
BASE = "Test Vector 3, Batch Size 2"
P = 2**255 - 19

# RFC 9496 Appendix A.2's encodings a decoder must refuse, with why.
BAD_ENCODINGS = [
    ("non-canonical field element, high bit set", "00" + "ff" * 31),
    ("non-canonical field element 2^255 - 1", "ff" * 31 + "7f"),
    ("non-canonical field element p + 6", "f3" + "ff" * 30 + "7f"),
    ("non-canonical field element p (the identity plus p)", "ed" + "ff" * 30 + "7f"),
    ("negative field element 1", "01" + "00" * 31),
    ("negative field element p - 2", "01" + "ff" * 30 + "7f"),
    ("s = -1, y = 0", "ec" + "ff" * 30 + "7f"),
]


def _scalar(label: str) -> bytes:
    digest = hashlib.sha512(f"trickle voprf refusals: {label}".encode()).digest()
    return voprf.hash_to_scalar(digest, b"trickle test vectors")


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _plus_order(scalar: bytes) -> bytes:
    return (int.from_bytes(scalar, "little") + voprf.GROUP_ORDER).to_bytes(32, "little")


def _valid(element: bytes) -> bool:
    try:
        voprf.deserialize_element(element)
    except voprf.VoprfError:
        return False
    return True


def _twin(element: bytes) -> bytes:
    """The same field element plus p: a second, non-canonical encoding (when it fits)."""
    value = int.from_bytes(element, "little") + P
    assert value < 2**255, "no non-canonical twin below 2^255"
    return value.to_bytes(32, "little")


def render() -> str:
    base = next(v for v in RFC["vectors"] if v["name"] == BASE)
    key = voprf.SecretKey.derive(bytes.fromhex(RFC["Seed"]), bytes.fromhex(RFC["KeyInfo"]))
    public_key = key.public_key.to_bytes()
    blinded = [voprf.deserialize_element(bytes.fromhex(x)) for x in base["BlindedElement"]]
    evaluated = [bytes.fromhex(x) for x in base["EvaluationElement"]]
    proof = bytes.fromhex(base["Proof"])
    c, s = proof[:32], proof[32:]
    tagging = voprf.SecretKey(_scalar("a per-reader tagging key"))
    randomness = _scalar("proof randomness")

    tagged = voprf.blind_evaluate_batch(tagging, blinded, random_scalar=lambda: randomness)
    mixed = [evaluated[0], tagged.evaluated_elements[1]]
    mixed_proof = voprf.generate_proof(
        key.scalar(),
        voprf.GENERATOR,
        key.public_key.element,
        blinded,
        [voprf.deserialize_element(x) for x in mixed],
        random_scalar=lambda: randomness,
    )
    small_valid = next(x for x in (bytes([i]) + bytes(31) for i in range(2, 64, 2)) if _valid(x))

    def case(
        name: str,
        code: str,
        *,
        pk: bytes = public_key,
        elements: list[bytes] = evaluated,
        proof_bytes: bytes = proof,
    ) -> dict[str, Any]:
        return {
            "name": name,
            "code": code,
            "pkSm": pk.hex(),
            "EvaluationElement": [x.hex() for x in elements],
            "Proof": proof_bytes.hex(),
        }

    finalize = [
        case("proof: one bit flipped in c", "invalid_proof", proof_bytes=_flip(proof, 0)),
        case("proof: one bit flipped in s", "invalid_proof", proof_bytes=_flip(proof, 63)),
        case("proof: c plus the group order", "invalid_proof", proof_bytes=_plus_order(c) + s),
        case("proof: s plus the group order", "invalid_proof", proof_bytes=c + _plus_order(s)),
        case("proof: 63 bytes", "invalid_proof", proof_bytes=proof[:63]),
        case("proof: 65 bytes", "invalid_proof", proof_bytes=proof + b"\x00"),
        case("proof: all zeros", "invalid_proof", proof_bytes=bytes(64)),
        case("evaluations in the other order", "invalid_proof", elements=evaluated[::-1]),
        case(
            "evaluated with a per-reader key and proved for that key",
            "invalid_proof",
            elements=list(tagged.evaluated_elements),
            proof_bytes=tagged.proof,
        ),
        case(
            "one element evaluated with another key, proved under the published key",
            "invalid_proof",
            elements=mixed,
            proof_bytes=mixed_proof,
        ),
        case(
            "a proof for the other published key", "invalid_proof", pk=tagging.public_key.to_bytes()
        ),
        case(
            "evaluated element: the identity", "invalid_element", elements=[evaluated[0], bytes(32)]
        ),
        case(
            "evaluated element: non-canonical encoding of a valid element",
            "invalid_element",
            elements=[_twin(small_valid), evaluated[1]],
        ),
        case(
            "evaluated element: 31 bytes",
            "invalid_element",
            elements=[evaluated[0][:31], evaluated[1]],
        ),
        case(
            "evaluated element: 33 bytes",
            "invalid_element",
            elements=[evaluated[0] + b"\x00", evaluated[1]],
        ),
        case("public key: the identity", "invalid_element", pk=bytes(32)),
        case(
            "public key: non-canonical",
            "invalid_element",
            pk=bytes.fromhex("ed" + "ff" * 30 + "7f"),
        ),
        case("one evaluated element missing", "invalid_batch", elements=evaluated[:1]),
        case(
            "one evaluated element too many", "invalid_batch", elements=[*evaluated, evaluated[0]]
        ),
    ]
    elements = [
        *({"name": name, "hex": value, "code": "invalid_element"} for name, value in BAD_ENCODINGS),
        {"name": "the identity", "hex": "00" * 32, "code": "invalid_element"},
        {
            "name": "non-canonical twin of a valid element",
            "hex": _twin(small_valid).hex(),
            "code": "invalid_element",
        },
        {"name": "empty", "hex": "", "code": "invalid_element"},
        {"name": "31 bytes", "hex": RFC["pkSm"][:62], "code": "invalid_element"},
        {"name": "33 bytes", "hex": RFC["pkSm"] + "00", "code": "invalid_element"},
    ]
    document = {
        "source": (
            "Generated by tests/vectors/generate_voprf_refusals.py on top of RFC 9497 "
            f"Appendix A.1.2 ({BASE}); element encodings from RFC 9496 Appendix A.2"
        ),
        "base": BASE,
        "finalize": finalize,
        "elements": elements,
    }
    return json.dumps(document, indent=2) + "\n"


def main() -> int:
    text = render()
    OUTPUT.write_text(text, encoding="utf-8", newline="\n")
    data = json.loads(text)
    print(
        f"wrote {OUTPUT}: {len(data['finalize'])} finalize cases, {len(data['elements'])} elements"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
