"""The WebShop text environment (princeton-nlp/WebShop ``WebAgentTextEnv``, text mode, as 3SPO/verl-agent run it).

An episode is one synthetic goal. The agent starts on the search page, searches (``search[...]`` works on every
page), pages through results (10 per page, at most 50 hits), opens products, picks options, reads the
Description/Features/Reviews sub-pages, goes back (``click[< prev]``, ``click[back to search]``) and ends the
episode with ``click[buy now]``, which scores the purchase in [0, 1] (:func:`spo3.envs.webshop.reward.get_reward`).
The episode is won iff the score is exactly 1.0; the step reward is ``reward_scale`` then, 0 otherwise.

Observations follow verl-agent's ``WebshopEnvironmentManager``: :attr:`Observation.text` is ``format_obs`` of
the raw `` [SEP] `` page text (the anchor), :attr:`Observation.task` the instruction, and the admissible actions
are ``search[<your query>]`` where the page has a search bar, then ``click[x]`` per clickable (``click[search]`` is
listed but, as upstream, a no-op). With ``search_action="instruction"`` the search bar's action is
``search[<the instruction's product clause>]`` instead, for policies that choose among the listed actions and cannot
write a query (a deviation: ``env.webshop.search_action``). Actions are parsed
as upstream: greedy ``(.+)\\[(.+)\\]`` from the start, argument lower-cased; ``search[kw]`` always executes,
``click[x]`` only for a current clickable other than ``search``; anything else is a no-op (``changed=False``).

The state is a small immutable record (goal, page, query, results page, product, chosen options), so snapshots
are that record and restoring re-renders the page (search results are cached per query).

Deviations from upstream:

* after Buy Now the episode ends (:class:`~spo3.envs.base.TextEnv` protocol) instead of auto-resetting;
* the step limit (default 15, 3SPO's ``env.max_steps``) ends the episode with ``info["truncated"]``;
* the web app's debugging query prefixes (``<r>``: random products from the unseeded global RNG, ``<a>``,
  ``<c>``, ``<q>``: attribute, category and query filters; ``<a>`` raises inside upstream) are not implemented:
  such queries are ordinary BM25 text, which keeps every transition deterministic;
* the type reward's noun tagger is a heuristic unless ``type_tokens="spacy"`` (see :mod:`.reward`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spo3.envs.base import EnvError, Observation, TextEnv, Transition
from spo3.envs.webshop.catalogue import Catalogue, Product, load_catalogue
from spo3.envs.webshop.goals import Goal, build_goals, goal_ids
from spo3.envs.webshop.oracle import WebShopOracle, instruction_query
from spo3.envs.webshop.pages import (
    PRODUCTS_PER_PAGE,
    SUB_PAGES,
    Page,
    done_page,
    format_observation,
    item_page,
    results_page,
    search_page,
    sub_page,
)
from spo3.envs.webshop.reward import TypeTokens, get_reward

__all__ = ["PRODUCTS_PER_PAGE", "SEARCH_RETURN_N", "WebShopEnv", "WebShopSnapshot", "WebShopState"]

SEARCH_RETURN_N = 50
"""Hits a search returns (upstream ``SEARCH_RETURN_N``)."""
SEARCH_BAR_ACTION = "search[<your query>]"
_ACTION = re.compile(r"(.+)\[(.+)\]")
_CACHE_SIZE = 4096
"""Entries of the per-query search cache and of the per-state page cache (each cleared when full)."""


@dataclass(frozen=True)
class WebShopState:
    """Everything that determines the current page (upstream's session record)."""

    goal: int
    page: str
    """``"search"``, ``"results"``, ``"item"``, ``"description"``, ``"features"``, ``"reviews"`` or ``"done"``."""
    query: str | None = None
    """The last search (lower-cased), kept while browsing its results and products."""
    results_page: int = 1
    asin: str | None = None
    """The open product (item page and its sub-pages)."""
    options: tuple[tuple[str, str], ...] = ()
    """Chosen options as (group, value), in the order the groups were first chosen."""
    score: float | None = None
    """The task score once bought."""


@dataclass(frozen=True)
class WebShopSnapshot:
    """An opaque, immutable snapshot; restorable into any :class:`WebShopEnv` with the same catalogue and seed."""

    env_key: tuple[Any, ...]
    state: WebShopState
    step: int
    ended: bool


class WebShopEnv(TextEnv):
    """WebShop with exact, cheap snapshots.

    Args:
      data_dir: directory with the data files (default :func:`~spo3.envs.webshop.catalogue.default_data_dir`);
        without ``items_shuffle_1000.json`` the catalogue is generated from ``items_ins_v2_1000.json``.
      num_products: use only the first N products (upstream ``num_products``).
      seed: goal/price seed (upstream env seed): the goal list is shuffled with it.
      max_steps: episode step limit (3SPO: 15).
      reward_scale: step reward of a won episode (upstream 10; 1 makes ``reward == won``).
      use_small: the 1000-product files (3SPO ``use_small=True``); False reads the full-size files.
      synthetic_seed: seed of the generated catalogue.
      type_tokens: the type reward's title tokens, ``"heuristic"`` (offline) or ``"spacy"``.
      verify_files: check the published data files' size and hash.
      product_catalogue: use this catalogue instead of loading one (tests, custom shops).
      search_action: the search bar's admissible action: ``"placeholder"`` (upstream's ``search[<your query>]``) or
        ``"instruction"`` (``search[<the goal instruction's product clause>]``, the oracle's query).

    Attributes:
      catalogue: ``"real"`` or ``"synthetic"``; also in every transition's ``info["catalogue"]``.
      goals: the shuffled goals; a task id is the decimal index into this list.
    """

    family = "webshop"

    def __init__(
        self,
        data_dir: str | Path | None = None,
        num_products: int | None = None,
        seed: int = 0,
        max_steps: int = 15,
        reward_scale: float = 1.0,
        *,
        use_small: bool = True,
        synthetic_seed: int = 0,
        type_tokens: TypeTokens = "heuristic",
        verify_files: bool = True,
        product_catalogue: Catalogue | None = None,
        search_action: str = "placeholder",
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"WebShopEnv: max_steps must be >= 1, got {max_steps}")
        if search_action not in ("placeholder", "instruction"):
            raise ValueError(f"WebShopEnv: search_action must be 'placeholder' or 'instruction', got {search_action!r}")
        self.search_action = search_action
        self.product_catalogue = product_catalogue or load_catalogue(
            data_dir, use_small=use_small, num_products=num_products, synthetic_seed=synthetic_seed,
            verify=verify_files,
        )
        self.catalogue: str = self.product_catalogue.kind
        self.seed = seed
        self.max_steps = max_steps
        self.reward_scale = reward_scale
        self.type_tokens = type_tokens
        self.goals, self.prices = build_goals(self.product_catalogue.products, seed)
        self._env_key = (self.product_catalogue.source, len(self.product_catalogue.products), seed)
        self._search_cache: dict[str, tuple[str, ...]] = {}
        self._views: dict[WebShopState, tuple[Page, Observation]] = {}
        self._state: WebShopState | None = None
        self._page: Page | None = None
        self._observation_at_0: Observation | None = None
        self._step = 0
        self._ended = False

    # ------------------------------------------------------------------------------------------------ tasks

    def tasks(self, split: str) -> list[str]:
        """Goal ids of ``"test"`` (alias ``"valid"``, goals 0..499), ``"train"`` (500..) or ``"all"``."""
        return goal_ids(len(self.goals), split)

    def _goal_index(self, task_id: str) -> int:
        index = int(task_id) if isinstance(task_id, str) and task_id.isascii() and task_id.isdigit() else -1
        if not 0 <= index < len(self.goals) or str(index) != task_id:
            raise EnvError(f"WebShop: unknown task id {task_id!r}; ids are '0'..'{len(self.goals) - 1}'")
        return index

    def goal(self, task_id: str) -> Goal:
        """The goal behind a task id."""
        return self.goals[self._goal_index(task_id)]

    def task_type(self, task_id: str) -> str:
        """The goal product's category (beauty, electronics, fashion, food, furniture on WebShop data)."""
        return self.goal(task_id).category

    # ---------------------------------------------------------------------------------------------- browsing

    def search(self, query: str) -> tuple[str, ...]:
        """ASINs of the (at most 50) hits of ``query``, best first."""
        hits = self._search_cache.get(query)
        if hits is None:
            if len(self._search_cache) >= _CACHE_SIZE:
                self._search_cache.clear()
            hits = tuple(self.product_catalogue.search_index.search(query, SEARCH_RETURN_N))
            self._search_cache[query] = hits
        return hits

    @property
    def state(self) -> WebShopState:
        """The current state (read-only record)."""
        if self._state is None:
            raise EnvError("WebShop: no episode; call reset(task_id) first")
        return self._state

    @property
    def page(self) -> Page:
        """The current page (its text nodes and clickables)."""
        if self._page is None:
            raise EnvError("WebShop: no episode; call reset(task_id) first")
        return self._page

    @property
    def raw_text(self) -> str:
        """The current page as upstream's raw `` [SEP] `` text."""
        return self.page.text

    def _render(self, state: WebShopState) -> Page:
        instruction = self.goals[state.goal].instruction_text
        if state.page == "search":
            return search_page(instruction)
        if state.page == "results":
            hits = self.search(state.query)
            start = (state.results_page - 1) * PRODUCTS_PER_PAGE
            shown = [self.product_catalogue.by_asin[a] for a in hits[start : start + PRODUCTS_PER_PAGE]]
            return results_page(instruction, state.results_page, len(hits), shown)
        product = self.product_catalogue.by_asin[state.asin]
        if state.page == "item":
            return item_page(instruction, product)
        if state.page in SUB_PAGES:
            return sub_page(instruction, product, state.page)
        return done_page(state.asin, dict(state.options), state.score)

    def _view(self, state: WebShopState) -> tuple[Page, Observation]:
        """The page of ``state`` and its observation (with step 0), cached: restoring a visited state is a lookup."""
        view = self._views.get(state)
        if view is None:
            page = self._render(state)
            goal = self.goals[state.goal]
            instruction = goal.instruction_text.strip()
            search_bar = []
            if page.has_search_bar:
                search_bar = [SEARCH_BAR_ACTION if self.search_action == "placeholder"
                              else f"search[{instruction_query(self.product_catalogue, goal)}]"]
            observation = Observation(
                text=format_observation(page.text, instruction),
                admissible_actions=tuple(search_bar + [f"click[{c}]" for c in page.clickables]),
                task_id=str(state.goal),
                task=instruction,
                step=0,
            )
            if len(self._views) >= _CACHE_SIZE:
                self._views.clear()
            view = self._views[state] = (page, observation)
        return view

    def _observation(self) -> Observation:
        cached = self._observation_at_0
        return Observation(cached.text, cached.admissible_actions, cached.task_id, cached.task, self._step)

    def _set(self, state: WebShopState) -> None:
        self._state = state
        self._page, self._observation_at_0 = self._view(state)

    # ------------------------------------------------------------------------------------------- the protocol

    def reset(self, task_id: str) -> Observation:
        self._set(WebShopState(goal=self._goal_index(task_id), page="search"))
        self._step = 0
        self._ended = False
        return self._observation()

    def _click(self, name: str) -> WebShopState:
        """The state after clicking ``name`` (a current clickable), routed as upstream ``SimServer.receive``."""
        state = self._state
        if name == "back to search":
            return WebShopState(goal=state.goal, page="search")
        if name == "next >" and state.page == "results":
            return replace(state, results_page=state.results_page + 1)
        if name == "< prev" and state.page == "results":
            return replace(state, results_page=state.results_page - 1)
        if name == "< prev" and state.page in SUB_PAGES:
            return replace(state, page="item")
        if name == "< prev" and state.page == "item":
            return replace(state, page="results", asin=None, options=())
        if name in SUB_PAGES:
            return replace(state, page=name)
        kind, target = self._page.clickables[name]
        if kind == "product":
            return replace(state, page="item", asin=target)
        if kind == "option":
            options = dict(state.options)
            options[target] = name
            return replace(state, page="item", options=tuple(options.items()))
        return replace(state, page="item")

    def _buy(self) -> tuple[WebShopState, dict[str, Any]]:
        state = self._state
        goal = self.goals[state.goal]
        product: Product = self.product_catalogue.by_asin[state.asin]
        score, reward_info = get_reward(
            product, goal, self.prices[state.asin], dict(state.options), type_tokens=self.type_tokens
        )
        return replace(state, page="done", score=score), reward_info

    def step(self, action: str) -> Transition:
        if self._state is None:
            raise EnvError("WebShop: step() before reset()")
        if self._ended:
            raise EnvError("WebShop: the episode has ended; call reset()")
        before = self._state
        match = _ACTION.match(action)
        name, argument = (match.group(1), match.group(2).lower()) if match else (action, None)
        info: dict[str, Any] = {"catalogue": self.catalogue}
        if name == "search" and argument:
            after = replace(before, page="results", query=argument, results_page=1, asin=None, options=())
        elif name == "click" and argument == "buy now" and "buy now" in self._page.clickables:
            after, info["reward_info"] = self._buy()
            info["purchased"] = {"asin": after.asin, "options": dict(after.options)}
        elif name == "click" and argument in self._page.clickables and argument != "search":
            after = self._click(argument)
        else:
            after = before
        self._step += 1
        if after != before:
            self._set(after)
        bought = after.page == "done"
        truncated = not bought and self._step >= self.max_steps
        won = bought and after.score == 1.0
        self._ended = bought or truncated
        info.update(score=after.score if bought else 0.0, truncated=truncated)
        return Transition(
            observation=self._observation(),
            reward=self.reward_scale if won else 0.0,
            done=self._ended,
            won=won,
            changed=after != before,
            info=info,
        )

    def snapshot(self) -> WebShopSnapshot:
        return WebShopSnapshot(self._env_key, self.state, self._step, self._ended)

    def restore(self, snapshot: WebShopSnapshot) -> Observation:
        if not isinstance(snapshot, WebShopSnapshot) or snapshot.env_key != self._env_key:
            raise EnvError("WebShop: snapshot comes from an environment with another catalogue or seed")
        self._set(snapshot.state)
        self._step = snapshot.step
        self._ended = snapshot.ended
        return self._observation()

    def walkthrough(self, task_id: str) -> list[str] | None:
        """The oracle's winning action sequence for ``task_id`` (None if it does not win); keeps the current episode."""

        saved = self.snapshot() if self._state is not None else None
        oracle = WebShopOracle(self)
        observation, actions, won = self.reset(task_id), [], False
        while not self._ended:
            actions.append(oracle.act(observation))
            transition = self.step(actions[-1])
            observation, won = transition.observation, transition.won
        if saved is None:
            self._state, self._page, self._observation_at_0 = None, None, None
        else:
            self.restore(saved)
        return actions if won else None
