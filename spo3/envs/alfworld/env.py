"""Real ALFWorld text games (TextWorld's PDDL engine, alfworld 0.4.2 wrappers) with exact, O(1) snapshot/restore.

**Tasks.** A task id is the game file's path relative to the data root, e.g.
``json_2.1.1/valid_unseen/look_at_obj_in_light-AlarmClock-None-DeskLamp-308/trial_T20190908_222917_366542/game.tw-pddl``
(so ``data_dir / task_id`` is the file, and ids of different splits never collide). :meth:`AlfworldEnv.tasks`
lists a split in sorted order and, like upstream's ``AlfredTWEnv.collect_game_files``, leaves out games whose path
contains ``movable`` or ``Sliced`` (there are none in the shipped splits). The data root is laid out by
:func:`spo3.envs.alfworld.data.install_alfworld` or by ``alfworld-download``.

**Semantics (upstream's ``AlfWorldEnvironmentManager``).** The observation text is TextWorld's raw feedback (at
reset: welcome banner, room description and "Your task is to: ..."), the task is the text after
``"Your task is to: "``, admissible actions are TextWorld's sorted list (``help`` included; the prompt drops it).
The reward is ``reward_scale * won`` on the winning step (upstream uses ``reward_scale=10``); the episode ends when
won or after ``max_steps`` steps (``info["truncated"] = True``), every step counting, as TextWorld's ``Limit``
wrapper does. An inadmissible command is a no-op: TextWorld answers "Nothing happens." and nothing changes
(``Transition.changed`` is False exactly then: the engine runs a command only if it is one of the admissible ones,
and the ALFWorld grammar never produces that sentence otherwise).

**Speed and memory.** A cold reset parses the game's PDDL and grounds it twice with fast-downward's translator
(inside TextWorld's ``load`` and ``reset``), about 1-2 s; the translations (80% of that) are cached on disk
(:func:`_cached_translations`), so only the first cold load of a game on a machine pays for them. Each loaded game is kept in a bounded process-wide LRU
cache (:func:`set_game_cache_size`, default 32 games, 3-5 MB each), so a later reset of it, by any
:class:`AlfworldEnv` of the process, only reloads the already translated planning task into the planner library
(about 2 ms, and only if another game ran since) and installs the cached initial state. All envs of a process
share one TextWorld PDDL engine, and so one copy of fast-downward's C library: TextWorld loads a private copy per
``PddlEnv`` and never unloads it (a fresh gym env per game grew upstream's memory past 1.5 GB), and unloading one
copy while another is loaded crashes the interpreter at exit (the copies share C++ static objects). An env keeps
its own current state as a snapshot record, and the engine switches between envs by restoring it, so envs
interleave freely, at the cost of a restore when they do; they are not thread-safe. Each loaded game's grammar is
replaced by :class:`~spo3.envs.alfworld.grammar.CachedGrammar`, which derives TextWorld's very texts with its parses
memoised: a step costs about a tenth of one in ALFWorld's own environment (``benchmarks/bench_envs.py``), with the
same text, admissible commands, ``won`` and ``done`` (tests/envs/test_alfworld_upstream.py).

**How snapshot/restore works, and why it is exact.** The complete state of a running TextWorld PDDL game is:

1. fast-downward's current search state, in the C library. Its state registry keeps every state visited since the
   task was loaded, under a stable integer id, and exports ``get_state_id``/``set_state_id``; the successor of a
   state under an operator is a pure function of the two.
2. TextWorld's Python mirror of that state (``PddlState``): four fact containers, from which the grammar derives
   every feedback text (deterministically: it always takes the first applicable rule), and ``_operators``, the
   applicable operators of the current state.
3. ``PddlEnv``'s episode fields: ``state`` (the current ``GameState``: feedback, admissible commands and the
   command -> operator table the next step looks up), ``prev_state``, ``_last_action`` and ``_moves``.

A snapshot stores (1) as the state id plus the operator path that led to it from the initial state, and (2), (3)
by reference, which is O(1) and sound because none of those objects is ever modified after capture: TextWorld
builds a new ``GameState`` and a new ``_operators`` dict on every step, and :meth:`AlfworldEnv.step` gives TextWorld
fresh copies of the four fact containers (about 10 us) before it updates them in place (copy-on-write). Restoring
puts those very objects back and sets the planner's state id, so the next step sees exactly the inputs the
original continuation saw: same observation, same admissible actions, same future (tests/envs check this with a
property test). If the planner library has loaded another task since the snapshot was taken (another game ran in
between), the old state id is meaningless; restore then re-applies the stored operator path inside the C library
from the initial state, a few microseconds per operator and no text generation.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import dataclasses
import functools
import hashlib
import json
import math
import os
import pickle
import re
import tempfile
import warnings
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Mapping

from spo3.config.paths import cache_root
from spo3.envs.alfworld.data import ALFWORLD_SPLITS, GAMES_DIR, INSTALL_HINT, AlfworldDataError, check_split, default_data_dir
from spo3.envs.base import EnvError, Observation, TextEnv, Transition

__all__ = [
    "AlfworldEnv",
    "AlfworldSnapshot",
    "DEFAULT_GAME_CACHE_SIZE",
    "STEP_COST_EXPONENT",
    "TASK_TYPES",
    "clear_game_cache",
    "set_game_cache_size",
    "task_type_of",
]

TASK_TYPES: tuple[str, ...] = (
    "pick_and_place",
    "pick_two_obj_and_place",
    "look_at_obj_in_light",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_clean_then_place_in_recep",
)
"""The six task types, in upstream's matching order (the first substring found in the game path wins)."""
GAME_FILE = "game.tw-pddl"
TASK_PREFIX = "Your task is to: "
DEFAULT_GAME_CACHE_SIZE = 32
_UNSUPPORTED_PATH_MARKS = ("movable", "Sliced")  # upstream skips these games


