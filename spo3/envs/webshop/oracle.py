"""A scripted WebShop oracle: it knows the goal product and buys it with the goal's options.

It searches for the goal's instruction (without the option and price clauses), pages through the results until
the goal product shows up, opens it, clicks each goal option value and buys. When the product is not among the
instruction's hits it searches for the product's title instead. It reads the environment's current state, not
its own history, so it continues correctly from any restored snapshot. Used for tests and supervised warm starts.
"""

from __future__ import annotations

from typing import Any, Protocol

from spo3.envs.base import Observation
from spo3.envs.webshop.catalogue import Catalogue
from spo3.envs.webshop.goals import Goal
from spo3.envs.webshop.pages import PRODUCTS_PER_PAGE, SUB_PAGES, Page

__all__ = ["WebShopOracle", "instruction_query"]


def instruction_query(catalogue: Catalogue, goal: Goal) -> str:
    """The goal's instruction before its option and price clauses, lower-cased: the oracle's first search."""
    return catalogue.by_asin[goal.asin].instruction.lower()


class Shop(Protocol):
    """What the oracle reads of a shop (:class:`spo3.envs.webshop.env.WebShopEnv` provides it); a protocol, so that
    the environment can use the oracle for its walkthroughs without an import cycle."""

    product_catalogue: Catalogue
    state: Any
    page: Page

    def goal(self, task_id: str) -> Goal: ...

    def search(self, query: str) -> Any: ...


class WebShopOracle:
    """Goal-aware expert policy for a WebShop environment.

    Args:
      env: the environment whose episodes it plays (it reads the goal and the current state from it).
    """

    def __init__(self, env: Shop) -> None:
        self.env = env

    def act(self, observation: Observation) -> str:
        """The next action for the environment's current state (``observation`` names the task)."""
        goal = self.env.goal(observation.task_id)
        state = self.env.state
        target = f"click[{goal.asin.lower()}]"
        if state.page == "search":
            return f"search[{instruction_query(self.env.product_catalogue, goal)}]"
        if state.page == "results":
            if target in observation.admissible_actions:
                return target
            if state.results_page * PRODUCTS_PER_PAGE < len(self.env.search(state.query)):
                return "click[next >]"
            return f"search[{goal.name.lower()}]"
        if state.page in SUB_PAGES or (state.page == "item" and state.asin != goal.asin):
            return "click[< prev]"
        chosen = dict(state.options)
        clickables = self.env.page.clickables
        for group, value in goal.goal_options.items():
            if chosen.get(group) != value and clickables.get(value) == ("option", group):
                return f"click[{value}]"
        return "click[buy now]"
