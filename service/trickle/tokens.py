"""Private-payment tokens (docs/tokens.md): the token keys (one per currency and epoch, a UTC
month, the same for every reader), the published key document, tokens as they arrive and the
checks every token passes before it pays, and issuing and refunding them.

The cryptography is ``voprf``'s; the money is ``ledger.tokens``'s. A spent token is recorded by
its nullifier (the SHA-256 of its input) and nothing else. The caller owns the transaction.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trickle import freezes, ledger, readers, spending, voprf
from trickle.db import insert_unless_present
from trickle.errors import (
    CurrencyMismatch,
    EpochExpired,
    IdempotencyKeyReused,
    InvalidElement,
    InvalidToken,
    TokenSpent,
    TooManyTokens,
    UnknownEpoch,
    ValidationFailed,
)
from trickle.keys import KeyEncryptionKey, b64url
from trickle.ledger.tokens import (
    TokenIssue,
    TokenRefund,
    TokenSpend,
    post_token_issue,
    post_token_refunds,
)
from trickle.models import TokenIssuance
from trickle.models import TokenKey as TokenKeyRow
from trickle.settings import Settings

__all__ = [
    "INPUT_BYTES",
    "OUTPUT_BYTES",
    "REFUND_MAX_TOKENS",
    "Issued",
    "Token",
    "TokenKey",
    "TokenKeyRing",
    "TokenRingCache",
    "TokenSpend",
    "ensure_keys",
    "epoch_bounds",
    "epoch_of",
    "issue",
    "key_document",
    "load_ring",
    "parse_tokens",
    "refund",
]

INPUT_BYTES = 32  # a token input: 32 random bytes chosen by the reader's extension
OUTPUT_BYTES = voprf.OUTPUT_BYTES
REFUND_MAX_TOKENS = 256  # per refund request (a body of at most 64 KiB)
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_MAX_EPOCH = 999_912


# --- tokens as they arrive ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    """A token shown to pay or to be refunded: ``output`` must be the epoch key's PRF of
    ``input`` (``TokenKeyRing.check``)."""

    epoch: int
    input: bytes = dataclasses.field(repr=False)
    output: bytes = dataclasses.field(repr=False)

    @property
    def nullifier(self) -> bytes:
        """What is recorded when it pays: the SHA-256 of its input."""
        return hashlib.sha256(self.input).digest()


def b64url_decode(text: str, length: int) -> bytes:
    """Unpadded base64url (RFC 4648 §5) of exactly ``length`` bytes, in its one canonical
    spelling; ``ValueError`` otherwise."""
    if not _B64URL.fullmatch(text) or len(text) != (4 * length + 2) // 3:
        raise ValueError(f"expected {length} bytes in unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(data) != length or b64url(data) != text:
        raise ValueError(f"expected {length} bytes in canonical unpadded base64url")
    return data


def parse_tokens(raw: object, *, limit: int) -> list[Token]:
    """Tokens from JSON: a list of 1..``limit`` objects ``{"epoch": int, "input": b64url (32
    bytes), "output": b64url (64 bytes)}``, no token twice. ``InvalidToken`` (naming the index)
    for a malformed one, ``TooManyTokens`` past the limit."""
    if not isinstance(raw, list) or not raw:
        raise InvalidToken("tokens must be a non-empty list")
    if len(raw) > limit:
        raise TooManyTokens(f"at most {limit} tokens at once, got {len(raw)}")
    tokens: list[Token] = []
    seen: dict[bytes, int] = {}
    for index, item in enumerate(raw):
        token = _parse_token(item, index)
        first = seen.setdefault(token.input, index)
        if first != index:
            raise InvalidToken(f"token {index} repeats token {first}", index=index)
        tokens.append(token)
    return tokens


def _parse_token(item: object, index: int) -> Token:
    if not isinstance(item, dict) or set(item) != {"epoch", "input", "output"}:
        raise InvalidToken(
            f"token {index} must be an object with epoch, input and output", index=index
        )
    epoch, data, output = item["epoch"], item["input"], item["output"]
    if type(epoch) is not int or not 0 < epoch <= _MAX_EPOCH:
        raise InvalidToken(f"token {index}: epoch must be an integer YYYYMM", index=index)
    if not isinstance(data, str) or not isinstance(output, str):
        raise InvalidToken(f"token {index}: input and output must be strings", index=index)
    try:
        return Token(epoch, b64url_decode(data, INPUT_BYTES), b64url_decode(output, OUTPUT_BYTES))
    except ValueError as error:
        raise InvalidToken(
            f"token {index}: input is {INPUT_BYTES} bytes and output {OUTPUT_BYTES} bytes in "
            f"unpadded base64url ({error})",
            index=index,
        ) from None


# --- epochs and keys -------------------------------------------------------------------------


def epoch_of(now: dt.datetime) -> int:
    """The epoch a moment falls in: its UTC month as YYYYMM."""
    utc = now.astimezone(dt.UTC)
    return utc.year * 100 + utc.month


def epoch_bounds(epoch: int) -> tuple[dt.datetime, dt.datetime]:
    """When an epoch issues: from the start of its month to the start of the next (UTC)."""
    year, month = divmod(epoch, 100)
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
    return start, end


def _next_epoch(epoch: int) -> int:
    return epoch_of(epoch_bounds(epoch)[1])


@dataclasses.dataclass(frozen=True, slots=True)
class TokenKey:
    """One epoch's token key in memory. Its repr shows no secret."""

    currency: str
    scale: int
    epoch: int
    value_minor: int
    public_key: voprf.PublicKey
    secret_key: voprf.SecretKey = dataclasses.field(repr=False, compare=False)
    issue_from: dt.datetime
    issue_until: dt.datetime
    spend_until: dt.datetime

    def issuing(self, now: dt.datetime) -> bool:
        return self.issue_from <= now < self.issue_until

    def spendable(self, now: dt.datetime) -> bool:
        return now < self.spend_until

    def published(self) -> dict[str, str | int]:
        """Its entry in the key document: what a client checks every evaluation against."""
        return {
            "currency": self.currency,
            "scale": self.scale,
            "epoch": self.epoch,
            "value_minor": str(self.value_minor),
            "public_key": b64url(self.public_key.to_bytes()),
            "issue_from": _rfc3339(self.issue_from),
            "issue_until": _rfc3339(self.issue_until),
            "spend_until": _rfc3339(self.spend_until),
        }

    def matches(self, token: Token) -> bool:
        """Whether the token's output is this key's PRF of its input (constant-time compare)."""
        return hmac.compare_digest(voprf.evaluate(self.secret_key, token.input), token.output)


