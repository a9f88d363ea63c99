"""A local stand-in for Stripe's HTTP API, for the card top-up tests: the ``stripe`` library talks
to it (``TRICKLE_STRIPE_API_BASE``) as it would to api.stripe.com.

It answers the calls Trickle makes — ``POST /v1/checkout/sessions``, ``GET
/v1/checkout/sessions/{id}``, ``GET /v1/payment_intents/{id}``, ``POST /v1/refunds`` — with the
object shapes of Stripe's API reference (form-encoded requests, JSON objects, errors as
``{"error": {...}}``). It honours ``Idempotency-Key`` as Stripe does (the same key and parameters
replay the first answer; other parameters are an ``idempotency_error``) and checks the secret
key. It makes the webhook events Stripe would send, signed exactly as Stripe signs them
(``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the endpoint
secret>``): handed to the test (``outbox``), or POSTed to ``webhook_url`` when one is set.

``GET /pay/{session id}`` is the stand-in's "checkout page": its "Pay" button (``POST
/pay/{session id}``) pays the session — the events go to ``webhook_url`` before the answer — and
redirects to the session's ``success_url``, as Stripe's hosted page does after a payment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.server
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

API_VERSION = "2026-10-28.endive"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def parse_form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][0][c]=v``) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(body.decode(), keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    form: dict[str, Any] = _lists(root)  # the root's keys are names, never indices: a dict
    return form


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


@dataclasses.dataclass
class Recorded:
    method: str
    path: str
    idempotency_key: str | None
    params: dict[str, Any]
    status: int


class StripeError(Exception):
    def __init__(self, status: int, kind: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.code = status, kind, code

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.kind, "message": str(self)}
        if self.code:
            error["code"] = self.code
        return {"error": error}


class StripeStandIn:
    """Stripe's API on 127.0.0.1:<port>, in a thread."""

    def __init__(self) -> None:
        self.secret_key = "sk_test_" + secrets.token_hex(12)
        self.webhook_secret = "whsec_" + secrets.token_hex(16)
        self.webhook_url: str | None = None  # where GET /pay/... sends the events
        self.requests: list[Recorded] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.outbox: list[dict[str, Any]] = []  # events made, in order
        self.delivered: list[tuple[str, int, dict[str, Any]]] = []  # (event id, status, answer)
        self.fail_after_create = 0  # create sessions but answer 500 (the answer "lost") n times
        self.pay_events = ("checkout.session.completed", "payment_intent.succeeded")
        self._idempotent: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StripeStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # --- the API -------------------------------------------------------------------------------

    def _create_session(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("mode") != "payment":
            raise StripeError(
                400, "invalid_request_error", "mode must be payment", "parameter_invalid"
            )
        for name in ("success_url", "cancel_url", "line_items", "expires_at"):
            if name not in p:
                raise StripeError(400, "invalid_request_error", f"Missing required param: {name}.")
        (item,) = p["line_items"]
        price = item["price_data"]
        if not price["unit_amount"].isdigit() or not price.get("product_data", {}).get("name"):
            raise StripeError(400, "invalid_request_error", "Invalid line item")
        ttl = int(p["expires_at"]) - int(time.time())
        if not 1800 - 120 <= ttl <= 86_400:
            raise StripeError(400, "invalid_request_error", "expires_at must be 30 min to 24 h")
        amount = int(price["unit_amount"]) * int(item["quantity"])
        session_id = _id("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": amount,
            "amount_total": amount,
            "cancel_url": p["cancel_url"],
            "client_reference_id": p.get("client_reference_id"),
            "created": int(time.time()),
            "currency": price["currency"],
            "customer": None,
            "expires_at": int(p["expires_at"]),
            "livemode": False,
            "metadata": p.get("metadata", {}),
            "mode": "payment",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": p["success_url"],
            "url": f"{self.base}/pay/{session_id}",
            "_payment_intent_data": p.get("payment_intent_data", {}),
        }
        self.sessions[session_id] = session
        return self.public(session)

    def _create_refund(self, p: dict[str, Any]) -> dict[str, Any]:
        intent = self.payment_intents.get(p.get("payment_intent", ""))
        if intent is None:
            raise StripeError(
                404, "invalid_request_error", "No such payment_intent", "resource_missing"
            )
        charge = self.charges[intent["latest_charge"]]
        amount = int(p.get("amount", charge["amount"] - charge["amount_refunded"]))
        if not 0 < amount <= charge["amount"] - charge["amount_refunded"]:
            raise StripeError(
                400,
                "invalid_request_error",
                "Refund amount is greater than unrefunded amount",
                "amount_too_large",
            )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "currency": charge["currency"],
            "metadata": p.get("metadata", {}),
            "payment_intent": intent["id"],
            "status": "succeeded",
        }
        self.send(self.event("charge.refunded", charge))
        return refund

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(params)
        if method == "POST" and path == "/v1/refunds":
            return self._create_refund(params)
        match = re.fullmatch(r"/v1/checkout/sessions/([A-Za-z0-9_]+)", path)
        if method == "GET" and match and match.group(1) in self.sessions:
            return self.public(self.sessions[match.group(1)])
        match = re.fullmatch(r"/v1/payment_intents/([A-Za-z0-9_]+)", path)
        if method == "GET" and match and match.group(1) in self.payment_intents:
            return self.public(self.payment_intents[match.group(1)])
        raise StripeError(
            404, "invalid_request_error", f"Unrecognized request URL ({method}: {path})"
        )

    def api(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        params = parse_form(body) if body else {}
        key = headers.get("Idempotency-Key")
        if headers.get("Authorization") != f"Bearer {self.secret_key}":
            refusal = StripeError(401, "invalid_request_error", "Invalid API Key provided")
            return self._record(method, path, key, params, 401, refusal.body())
        with self._lock:
            if key is not None and key in self._idempotent:
                seen_path, seen_params, status, answer = self._idempotent[key]
                if (seen_path, seen_params) != (path, params):
                    error = StripeError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                    )
                    return self._record(method, path, key, params, 400, error.body())
                return self._record(method, path, key, params, status, answer, replayed=True)
            try:
                status, answer = 200, self._route(method, path, params)
            except StripeError as error:
                status, answer = error.status, error.body()
            if key is not None and method == "POST":
                self._idempotent[key] = (path, params, status, answer)
            if path == "/v1/checkout/sessions" and status == 200 and self.fail_after_create > 0:
                self.fail_after_create -= 1
                lost = StripeError(500, "api_error", "An unknown error occurred")
                # Stripe stores the result under the key; only this answer is lost in transit.
                return self._record(method, path, key, params, 500, lost.body(), retry=False)
        return self._record(method, path, key, params, status, answer)

    def _record(
        self,
        method: str,
        path: str,
        key: str | None,
        params: dict[str, Any],
        status: int,
        answer: dict[str, Any],
        *,
        replayed: bool = False,
        retry: bool | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.requests.append(Recorded(method, path, key, params, status))
        headers = {"Request-Id": "req_" + secrets.token_hex(8)}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        if retry is not None:
            headers["Stripe-Should-Retry"] = "true" if retry else "false"
        return status, answer, headers

    @staticmethod
    def public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # --- what the cardholder and Stripe do -----------------------------------------------------

    def pay(self, session_id: str) -> list[dict[str, Any]]:
        """The cardholder pays the session: a PaymentIntent and a Charge succeed, the session
        completes; the events (``pay_events``, in that order) are sent."""
        with self._lock:
            session = self.sessions[session_id]
            intent_id, charge_id = _id("pi"), _id("ch")
            metadata = session["_payment_intent_data"].get("metadata", {})
            amount, currency = session["amount_total"], session["currency"]
            self.charges[charge_id] = {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": 0,
                "currency": currency,
                "metadata": metadata,
                "paid": True,
                "payment_intent": intent_id,
                "refunded": False,
                "status": "succeeded",
            }
            self.payment_intents[intent_id] = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount,
                "amount_received": amount,
                "currency": currency,
                "latest_charge": charge_id,
                "metadata": metadata,
                "status": "succeeded",
            }
            session.update(payment_intent=intent_id, payment_status="paid", status="complete")
        objects = {
            "checkout.session.completed": self.public(session),
            "payment_intent.succeeded": self.payment_intents[intent_id],
        }
        events = [self.event(kind, objects[kind]) for kind in self.pay_events]
        for event in events:
            self.send(event)
        return events

    def expire(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        session.update(status="expired")
        event = self.event("checkout.session.expired", self.public(session))
        self.send(event)
        return event

    def dispute(self, session_id: str, amount: int | None = None) -> dict[str, Any]:
        """The cardholder disputes the session's payment."""
        intent = self.payment_intents[self.sessions[session_id]["payment_intent"]]
        charge = self.charges[intent["latest_charge"]]
        dispute = {
            "id": _id("dp"),
            "object": "dispute",
            "amount": charge["amount"] if amount is None else amount,
            "charge": charge["id"],
            "currency": charge["currency"],
            "metadata": {},
            "payment_intent": intent["id"],
            "reason": "fraudulent",
            "status": "needs_response",
        }
        charge["_dispute"] = dispute
        event = self.event("charge.dispute.created", dict(dispute))
        self.send(event)
        return event

    def close_dispute(self, session_id: str, status: str) -> dict[str, Any]:
        intent = self.payment_intents[self.sessions[session_id]["payment_intent"]]
        dispute = self.charges[intent["latest_charge"]]["_dispute"]
        dispute["status"] = status
        event = self.event("charge.dispute.closed", dict(dispute))
        self.send(event)
        return event

    def refund_event(self, session_id: str, amount_refunded: int) -> dict[str, Any]:
        """A refund made elsewhere (Stripe's dashboard): the charge's running refunded total."""
        intent = self.payment_intents[self.sessions[session_id]["payment_intent"]]
        charge = self.charges[intent["latest_charge"]]
        charge["amount_refunded"] = amount_refunded
        charge["refunded"] = amount_refunded == charge["amount"]
        event = self.event("charge.refunded", self.public(charge))
        self.send(event)
        return event

    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": _id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": self.public(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }

    def signed(
        self, event: dict[str, Any], *, secret: str | None = None, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the event's delivery, as Stripe sends it."""
        payload = json.dumps(event, indent=2).encode()
        signature = sign(payload, secret or self.webhook_secret, timestamp)
        return payload, {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature,
        }

    def send(self, event: dict[str, Any]) -> None:
        self.outbox.append(event)
        if self.webhook_url is not None:
            self.deliver(event, self.webhook_url)

    def deliver(self, event: dict[str, Any], url: str) -> tuple[int, dict[str, Any]]:
        payload, headers = self.signed(event)
        request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer = response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            status, answer = error.code, json.loads(error.read() or b"null")
        self.delivered.append((event["id"], status, answer))
        return status, answer

    # --- HTTP --------------------------------------------------------------------------------

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_POST(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                body = self._body()
                match = re.fullmatch(r"/pay/([A-Za-z0-9_]+)", path)
                if match:
                    self._pay(match.group(1))
                    return
                self._answer(*standin.api("POST", path, self.headers, body))

            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                match = re.fullmatch(r"/pay/([A-Za-z0-9_]+)", parsed.path)
                if match:
                    self._checkout_page(match.group(1))
                    return
                self._answer(*standin.api("GET", parsed.path, self.headers, b""))

            def _open_session(self, session_id: str) -> dict[str, Any] | None:
                session = standin.sessions.get(session_id)
                if session is None or session["status"] != "open":
                    self._answer(404, {"error": {"type": "invalid_request_error"}}, {})
                    return None
                return session

            def _checkout_page(self, session_id: str) -> None:
                session = self._open_session(session_id)
                if session is None:
                    return
                amount = f"{session['amount_total']} {session['currency']} (minor units)"
                page = (
                    "<!doctype html><title>Stripe stand-in checkout</title>"
                    f"<h1>Pay {amount}</h1>"
                    f'<form method="post" action="/pay/{session_id}">'
                    '<button id="pay" type="submit">Pay</button></form>'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def _pay(self, session_id: str) -> None:
                session = self._open_session(session_id)
                if session is None:
                    return
                standin.pay(session_id)  # the events reach the service before the redirect
                self.send_response(303)
                self.send_header("Location", session["success_url"])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        return Handler
