"""The copy-paste snippets a creator puts on a site for a payee: the monetization link tag, the
page bridge's script tag, and the Python receipt verifier set up for this service and payee."""

from __future__ import annotations

import dataclasses

from trickle import siteverify
from trickle.settings import Settings

EXAMPLE_ORIGIN = "https://your-site.example"


@dataclasses.dataclass(frozen=True, slots=True)
class Snippet:
    id: str
    title: str
    language: str
    text: str
    note: str


def for_payee(settings: Settings, pointer: str, verified_origins: list[str]) -> list[Snippet]:
    issuer = settings.issuer
    audience = verified_origins[0] if verified_origins else EXAMPLE_ORIGIN
    link = f'<link rel="monetization" href="{pointer}">'
    bridge = f"""<!-- Copy bridge.js and the three bridge-*.js files of sdk_js_bridge/
     into /trickle/ on your site. BINDING: the value your server made for this visitor session
     (see sdk_js_bridge/README.md). -->
<link rel="monetization" href="{pointer}" data-trickle-binding="BINDING">
<script type="module">
  import {{ createBridge }} from '/trickle/bridge.js';

  const bridge = createBridge({{ endpoint: '/trickle/receipts' }}); // your receipt handler
  bridge.onStateChange((state) => {{ document.documentElement.dataset.monetization = state; }});
</script>"""
    verifier = f"""from trickle_verifier import (
    CreditTracker, KeySet, MemoryCreditStore, ReceiptError, Verifier,
)

verifier = Verifier(
    issuer="{issuer}",
    audience="{audience}",  # your site's origin
    payees=["{pointer}"],
    keys=KeySet.from_url("{issuer}/.well-known/jwks.json"),
)
tracker = CreditTracker(MemoryCreditStore())


def on_receipt(token: str) -> int:
    \"\"\"Minor units newly paid by this receipt (0 for a replay).\"\"\"
    try:
        return tracker.credit(verifier.verify(token))
    except ReceiptError as error:
        print("rejected:", error.code)
        return 0
"""
    return [
        Snippet(
            "link",
            "Monetization link tag",
            "html",
            link,
            "Put it in the <head> of every page that should earn for this payee.",
        ),
        Snippet(
            "bridge",
            "Page bridge script",
            "html",
            bridge,
            "Instead of the bare link tag: the bridge (sdk_js_bridge/README.md, “Page bridge”) "
            "reports the streaming state and forwards receipts to your server to verify.",
        ),
        Snippet(
            "verifier",
            "Python receipt verifier",
            "python",
            verifier,
            "pip install ./verifier (the trickle-verifier distribution, PyNaCl only); see "
            "verifier/README.md.",
        ),
    ]


def token_file(token: str) -> str:
    """What the site serves at ``<origin>/.well-known/trickle.txt``: the token as a line."""
    return token + "\n"


def token_url(origin: str) -> str:
    return siteverify.token_url(origin)
