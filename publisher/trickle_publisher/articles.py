"""The demo publisher's articles: a few free ones, premium ones whose body is sent only to
visitors whose session has streamed the price, and one sold for a one-time payment whose body is
sent only to visitors whose session bought it."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Article:
    slug: str
    title: str
    summary: str
    teaser: tuple[str, ...]
    body: tuple[str, ...]
    premium: bool
    sale_price: str | None = None
    """Sold for a one-time payment of this many major units of the site's currency ("0.05"),
    instead of opening with streamed payments."""

    @property
    def order_ref(self) -> str:
        """The order reference a one-time payment for this article carries (``ord``)."""
        return f"article:{self.slug}"


ARTICLES: tuple[Article, ...] = (
    Article(
        slug="welcome",
        title="Welcome to the Trickle Gazette",
        summary="What this demo site is, and how reading it pays its writer.",
        teaser=(
            "The Trickle Gazette is a demo publisher. Every page carries a monetization link tag "
            "naming the writer's payment pointer.",
        ),
        body=(
            "If your browser runs the Trickle extension, it streams a tiny amount to the writer "
            "while this tab is visible. Each payment comes with a signed receipt that the page "
            "forwards to this site's server, which verifies it and credits your visit.",
            "Free articles stay free. Premium articles open once your visit has paid their price; "
            "the server decides, from verified receipts only.",
        ),
        premium=False,
    ),
    Article(
        slug="tiny-payments",
        title="Why tiny payments add up",
        summary="A fraction of a cent per minute, counted in integers.",
        teaser=(
            "A reader at the default rate pays 0.60 USD an hour: one sixth of a thousandth of a "
            "dollar per second.",
        ),
        body=(
            "Amounts are integers of minor units at scale 9, so 0.001 USD is 1000000 minor units. "
            "No floating point is involved anywhere between the reader's balance and this page.",
        ),
        premium=False,
    ),
    Article(
        slug="deep-dive",
        title="Premium: a deep dive into signed receipts",
        summary="How a site checks, offline, that it was paid. For supporters.",
        teaser=(
            "Every receipt is a compact JWS signed with Ed25519. Its claims name the site, the "
            "payee, the stream and the running total…",
        ),
        body=(
            "The site verifies each receipt with the service's public keys, then credits only the "
            "increase of the stream's total over the highest total it has already seen. Replays "
            "and duplicates credit nothing, and a lost receipt loses nothing: the next one covers "
            "it.",
            "The receipt carries the binding value this site gave your visit, so a receipt copied "
            "from another reader's session does not unlock anything here.",
            "Thank you for reading with Trickle: this paragraph was sent to you by the server "
            "because your visit paid for it.",
        ),
        premium=True,
    ),
    Article(
        slug="behind-the-paywall",
        title="Premium: notes from behind the paywall",
        summary="A second premium article; one payment opens all of them.",
        teaser=("Paywalls usually ask for a subscription. This one asks for a few seconds…",),
        body=(
            "Premium access here follows your visit: once it has paid the price, every premium "
            "article opens for it. Nothing is stored about you but a random session cookie.",
        ),
        premium=True,
    ),
    Article(
        slug="field-guide",
        title="For sale: a field guide to one-time payments",
        summary="Buy this one article for 0.05 USD, once: no subscription, no card number.",
        teaser=(
            "Streaming pays for time. Some things are better sold once: one article, one "
            "download, one tip. This guide shows how a single click pays for it…",
        ),
        body=(
            "When you pressed Buy, this page asked the Trickle extension for a one-time payment. "
            "The extension, not the page, asked for your approval, paid the writer, and handed "
            "the page a signed one-time receipt naming this order.",
            "This site's server verified that receipt offline: a one-time payment, for this "
            "order, of at least the price, in the site's currency. It recorded the purchase "
            "for your visit, and the receipt can never buy anything again.",
            "Thank you for buying this guide: this paragraph was sent to you by the server "
            "because your visit bought it.",
        ),
        premium=False,
        sale_price="0.05",
    ),
)

BY_SLUG = {article.slug: article for article in ARTICLES}
