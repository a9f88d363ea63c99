"""The verified receipt: what a Trickle receipt says once every rule of docs/receipts.md §3
has passed. Amounts are integer minor units, never floats."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Receipt"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """A verified receipt. Only ``Verifier.verify`` should build one."""

    iss: str
    """The issuer (the service's public URL)."""
    aud: str
    """The origin of the site the reader was on."""
    pay: str
    """The payee's payment pointer URL."""
    sid: str
    """The stream id: credit per ``sid`` (see ``CreditTracker``)."""
    seq: int
    """1, 2, 3... within the stream."""
    amount_minor: int
    """This receipt's amount (``amt``) in minor units of ``currency`` at ``scale``."""
    total_minor: int
    """The stream's cumulative amount (``tot``) in minor units."""
    currency: str
    """The asset code (``cur``), e.g. ``USD``."""
    scale: int
    """The asset scale: one minor unit is 10**-scale of ``currency``."""
    issued_at: int
    """``iat``, seconds since the Unix epoch."""
    expires_at: int
    """``exp``, seconds since the Unix epoch."""
    jti: str
    """The unique receipt id."""
    binding: str | None
    """``bnd``, the site's binding value, if the receipt carries one."""
    one_time: bool
    """``otp``: a one-time payment (``seq == 1`` and ``amount_minor == total_minor``)."""
    order_ref: str | None
    """``ord``: the site's order reference of a one-time payment (1-128 printable ASCII), if
    the receipt carries one. A site selling an item checks ``one_time``, this, and the amount."""
    kid: str
    """The kid of the key that signed the receipt."""
    token: str
    """The compact JWS as received."""