def _rfc3339(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


@dataclasses.dataclass(frozen=True, slots=True)
class TokenKeyRing:
    """Every token key of one currency, by epoch: what a process checks tokens against."""

    currency: str
    keys: dict[int, TokenKey]
    loaded_at: dt.datetime

    def check(self, token: Token, now: dt.datetime, *, index: int | None = None) -> TokenKey:
        """The key a token pays under, once its output is the key's PRF of its input. Raises
        ``UnknownEpoch`` (no key of this currency has the epoch), ``EpochExpired`` (past its
        ``spend_until``: refund it) or ``InvalidToken`` (forged, or another key's)."""
        key = self.key_of(token, index)
        if not key.spendable(now):
            raise EpochExpired(
                f"{_which(index)}epoch {token.epoch} paid until {_rfc3339(key.spend_until)}; "
                "refund it",
                index=index,
            )
        return self._checked(key, token, index)

    def check_refundable(self, token: Token, *, index: int | None = None) -> TokenKey:
        """``check`` for a refund: a token of any epoch this currency had a key for."""
        return self._checked(self.key_of(token, index), token, index)

    def issuing(self, epoch: int, now: dt.datetime) -> TokenKey:
        """The key that issues now, if it is this epoch's; ``UnknownEpoch`` otherwise."""
        key = self.keys.get(epoch)
        if key is None or not key.issuing(now):
            raise UnknownEpoch(
                f"epoch {epoch} does not issue {self.currency} tokens now; "
                "refetch /.well-known/trickle-token-keys"
            )
        return key

    def published(self, now: dt.datetime) -> list[TokenKey]:
        """The keys whose tokens still pay (the next epoch's included), newest first."""
        return sorted(
            (key for key in self.keys.values() if key.spendable(now)),
            key=lambda key: key.epoch,
            reverse=True,
        )

    def key_of(self, token: Token, index: int | None = None) -> TokenKey:
        """The key of the token's epoch, unchecked; ``UnknownEpoch`` if there is none."""
        key = self.keys.get(token.epoch)
        if key is None:
            raise UnknownEpoch(
                f"{_which(index)}no {self.currency} token key has epoch {token.epoch}", index=index
            )
        return key

    @staticmethod
    def _checked(key: TokenKey, token: Token, index: int | None) -> TokenKey:
        if not key.matches(token):
            raise InvalidToken(
                f"{_which(index)}not a token of the {key.currency} key of epoch {key.epoch}",
                index=index,
            )
        return key


def _which(index: int | None) -> str:
    return "" if index is None else f"token {index}: "


class TokenRingCache:
    """The process's token key ring, reloaded with the signing keys (``Runtime.reload_keys``)."""

    def __init__(self, ring: TokenKeyRing) -> None:
        self._ring = ring

    @property
    def current(self) -> TokenKeyRing:
        return self._ring

    def replace(self, ring: TokenKeyRing) -> None:
        self._ring = ring


def ensure_keys(
    session: Session, kek: KeyEncryptionKey, settings: Settings, now: dt.datetime
) -> None:
    """The keys of this epoch and the next exist (the next one is published a whole epoch before
    it issues). Safe when processes race: the first insert wins, the others' keys are dropped
    unused."""
    epoch = epoch_of(now)
    for wanted in (epoch, _next_epoch(epoch)):
        issue_from, issue_until = epoch_bounds(wanted)
        secret = voprf.SecretKey.generate()
        values: dict[str, Any] = {
            "currency": settings.currency,
            "epoch": wanted,
            "value_minor": settings.token_value_minor,
            "scale": settings.asset_scale,
            "public_key": secret.public_key.to_bytes(),
            "sealed_secret_key": kek.seal(secret.to_bytes()),
            "issue_from": issue_from,
            "issue_until": issue_until,
            "spend_until": issue_until + dt.timedelta(seconds=settings.token_grace_s),
            "created_at": now,
        }
        insert_unless_present(session, TokenKeyRow, values, ["currency", "epoch"])


def reseal(session: Session, old: KeyEncryptionKey, new: KeyEncryptionKey) -> int:
    """Seal every stored token key, of every currency, with ``new`` instead of ``old`` (with the
    signing keys, when the key-encryption key is replaced); returns how many. A key ``old`` does
    not open (``KeyStoreError``), or whose secret does not match its public key, raises, and the
    caller's transaction changes none."""
    rows = session.scalars(select(TokenKeyRow).order_by(TokenKeyRow.id)).all()
    for row in rows:
        secret = old.open(row.sealed_secret_key)
        if voprf.SecretKey.from_bytes(secret).public_key.to_bytes() != row.public_key:
            raise ValueError(f"token key {row.currency} {row.epoch} does not match its public key")
        row.sealed_secret_key = new.seal(secret)
    return len(rows)


def load_ring(
    session: Session, kek: KeyEncryptionKey, settings: Settings, now: dt.datetime
) -> TokenKeyRing:
    """Every token key of the service's currency, unsealed (each checked against its stored
    public key)."""
    keys: dict[int, TokenKey] = {}
    for row in session.scalars(
        select(TokenKeyRow).where(TokenKeyRow.currency == settings.currency)
    ):
        secret = voprf.SecretKey.from_bytes(kek.open(row.sealed_secret_key))
        if secret.public_key.to_bytes() != row.public_key:
            raise ValueError(f"token key {row.currency} {row.epoch} does not match its public key")
        keys[row.epoch] = TokenKey(
            currency=row.currency,
            scale=row.scale,
            epoch=row.epoch,
            value_minor=row.value_minor,
            public_key=secret.public_key,
            secret_key=secret,
            issue_from=row.issue_from,
            issue_until=row.issue_until,
            spend_until=row.spend_until,
        )
    return TokenKeyRing(settings.currency, keys, now)


def needs_keys(ring: TokenKeyRing, now: dt.datetime) -> bool:
    """Whether this epoch's or the next one's key is missing from the ring."""
    epoch = epoch_of(now)
    return epoch not in ring.keys or _next_epoch(epoch) not in ring.keys


def key_document(ring: TokenKeyRing, now: dt.datetime) -> dict[str, list[dict[str, str | int]]]:
    """``/.well-known/trickle-token-keys``: every key whose tokens still pay."""
    return {"keys": [key.published() for key in ring.published(now)]}


# --- issuing ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class IssueRequest:
    """A signed-in reader buys ``len(blinded)`` tokens of an epoch."""

    user_id: int
    idempotency_key: str
    currency: str
    epoch: int
    blinded: tuple[bytes, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Issued:
    key: TokenKey
    evaluated: tuple[bytes, ...]
    proof: bytes
    amount_minor: int
    balance_minor: int  # the reader's balance after it
    replayed: bool  # True: this Idempotency-Key had issued before; nothing moved now


def _request_hash(request: IssueRequest) -> str:
    digest = hashlib.sha256(f"{request.currency}\n{request.epoch}\n".encode())
    for element in request.blinded:
        digest.update(element)
    return digest.hexdigest()


def _find_issuance(session: Session, user_id: int, key: str) -> TokenIssuance | None:
    return session.scalars(
        select(TokenIssuance).where(
            TokenIssuance.user_id == user_id, TokenIssuance.idempotency_key == key
        )
    ).first()


def issue(
    session: Session,
    request: IssueRequest,
    ring: TokenKeyRing,
    settings: Settings,
    now: dt.datetime,
    *,
    batch_max: int,
) -> Issued:
    """Evaluate the reader's blinded elements with the epoch's key, debit their balance by the
    tokens' value into the float and count it against their monthly budget, and keep the answer:
    all in the caller's transaction. A retry with the same Idempotency-Key returns the same
    answer and moves nothing. Raises ``CurrencyMismatch``, ``UnknownEpoch``, ``InvalidElement``,
    ``TooManyTokens``, ``AccountFrozen``, ``BudgetExhausted``, ``InsufficientFunds`` or
    ``IdempotencyKeyReused``."""
    digest = _request_hash(request)
    existing = _find_issuance(session, request.user_id, request.idempotency_key)
    if existing is not None:
        return _replay(session, existing, digest, ring, settings)
    if request.currency != ring.currency:
        raise CurrencyMismatch(
            f"this service issues {ring.currency} tokens, not {request.currency[:12]!r}"
        )
    if not request.blinded:
        raise ValidationFailed("blinded must hold at least one element")
    if len(request.blinded) > batch_max:
        raise TooManyTokens(f"at most {batch_max} tokens per issuance, got {len(request.blinded)}")
    key = ring.issuing(request.epoch, now)
    evaluation = _evaluate(key, request.blinded)
    freezes.refuse_if_frozen(session, request.user_id)
    reader = readers.reader_account(session, request.user_id, settings, now)
    amount = len(request.blinded) * key.value_minor
    row = TokenIssuance(
        user_id=request.user_id,
        idempotency_key=request.idempotency_key,
        request_hash=digest,
        currency=key.currency,
        epoch=key.epoch,
        count=len(request.blinded),
        amount_minor=amount,
        evaluated=b"".join(evaluation.evaluated_elements) + evaluation.proof,
        created_at=now,
    )
    try:
        with session.begin_nested():
            # The row first: a racer with the same key waits on its unique index, then replays.
            session.add(row)
            session.flush()
            _pay_for(session, row, reader_account_id=reader, key=key, settings=settings, now=now)
    except IntegrityError:
        raced = _find_issuance(session, request.user_id, request.idempotency_key)
        if raced is None:
            raise
        return _replay(session, raced, digest, ring, settings)
    return Issued(
        key,
        evaluation.evaluated_elements,
        evaluation.proof,
        amount,
        ledger.balance(session, reader),
        replayed=False,
    )


def _evaluate(key: TokenKey, blinded: Sequence[bytes]) -> voprf.BatchEvaluation:
    """BlindEvaluateBatch with the key; ``InvalidElement`` names the element at fault."""
    try:
        return voprf.blind_evaluate_batch(key.secret_key, blinded)
    except voprf.VoprfError as error:
        raise InvalidElement(error.message, index=_element_index(error.message)) from None


def _pay_for(
    session: Session,
    row: TokenIssuance,
    *,
    reader_account_id: int,
    key: TokenKey,
    settings: Settings,
    now: dt.datetime,
) -> None:
    """The issuance's money: its amount against the month's budget, reader -> float."""
    policy = readers.reader_policy(session, row.user_id, settings)
    post_token_issue(
        session,
        TokenIssue(
            user_id=row.user_id,
            reader_account_id=reader_account_id,
            asset=ledger.Asset(key.currency, key.scale),
            amount_minor=row.amount_minor,
            key=f"tokens:{row.idempotency_key}",
            budget_minor=policy.monthly_budget_minor,
            month=spending.month_of(now),
        ),
        now,
    )


def _element_index(message: str) -> int | None:
    match = re.match(r"blinded element (\d+)", message)
    return int(match.group(1)) if match else None


def _replay(
    session: Session, row: TokenIssuance, digest: str, ring: TokenKeyRing, settings: Settings
) -> Issued:
    if row.request_hash != digest:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {row.idempotency_key!r} issued tokens for another request"
        )
    key = ring.keys[row.epoch]
    size = voprf.ELEMENT_BYTES
    evaluated = tuple(row.evaluated[i * size : (i + 1) * size] for i in range(row.count))
    reader = readers.reader_account(session, row.user_id, settings, row.created_at)
    return Issued(
        key,
        evaluated,
        row.evaluated[row.count * size :],
        row.amount_minor,
        ledger.balance(session, reader),
        replayed=True,
    )


# --- refunding -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Refunded:
    count: int
    amount_minor: int
    balance_minor: int


def refund(
    session: Session,
    *,
    user_id: int,
    idempotency_key: str,
    tokens: Sequence[Token],
    ring: TokenKeyRing,
    settings: Settings,
    now: dt.datetime,
) -> Refunded:
    """Give unspent tokens back to a signed-in reader's balance, all or nothing: every token must
    be one of this currency's keys' (any epoch, expired ones too) and unspent. Refunding gives
    back no budget. Raises ``UnknownEpoch``, ``InvalidToken`` or ``TokenSpent`` (naming the
    first token at fault); the caller's Idempotency-Key makes a retry a replay."""
    keys = [ring.check_refundable(token, index=i) for i, token in enumerate(tokens)]
    reader = readers.reader_account(session, user_id, settings, now)
    by_epoch: dict[int, list[Token]] = {}
    for token in tokens:
        by_epoch.setdefault(token.epoch, []).append(token)
    refunds = []
    for epoch, group in sorted(by_epoch.items()):
        key = ring.keys[epoch]
        refunds.append(
            TokenRefund(
                currency=key.currency,
                epoch=epoch,
                nullifiers=tuple(token.nullifier for token in group),
                reader_account_id=reader,
                asset=ledger.Asset(key.currency, key.scale),
                amount_minor=len(group) * key.value_minor,
                key=f"token-refund:{idempotency_key}:{epoch}",
            )
        )
    spent = post_token_refunds(session, refunds, now)
    if spent:
        index = next(i for i, token in enumerate(tokens) if token.nullifier in set(spent))
        raise TokenSpent(f"token {index} was spent or refunded before", index=index)
    amount = sum(key.value_minor for key in keys)
    return Refunded(len(tokens), amount, ledger.balance(session, reader))
