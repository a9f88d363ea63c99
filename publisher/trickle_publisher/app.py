"""The demo publisher's Starlette app: pages with the monetization link tag and the visitor's
binding value, the receipt and purchase endpoints (``trickle_verifier.asgi``), and an access
endpoint the page asks once receipts were credited or a purchase made. The server alone decides
what unlocks: premium bodies are sent only to sessions whose verified receipts reached the price,
and the article for sale only to sessions that bought it with a one-time receipt."""

from __future__ import annotations

import dataclasses
import re
import secrets
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from trickle_publisher.amounts import format_amount, format_exact, format_money, minor_units
from trickle_publisher.articles import ARTICLES, BY_SLUG, Article
from trickle_verifier import MemoryPurchaseStore, Purchases, PurchaseStore, SiteReceipts
from trickle_verifier.asgi import purchase_route, receipts_route

PACKAGE_DIR = Path(__file__).resolve().parent
COOKIE_NAME = "trickle_publisher_visitor"
COOKIE_MAX_AGE_S = 30 * 86_400
RECEIPTS_PATH = "/trickle/receipts"
PURCHASES_PATH = "/trickle/purchase"
_VISITOR_RE = re.compile(r"[A-Za-z0-9_-]{32}")
_SDK_FILE_RE = re.compile(r"[a-z0-9-]+\.js")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(PACKAGE_DIR / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclasses.dataclass(frozen=True)
class PublisherConfig:
    """``payment_pointer``: the payee the pages name; ``price_minor``: what a visit pays to open
    premium articles (minor units of ``site.currency`` at ``site.scale``); ``secure_cookies``:
    set on https; ``sdk_dir``: the folder whose top-level ``.js`` files are served as
    ``/sdk/<name>.js`` (default: ``find_sdk_dir()``)."""

    payment_pointer: str
    price_minor: int = 1_000_000  # 0.001 USD at scale 9
    site_name: str = "The Trickle Gazette"
    secure_cookies: bool = False
    sdk_dir: Path | None = None


def find_sdk_dir(start: Path = PACKAGE_DIR) -> Path:
    """The page bridge's folder: ``sdk_js_bridge/`` of the checkout the publisher is installed
    from (the nearest one above ``start`` holding ``bridge.js``), or ``FileNotFoundError``
    saying what to do."""
    for folder in start.parents:
        if (folder / "sdk_js_bridge" / "bridge.js").is_file():
            return folder / "sdk_js_bridge"
    raise FileNotFoundError(
        f"the demo publisher serves the page bridge of a Trickle checkout, and no folder above "
        f"{start} holds sdk_js_bridge/bridge.js: install the publisher from a checkout "
        f"(pip install -e ./publisher, as make setup does) or pass PublisherConfig(sdk_dir=...)"
    )


def visitor_of(request: Request) -> str | None:
    """The visitor session id from the cookie, or None (the receipt endpoint's session reader)."""
    value = request.cookies.get(COOKIE_NAME)
    return value if value is not None and _VISITOR_RE.fullmatch(value) else None


class Publisher:
    """The views, bound to one site helper and configuration."""

    def __init__(
        self, site: SiteReceipts, purchases: Purchases, config: PublisherConfig, sdk_dir: Path
    ) -> None:
        self.site = site
        self.purchases = purchases
        self.config = config
        self.sdk_dir = sdk_dir

    def _sale_price(self, article: Article) -> int | None:
        return None if article.sale_price is None else self.purchases.price_of(article.order_ref)

    def _unlocked(self, article: Article, visitor: str) -> bool:
        """The server's decision: bought (an article for sale), paid (premium), or free."""
        if article.sale_price is not None:
            return self.purchases.has_purchased(visitor, article.order_ref)
        return not article.premium or self.site.has_paid(visitor, self.config.price_minor)

    def _money(self, minor: int) -> str:
        return format_money(minor, self.site.scale, self.site.currency)

    def _exact(self, minor: int) -> str:
        return format_exact(minor, self.site.scale, self.site.currency)

    def _amount(self, minor: int) -> dict[str, Any]:
        """An amount in the JSON answers: exact (``total`` minor units at ``scale``) and as the
        pages show it (``text``, and ``exact`` for its title), so that the page script never
        formats money itself."""
        return {
            "total": str(minor),
            "currency": self.site.currency,
            "scale": self.site.scale,
            "text": self._money(minor),
            "exact": self._exact(minor),
        }

    def _render(
        self, request: Request, template: str, visitor: str, new: bool, **context: Any
    ) -> Response:
        paid = self.site.paid_minor(visitor)
        html = templates.get_template(template).render(
            site_name=self.config.site_name,
            pointer=self.config.payment_pointer,
            binding=self.site.binding_for(visitor),
            receipts_path=RECEIPTS_PATH,
            purchases_path=PURCHASES_PATH,
            paid_minor=paid,
            paid_text=self._money(paid),
            price_minor=self.config.price_minor,
            price_text=self._money(self.config.price_minor),
            currency=self.site.currency,
            scale=self.site.scale,
            supporter=paid > 0,
            money=self._money,
            exact=self._exact,
            **context,
        )
        response = HTMLResponse(html, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})
        if new:
            response.set_cookie(
                COOKIE_NAME,
                visitor,
                max_age=COOKIE_MAX_AGE_S,
                httponly=True,
                samesite="lax",
                secure=self.config.secure_cookies,
            )
        return response

    @staticmethod
    def _visitor(request: Request) -> tuple[str, bool]:
        visitor = visitor_of(request)
        if visitor is not None:
            return visitor, False
        return secrets.token_urlsafe(24), True

    async def index(self, request: Request) -> Response:
        visitor, new = self._visitor(request)
        sale_prices = {a.slug: self._sale_price(a) for a in ARTICLES}
        return self._render(
            request, "index.html", visitor, new, articles=ARTICLES, sale_prices=sale_prices
        )

    async def article(self, request: Request) -> Response:
        found = BY_SLUG.get(str(request.path_params["slug"]))
        if found is None:
            raise HTTPException(404)
        visitor, new = self._visitor(request)
        sale_minor = self._sale_price(found)
        return self._render(
            request,
            "article.html",
            visitor,
            new,
            article=found,
            unlocked=self._unlocked(found, visitor),
            sale_minor=sale_minor,
            sale_amount="" if sale_minor is None else format_amount(sale_minor, self.site.scale),
        )

    async def visit(self, request: Request) -> Response:
        """``GET /api/visit``: what this visit has paid (the page's "Paid this visit")."""
        visitor = visitor_of(request)
        if visitor is None:
            return _error(401, "unauthenticated", "no visitor session; load a page first")
        paid = self.site.paid_minor(visitor)
        return JSONResponse(
            {"paid": self._amount(paid), "supporter": paid > 0},
            headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
        )

    async def access(self, request: Request) -> Response:
        """``GET /api/access/<slug>``: whether this visit may read the article, what it paid,
        what the article sells for (``sale``, null unless it is sold for a one-time payment),
        and the body's HTML when (and only when) it may."""
        found = BY_SLUG.get(str(request.path_params["slug"]))
        if found is None:
            return _error(404, "not_found", "no such article")
        visitor = visitor_of(request)
        if visitor is None:
            return _error(401, "unauthenticated", "no visitor session; load a page first")
        paid = self.site.paid_minor(visitor)
        unlocked = self._unlocked(found, visitor)
        body = _body_html(found) if unlocked else None
        sale_minor = self._sale_price(found)
        sale = None
        if sale_minor is not None:
            sale = {
                "order_ref": found.order_ref,
                "price": self._amount(sale_minor),
                "purchased": unlocked,
            }
        return JSONResponse(
            {
                "article": found.slug,
                "premium": found.premium,
                "unlocked": unlocked,
                "supporter": paid > 0,
                "paid": self._amount(paid),
                "price": self._amount(self.config.price_minor),
                "sale": sale,
                "html": body,
            },
            headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
        )

    async def sdk(self, request: Request) -> Response:
        """The page bridge files, as ``/sdk/<name>.js`` (only top-level ``.js`` files)."""
        name = str(request.path_params["name"])
        path = self.sdk_dir / name
        if not _SDK_FILE_RE.fullmatch(name) or not path.is_file():
            raise HTTPException(404)
        return FileResponse(
            path,
            media_type="text/javascript; charset=utf-8",
            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
        )


