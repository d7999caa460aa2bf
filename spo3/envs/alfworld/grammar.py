"""TextWorld's text generation for ALFWorld, with its parses cached: the same text, several times faster.

Every ALFWorld step asks TextWorld's context-sensitive grammar (``textworld.envs.pddl.textgen``) for the feedback
text and for the command of each admissible action. TextWorld's ``ContextSensitiveGrammar.derive`` re-parses the
start text with its tatsu parser on every call, re-parses each rule condition and list query it meets with the
logic parser, and deep-copies every symbol and every context (entity infos included) it expands: 85% of a step
(``benchmarks/bench_envs.py`` measures the effect against ALFWorld's own environment).

:class:`CachedGrammar` replaces one game's grammar and derives exactly what TextWorld's ``derive`` derives, by the
same algorithm (a stack of symbols, the first applicable production rule, the same list rendering, TextWorld's own
``EvalSymbol.derive`` for ``{...}`` expressions), with three changes that cannot alter the text:

* **Parses are memoised by their text.** A parse is a pure function of the text parsed (start texts and rule
  conditions with TextWorld's parsers, the same rule names), so the cache is process-wide and shared by all games:
  a key names its whole input, whatever game asks. Cached parse trees are templates that are never modified: the
  derivation pairs each symbol with its context on the stack instead of writing the context into the symbol.
* **Contexts are shared, not deep-copied.** Nothing in a derivation modifies a context, its variables, its mapping
  or an entity info (queries build new dicts; ``EvalSymbol`` only reads), so copying them is unobservable.
* **A production rule's condition is checked only until the first applicable rule is found**, which is the one
  TextWorld takes; TextWorld also enumerates every assignment of every condition, which only costs time.

The equivalence is checked step by step against ALFWorld's own environment (tests/envs/test_alfworld_upstream.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from textworld.envs.pddl import textgen
from textworld.envs.pddl.textgen import (
    ConditionalSymbol,
    ContextSensitiveGrammar,
    CSGUnknownSymbolError,
    EvalSymbol,
    ListSymbol,
    NonterminalSymbol,
    Symbol,
    TerminalSymbol,
)
from textworld.logic import Rule

__all__ = ["CachedGrammar", "clear_parse_cache"]

_PARSE_CACHE_SIZE = 4096  # distinct texts: ALFWorld's grammar has about a hundred; every game shares them
_NO_ASSIGNMENT = object()
_LIST_EMPTY = NonterminalSymbol("list_empty")
_LIST_SEPARATOR = NonterminalSymbol("list_separator")
_LIST_LAST_SEPARATOR = NonterminalSymbol("list_last_separator")

_Context = Mapping[str, Any]
_Item = tuple[Symbol, _Context]


@lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _symbols(text: str) -> tuple[Symbol, ...]:
    """TextWorld's parse of a start text (the ``symbols`` rule), as read-only templates."""
    return tuple(textgen._parse_and_convert(text, rule_name="symbols"))


@lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _query(expression: str) -> Rule:
    """TextWorld's parse of a rule condition or list query (``Rule.parse_conjunctive_query``), read-only."""
    return Rule.parse_conjunctive_query(expression)


def clear_parse_cache() -> None:
    """Forget every memoised parse (tests use it to compare a cold cache with a warm one)."""
    _symbols.cache_clear()
    _query.cache_clear()


class CachedGrammar(ContextSensitiveGrammar):
    """A game's grammar (sharing its production rules) whose :meth:`derive` memoises parses (module docstring)."""

    def __init__(self, grammar: ContextSensitiveGrammar) -> None:
        super().__init__()
        self._rules = grammar._rules

    def derive(self, start: str, context: _Context = {}) -> str:  # noqa: B006 - TextWorld's signature
        """The text TextWorld's ``ContextSensitiveGrammar.derive(start, context)`` returns."""
        stack: list[_Item] = [(symbol, context) for symbol in reversed(_symbols(start))]
        derived: list[str] = []
        while stack:
            symbol, ctx = stack.pop()
            if isinstance(symbol, TerminalSymbol):
                derived.append(str(symbol))
            elif isinstance(symbol, NonterminalSymbol):
                stack += reversed(self._expand(symbol, ctx))
            elif isinstance(symbol, (ConditionalSymbol, EvalSymbol, ListSymbol)):
                stack += reversed(_derive_one(symbol, ctx))
            else:
                raise NotImplementedError(f"Unknown symbol: {type(symbol)}")
        return "".join(derived)

    def _expand(self, symbol: NonterminalSymbol, ctx: _Context) -> list[_Item]:
        """The right-hand side of the first production rule of ``symbol`` whose condition holds (TextWorld's
        ``replace``)."""
        rules = self._rules.get(str(symbol))
        if not rules:
            raise CSGUnknownSymbolError(symbol)
        for rule in rules:
            if not rule.condition or _first_assignment(rule.condition, ctx) is not _NO_ASSIGNMENT:
                return [(part, ctx) for part in rule.rhs]
        raise IndexError(f"no production rule of #{symbol}# applies")  # TextWorld: rules[0] of an empty list


def _first_assignment(expression: str, ctx: _Context) -> Any:
    return next(iter(ctx["state"].all_assignments(_query(expression), ctx["mapping"])), _NO_ASSIGNMENT)


def _derive_one(symbol: Symbol, ctx: _Context) -> list[_Item]:
    """One derivation step of a ``{...}``, ``{... | query}`` or ``[...]`` symbol (TextWorld's ``Symbol.derive``)."""
    if isinstance(symbol, EvalSymbol):
        return [(terminal, ctx) for terminal in symbol.derive(ctx)]
    if isinstance(symbol, ConditionalSymbol):
        contexts = _query_contexts(symbol.given, ctx) if symbol.given else [ctx]
        return [(symbol.expression, each) for each in contexts]
    if isinstance(symbol, ListSymbol):
        if not isinstance(symbol.symbol, (ConditionalSymbol, EvalSymbol, ListSymbol)):
            raise NotImplementedError(f"a list of {type(symbol.symbol).__name__} cannot be derived")
        items = _derive_one(symbol.symbol, ctx)
        if len(items) <= 1:
            return items or [(_LIST_EMPTY, ctx)]
        out = []
        for item in items[:-2]:
            out += [item, (_LIST_SEPARATOR, ctx)]
        return out + [items[-2], (_LIST_LAST_SEPARATOR, ctx), items[-1]]
    raise NotImplementedError(f"Unknown symbol: {type(symbol)}")


def _query_contexts(expression: str, ctx: _Context) -> list[_Context]:
    """One context per assignment of a list query, extended with the assignment (TextWorld's ``query``)."""
    contexts = []
    for mapping in ctx["state"].all_assignments(_query(expression), ctx["mapping"]):
        infos = ctx["entity_infos"]
        variables = {**ctx["variables"], **{ph.name: infos[var.name] for ph, var in mapping.items()}}
        contexts.append({**ctx, "variables": variables, "mapping": {**ctx["mapping"], **mapping}})
    return contexts
