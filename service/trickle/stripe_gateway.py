"""Stripe's HTTP API as card top-ups use it, through the official ``stripe`` library: create a
Checkout Session, refund a payment. Every call is bounded — a 10-second timeout, two retries
with the same idempotency key, at most a few calls at once per process — and is made outside
any database transaction, holding no pooled connection (docs/funding.md).

Nothing here touches the database; the callers record what Stripe answered.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import stripe
from stripe.params import RefundCreateParams
from stripe.params.checkout import SessionCreateParams

from trickle.cards import CardConfig
from trickle.errors import StripeUnavailable
from trickle.models import Topup

log = logging.getLogger("trickle.stripe")
T = TypeVar("T")

TIMEOUT_S = 10.0
MAX_NETWORK_RETRIES = 2  # the library retries with the same Idempotency-Key
MAX_CONCURRENT_CALLS = 8  # per process: a slow Stripe cannot take every request thread
SLOT_WAIT_S = 5.0
METADATA_KEY = "trickle_topup"  # the top-up's public id, on the session and its PaymentIntent
PRODUCT_NAME = "Trickle balance top-up"


@dataclasses.dataclass(frozen=True, slots=True)
class CheckoutPage:
    session_id: str
    url: str


@dataclasses.dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    amount: int  # in the currency's Stripe minor unit
    status: str  # succeeded | pending | requires_action | failed | canceled


def checkout_key(topup: Topup) -> str:
    """Stripe's Idempotency-Key for the top-up's Checkout Session: a retry gets the same one."""
    return f"trickle-checkout-{topup.public_id}"


def refund_key(topup: Topup, refunded_total_minor: int) -> str:
    """Stripe's Idempotency-Key for refunding the top-up up to this total."""
    return f"trickle-refund-{topup.public_id}-{refunded_total_minor}"


def return_url(issuer: str, topup: Topup, *, cancelled: bool) -> str:
    url = f"{issuer}/topups/return?topup={topup.id}"
    return url + "&cancelled=1" if cancelled else url


class StripeGateway:
    def __init__(self, config: CardConfig) -> None:
        self._client = stripe.StripeClient(
            config.secret_key,
            base_addresses={"api": config.api_base} if config.api_base else None,
            max_network_retries=MAX_NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=TIMEOUT_S),
        )
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_CALLS)

    def create_checkout_session(self, topup: Topup, issuer: str) -> CheckoutPage:
        """The Checkout Session of this pending top-up. Every parameter comes from the stored
        row (the expiry too), so a retry sends the same request under the same key and Stripe
        answers with the same session."""
        metadata = {METADATA_KEY: topup.public_id}
        params: SessionCreateParams = {
            "mode": "payment",
            "allowed_payment_method_types": ["card"],
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": topup.provider_currency,
                        "unit_amount": topup.provider_amount,
                        "product_data": {"name": PRODUCT_NAME},
                    },
                }
            ],
            "client_reference_id": topup.public_id,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "expires_at": int(topup.expires_at.timestamp()),
            "success_url": return_url(issuer, topup, cancelled=False),
            "cancel_url": return_url(issuer, topup, cancelled=True),
        }
        created = self._call(
            "create a Checkout Session",
            lambda: self._client.v1.checkout.sessions.create(
                params, options={"idempotency_key": checkout_key(topup)}
            ),
        )
        url = created.url
        if not isinstance(created.id, str) or not isinstance(url, str):
            log.error("Stripe answered a Checkout Session without an id or a url")
            raise StripeUnavailable("Stripe's answer had no payment page")
        return CheckoutPage(created.id, url)

    def refund(self, topup: Topup, amount: int, idempotency_key: str) -> Refund:
        """Refund ``amount`` (Stripe minor units) of the top-up's payment."""
        payment_intent = topup.payment_intent_id
        if payment_intent is None:
            raise StripeUnavailable(f"top-up {topup.id} has no PaymentIntent to refund")
        params: RefundCreateParams = {
            "payment_intent": payment_intent,
            "amount": amount,
            "metadata": {METADATA_KEY: topup.public_id},
        }
        created = self._call(
            "create a refund",
            lambda: self._client.v1.refunds.create(
                params, options={"idempotency_key": idempotency_key}
            ),
        )
        return Refund(created.id, int(created.amount), str(created.status))

    def topup_of_payment_intent(self, payment_intent_id: str) -> str | None:
        """The public id of the top-up a PaymentIntent pays (its metadata), or None."""
        intent = self._call(
            "look up a PaymentIntent",
            lambda: self._client.v1.payment_intents.retrieve(payment_intent_id),
        )
        metadata = intent.to_dict().get("metadata")
        owner = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
        return owner if isinstance(owner, str) else None

    def _call(self, what: str, call: Callable[[], T]) -> T:
        if not self._slots.acquire(timeout=SLOT_WAIT_S):
            raise StripeUnavailable("too many calls to Stripe at once; try again in a moment")
        try:
            return call()
        except stripe.StripeError as exc:
            # The library's message names the request id and Stripe's reason, never the key.
            log.warning("could not %s at Stripe: %s: %s", what, type(exc).__name__, exc)
            raise StripeUnavailable(
                f"could not {what} at Stripe (no answer, or refused): try again in a moment"
            ) from None
        finally:
            self._slots.release()


@functools.lru_cache(maxsize=8)
def gateway(config: CardConfig) -> StripeGateway:
    """One gateway (HTTP connections, call slots) per configuration in a process."""
    return StripeGateway(config)