def _body_html(article: Article) -> str:
    return templates.get_template("_body.html").render(article=article)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(("/api/", "/trickle/")):
        return _error(exc.status_code, "not_found", "no such path")
    html = templates.get_template("not_found.html").render(site_name="The Trickle Gazette")
    return HTMLResponse(html, status_code=exc.status_code, headers=SECURITY_HEADERS)


def catalogue(scale: int) -> dict[str, int]:
    """The publisher's prices for one-time payments: order_ref -> minor units at ``scale``."""
    return {
        article.order_ref: minor_units(article.sale_price, scale)
        for article in ARTICLES
        if article.sale_price is not None
    }


def create_publisher_app(
    site: SiteReceipts,
    config: PublisherConfig,
    *,
    purchase_store: PurchaseStore | None = None,
) -> Starlette:
    """The publisher app. ``site`` verifies receipts for the publisher's own origin and the
    payee of ``config.payment_pointer``, and needs a ``binding_key``. ``purchase_store`` keeps
    the one-time purchases (default: in memory)."""
    site.binding_for("a" * 32)  # fail now, not on the first page, if there is no binding key
    sdk_dir = find_sdk_dir() if config.sdk_dir is None else config.sdk_dir  # ... or no bridge
    store = MemoryPurchaseStore() if purchase_store is None else purchase_store
    purchases = Purchases(site, store, catalogue(site.scale))
    views = Publisher(site, purchases, config, sdk_dir)
    app = Starlette(
        routes=[
            Route("/", views.index, methods=["GET"]),
            Route("/articles/{slug}", views.article, methods=["GET"]),
            Route("/api/access/{slug}", views.access, methods=["GET"]),
            Route("/api/visit", views.visit, methods=["GET"]),
            receipts_route(RECEIPTS_PATH, site, session_id=visitor_of),
            purchase_route(PURCHASES_PATH, purchases, session_id=visitor_of),
            Route("/sdk/{name}", views.sdk, methods=["GET"]),
            Route("/favicon.ico", lambda _request: Response(status_code=204), methods=["GET"]),
            Mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static"),
        ],
        exception_handlers={HTTPException: _on_http_error},
    )
    app.state.publisher = views
    return app