def task_type_of(task_id: str) -> str:
    """The task type of a game path: the first of :data:`TASK_TYPES` it contains (upstream's rule).

    Raises:
      EnvError: none of the six types occurs in the path.
    """
    for task_type in TASK_TYPES:
        if task_type in task_id:
            return task_type
    raise EnvError(f"cannot tell the ALFWorld task type of {task_id!r}: it contains none of {list(TASK_TYPES)}")


_Facts = tuple[Any, Any, Any, Any]
"""``PddlState``'s ``_facts``, ``_vars_by_name``, ``_vars_by_type`` and ``_var_counts``."""


@dataclass(frozen=True, eq=False)
class _EngineState:
    """TextWorld's side of a game state (module docstring, items 2 and 3) plus the operator path of item 1."""

    facts: _Facts
    operators: Mapping[int, Any]
    game_state: Any
    prev_state: Any
    last_action: Any
    moves: int
    op_path: tuple[tuple[int, int], ...]
    """``(operator id, number of effect atoms)`` of every operator applied since the initial state."""


@dataclass(frozen=True, eq=False)
class _LoadedGame:
    """A parsed and grounded game, shared read-only by every env of the process."""

    path: str
    data: Mapping[str, Any]
    logic: Any
    entity_infos: Mapping[str, Any]
    pddl_state: Any
    """Template ``PddlState`` holding the translated task (``sas``); the engine works on a shallow copy of it."""
    initial: _EngineState
    task: str


@dataclass(frozen=True, eq=False)
class AlfworldSnapshot:
    """An opaque, immutable ALFWorld state (see the module docstring); restore it with :meth:`AlfworldEnv.restore`."""

    game: _LoadedGame
    engine: _EngineState
    lib_token: object | None
    """Identifies the planner-library load in which ``state_id`` is valid (None: replay the operator path)."""
    state_id: int
    observation: Observation
    done: bool


