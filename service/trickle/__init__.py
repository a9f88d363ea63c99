"""Trickle: open web monetization with offline-verifiable receipts."""

__version__ = "0.1.0"
