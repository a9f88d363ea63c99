"""The streaming engine: reading time in, committed ledger transfers and signed receipts out."""