class _GameCache:
    """Bounded LRU of loaded games, keyed by resolved game-file path."""

    def __init__(self, max_games: int) -> None:
        self.max_games = max_games
        self._games: OrderedDict[str, _LoadedGame] = OrderedDict()

    def get(self, path: str) -> _LoadedGame | None:
        game = self._games.get(path)
        if game is not None:
            self._games.move_to_end(path)
        return game

    def put(self, game: _LoadedGame) -> None:
        self._games[game.path] = game
        self._games.move_to_end(game.path)
        self.trim()

    def trim(self) -> None:
        while len(self._games) > self.max_games:
            self._games.popitem(last=False)

    def clear(self) -> None:
        self._games.clear()


_GAMES = _GameCache(DEFAULT_GAME_CACHE_SIZE)
_ENGINE: _Engine | None = None  # created by the first reset (see _engine)


def set_game_cache_size(max_games: int) -> None:
    """Bound the process-wide cache of loaded games (each holds 3-5 MB); evicts the oldest if needed."""
    if isinstance(max_games, bool) or not isinstance(max_games, int) or max_games < 1:
        raise ValueError(f"set_game_cache_size: max_games must be an int >= 1, got {max_games!r}")
    _GAMES.max_games = max_games
    _GAMES.trim()


def clear_game_cache() -> None:
    """Forget every loaded game: the next reset of any game is cold again (benchmarks use this).

    States recorded in snapshots (and each env's current state) stay valid: they hold their game.
    """
    _GAMES.clear()
    if _ENGINE is not None:
        _ENGINE.active, _ENGINE.installed, _ENGINE.lib_token = None, None, object()


def _read_game_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise AlfworldDataError(f"ALFWorld game file {path} not found. {INSTALL_HINT}") from None
    except (OSError, ValueError) as exc:
        raise AlfworldDataError(f"ALFWorld game file {path} is unreadable or not JSON ({exc}); reinstall it") from exc
    missing = [key for key in ("pddl_domain", "grammar", "pddl_problem") if not isinstance(data, dict) or key not in data]
    if missing:
        raise AlfworldDataError(f"ALFWorld game file {path} lacks {missing}; it is not a game.tw-pddl file")
    return data


def _game_data(path: Path) -> Mapping[str, Any]:
    """The game file's content: the loaded game's if the process has it, else read from the file."""
    cached = _GAMES.get(str(path.resolve()))
    return cached.data if cached is not None else _read_game_file(path)


STEP_COST_EXPONENT = 1.5
""":meth:`AlfworldEnv.step_cost` = receptacles ** this (``benchmarks/bench_step_cost.py`` fits it)."""

_RECEPTACLE = re.compile(r"^\s*[A-Za-z]\S* - receptacle\s*$", re.MULTILINE)
"""A receptacle's declaration among the PDDL problem's objects."""


@functools.lru_cache(maxsize=8192)
def _step_cost(path: str) -> float:
    """:meth:`AlfworldEnv.step_cost` of the game file at ``path``."""
    try:
        problem = _game_data(Path(path))["pddl_problem"]
    except AlfworldDataError:
        return 1.0
    return max(len(_RECEPTACLE.findall(problem)), 1) ** STEP_COST_EXPONENT


def _extract_task(feedback: str, path: str) -> str:
    start = feedback.find(TASK_PREFIX)
    if start == -1:
        raise AlfworldDataError(f"the initial observation of {path} has no {TASK_PREFIX!r}: {feedback[:200]!r}")
    return feedback[start + len(TASK_PREFIX):].strip()


def _private_copy(facts: _Facts) -> _Facts:
    """Fresh copies of the four fact containers, with their types (TextWorld's ``add_fact`` needs defaultdicts)."""
    by_signature, vars_by_name, vars_by_type, var_counts = facts
    return (
        defaultdict(set, {signature: props.copy() for signature, props in by_signature.items()}),
        dict(vars_by_name),
        defaultdict(set, {type_name: variables.copy() for type_name, variables in vars_by_type.items()}),
        var_counts.copy(),
    )


