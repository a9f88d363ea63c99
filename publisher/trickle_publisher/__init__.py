"""The demo publisher: a small site with free and premium articles, paid with Web Monetization
through the page bridge and verified with ``trickle_verifier``'s site helpers (docs/site-owners.md).
``trickle demo`` runs it next to the service."""
