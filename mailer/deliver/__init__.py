"""Deliver: suppressions, per-recipient messages, the ledger, and the send through a backend."""
