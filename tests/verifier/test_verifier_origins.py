"""The origin rule of docs/receipts.md §3.1: a configured issuer and audience are normalised as
the service normalises origins, or refused when the verifier is built (the shared vectors'
``origins`` group), and the service's own rule agrees with every vector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trickle.errors import ValidationFailed
from trickle.origins import normalize_origin as service_normalize_origin
from trickle_verifier import ReceiptError

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "receipts.json").read_text("utf-8")
)
NOW = VECTORS["verifier"]["now"]


@pytest.mark.parametrize("vector", VECTORS["origins"], ids=lambda vector: vector["name"])
def test_configured_origin(make_verifier: Any, vector: dict[str, Any]) -> None:
    configured = vector["configured"]
    if vector["origin"] is None:
        for option in ("issuer", "audience"):
            with pytest.raises(ValueError, match=rf"^{option}: expected an http\(s\) origin"):
                make_verifier(**{option: configured})
        return
    receipt = make_verifier(issuer=configured, audience=configured).verify(vector["token"], now=NOW)
    assert receipt.iss == receipt.aud == vector["origin"]


def test_a_configured_origin_is_compared_with_aud_exactly(make_verifier: Any) -> None:
    """Normalising the configuration does not loosen the receipt side: a receipt whose aud is
    not in normal form is another site's (the service signs only the normal form)."""
    verifier = make_verifier(audience="HTTPS://Blog.Example:443/")
    for vector in VECTORS["invalid"]:
        if vector["name"] in {"aud in upper case (the service signs lower case)", "wrong aud"}:
            with pytest.raises(ReceiptError) as caught:
                verifier.verify(vector["token"], now=NOW)
            assert caught.value.code == "wrong_audience"
    assert verifier.verify(VECTORS["valid"][0]["token"], now=NOW).aud == "https://blog.example"


@pytest.mark.parametrize("vector", VECTORS["origins"], ids=lambda vector: vector["name"])
def test_the_service_normalises_origins_the_same_way(vector: dict[str, Any]) -> None:
    """The verifier cannot import the service, so the rule has two copies; this pins them."""
    try:
        normalized: str | None = service_normalize_origin(vector["configured"])
    except ValidationFailed:
        normalized = None
    assert normalized == vector["origin"]