@contextlib.contextmanager
def _cached_translations() -> Iterator[None]:
    """Within the block, fast-downward's PDDL -> SAS translation (``pddl2sas``, pure Python, ~0.6 s a call; a cold
    load makes four: plain and optimised, in TextWorld's ``load`` and again in ``reset``) is read from
    ``$SPO3_CACHE/alfworld_sas`` when that holds it, else run and stored there. An entry is the pickled result
    under the sha256 of its inputs and of the translator's version, and carries the sha256 of its bytes: a damaged
    entry is reported and recomputed. Scoped to the block, so other users of fast-downward (e.g. ALFWorld's own
    environment in the benchmarks) keep the untouched translator."""
    import fast_downward
    from importlib.metadata import version

    translate, directory = fast_downward.pddl2sas, cache_root() / "alfworld_sas"
    salt = f"fast-downward-textworld {version('fast-downward-textworld')}"

    def cached(domain: str, problem: str, verbose: bool = False, optimize: bool = False) -> Any:
        key = hashlib.sha256("\0".join((salt, domain, problem, str(bool(optimize)))).encode()).hexdigest()
        path = directory / f"{key}.pkl"
        with contextlib.suppress(FileNotFoundError):
            blob = path.read_bytes()
            digest, payload = blob[:64], blob[64:]
            if digest == hashlib.sha256(payload).hexdigest().encode():
                return pickle.loads(payload)  # written by this function only
            warnings.warn(f"ALFWorld translation cache entry {path} is damaged; translating again", stacklevel=2)
        result = translate(domain, problem, verbose=verbose, optimize=optimize)
        payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        with contextlib.suppress(OSError):  # no cache then (read-only or full disk)
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory, delete=False, suffix=".tmp") as handle:
                handle.write(hashlib.sha256(payload).hexdigest().encode() + payload)
            os.replace(handle.name, path)
        return result

    fast_downward.pddl2sas = cached
    try:
        yield
    finally:
        fast_downward.pddl2sas = translate


