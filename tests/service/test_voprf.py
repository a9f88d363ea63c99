"""trickle.voprf against RFC 9497 Appendix A.1.2 (ristretto255-SHA512, VOPRF) and what a client and
a server must refuse."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from trickle import voprf
from trickle.voprf import (
    GROUP_ORDER,
    BlindedInput,
    PublicKey,
    SecretKey,
    VoprfError,
    blind,
    blind_evaluate_batch,
    deserialize_element,
    deserialize_proof,
    deserialize_scalar,
    evaluate,
    expand_message_xmd,
    finalize_batch,
    generate_proof,
    hash_to_group,
)

VECTORS_PATH = (
    Path(__file__).resolve().parents[1] / "vectors" / "rfc9497-voprf-ristretto255-sha512.json"
)
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
h = bytes.fromhex


def scalars(*values: str | bytes) -> Callable[[], bytes]:
    """A ScalarSource that hands out the given scalars in order (the RFC's blinds, its r)."""
    queue: Iterator[str | bytes] = iter(values)

    def next_scalar() -> bytes:
        value = next(queue)
        return h(value) if isinstance(value, str) else value

    return next_scalar


def rfc_key() -> SecretKey:
    return SecretKey.derive(h(VECTORS["Seed"]), h(VECTORS["KeyInfo"]))


def test_the_vector_file_is_the_voprf_suite_and_names_its_source() -> None:
    assert VECTORS["suite"] == voprf.SUITE == "ristretto255-SHA512"
    assert VECTORS["mode"] == "VOPRF"
    assert h(VECTORS["contextString"]) == voprf.CONTEXT_STRING == b"OPRFV1-\x01-ristretto255-SHA512"
    assert "RFC 9497" in VECTORS["source"]
    assert sorted(v["batchSize"] for v in VECTORS["vectors"]) == [1, 1, 2]


def test_derive_key_pair_matches_the_rfc() -> None:
    key = rfc_key()
    assert key.to_bytes().hex() == VECTORS["skSm"]
    assert key.public_key.to_bytes().hex() == VECTORS["pkSm"]
    assert SecretKey.from_bytes(h(VECTORS["skSm"])) == key


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_rfc_vector(vector: dict[str, Any]) -> None:
    key = rfc_key()
    inputs = [h(x) for x in vector["Input"]]
    source = scalars(*vector["Blind"])
    states = [blind(data, random_scalar=source) for data in inputs]
    assert [s.blinded_element.hex() for s in states] == vector["BlindedElement"]

    evaluation = blind_evaluate_batch(
        key,
        [s.blinded_element for s in states],
        random_scalar=scalars(vector["ProofRandomScalar"]),
    )
    assert [e.hex() for e in evaluation.evaluated_elements] == vector["EvaluationElement"]
    assert evaluation.proof.hex() == vector["Proof"]

    # The client side from the RFC's wire values alone (not from this server's objects).
    public_key = PublicKey.from_bytes(h(VECTORS["pkSm"]))
    outputs = finalize_batch(
        public_key, states, [h(e) for e in vector["EvaluationElement"]], h(vector["Proof"])
    )
    assert [o.hex() for o in outputs] == vector["Output"]
    # The spend check: the server recomputes each output from its key and the input.
    assert [evaluate(key, data).hex() for data in inputs] == vector["Output"]


# RFC 9380 Appendix K.3, expand_message_xmd(SHA-512); the 128-byte output takes two blocks, which
# the VOPRF's 64-byte uses never do.
XMD_DST = b"QUUX-V01-CS02-with-expander-SHA512-256"
XMD_VECTORS = [
    (b"", 0x20, "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"),
    (b"abc", 0x20, "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"),
    (
        b"abc",
        0x80,
        "7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11bdd7732d8b38adb4a0edc26a0c"
        "ef4bb45217135456e58fbca1703cd6032cb1347ee720b87972d63fbf232587043ed2901bce7f22610c0419751c"
        "065922b488431851041310ad659e4b23520e1772ab29dcdeb2002222a363f0c2b1c972b3efe1",
    ),
]


@pytest.mark.parametrize(("message", "length", "expected"), XMD_VECTORS)
def test_expand_message_xmd_matches_rfc_9380(message: bytes, length: int, expected: str) -> None:
    assert expand_message_xmd(message, XMD_DST, length).hex() == expected


# --- a whole round with fresh randomness ---------------------------------------------------------


def issue(key: SecretKey, count: int) -> tuple[list[BlindedInput], voprf.BatchEvaluation]:
    states = [blind(bytes([i]) * 32) for i in range(count)]
    return states, blind_evaluate_batch(key, [s.blinded_element for s in states])


def test_a_batch_round_trip_gives_the_outputs_the_server_recomputes() -> None:
    key = SecretKey.generate()
    states, evaluation = issue(key, 7)
    outputs = finalize_batch(
        key.public_key, states, evaluation.evaluated_elements, evaluation.proof
    )
    assert len(outputs) == 7 and all(len(o) == voprf.OUTPUT_BYTES for o in outputs)
    assert outputs == [evaluate(key, s.input) for s in states]
    assert len(set(outputs)) == 7


def test_blinding_the_same_input_twice_gives_unrelated_blinded_elements() -> None:
    first, second = blind(b"token"), blind(b"token")
    assert first.blinded_element != second.blinded_element
    assert first.blind != second.blind


def test_the_secret_key_never_prints_itself() -> None:
    key = rfc_key()
    assert VECTORS["skSm"] not in repr(key) and VECTORS["skSm"] not in str(key)
    assert VECTORS["pkSm"] in repr(key)
    rfc_blind = VECTORS["vectors"][0]["Blind"][0]
    assert rfc_blind not in repr(blind(b"x", random_scalar=scalars(rfc_blind)))


# --- the client refuses what does not verify against the published key ---------------------------


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def assert_code(code: str, call: Callable[[], object]) -> VoprfError:
    with pytest.raises(VoprfError) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


@pytest.mark.parametrize("byte", [0, 31, 32, 63])
def test_a_tampered_proof_is_invalid_proof(byte: int) -> None:
    key = SecretKey.generate()
    states, evaluation = issue(key, 3)
    assert_code(
        "invalid_proof",
        lambda: finalize_batch(
            key.public_key, states, evaluation.evaluated_elements, flip(evaluation.proof, byte)
        ),
    )


def test_a_server_that_evaluates_with_a_per_reader_key_is_detected() -> None:
    """The tagging attack: the published key is one thing, this reader's evaluation another. The
    server can prove its evaluation under the key it used, but not under the published one."""
    published, tagging = SecretKey.generate(), SecretKey.generate()
    states, evaluation = issue(tagging, 4)
    # The proof is honest for the tagging key, and useless against the published one.
    finalize_batch(tagging.public_key, states, evaluation.evaluated_elements, evaluation.proof)
    error = assert_code(
        "invalid_proof",
        lambda: finalize_batch(
            published.public_key, states, evaluation.evaluated_elements, evaluation.proof
        ),
    )
    assert "public key" in str(error)


def test_one_element_evaluated_with_another_key_spoils_the_batch_proof() -> None:
    published, tagging = SecretKey.generate(), SecretKey.generate()
    states = [blind(bytes([i]) * 32) for i in range(5)]
    blinded = [s.blinded_element for s in states]
    evaluated = list(blind_evaluate_batch(published, blinded).evaluated_elements)
    evaluated[2] = blind_evaluate_batch(tagging, [blinded[2]]).evaluated_elements[0]
    # The server proves with the published key over the elements it actually sent.
    proof = generate_proof(
        published.scalar(), voprf.GENERATOR, published.public_key.element, blinded, evaluated
    )
    assert_code(
        "invalid_proof", lambda: finalize_batch(published.public_key, states, evaluated, proof)
    )


def test_evaluations_returned_in_another_order_are_invalid_proof() -> None:
    key = SecretKey.generate()
    states, evaluation = issue(key, 2)
    swapped = list(reversed(evaluation.evaluated_elements))
    assert_code(
        "invalid_proof", lambda: finalize_batch(key.public_key, states, swapped, evaluation.proof)
    )


def test_a_proof_scalar_plus_the_group_order_is_refused_not_reduced() -> None:
    """c + q and s + q are the same scalars modulo q: a decoder that reduced would accept a second
    encoding of the same proof (malleable); RFC 9497 DeserializeScalar refuses them."""
    key = SecretKey.generate()
    states, evaluation = issue(key, 2)
    c, s = deserialize_proof(evaluation.proof)
    for index, value in ((0, c), (1, s)):
        shifted = (int.from_bytes(value, "little") + GROUP_ORDER).to_bytes(32, "little")
        parts = [bytes(c), bytes(s)]
        parts[index] = shifted
        error = assert_code(
            "invalid_proof",
            functools.partial(
                finalize_batch,
                key.public_key,
                states,
                evaluation.evaluated_elements,
                b"".join(parts),
            ),
        )
        assert "group order" in str(error)
    # The untouched proof still verifies: the refusal is about the encoding alone.
    finalize_batch(key.public_key, states, evaluation.evaluated_elements, evaluation.proof)


# --- the shared refusal vectors (tests/vectors/voprf-refusals.json, also run by the JS suite) ----

REFUSALS_PATH = VECTORS_PATH.with_name("voprf-refusals.json")
REFUSALS: dict[str, Any] = json.loads(REFUSALS_PATH.read_text())
IDENTITY = bytes(32)


def load_refusals_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "trickle_voprf_refusals_generate", VECTORS_PATH.with_name("generate_voprf_refusals.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_refusal_vectors_are_a_fresh_generation() -> None:
    assert load_refusals_generator().render() == REFUSALS_PATH.read_text()


@pytest.mark.parametrize("case", REFUSALS["finalize"], ids=lambda c: c["name"])
def test_finalize_refuses(case: dict[str, Any]) -> None:
    base = next(v for v in VECTORS["vectors"] if v["name"] == REFUSALS["base"])
    source = scalars(*base["Blind"])
    states = [blind(h(x), random_scalar=source) for x in base["Input"]]
    assert_code(
        case["code"],
        lambda: finalize_batch(
            PublicKey.from_bytes(h(case["pkSm"])),
            states,
            [h(x) for x in case["EvaluationElement"]],
            h(case["Proof"]),
        ),
    )


@pytest.mark.parametrize("case", REFUSALS["elements"], ids=lambda c: c["name"])
def test_elements_from_the_wire_are_refused(case: dict[str, Any]) -> None:
    data = h(case["hex"])
    assert_code(case["code"], lambda: deserialize_element(data))
    assert_code(case["code"], lambda: PublicKey.from_bytes(data))
    assert_code(case["code"], lambda: blind_evaluate_batch(rfc_key(), [data]))


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_wrong_lengths_are_refused(length: int) -> None:
    data = bytes([1]) * length
    assert_code("invalid_element", lambda: deserialize_element(data))
    assert_code("invalid_scalar", lambda: deserialize_scalar(data))
    assert_code("invalid_seed", lambda: SecretKey.derive(data, b"info"))


@pytest.mark.parametrize("length", [0, 32, 63, 65])
def test_a_proof_of_the_wrong_length_is_invalid_proof(length: int) -> None:
    assert_code("invalid_proof", lambda: deserialize_proof(bytes(length)))


@pytest.mark.parametrize(
    "value", [GROUP_ORDER, GROUP_ORDER + 1, 2**256 - 1], ids=["q", "q+1", "2^256-1"]
)
def test_non_canonical_scalars_are_invalid_scalar(value: int) -> None:
    data = value.to_bytes(32, "little")
    assert_code("invalid_scalar", lambda: deserialize_scalar(data))
    assert_code("invalid_scalar", lambda: SecretKey.from_bytes(data))
    assert_code("invalid_scalar", lambda: blind(b"x", random_scalar=scalars(data)))
    assert deserialize_scalar((GROUP_ORDER - 1).to_bytes(32, "little"))


def test_zero_is_not_a_key_a_blind_or_proof_randomness() -> None:
    zero = bytes(32)
    assert_code("invalid_scalar", lambda: SecretKey.from_bytes(zero))
    assert_code("invalid_scalar", lambda: blind(b"x", random_scalar=scalars(zero)))
    state = blind(b"x")
    assert_code(
        "invalid_scalar",
        lambda: blind_evaluate_batch(
            rfc_key(), [state.blinded_element], random_scalar=scalars(zero)
        ),
    )


def test_the_server_names_the_bad_element_of_a_batch() -> None:
    good = blind(b"a").blinded_element
    error = assert_code(
        "invalid_element", lambda: blind_evaluate_batch(rfc_key(), [good, good, IDENTITY])
    )
    assert "blinded element 2" in str(error)
    error = assert_code(
        "invalid_element", lambda: blind_evaluate_batch(rfc_key(), [good, good[:31]])
    )
    assert "blinded element 1" in str(error)


def test_the_client_refuses_an_identity_evaluation() -> None:
    key = SecretKey.generate()
    states, evaluation = issue(key, 2)
    evaluated = [evaluation.evaluated_elements[0], IDENTITY]
    error = assert_code(
        "invalid_element",
        lambda: finalize_batch(key.public_key, states, evaluated, evaluation.proof),
    )
    assert "evaluated element 1" in str(error)


def test_batch_shapes() -> None:
    key = SecretKey.generate()
    states, evaluation = issue(key, 2)
    assert_code("invalid_batch", lambda: blind_evaluate_batch(key, []))
    assert_code(
        "invalid_batch",
        lambda: finalize_batch(
            key.public_key, states, evaluation.evaluated_elements[:1], evaluation.proof
        ),
    )
    assert_code("invalid_batch", lambda: finalize_batch(key.public_key, [], [], evaluation.proof))


def test_inputs_and_key_info_are_at_most_65535_bytes() -> None:
    longest = bytes(voprf.MAX_INPUT_BYTES)
    assert blind(longest).input == longest
    assert_code("invalid_input", lambda: blind(longest + b"x"))
    assert_code("invalid_input", lambda: evaluate(rfc_key(), longest + b"x"))
    assert_code("invalid_input", lambda: SecretKey.derive(bytes(32), longest + b"x"))


def test_hash_to_group_is_domain_separated_from_the_other_modes() -> None:
    # Same input, the RFC's OPRF-mode (0x00) blinded element differs from VOPRF's: the context
    # string (mode byte included) is part of every hash.
    state = blind(b"\x00", random_scalar=scalars(VECTORS["vectors"][0]["Blind"][0]))
    assert state.blinded_element.hex() == VECTORS["vectors"][0]["BlindedElement"][0]
    assert state.blinded_element.hex() != (
        "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c"
    )
    assert hash_to_group(b"\x00") != hash_to_group(b"\x01")


def test_every_exported_name_exists() -> None:
    for name in voprf.__all__:
        assert hasattr(voprf, name), name


def test_docs_tokens_md_lists_every_error_code() -> None:
    text = (VECTORS_PATH.parents[2] / "docs" / "tokens.md").read_text()
    text = text.split("### What each side must check", 1)[1].split("\n#", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE)
    assert sorted(documented) == sorted(typing.get_args(voprf.VoprfErrorCode))
