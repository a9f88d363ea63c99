"""Python's trickle.voprf and the extension's JavaScript (extension/shared/voprf.js over the
vendored @noble/curves) against each other: the service evaluates what the extension blinded, the
extension finalizes it, and the service's spend check recomputes what the extension holds; and
the other way round."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.prerequisites import unavailable
from trickle.voprf import (
    BlindedInput,
    SecretKey,
    blind,
    blind_evaluate_batch,
    deserialize_element,
    deserialize_scalar,
    evaluate,
    finalize_batch,
)

SCRIPT = Path(__file__).with_name("voprf_js.mjs")
BATCH = 12


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        unavailable("node", "not on PATH")
    return path


def js(node: str, request: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def as_python_state(token: dict[str, str]) -> BlindedInput:
    return BlindedInput(
        bytes.fromhex(token["input"]),
        deserialize_scalar(bytes.fromhex(token["blind"])),
        deserialize_element(bytes.fromhex(token["blinded"])),
    )


def test_js_client_and_python_server(node: str) -> None:
    key = SecretKey.generate()
    tokens = js(node, {"op": "blind", "count": BATCH})["tokens"]
    evaluation = blind_evaluate_batch(key, [bytes.fromhex(t["blinded"]) for t in tokens])

    finalized = js(
        node,
        {
            "op": "finalize",
            "publicKey": key.public_key.to_bytes().hex(),
            "tokens": tokens,
            "evaluated": [e.hex() for e in evaluation.evaluated_elements],
            "proof": evaluation.proof.hex(),
        },
    )
    js_outputs = [bytes.fromhex(o) for o in finalized["outputs"]]
    assert len(js_outputs) == BATCH

    # Python's client side, on the very same blinds, finalizes to the same outputs.
    states = [as_python_state(t) for t in tokens]
    assert (
        finalize_batch(key.public_key, states, evaluation.evaluated_elements, evaluation.proof)
        == js_outputs
    )
    # The spend check: the service recomputes each output from the input alone.
    assert [evaluate(key, s.input) for s in states] == js_outputs
    # And the extension's library computes the same PRF from the key.
    assert js(
        node,
        {
            "op": "evaluate",
            "secretKey": key.to_bytes().hex(),
            "inputs": [t["input"] for t in tokens],
        },
    )["outputs"] == [o.hex() for o in js_outputs]


def test_the_js_client_refuses_a_python_server_that_tags_it(node: str) -> None:
    published, tagging = SecretKey.generate(), SecretKey.generate()
    tokens = js(node, {"op": "blind", "count": 3})["tokens"]
    evaluation = blind_evaluate_batch(tagging, [bytes.fromhex(t["blinded"]) for t in tokens])
    request = {
        "op": "finalize",
        "publicKey": published.public_key.to_bytes().hex(),
        "tokens": tokens,
        "evaluated": [e.hex() for e in evaluation.evaluated_elements],
        "proof": evaluation.proof.hex(),
    }
    assert js(node, request)["error"]["code"] == "invalid_proof"
    tampered = bytearray(evaluation.proof)
    tampered[5] ^= 0x10
    request["publicKey"] = tagging.public_key.to_bytes().hex()
    request["proof"] = bytes(tampered).hex()
    assert js(node, request)["error"]["code"] == "invalid_proof"


def test_python_client_and_js_server(node: str) -> None:
    key = SecretKey.generate()
    states = [blind(bytes([i]) * 32) for i in range(BATCH)]
    answer = js(
        node,
        {
            "op": "blindEvaluate",
            "secretKey": key.to_bytes().hex(),
            "publicKey": key.public_key.to_bytes().hex(),
            "blinded": [s.blinded_element.hex() for s in states],
        },
    )
    outputs = finalize_batch(
        key.public_key,
        states,
        [bytes.fromhex(e) for e in answer["evaluated"]],
        bytes.fromhex(answer["proof"]),
    )
    assert outputs == [evaluate(key, s.input) for s in states]
