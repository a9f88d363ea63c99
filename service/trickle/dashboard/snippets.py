"""What a creator puts on a site for a payee: the example site of docs/site-owners.md (its link
tag, page templates and Starlette server, from ``site_example/``) with the payee's own values.

``site_example/`` is the one copy of that site: docs/site-owners.md shows each of its parts in a
block marked ``<!-- site-example: <part> -->``, tests/test_site_owner_doc.py pins that the blocks
are these files, and tests/e2e/test_site_owner_doc.py runs the site they make against a real
service, the extension and Chromium."""

from __future__ import annotations

import dataclasses
import importlib.resources
import json

from trickle import siteverify
from trickle.settings import Settings

# The example's values in docs/site-owners.md, replaced by the payee's own.
DOC_ISSUER = "https://trickle.example"
DOC_POINTER = "https://trickle.example/p/alice-blog"
DOC_ORIGIN = "https://alice.example"
EXAMPLE_ORIGIN = "https://your-site.example"  # the payee has no verified site yet


@dataclasses.dataclass(frozen=True, slots=True)
class Part:
    """A block of docs/site-owners.md: part of the example site's file ``path``."""

    id: str  # the block's marker and its file in site_example/ (``<id>.txt``)
    path: str  # the site's file it belongs to (parts of one file are joined in this order)
    language: str


# In the order docs/site-owners.md shows them.
PARTS = (
    Part("link", "link.html", "html"),
    Part("setup", "setup.sh", "sh"),
    Part("app-verify", "app.py", "python"),
    Part("article", "templates/article.html", "html"),
    Part("app-pages", "app.py", "python"),
    Part("guide", "templates/guide.html", "html"),
    Part("app-shop", "app.py", "python"),
    Part("app-run", "app.py", "python"),
    Part("run", "run.sh", "sh"),
)


@dataclasses.dataclass(frozen=True, slots=True)
class Snippet:
    id: str
    title: str
    language: str
    text: str
    note: str


def part_text(part_id: str) -> str:
    """A part of the example site as docs/site-owners.md shows it (with the doc's values)."""
    folder = importlib.resources.files("trickle.dashboard") / "site_example"
    return (folder / f"{part_id}.txt").read_text(encoding="utf-8")


def site_files() -> dict[str, str]:
    """The example site's files (path -> text), as docs/site-owners.md builds them."""
    files: dict[str, list[str]] = {}
    for part in PARTS:
        files.setdefault(part.path, []).append(part_text(part.id))
    return {path: "\n\n".join(texts) for path, texts in files.items()}


def personalize(text: str, *, issuer: str, pointer: str, origin: str) -> str:
    """``text`` with the doc's service, payment pointer and site origin replaced. Only whole
    quoted strings are replaced (the pointer first: it starts with the service's URL); the new
    values are JSON strings, valid in Python and in an HTML attribute alike."""
    for placeholder, value in ((DOC_POINTER, pointer), (DOC_ISSUER, issuer), (DOC_ORIGIN, origin)):
        text = text.replace(json.dumps(placeholder), json.dumps(value))
    return text


def for_payee(settings: Settings, pointer: str, verified_origins: list[str]) -> list[Snippet]:
    origin = verified_origins[0] if verified_origins else EXAMPLE_ORIGIN
    files = {
        path: personalize(text, issuer=settings.issuer, pointer=pointer, origin=origin)
        for path, text in site_files().items()
    }
    origin_note = (
        f"Set up for {origin}, this payee's verified site."
        if verified_origins
        else f"Put your site's origin in place of {EXAMPLE_ORIGIN} (or verify the site below)."
    )
    return [
        Snippet(
            "link",
            "Monetization link tag",
            "html",
            files["link.html"],
            "In the <head> of every page that should earn for this payee: that alone makes "
            "readers' Trickle pay while they read. The files below add premium content that opens "
            "once your server has verified the reader's receipts (docs/site-owners.md).",
        ),
        Snippet(
            "setup",
            "Your site's folder",
            "sh",
            files["setup.sh"],
            "The verifier with Starlette, and the page bridge (bridge.js and the three "
            "bridge-*.js files beside it) served from /sdk/.",
        ),
        Snippet(
            "server",
            "app.py: the server",
            "python",
            files["app.py"],
            "Verifies receipts, credits each visitor's own session (a cookie) and decides what "
            f"unlocks. {origin_note}",
        ),
        Snippet(
            "article",
            "templates/article.html: a premium article",
            "html",
            files["templates/article.html"],
            "The link tag with this visitor's binding value, and the page bridge that forwards "
            "receipts to your server and says “Install Trickle” where there is no extension.",
        ),
        Snippet(
            "guide",
            "templates/guide.html: an item sold once",
            "html",
            files["templates/guide.html"],
            "A one-time payment the reader approves in the extension; your server records the "
            "purchase for the visitor's session.",
        ),
        Snippet("run", "Run it", "sh", files["run.sh"], "Then open the site at its origin."),
    ]


def token_file(token: str) -> str:
    """What the site serves at ``<origin>/.well-known/trickle.txt``: the token as a line."""
    return token + "\n"


def token_url(origin: str) -> str:
    return siteverify.token_url(origin)