class _Engine:
    """The process's one TextWorld PDDL engine (``PddlEnv`` + alfworld's demangler) and its planner library."""

    def __init__(self, data_dir: Path) -> None:
        # alfworld's import creates $ALFWORLD_DATA (default ~/.cache/alfworld) and exports it; pointing it at the
        # first env's data root when unset keeps the import from creating an unrelated directory.
        os.environ.setdefault("ALFWORLD_DATA", str(data_dir))
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl import PddlEnv
        from textworld.envs.pddl.logic import Atom

        from spo3.envs.alfworld.grammar import CachedGrammar

        self._atom = Atom
        self._cached_grammar = CachedGrammar
        self.tw = AlfredDemangler(shuffle=False)(PddlEnv(textworld.EnvInfos(won=True, admissible_commands=True)))
        self.pddl_env = self.tw.unwrapped
        self.lib = self.pddl_env.downward_lib
        for symbol in ("get_state_id", "set_state_id", "apply_operator", "load_sas", "load_sas_replan"):
            if not hasattr(self.lib, symbol):
                raise EnvError(
                    f"fast-downward's library lacks {symbol}(); spo3's ALFWorld snapshots need the "
                    "fast-downward-textworld build that textworld[pddl]==1.7.0 installs"
                )
        self.lib.get_state_id.argtypes = []
        self.lib.get_state_id.restype = ctypes.c_int
        self.lib.set_state_id.argtypes = [ctypes.c_int]
        self.lib.set_state_id.restype = None
        self.active: _LoadedGame | None = None
        self.lib_token: object = object()
        self.initial_state_id = 0
        self.installed: AlfworldSnapshot | None = None
        """The record whose objects the engine currently runs (None after a load)."""

    def game(self, path: Path) -> _LoadedGame:
        """The loaded game of ``path`` (a resolved game file): from the cache, the engine, or loaded cold."""
        if self.active is not None and self.active.path == str(path):
            _GAMES.put(self.active)  # it may have been evicted while in use
            return self.active
        return _GAMES.get(str(path)) or self._load_cold(path)

    def _load_cold(self, path: Path) -> _LoadedGame:
        """Parse and ground a game with TextWorld's own ``load`` + ``reset``, and cache it."""
        data = _read_game_file(path)
        # From here on the library and TextWorld's objects belong to the new game: forget the old one first, so
        # that a failure half-way can never let an old state id be applied to the wrong task.
        self.active, self.installed, self.lib_token = None, None, object()
        with _cached_translations():
            self.tw.load(data)
            self.pddl_env._logic.grammar = self._cached_grammar(self.pddl_env._logic.grammar)
            initial_state = self.tw.reset()
        self.pddl_env._game_file = str(path)
        pddl_state = self.pddl_env._pddl_state
        game = _LoadedGame(
            path=str(path),
            data=data,
            logic=self.pddl_env._logic,
            entity_infos=self.pddl_env._entity_infos,
            pddl_state=copy.copy(pddl_state),
            initial=_EngineState(
                facts=self._facts(),
                operators=pddl_state._operators,
                game_state=initial_state,
                prev_state=self.pddl_env.prev_state,
                last_action=self.pddl_env._last_action,
                moves=self.pddl_env._moves,
                op_path=(),
            ),
            task=_extract_task(initial_state.feedback, str(path)),
        )
        # TextWorld's reset left the library at this game's initial state: the game is active as it is.
        self.active = game
        self.initial_state_id = self.lib.get_state_id()
        _GAMES.put(game)
        return game

    def install(self, record: AlfworldSnapshot) -> AlfworldSnapshot:
        """Make the engine run ``record``'s state; returns the record, refreshed if its state id had to be rebuilt."""
        if self.active is not record.game:
            self._activate(record.game)
        if record.lib_token is self.lib_token:
            self.lib.set_state_id(record.state_id)
        else:
            self.lib.set_state_id(self.initial_state_id)
            for operator_id, n_effects in record.engine.op_path:
                self.lib.apply_operator(operator_id, (self._atom * n_effects)())
            record = dataclasses.replace(record, lib_token=self.lib_token, state_id=self.lib.get_state_id())
        engine = record.engine
        self._set_facts(engine.facts)
        self.pddl_env._pddl_state._operators = engine.operators
        self.pddl_env.state = engine.game_state
        self.pddl_env.prev_state = engine.prev_state
        self.pddl_env._last_action = engine.last_action
        self.pddl_env._moves = engine.moves
        self.installed = record
        return record

    def step(self, record: AlfworldSnapshot, action: str) -> tuple[Any, _EngineState, int, bool]:
        """Step from the installed ``record``: ``(game state, engine state, state id, executed)``.

        The caller marks the new state installed; until then (and for good if TextWorld raises half-way) the engine
        counts as running no record, so the next use reinstalls one.
        """
        self.installed = None
        # Copy-on-write: the installed containers belong to ``record`` (a snapshot, or a game's initial state).
        self._set_facts(_private_copy(record.engine.facts))
        operators_before = self.pddl_env._pddl_state._operators

        game_state, _score, _done = self.tw.step(action)

        executed = self.pddl_env._last_action
        op_path, state_id = record.engine.op_path, record.state_id
        if executed is not None:
            operator = operators_before[executed.id]
            op_path += ((operator.id, operator.nb_effect_atoms),)
            state_id = self.lib.get_state_id()
        engine = _EngineState(
            facts=self._facts(),
            operators=self.pddl_env._pddl_state._operators,
            game_state=game_state,
            prev_state=self.pddl_env.prev_state,
            last_action=executed,
            moves=self.pddl_env._moves,
            op_path=op_path,
        )
        return game_state, engine, state_id, executed is not None

    def _activate(self, game: _LoadedGame) -> None:
        """Make ``game`` the task the planner library runs: reload its translated task (about 2 ms)."""
        pddl_state = copy.copy(game.pddl_state)
        self.lib.load_sas(pddl_state.sas.encode("utf-8"))
        self.lib.load_sas_replan(pddl_state.sas_replan.encode("utf-8"))
        self.pddl_env._game_file = game.path
        self.pddl_env._game_data = game.data
        self.pddl_env.walkthrough = game.data.get("walkthrough")
        self.pddl_env._logic = game.logic
        self.pddl_env._entity_infos = game.entity_infos
        self.pddl_env._pddl_state = pddl_state
        self.active, self.installed, self.lib_token = game, None, object()
        self.initial_state_id = self.lib.get_state_id()

    def _facts(self) -> _Facts:
        state = self.pddl_env._pddl_state
        return state._facts, state._vars_by_name, state._vars_by_type, state._var_counts

    def _set_facts(self, facts: _Facts) -> None:
        state = self.pddl_env._pddl_state
        state._facts, state._vars_by_name, state._vars_by_type, state._var_counts = facts


