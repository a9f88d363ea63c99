"""Stripe's webhook events: verified with the library's ``Webhook.construct_event`` (the
endpoint's signing secret, 300-second tolerance), then each applied once.

Every event is stored (``stripe_events``) in the transaction that applies it, so a redelivery —
or the same event arriving at two service processes at once — changes nothing: the second
insert waits on the first's unique id, then finds it. Each fact is also idempotent on its own
(the top-up's state, its locked row, the ledger keys), so two event types saying the same thing
(``checkout.session.completed`` and ``payment_intent.succeeded``) credit once, and events arriving
out of order are harmless: a refund or dispute of a top-up not yet credited credits it first (a
charge proves the payment).

Events about sessions or payments that are not Trickle's top-ups are acknowledged and ignored
(outcome ``ignored``): Stripe retries a non-2xx answer for days, and no retry could make them
known. A refund or dispute names its PaymentIntent, which the top-up records when it is paid; one
about a PaymentIntent not recorded yet (it overtook the success events, or carries no metadata)
raises ``PaymentIntentUnknown``: the caller asks Stripe whose it is — outside the transaction —
and applies the event again with the answer in ``owners``. Domain code: the caller verifies,
owns the transaction, and makes no network call in it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

import stripe
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trickle import topups
from trickle.errors import MalformedJSON, StripeEventInvalid, StripeSignatureInvalid
from trickle.models import StripeEvent, Topup
from trickle.stripe_gateway import METADATA_KEY

log = logging.getLogger("trickle.stripe")

TOLERANCE_S = 300  # Stripe's default: a signature older than this is refused (replays)
MAX_ID_CHARS = 200


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    object: dict[str, Any]  # data.object: the Stripe object the event is about


@dataclasses.dataclass(frozen=True, slots=True)
class Applied:
    outcome: str  # credited, failed, refunded, disputed, ... ignored, duplicate
    topup_id: int | None = None
    user_id: int | None = None  # the reader whose funds or freeze changed, if any


class PaymentIntentUnknown(Exception):
    """The event is about a PaymentIntent no top-up has recorded: look its owner up at Stripe
    (its metadata names the top-up, or nothing), then apply the event again."""

    def __init__(self, payment_intent_id: str) -> None:
        super().__init__(payment_intent_id)
        self.payment_intent_id = payment_intent_id


# PaymentIntent id -> the public id of the top-up it pays (None: not one of Trickle's)
Owners = Mapping[str, str | None]


def verify(payload: bytes, signature: str | None, secret: str) -> Event:
    """The event, if Stripe signed this payload with ``secret`` less than 300 s ago."""
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=TOLERANCE_S)
    except stripe.SignatureVerificationError as exc:
        raise StripeSignatureInvalid(f"the Stripe-Signature does not verify: {exc}") from None
    except ValueError as exc:  # not UTF-8, or not JSON (after a valid signature)
        raise MalformedJSON(f"the event is not JSON: {exc}") from None
    except (AttributeError, TypeError):  # JSON, signed, but not an object: the library chokes
        raise StripeEventInvalid("the event is not a JSON object") from None
    data = event.to_dict()
    event_id, kind, inner = data.get("id"), data.get("type"), data.get("data")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID_CHARS:
        raise StripeEventInvalid("the event has no id")
    if not isinstance(kind, str) or not isinstance(inner, dict):
        raise StripeEventInvalid(f"event {event_id} has no type or no data")
    obj = inner.get("object")
    if not isinstance(obj, dict):
        raise StripeEventInvalid(f"event {event_id} has no data.object")
    return Event(event_id, kind, obj)


def apply(
    session: Session, event: Event, now: dt.datetime, owners: Owners | None = None
) -> Applied:
    """Apply the event once; a second delivery is ``duplicate`` and changes nothing.
    ``PaymentIntentUnknown`` (nothing stored) when the event needs ``owners`` to say whose
    payment it is about."""
    row = StripeEvent(id=event.id, type=event.type[:100], outcome="applying", received_at=now)
    try:
        # First thing in the transaction: a racing delivery of this event waits here on the
        # unique id until this transaction ends, then finds it stored.
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return Applied("duplicate")
    handler = HANDLERS.get(event.type)
    applied = Applied("ignored") if handler is None else handler(session, event, now, owners or {})
    row.outcome = applied.outcome
    row.topup_id = applied.topup_id
    session.flush()
    return applied


# --- fields ------------------------------------------------------------------------------------


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise StripeEventInvalid(f"the event's object has no {key}")
    return value


def _ref(obj: dict[str, Any], key: str) -> str | None:
    """An id field that Stripe sends as the id, or as the object when expanded."""
    value = obj.get(key)
    if isinstance(value, dict):
        value = value.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise StripeEventInvalid(f"the event's {key} is not an id")
    return value


def _public_id(obj: dict[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    value = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


def _ours(
    session: Session,
    obj: dict[str, Any],
    payment_intent_id: str | None,
    owners: Owners | None = None,
) -> Topup | None:
    """The top-up an object is about (row locked), or None if it is not one of ours. With
    ``owners`` (events about a charge): ``PaymentIntentUnknown`` when neither the object nor a
    recorded top-up says whose payment it is."""
    public_id = _public_id(obj)
    topup = None
    if payment_intent_id is not None:
        topup = topups.find(session, payment_intent_id=payment_intent_id)
    if topup is None and public_id is None and payment_intent_id is not None and owners is not None:
        if payment_intent_id not in owners:
            raise PaymentIntentUnknown(payment_intent_id)
        public_id = owners[payment_intent_id]
    if topup is None and public_id is not None:
        topup = topups.find(session, public_id=public_id)
        if topup is None:
            # Trickle's metadata, no such top-up: another deployment on the same Stripe account.
            log.warning("Stripe event about top-up %s, which this service does not have", public_id)
    return topup


def _applied(outcome: str, topup: Topup) -> Applied:
    return Applied(outcome, topup.id, topup.user_id)


# --- handlers ----------------------------------------------------------------------------------


def _session_paid(session: Session, event: Event, now: dt.datetime, owners: Owners) -> Applied:
    obj = event.object
    payment_intent_id = _ref(obj, "payment_intent")
    topup = _ours(session, obj, None)
    if topup is None:
        return Applied("ignored")
    session_id = _text(obj, "id")
    if topup.checkout_session_id is None:
        topup.checkout_session_id = session_id  # we crashed before recording Stripe's answer
    elif topup.checkout_session_id != session_id:
        log.warning(
            "Stripe session %s names top-up %s of session %s",
            session_id,
            topup.id,
            topup.checkout_session_id,
        )
        return Applied("ignored", topup.id)
    if event.type == "checkout.session.completed" and obj.get("payment_status") != "paid":
        topups.note_payment_intent(topup, payment_intent_id)  # a delayed method: wait for it
        session.flush()
        return _applied("awaiting_payment", topup)
    topups.check_paid_amount(topup, obj.get("amount_total"), obj.get("currency"))
    credited = topups.credit(
        session, topup, payment_intent_id=payment_intent_id, reference=event.id, now=now
    )
    return _applied("credited" if credited else "already_credited", topup)


def _session_failed(session: Session, event: Event, now: dt.datetime, owners: Owners) -> Applied:
    topup = _ours(session, event.object, None)
    if topup is None:
        return Applied("ignored")
    reason = "expired" if event.type == "checkout.session.expired" else "payment_failed"
    failed = topups.fail(session, topup, reason, now)
    return _applied("failed" if failed else "no_change", topup)


def _intent_succeeded(session: Session, event: Event, now: dt.datetime, owners: Owners) -> Applied:
    obj = event.object
    payment_intent_id = _text(obj, "id")
    topup = _ours(session, obj, payment_intent_id)
    if topup is None:
        return Applied("ignored")
    topups.check_paid_amount(topup, obj.get("amount_received"), obj.get("currency"))
    credited = topups.credit(
        session, topup, payment_intent_id=payment_intent_id, reference=event.id, now=now
    )
    return _applied("credited" if credited else "already_credited", topup)


def _intent_failed(session: Session, event: Event, now: dt.datetime, owners: Owners) -> Applied:
    obj = event.object
    topup = _ours(session, obj, _text(obj, "id"))
    if topup is None:
        return Applied("ignored")
    error = obj.get("last_payment_error")
    code = error.get("decline_code") or error.get("code") if isinstance(error, dict) else None
    topups.note_attempt_failed(session, topup, str(code or "payment_failed"), now)
    return _applied("attempt_failed", topup)


def _credited_first(session: Session, topup: Topup, event: Event, now: dt.datetime) -> None:
    """A refund or dispute proves the payment: credit a top-up whose success event is late."""
    if topup.state in topups.CREDITABLE:
        topups.credit(session, topup, payment_intent_id=None, reference=event.id, now=now)


def _charge_refunded(session: Session, event: Event, now: dt.datetime, owners: Owners) -> Applied:
    obj = event.object
    topup = _ours(session, obj, _ref(obj, "payment_intent"), owners)
    if topup is None:
        return Applied("ignored")
    topups.check_paid_amount(topup, obj.get("amount"), obj.get("currency"))
    topups.note_payment_intent(topup, _ref(obj, "payment_intent"))
    _credited_first(session, topup, event, now)
    total = topups.to_minor(topup, obj.get("amount_refunded"), obj.get("currency"))
    taken = topups.refund(session, topup, refunded_total_minor=total, reference=event.id, now=now)
    return _applied("refunded" if taken else "no_change", topup)


def _dispute_created(session: Session, event: Event, now: dt.datetime, owners: Owners) -> Applied:
    obj = event.object
    topup = _ours(session, obj, _ref(obj, "payment_intent"), owners)
    if topup is None:
        return Applied("ignored")
    topups.note_payment_intent(topup, _ref(obj, "payment_intent"))
    _credited_first(session, topup, event, now)
    amount = topups.to_minor(topup, obj.get("amount"), obj.get("currency"))
    taken = topups.open_dispute(
        session,
        topup,
        dispute_id=_text(obj, "id"),
        disputed_minor=amount,
        reference=event.id,
        now=now,
    )
    return _applied("disputed" if taken else "no_change", topup)


def _dispute_closed(session: Session, event: Event, now: dt.datetime, owners: Owners) -> Applied:
    obj = event.object
    topup = _ours(session, obj, _ref(obj, "payment_intent"), owners)
    if topup is None:
        return Applied("ignored")
    status = _text(obj, "status")
    closed = topups.close_dispute(
        session, topup, dispute_id=_text(obj, "id"), status=status, reference=event.id, now=now
    )
    return _applied(f"dispute_{status}"[:32] if closed else "no_change", topup)


Handler = Callable[[Session, Event, dt.datetime, Owners], Applied]
HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _session_paid,
    "checkout.session.async_payment_succeeded": _session_paid,
    "checkout.session.async_payment_failed": _session_failed,
    "checkout.session.expired": _session_failed,
    "payment_intent.succeeded": _intent_succeeded,
    "payment_intent.payment_failed": _intent_failed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}
