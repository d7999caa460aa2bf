"""The WebShop environment (spo3.envs.webshop): catalogue loading, goals, page rendering, action semantics,
snapshot/restore and the oracle.

Rendering and action tests use a hand-built shop (one shoe with options and 11 widgets, so results span two
pages); catalogue, goal and oracle tests use the generated catalogue built from the real items_ins_v2_1000.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spo3.envs.base import EnvError
from spo3.envs.webshop import Catalogue, CatalogueError, Product, WebShopEnv, WebShopOracle, load_catalogue
from spo3.envs.webshop.catalogue import clean_products, generate_products
from spo3.envs.webshop.goals import TEST_GOALS, option_combinations
from spo3.envs.webshop.pages import format_observation
from spo3.envs.webshop.reward import get_reward
from tests._data import require_data, shared_data_dir


INSTRUCTION = (
    "Find me men's athletic shoes with breathable mesh with color: blue | white, and size: 8, "
    "and price lower than 70.00 dollars"
)


def shoe() -> Product:
    return Product(
        asin="B000000001", title="Acme Trail Running Shoes", description="Light shoes for trail running.",
        bullet_points=("Breathable mesh upper", "Rubber sole"), pricing=(39.99,), price_tag="$39.99",
        options={"color": ("black", "blue | white"), "size": ("8", "9")},
        attributes=("breathable mesh", "rubber sole"), category="fashion", query="men's athletic shoes",
        product_category="Clothing, Shoes & Jewelry › Men › Shoes",
        instruction="Find me men's athletic shoes with breathable mesh", instruction_attributes=("breathable mesh",),
    )


def widget(i: int) -> Product:
    return Product(
        asin=f"B0000000{i + 10}", title=f"Acme Widget {i}", description="A widget for testing.",
        bullet_points=("Sturdy",), pricing=(5.0,), price_tag="$5.0", options={}, attributes=("DUMMY_ATTR",),
        category="electronics", query="widgets", product_category="Electronics › Widgets", instruction=None,
        instruction_attributes=(),
    )


@pytest.fixture
def shop() -> WebShopEnv:
    """Four goals (2 colours x 2 sizes of the shoe); with seed 0, goal 0 is blue | white, size 8, under $70."""
    catalogue = Catalogue("synthetic", (shoe(), *(widget(i) for i in range(11))), "hand-built")
    return WebShopEnv(product_catalogue=catalogue, seed=0)


@pytest.fixture(scope="module")
def webshop() -> WebShopEnv:
    data = require_data(
        shared_data_dir() / "webshop" / "items_ins_v2_1000.json",
        "WebShop's items_ins_v2_1000.json",
        "See ../shared/data/webshop/PROVENANCE.md (AgentGym agentenv-webshop/webshop/data/).",
    )
    return WebShopEnv(data.parent, seed=0)


def play(env: WebShopEnv, actions: list[str]):
    return [env.step(a) for a in actions]


# ------------------------------------------------------------------------------------------------ rendering


def test_search_page_renders_like_upstream(shop):
    observation = shop.reset("0")
    assert shop.raw_text == f"WebShop [SEP] Instruction: [SEP] {INSTRUCTION} [SEP] Search"
    assert observation.text == "'Search'"
    assert observation.task == INSTRUCTION and observation.task_id == "0" and observation.step == 0
    assert observation.admissible_actions == ("search[<your query>]", "click[search]")


def test_the_instruction_search_action_lists_the_oracles_query_for_policies_that_cannot_type_one(shop):
    catalogue = shop.product_catalogue
    typed = WebShopEnv(product_catalogue=catalogue, seed=0, search_action="instruction")
    observation = typed.reset("0")
    query = "search[find me men's athletic shoes with breathable mesh]"  # the instruction before its option and price clauses
    assert observation.admissible_actions == (query, "click[search]")
    assert WebShopOracle(typed).act(observation) == query
    results = typed.step(query).observation
    assert "click[b000000001]" in results.admissible_actions and not any(a.startswith("search[") for a in results.admissible_actions)
    assert typed.step("click[back to search]").observation.admissible_actions[0] == query  # every search bar lists it
    with pytest.raises(ValueError, match="search_action"):
        WebShopEnv(product_catalogue=catalogue, search_action="free text")


def test_results_pages_render_like_upstream(shop):
    shop.reset("0")
    page1 = shop.step("search[acme widget]").observation
    widgets = " [SEP] ".join(f"'B0000000{i + 10}' [SEP] 'Acme Widget {i}' [SEP] '$5.0'" for i in range(10))
    assert page1.text == f"'Back to Search' [SEP] 'Page 1 (Total results: 12)' [SEP] 'Next >' [SEP] {widgets}"
    assert page1.admissible_actions == (
        "click[back to search]", "click[next >]", *(f"click[b0000000{i + 10}]" for i in range(10)),
    )
    page2 = shop.step("click[next >]").observation
    assert shop.raw_text == (
        f"Instruction: [SEP] {INSTRUCTION} [SEP] Back to Search [SEP] Page 2 (Total results: 12) [SEP] < Prev "
        "[SEP] Next > [SEP] B000000020 [SEP] Acme Widget 10 [SEP] $5.0 [SEP] B000000001 [SEP] "
        "Acme Trail Running Shoes [SEP] $39.99"
    )
    assert page2.admissible_actions == (
        "click[back to search]", "click[< prev]", "click[next >]", "click[b000000020]", "click[b000000001]",
    )
    # "Next >" stays on the last page (as upstream) and leads to an empty page 3.
    assert shop.step("click[next >]").observation.text == (
        "'Back to Search' [SEP] 'Page 3 (Total results: 12)' [SEP] '< Prev' [SEP] 'Next >'"
    )


ITEM = (
    "'Back to Search' [SEP] '< Prev' [SEP] 'color' [SEP] 'black' [SEP] 'blue | white' [SEP] 'size' [SEP] '8' "
    "[SEP] '9' [SEP] 'Acme Trail Running Shoes' [SEP] 'Price: $39.99' [SEP] 'Rating: N.A.' [SEP] 'Description' "
    "[SEP] 'Features' [SEP] 'Reviews' [SEP] 'Buy Now'"
)


def test_item_and_sub_pages_render_like_upstream(shop):
    shop.reset("0")
    play(shop, ["search[trail shoes]"])
    item = shop.step("click[b000000001]").observation
    assert item.text == ITEM
    assert item.admissible_actions == (
        "click[back to search]", "click[< prev]", "click[description]", "click[features]", "click[reviews]",
        "click[buy now]", "click[black]", "click[blue | white]", "click[8]", "click[9]",
    )
    sub_pages = {
        "description": "'Back to Search' [SEP] '< Prev' [SEP] 'Light shoes for trail running.'",
        "features": "'Back to Search' [SEP] '< Prev' [SEP] 'Breathable mesh upper' [SEP] 'Rubber sole'",
        "reviews": "'Back to Search' [SEP] '< Prev'",
    }
    for name, text in sub_pages.items():
        observation = shop.step(f"click[{name}]").observation
        assert observation.text == text
        assert observation.admissible_actions == ("click[back to search]", "click[< prev]")
        assert shop.step("click[< prev]").observation.text == ITEM


def test_buying_renders_the_done_page_and_scores(shop):
    shop.reset("0")
    transition = play(shop, ["search[trail shoes]", "click[b000000001]", "click[blue | white]", "click[buy now]"])[-1]
    # attribute 1/1, colour matched, size not chosen, price ok: (1 + 1 + 1) / (1 + 2 + 1)
    assert transition.info["score"] == 0.75 and transition.done and not transition.won and transition.reward == 0.0
    assert transition.observation.admissible_actions == ()
    assert transition.observation.text == shop.raw_text == (
        "Thank you for shopping with us! [SEP] Your code: [SEP] None [SEP] (Paste it in your MTurk interface.) "
        '[SEP] Purchased [SEP] asin [SEP] B000000001 [SEP] options [SEP] {"color": "blue | white"} [SEP] attrs '
        "[SEP] None [SEP] category [SEP] None [SEP] query [SEP] None [SEP] product category [SEP] None [SEP] "
        "Target [SEP] asin [SEP] options [SEP] attrs [SEP] price upper [SEP] instuction text [SEP] category [SEP] "
        "product category [SEP] query [SEP] Goal [SEP] None [SEP] Reward [SEP] Your score (min 0.0, max 1.0) [SEP] "
        "0.75 [SEP] Reward Details [SEP] None"
    )
    with pytest.raises(EnvError, match="ended"):
        shop.step("click[< prev]")


def test_winning_purchase_pays_reward_scale(shop):
    shop.reward_scale = 10.0
    shop.reset("0")
    actions = ["search[trail shoes]", "click[b000000001]", "click[8]", "click[BLUE | WHITE]", "click[buy now]"]
    transition = play(shop, actions)[-1]
    assert (transition.won, transition.reward, transition.info["score"]) == (True, 10.0, 1.0)
    assert transition.info["reward_info"]["r_option"] == 1.0
    assert transition.info["purchased"] == {"asin": "B000000001", "options": {"size": "8", "color": "blue | white"}}


def test_format_observation_keeps_raw_text_without_the_instruction():
    assert format_observation("a [SEP] b", "x") == "a [SEP] b"
    assert format_observation("Instruction: [SEP] x [SEP] b [SEP] x", "x") == "'b' [SEP] 'x'"


# ------------------------------------------------------------------------------------------- action semantics

NO_OPS = [
    "", "buy", "click[search]", "click[buy now]", "click[< prev]", "click[nothing]", "Search[shoes]", "search[]",
    "click [b000000001]", "search[shoes", "click[black] then click[buy now]", "\n", "<action>search[x]</action>",
]


@pytest.mark.parametrize("action", NO_OPS)
def test_invalid_actions_are_no_ops(shop, action):
    before = shop.reset("0")
    transition = shop.step(action)
    assert not transition.changed and transition.reward == 0.0 and not transition.done
    assert transition.observation.text == before.text
    assert transition.observation.admissible_actions == before.admissible_actions
    assert transition.observation.step == 1 and transition.info["score"] == 0.0


def test_search_works_on_every_page_and_lowercases(shop):
    shop.reset("0")
    play(shop, ["search[trail shoes]", "click[b000000001]", "click[black]"])
    transition = shop.step("search[ACME Widget]")  # no search bar here, but upstream executes it anyway
    assert transition.changed and shop.state.query == "acme widget" and shop.state.options == ()
    assert transition.observation.text.startswith("'Back to Search' [SEP] 'Page 1 (Total results: 12)'")


def test_option_clicks_change_state_but_not_text(shop):
    shop.reset("0")
    before = play(shop, ["search[trail shoes]", "click[b000000001]"])[-1].observation
    chosen = shop.step("click[black]")
    assert chosen.changed and chosen.observation.text == before.text  # upstream shows choices only via JavaScript
    assert not shop.step("click[black]").changed
    assert shop.state.options == (("color", "black"),)
    shop.step("click[< prev]")  # back to the results forgets the choices
    assert shop.state.options == () and shop.state.asin is None


def test_back_to_search_resets_the_session(shop):
    shop.reset("0")
    play(shop, ["search[trail shoes]", "click[b000000001]", "click[description]"])
    assert shop.step("click[back to search]").observation.text == "'Search'"
    assert shop.state.query is None and shop.state.page == "search"


def test_step_limit_truncates(shop):
    env = WebShopEnv(product_catalogue=shop.product_catalogue, max_steps=3)
    env.reset("1")
    transitions = play(env, ["search[shoes]", "click[next >]", "click[back to search]"])
    assert [t.done for t in transitions] == [False, False, True]
    assert transitions[-1].info["truncated"] and not transitions[-1].won
    with pytest.raises(EnvError, match="ended"):
        env.step("search[shoes]")


def test_misuse_raises_clear_errors(shop):
    with pytest.raises(EnvError, match="reset"):
        shop.step("search[x]")
    with pytest.raises(EnvError, match="reset"):
        shop.snapshot()
    for task_id in ("4", "-1", "01", "x", "²"):
        with pytest.raises(EnvError, match="unknown task id"):
            shop.reset(task_id)
    with pytest.raises(ValueError, match="max_steps"):
        WebShopEnv(product_catalogue=shop.product_catalogue, max_steps=0)


# --------------------------------------------------------------------------------------------- snapshots


def test_snapshot_restore_returns_to_the_same_state(shop):
    shop.reset("0")
    play(shop, ["search[acme widget]", "click[next >]"])
    snapshot, text = shop.snapshot(), shop.raw_text
    play(shop, ["click[b000000001]", "click[black]", "click[buy now]"])
    restored = shop.restore(snapshot)
    assert shop.raw_text == text and restored.step == 2 and shop.state.results_page == 2
    assert shop.step("click[b000000001]").observation.text == ITEM


def test_snapshots_move_between_instances_with_the_same_catalogue_and_seed(shop):
    shop.reset("2")
    play(shop, ["search[trail shoes]", "click[b000000001]"])
    twin = WebShopEnv(product_catalogue=shop.product_catalogue, seed=0)
    assert twin.restore(shop.snapshot()).text == ITEM
    other_seed = WebShopEnv(product_catalogue=shop.product_catalogue, seed=1)
    with pytest.raises(EnvError, match="another catalogue or seed"):
        other_seed.restore(shop.snapshot())
    with pytest.raises(EnvError):
        twin.restore(("not", "a", "snapshot"))


@given(
    task=st.integers(0, TEST_GOALS - 1),
    prefix=st.lists(st.integers(0, 99), max_size=8),
    continuation=st.lists(st.integers(0, 99), min_size=1, max_size=6),
)
def test_restore_then_step_equals_the_original_continuation(webshop, task, prefix, continuation):
    # "search[<your query>]" literally finds nothing in this catalogue; search for the goal's product type instead.
    search = f"search[{webshop.goal(str(task)).query}]"

    def walk(observation, done, choices):
        """Take the admissible action each choice indexes (modulo their number) until the episode ends."""
        record = []
        for choice in choices:
            if done:
                break
            actions = [search if a == "search[<your query>]" else a for a in observation.admissible_actions]
            transition = webshop.step(actions[choice % len(actions)])
            observation, done = transition.observation, transition.done
            record.append((observation, transition.reward, done, transition.won, transition.changed, transition.info))
        return observation, done, record

    def future(observation, done):
        """The continuation, then Buy Now where possible: the score reveals the hidden option choices."""
        observation, done, record = walk(observation, done, continuation)
        if "click[buy now]" in observation.admissible_actions:
            record += walk(observation, done, [observation.admissible_actions.index("click[buy now]")])[2]
        return record

    observation, done, _ = walk(webshop.reset(str(task)), False, prefix)
    snapshot = webshop.snapshot()
    original = future(observation, done)
    assert webshop.restore(snapshot) == observation
    assert webshop.snapshot() == snapshot  # hidden state (chosen options) included
    assert future(observation, done) == original


# ----------------------------------------------------------------------------------- catalogue, goals, oracle


def test_real_instruction_file_loads(webshop):
    data = json.loads((shared_data_dir() / "webshop" / "items_ins_v2_1000.json").read_text())
    assert len(data) == 1000 and sum("instruction" in e for e in data.values()) == 415
    assert webshop.catalogue == "synthetic"
    assert len(webshop.product_catalogue.products) == 1000
    instructed = [p for p in webshop.product_catalogue.products if p.instruction]
    assert len(instructed) == 415
    assert {p.category for p in instructed} == {"beauty", "electronics", "fashion", "food", "furniture"}


def test_generated_catalogue_is_deterministic_and_in_the_product_schema(webshop):
    attributes = json.loads((shared_data_dir() / "webshop" / "items_ins_v2_1000.json").read_text())
    first, second = generate_products(attributes, seed=0), generate_products(attributes, seed=0)
    assert first == second and first != generate_products(attributes, seed=1)
    record = first[1]  # B07DJJXGB5: "Find me scrubs & body treatments with tea tree, natural ingredients"
    assert {"asin", "name", "full_description", "small_description", "pricing", "customization_options",
            "category", "query", "product_category"} <= set(record)
    assert record["asin"] == "B07DJJXGB5" and record["query"] == "scrubs & body treatments"
    product = webshop.product_catalogue.by_asin["B07DJJXGB5"]
    assert product.title.endswith("Scrubs & Body Treatments")
    assert product.attributes == ("tea tree", "essential oils", "natural ingredients")


def test_goals_follow_upstream_construction(webshop):
    goals = webshop.goals
    products = webshop.product_catalogue.by_asin
    assert len(goals) == sum(len(option_combinations(p)) for p in products.values() if p.instruction)
    for goal in goals:
        product = products[goal.asin]
        assert goal.instruction_text.startswith(product.instruction)
        assert webshop.prices[goal.asin] < goal.price_upper <= webshop.prices[goal.asin] + 40
        assert goal.instruction_text.endswith(f", and price lower than {goal.price_upper:.2f} dollars")
        assert list(goal.goal_options) == sorted(product.options)
    data_dir = shared_data_dir() / "webshop"
    assert WebShopEnv(data_dir, seed=0).goals == goals
    assert WebShopEnv(data_dir, seed=1).goals != goals


def test_splits(webshop):
    assert webshop.tasks("test") == [str(i) for i in range(TEST_GOALS)] == webshop.tasks("valid")
    assert webshop.tasks("train") == [str(i) for i in range(TEST_GOALS, len(webshop.goals))]
    assert webshop.task_type("0") == webshop.goals[0].category
    with pytest.raises(ValueError, match="split"):
        webshop.tasks("dev")


def test_every_generated_goal_is_winnable(webshop):
    # Buying the goal's product with the goal's options scores exactly 1.0 for every goal of the generated
    # catalogue (on real data some may not: upstream's colour normalisation can spoil an exact option choice).
    for goal in webshop.goals:
        product = webshop.product_catalogue.by_asin[goal.asin]
        score, info = get_reward(product, goal, webshop.prices[goal.asin], goal.goal_options)
        assert score == 1.0, (goal, info)


def test_oracle_reaches_score_one_on_generated_goals(webshop):
    oracle = WebShopOracle(webshop)
    sample = webshop.tasks("test")[::10] + webshop.tasks("train")[::50]
    for task_id in sample:
        observation = webshop.reset(task_id)
        while True:
            transition = webshop.step(oracle.act(observation))
            assert transition.info["catalogue"] == "synthetic"
            observation = transition.observation
            if transition.done:
                break
        assert transition.won and transition.info["score"] == 1.0, (task_id, transition.info)


def test_oracle_continues_from_a_restored_detour(webshop):
    oracle = WebShopOracle(webshop)
    webshop.reset("7")
    play(webshop, ["search[red lamp]", "click[next >]"])
    detour = webshop.snapshot()
    webshop.reset("3")
    observation = webshop.restore(detour)
    for _ in range(webshop.max_steps):
        transition = webshop.step(oracle.act(observation))
        observation = transition.observation
        if transition.done:
            break
    assert transition.won


def test_walkthrough_wins_and_keeps_the_current_episode(webshop):
    webshop.reset("11")
    webshop.step("search[blue]")
    snapshot = webshop.snapshot()
    actions = webshop.walkthrough("42")
    assert webshop.snapshot() == snapshot
    webshop.reset("42")
    assert play(webshop, actions)[-1].won


# ------------------------------------------------------------------------------------------ data files


def write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


RAW_PRODUCT = {
    "asin": "B0000000AA", "name": "Acme Lamp", "full_description": "A lamp.", "small_description": "Bright",
    "pricing": "$10.99 - $15.50", "customization_options": {"Color": [{"value": "Black/White "}], "Size": None},
    "category": "furniture", "query": " Floor Lamps ", "product_category": "Home › Lamps",
}
ATTRIBUTES = {"B0000000AA": {"attributes": ["easy assemble"], "instruction": "Find me floor lamps with easy "
              "assemble", "instruction_attributes": ["easy assemble"]}}


def test_real_product_file_is_cleaned_like_upstream(tmp_path):
    products = [
        RAW_PRODUCT,
        {**RAW_PRODUCT, "name": "duplicate"},
        {**RAW_PRODUCT, "asin": "nan"},
        {**RAW_PRODUCT, "asin": "B0000000BB", "pricing": "", "small_description": ["One", "Two"]},
    ]
    write(tmp_path / "items_shuffle_1000.json", products)
    write(tmp_path / "items_ins_v2_1000.json", ATTRIBUTES)
    catalogue = load_catalogue(tmp_path, verify=False)
    assert catalogue.kind == "real" and [p.asin for p in catalogue.products] == ["B0000000AA", "B0000000BB"]
    lamp, other = catalogue.products
    assert (lamp.pricing, lamp.price_tag, lamp.query) == ((10.99, 15.5), "$10.99 to $15.5", "floor lamps")
    assert lamp.options == {"color": ("black | white",)} and lamp.bullet_points == ("Bright",)
    assert (other.pricing, other.price_tag, other.attributes) == ((100.0,), "$100.0", ("DUMMY_ATTR",))
    env = WebShopEnv(tmp_path, verify_files=False)
    assert env.catalogue == "real" and len(env.goals) == 1
    env.reset("0")
    assert env.step("search[lamp]").info["catalogue"] == "real"


def test_full_size_file_names_and_num_products(tmp_path):
    products = [{**RAW_PRODUCT, "asin": f"B00000000{i}"} for i in range(5)]
    write(tmp_path / "items_shuffle.json", products)
    write(tmp_path / "items_ins_v2.json", {})
    write(tmp_path / "items_ins_v2_1000.json", ATTRIBUTES)
    full = load_catalogue(tmp_path, use_small=False, num_products=3, verify=False)
    assert full.kind == "real" and [p.asin for p in full.products] == ["B000000000", "B000000001", "B000000002"]
    # the small product file is absent: the small attribute file seeds a synthetic catalogue
    small = load_catalogue(tmp_path, verify=False)
    assert small.kind == "synthetic" and [p.asin for p in small.products] == ["B0000000AA"]


@pytest.mark.parametrize(
    ("products", "attributes", "message"),
    [
        ('[{"asin": "B0000000AA", ', ATTRIBUTES, "items_shuffle_1000.json: not valid JSON"),
        ({"B0000000AA": RAW_PRODUCT}, ATTRIBUTES, "expected a JSON list of products"),
        ([{**RAW_PRODUCT, "name": None}], ATTRIBUTES, "product #0 \\(asin 'B0000000AA'\\): field 'name'"),
        ([{**RAW_PRODUCT, "pricing": "$1.2.3"}], ATTRIBUTES, "field 'pricing' = '\\$1.2.3'"),
        ([{**RAW_PRODUCT, "pricing": "cheap"}], ATTRIBUTES, "contains no '\\$' price"),
        ([{k: v for k, v in RAW_PRODUCT.items() if k != "customization_options"}], ATTRIBUTES,
         "'customization_options' is missing"),
        ([{**RAW_PRODUCT, "customization_options": {"Color": ["black"]}}], ATTRIBUTES, "option 'Color' must be"),
        ([RAW_PRODUCT], [], "items_ins_v2_1000.json: expected a JSON object keyed by ASIN"),
        ([RAW_PRODUCT], {"B0000000AA": {"instruction": "Find me lamps"}}, "has an instruction but no"),
        ([RAW_PRODUCT], {"B0000000AA": {"attributes": "lamp"}}, "'attributes' must be a list of strings"),
    ],
)
def test_malformed_files_are_reported(tmp_path, products, attributes, message):
    write(tmp_path / "items_shuffle_1000.json", products)
    write(tmp_path / "items_ins_v2_1000.json", attributes)
    with pytest.raises(CatalogueError, match=message):
        load_catalogue(tmp_path, verify=False)


def test_missing_and_corrupt_published_files_are_reported(tmp_path):
    with pytest.raises(CatalogueError, match="items_ins_v2_1000.json: not found"):
        load_catalogue(tmp_path)
    source = require_data(shared_data_dir() / "webshop" / "items_ins_v2_1000.json", "items_ins_v2_1000.json", "")
    damaged = source.read_bytes().replace(b"tea tree", b"tea free", 1)
    (tmp_path / "items_ins_v2_1000.json").write_bytes(damaged)
    with pytest.raises(CatalogueError, match="corrupt or a different version: 147099 bytes with sha256"):
        load_catalogue(tmp_path)
    assert load_catalogue(tmp_path, verify=False).kind == "synthetic"


def test_clean_products_rejects_non_objects():
    with pytest.raises(CatalogueError, match="products.json: product #0: expected an object"):
        clean_products(["B000"], {}, path="products.json")