def _engine(data_dir: Path) -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine(data_dir)
    return _ENGINE


class AlfworldEnv(TextEnv):
    """ALFWorld through TextWorld's PDDL engine, as upstream plays it, with O(1) exact snapshot/restore.

    Args:
      data_dir: the ALFWorld data root (holding ``json_2.1.1/<split>/...``); ``None``: ``$ALFWORLD_DATA``, else
        ``~/.cache/alfworld``.
      max_steps: episode step limit (upstream: 50).
      reward_scale: reward of a winning step (upstream: 10).

    A snapshot restores into any :class:`AlfworldEnv` of the same process, any number of times, in any order.
    Envs of a process share one engine (module docstring) and must be used from one thread.
    """

    family = "alfworld"

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, max_steps: int = 50, reward_scale: float = 1.0):
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"AlfworldEnv: max_steps must be an int >= 1, got {max_steps!r}")
        if isinstance(reward_scale, bool) or not isinstance(reward_scale, (int, float)) or not math.isfinite(reward_scale):
            raise ValueError(f"AlfworldEnv: reward_scale must be a finite number, got {reward_scale!r}")
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        self.max_steps = max_steps
        self.reward_scale = float(reward_scale)
        self._split_tasks: dict[str, list[str]] = {}
        self._state: AlfworldSnapshot | None = None
        """The current state, always recorded: snapshot() returns it, and it is what the engine is switched back to
        when another env has used the engine in between."""

    def tasks(self, split: str) -> list[str]:
        """Game paths of ``split`` (train, valid_seen, valid_unseen, valid_train) relative to the data root, sorted.

        Raises:
          ValueError: unknown split.
          AlfworldDataError: the split is not installed under ``data_dir`` (the message says how to get it), or
            only partially (:func:`spo3.envs.alfworld.data.check_split`).
        """
        if split not in ALFWORLD_SPLITS:
            raise ValueError(f"AlfworldEnv.tasks: unknown split {split!r}; expected one of {list(ALFWORLD_SPLITS)}")
        if split not in self._split_tasks:
            split_dir = self.data_dir / GAMES_DIR / split
            if not split_dir.is_dir():
                raise AlfworldDataError(f"ALFWorld split {split!r} not found at {split_dir}. {INSTALL_HINT}")
            check_split(self.data_dir, split)
            relative = (path.relative_to(self.data_dir).as_posix() for path in split_dir.glob(f"*/*/{GAME_FILE}"))
            games = sorted(p for p in relative if not any(mark in p for mark in _UNSUPPORTED_PATH_MARKS))
            if not games:
                raise AlfworldDataError(f"ALFWorld split {split!r} at {split_dir} holds no */*/{GAME_FILE}. {INSTALL_HINT}")
            self._split_tasks[split] = games
        return list(self._split_tasks[split])

    def task_type(self, task_id: str) -> str:
        """One of :data:`TASK_TYPES`, from the game path (upstream's substring order)."""
        return task_type_of(task_id)

    def walkthrough(self, task_id: str) -> list[str] | None:
        """The expert command list stored in the game file (every shipped game has one)."""
        walkthrough = _game_data(self._game_path(task_id)).get("walkthrough")
        return list(walkthrough) if walkthrough is not None else None

    def step_cost(self, task_id: str) -> float:
        """The number of receptacles in the game's scene, to the power 1.5. A step's cost is mostly the grammar
        deriving the feedback and the admissible commands, which grow with the receptacles: over 48 random train
        games (8-52 receptacles, median CPU time per step 0.8-13 ms), the time per step goes as receptacles^1.43
        (correlation of the logarithms 0.95; ``benchmarks/bench_step_cost.py``). Read from the game file once per
        process; a missing or unreadable game costs 1.0 here (its reset reports the problem)."""
        try:
            return _step_cost(str(self._game_path(task_id)))
        except EnvError:  # a bad id or a missing game: the reset fails with the message
            return 1.0

    def reset(self, task_id: str) -> Observation:
        """Start ``task_id``: cold (parse and ground the PDDL, 1-2 s) the first time in the process, then ~ms.

        Raises:
          EnvError: ``task_id`` is not a relative game path.
          AlfworldDataError: the game file is missing (the message says how to get the data) or corrupt.
        """
        key = str(self._game_path(task_id).resolve())
        engine = _engine(self.data_dir)
        game = engine.game(Path(key))
        initial = game.initial
        observation = Observation(
            text=initial.game_state.feedback,
            admissible_actions=tuple(initial.game_state["admissible_commands"]),
            task_id=task_id,
            task=game.task,
            step=0,
        )
        record = AlfworldSnapshot(game, initial, lib_token=None, state_id=0, observation=observation, done=False)
        self._state = engine.install(record)
        return observation

    def step(self, action: str) -> Transition:
        """Send one command to TextWorld (stripped, as TextWorld does). Inadmissible commands are no-ops."""
        if self._state is None:
            raise EnvError("AlfworldEnv.step: no episode is running; call reset() or restore() first")
        if self._state.done:
            raise EnvError("AlfworldEnv.step: the episode has ended; call reset() or restore()")
        if not isinstance(action, str):
            raise TypeError(f"AlfworldEnv.step: action must be str, got {type(action).__name__}")
        engine = _engine(self.data_dir)
        current = self._state if engine.installed is self._state else engine.install(self._state)

        game_state, engine_state, state_id, executed = engine.step(current, action)

        before = current.observation
        won = bool(game_state["won"])
        truncated = not won and before.step + 1 >= self.max_steps
        observation = Observation(
            text=game_state.feedback,
            admissible_actions=tuple(game_state["admissible_commands"]),
            task_id=before.task_id,
            task=before.task,
            step=before.step + 1,
        )
        self._state = AlfworldSnapshot(
            game=current.game,
            engine=engine_state,
            lib_token=engine.lib_token,
            state_id=state_id,
            observation=observation,
            done=won or truncated,
        )
        engine.installed = self._state
        return Transition(
            observation=observation,
            reward=self.reward_scale if won else 0.0,
            done=won or truncated,
            won=won,
            changed=executed,
            info={"truncated": truncated},
        )

    def snapshot(self) -> AlfworldSnapshot:
        """O(1): the current state is always recorded (module docstring)."""
        if self._state is None:
            raise EnvError("AlfworldEnv.snapshot: no episode is running; call reset() first")
        return self._state

    def restore(self, snapshot: AlfworldSnapshot) -> Observation:
        """Return to ``snapshot`` exactly (module docstring) and return its observation."""
        if not isinstance(snapshot, AlfworldSnapshot):
            raise EnvError(f"AlfworldEnv.restore: expected an AlfworldSnapshot, got {type(snapshot).__name__}")
        self._state = _engine(self.data_dir).install(snapshot)
        return self._state.observation

    def close(self) -> None:
        """End the episode. The shared engine stays loaded for the process's other envs; snapshots stay valid."""
        self._state = None

    def _game_path(self, task_id: str) -> Path:
        if not isinstance(task_id, str) or not task_id:
            raise EnvError(f"ALFWorld task id must be a non-empty str, got {task_id!r}")
        relative = PurePosixPath(task_id)
        if relative.is_absolute() or ".." in relative.parts:
            raise EnvError(f"ALFWorld task id {task_id!r} must be a game path relative to the data root {self.data_dir}")
        path = self.data_dir / relative
        if not path.is_file():
            raise AlfworldDataError(f"ALFWorld game {task_id!r} not found at {path}. {INSTALL_HINT}")
        return path
