"""WebShop's pages as text, exactly as the upstream text env renders them.

Upstream renders each page from an HTML template (``web_agent_site/templates/*.html``, verl-agent/3SPO copy),
parses it with BeautifulSoup and joins the stripped visible text nodes with `` [SEP] ``
(``WebAgentTextEnv.convert_html_to_text(simple=True)``). Clickables are the page's buttons and product links
(lower-cased text) followed by its option radio buttons (their value), in document order, as a dict keyed by
that text (``get_available_actions``). This module produces the same node lists and clickables without HTML:

* a value that is empty produces no text node; a whitespace-only value collapses (BeautifulSoup) to a newline,
  which is skipped, or to a space, which yields an empty part; anything else is stripped;
* the done page renders the template's hidden debugging block too, since upstream's text includes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping, Sequence

from spo3.envs.webshop.catalogue import Product

__all__ = ["PRODUCTS_PER_PAGE", "Page", "SEP", "SUB_PAGES", "done_page", "format_observation", "item_page", "results_page", "search_page",
           "sub_page"]

SEP = " [SEP] "
PRODUCTS_PER_PAGE = 10
"""Results per page (upstream ``PRODUCT_WINDOW``)."""
SUB_PAGES = ("description", "features", "reviews")
"""Item sub-pages (upstream also has "attributes", shown only with ``show_attrs=True``, never used by 3SPO)."""


@dataclass(frozen=True)
class Page:
    """A rendered page."""

    parts: tuple[str, ...]
    """The visible text nodes; ``SEP.join(parts)`` is upstream's raw observation."""
    clickables: Mapping[str, tuple[str, str]]
    """Clickable text -> what it is: ``("button", text)``, ``("product", ASIN)`` or ``("option", group)``."""
    has_search_bar: bool = False

    @property
    def text(self) -> str:
        return SEP.join(self.parts)


def _nodes(*values: str) -> list[str]:
    """Text nodes as BeautifulSoup yields them after upstream's ``t.strip()`` and ``t != '\\n'`` filter."""
    nodes = []
    for value in values:
        if value == "":
            continue
        if value.strip(" \t\n\r\f") == "":
            if "\n" not in value:
                nodes.append("")
            continue
        nodes.append(value.strip())
    return nodes


def _buttons(*labels: str) -> dict[str, tuple[str, str]]:
    return {label.lower(): ("button", label) for label in labels}


def _header(instruction: str) -> list[str]:
    return _nodes("Instruction:", instruction, "Back to Search")


def search_page(instruction: str) -> Page:
    """The start page: ``WebShop [SEP] Instruction: [SEP] {instruction} [SEP] Search``."""
    return Page(tuple(_nodes("WebShop", "Instruction: ", instruction, "Search")), _buttons("Search"), True)


def results_page(instruction: str, page: int, total: int, products: Sequence[Product]) -> Page:
    """Page ``page`` of the results: 10 products (ASIN, title, price) under "Next >" (always shown, as upstream)
    and "< Prev" (from page 2 on)."""
    pager = ("< Prev", "Next >") if page > 1 else ("Next >",)
    parts = _header(instruction) + _nodes(f"Page {page} (Total results: {total})", *pager)
    clickables = _buttons("Back to Search", *pager)
    for product in products:
        parts += _nodes(product.asin, product.title, product.price_tag)
        clickables[product.asin.lower()] = ("product", product.asin)
    return Page(tuple(parts), clickables)


def item_page(instruction: str, product: Product) -> Page:
    """A product page: option groups with their values, title, price, rating, sub-page buttons and Buy Now."""
    parts = _header(instruction) + _nodes("< Prev")
    for group, values in product.options.items():
        parts += _nodes(group, *values)
    parts += _nodes(product.title, f"Price: {product.price_tag}", f"Rating: {product.rating}",
                    "Description", "Features", "Reviews", "Buy Now")
    clickables = _buttons("Back to Search", "< Prev", "Description", "Features", "Reviews", "Buy Now")
    for group, values in product.options.items():
        for value in values:
            # A dict keyed by text: a later radio with the same value replaces the earlier one in place.
            clickables[value] = ("option", group)
    return Page(tuple(parts), clickables)


def sub_page(instruction: str, product: Product, which: str) -> Page:
    """The Description, Features (one node per bullet point) or Reviews (none are loaded) page of a product."""
    if which == "description":
        content = _nodes(product.description)
    elif which == "features":
        content = _nodes(*(" " + bullet for bullet in product.bullet_points))
    elif which == "reviews":
        content = []
    else:
        raise ValueError(f"sub_page: which={which!r} must be one of {SUB_PAGES}")
    return Page(tuple(_header(instruction) + _nodes("< Prev") + content), _buttons("Back to Search", "< Prev"))


def _tojson(value: Mapping[str, str]) -> str:
    # Flask's ``tojson`` filter: sorted keys, ASCII escapes, and HTML-significant characters as \\u escapes.
    text = json.dumps(value, sort_keys=True)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(char, escape)
    return text


def done_page(asin: str, options: Mapping[str, str], score: float) -> Page:
    """The page after Buy Now (``done_page.html``), including its hidden block of purchase details."""
    parts = _nodes(
        "Thank you for shopping with us!", "Your code: ", "None", " (Paste it in your MTurk interface.)",
        "Purchased", "asin", asin, "options", _tojson(options), "attrs", "None", "category", "None", "query", "None",
        "product category", "None", "Target", "asin", "options", "attrs", "price upper", "instuction text",
        "category", "product category", "query", "Goal ", "None", "Reward", "Your score (min 0.0, max 1.0)",
        str(score), "Reward Details ", "None",
    )
    return Page(tuple(parts), {})


def format_observation(raw: str, instruction: str) -> str:
    """verl-agent's ``format_obs``: the parts after the instruction, each single-quoted, `` [SEP] ``-joined; the
    raw text itself when the instruction is not among the parts (the done page)."""
    parts = raw.split(SEP)
    if instruction not in parts:
        return raw
    return SEP.join(f"'{part}'" for part in parts[parts.index(instruction) + 1 :])
