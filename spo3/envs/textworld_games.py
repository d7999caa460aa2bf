"""Generated TextWorld games (coin collector, treasure hunter, cooking) behind :class:`~spo3.envs.base.TextEnv`.

These are the fast CPU benchmark of the project: real text games from TextWorld's own generator, whose steps cost
1-5 ms, so policies and the tree search can be exercised end to end on a laptop.

Design
------
* **Games are generated offline and deterministically** by ``textworld==1.7.0``'s challenge generators (what
  ``tw-make <challenge> --level L --seed S`` runs) and cached on disk. A game is named by a :class:`GameSpec`:
  ``(challenge, level, seed)`` plus the challenge's settings (the level for coin collector and treasure hunter; a
  settings dict for cooking, which has no levels in TextWorld: see :data:`COOKING_LEVELS`). The cache entry is a
  directory ``<cache_dir>/<challenge>-L<level>-s<seed>-<digest>`` whose digest covers the settings, the textworld
  version and the cache format, holding ``game.z8`` (the compiled Z-machine story), ``game.json`` (TextWorld's
  logic view of the same game) and ``manifest.json`` (the spec and the sha256 of both files).
* **Byte-identical regeneration.** Generation runs in a child process with ``PYTHONHASHSEED=0``: TextWorld's
  generator iterates over Python sets while writing the Inform 7 source, so with hash randomisation the cooking
  games' lost-conditions came out in a different order in every process (same behaviour, different bytes). With
  the hash seed fixed, the same spec gives the same bytes in every process, on every run. One child generates a
  whole batch of games (:meth:`TextWorldGamesEnv.prepare`), paying TextWorld's ~2 s import and knowledge-base load
  once; later games cost ~1.5 s each.
* **Safe under concurrent processes.** Readers only ever see complete entries: a game is generated into a
  private temporary directory, its manifest written, and the directory renamed into place (an atomic rename).
  Writers hold an exclusive ``flock`` on ``<cache_dir>/.lock``, so two processes never generate the same game
  twice nor repair the same entry at once.
* **Corrupt entries are detected and regenerated.** Every load from disk checks the manifest (present, parseable,
  naming this spec) and the sha256 of both game files; a mismatch emits a :class:`RuntimeWarning` naming the file
  and the problem, and the entry is regenerated (it is derived data). :func:`verify_game_dir` raises
  :class:`GameCacheError` instead, for callers that want the report without the repair.
* **Running a game** uses the same two engines as TextWorld's own ``textworld.start(...)`` for ``.z8`` games, but
  drives them directly: jericho's Z-machine interpreter (``FrotzEnv``) produces the text, and TextWorld's logic
  state (the ``State`` of facts that ``GameProgression`` keeps) follows the game from the Inform 7 action events
  the story prints once ``tw-trace-actions`` is on. The logic gives the admissible commands (sorted,
  deduplicated: TextWorld's ``admissible_commands``) and the fact set used for ``changed``; ``won``/``lost`` are
  read from the story's end markers, as TextWorld's wrappers do. Quest tracking is not needed while playing (the
  walkthrough is computed once per game), which keeps a step at ~1 ms and a snapshot small.
* **Exact snapshots without replay.** A snapshot is the interpreter's full machine state (``get_state``: RAM,
  stack, program counter, RNG...) plus a copy of the logic facts and the current observation; restoring sets
  both back (0.1-0.3 ms) and returns exactly the same observation, admissible actions and future. A reset is a
  restore of the game's initial snapshot. Loaded games (interpreter, parsed game, initial snapshot) are kept in a
  bounded LRU cache, so re-resetting a game already loaded in the process neither regenerates nor rereads it.
  Snapshots restore into the environment instance that took them (a foreign snapshot is an :class:`EnvError`);
  restoring a snapshot of a game evicted from the LRU cache reloads that game from the disk cache first.

Conventions (the named choices of this adapter)
-----------------------------------------------
* ``Observation.text`` is the interpreter's feedback cleaned by a deterministic function of the game state and the
  last action: the Inform 7 action-trace tags are removed (as TextWorld does), so are the input prompt and the
  status bar (``> ... -= Room =-score/moves``: the move counter would make every step's text unique), the banner
  art before the intro, and the end-of-game trailer after ``*** The End ***`` / ``*** You lost! ***`` ("You scored
  1 out of a possible 1, in 7 turns. Would you like to RESTART..."); spaces around each line are stripped (the
  end banner is centred) and runs of blank lines collapsed to one. The reset observation is the objective
  followed by the first room's description, like ALFWorld's welcome text followed by "Your task is to: ...".
* ``changed`` is True iff the action changed TextWorld's world state (the set of logic facts: where the player and
  the objects are, what is open, cut, cooked, eaten...). So ``look``, ``inventory``, ``examine X``, unknown verbs,
  parser errors ("You can't go that way.") and impossible actions are no-ops. Caveat: an incomplete command such as
  ``take`` makes the parser ask "What do you want to take?" and read the next input as the answer; that pending
  question lives in the interpreter, not in the world facts, so it counts as no change (snapshots still capture
  it exactly).
* Out-of-world commands (``quit``, ``restart``, ``save``, ``restore``, ``undo``, ``score``, ``verbose``/``brief``,
  ``script``, ``notify``, ``version``...), the parser's ``again``/``g`` and ``oops``/``o`` and TextWorld's framework
  commands (``tw-...``, ``print_state``, ``enable``/``disable print state option``) are answered with the game's
  unknown-verb reply ("That's not a verb I recognise.") without reaching the interpreter: they would
  desynchronise the interpreter from the logic state (``restart``, ``restore``), change the text of later steps
  through hidden settings (``brief``), print the move counter (``score``), or act on the previous input line,
  which is hidden (right after a reset ``again`` would repeat ``tw-trace-actions``). Every other command goes to
  the game after :func:`spo3.envs.guard.sanitize_command`: whitespace and control characters collapse to single
  spaces (an embedded newline would otherwise be a second command), and backslashes become spaces (a line
  starting with a backslash is a dumb-frotz meta-command, which the interpreter rejects and re-reads forever).
* Episodes: ``done`` when the game is won or lost (a cooking game is lost e.g. by eating an ingredient the recipe
  needs) or when ``max_steps`` actions were taken (``info["truncated"] = True`` only in the last case, i.e. when
  the limit ended a game that was neither won nor lost). Every ``step`` call counts, no-ops included, as in
  upstream ALFWorld. ``reward = reward_scale`` on the winning step, 0 otherwise. A finished game (won or lost) has
  no admissible actions; a truncated one keeps its state's actions.
* The interpreter's random generator is seeded with a fixed value (jericho's default for unknown games seeds it
  from the clock), so episodes are reproducible.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Mapping, Sequence

import jericho
import numpy as np
import textworld
import textworld.challenges
from textworld.envs.wrappers.tw_inform7 import _detect_i7_events_debug_tags
from textworld.generator import compile_game
from textworld.generator.game import Game
from textworld.generator.inform7 import Inform7Game
from textworld.logic import Action, State

from spo3.config.paths import cache_root
from spo3.envs.base import EnvError, Observation, TextEnv, Transition
from spo3.envs.guard import sanitize_command

__all__ = [
    "CHALLENGES",
    "COOKING_LEVELS",
    "GameCacheError",
    "GameGenerationError",
    "GameSpec",
    "TextWorldGamesEnv",
    "TextWorldSnapshot",
    "default_cache_dir",
    "ensure_games",
    "verify_game_dir",
]

CHALLENGES: tuple[str, ...] = ("tw-coin_collector", "tw-treasure_hunter", "tw-cooking")
"""The TextWorld challenges this adapter generates (``textworld.challenges.CHALLENGES`` names)."""

_LEVEL_RANGES = {"tw-coin_collector": range(1, 301), "tw-treasure_hunter": range(1, 31)}

_COOKING_BASE: Mapping[str, Any] = {
    "recipe": 1, "take": 0, "go": 1, "open": False, "cook": False, "cut": False, "drop": False,
    "recipe_seed": 0, "split": None,
}
COOKING_LEVELS: Mapping[int, Mapping[str, Any]] = {
    1: {**_COOKING_BASE, "take": 1, "open": True},
    2: {**_COOKING_BASE, "take": 1, "open": True, "cook": True, "cut": True},
    3: {**_COOKING_BASE, "take": 1, "go": 6, "open": True, "cook": True, "cut": True},
    4: {**_COOKING_BASE, "recipe": 2, "take": 2, "go": 6, "open": True, "cook": True, "cut": True},
}
"""spo3's difficulty ladder for ``tw-cooking`` (TextWorld's cooking generator has skills, not levels): level 1
fetches one ingredient from a container in the kitchen; 2 adds cutting and cooking it; 3 spreads the house over 6
rooms; 4 needs two ingredients. Each value is the full settings dict of ``textworld.challenges.tw_cooking.make``
(``recipe``: ingredients, ``take``: ingredients to find, ``go``: rooms in {1, 6, 9, 12}, ``open``/``cook``/``cut``/
``drop``: skills, ``recipe_seed``, ``split``: food split in {None, "train", "valid", "test"}). Environment
``options`` override single settings."""

_CACHE_FORMAT = 1
_GAME_FILES = ("game.z8", "game.json")
_MANIFEST = "manifest.json"
_SEED_LIMIT = 2**32  # numpy RandomState, which TextWorld seeds with the game seed
# A fixed, nonzero interpreter seed: jericho treats a falsy seed as "use the clock".
_INTERPRETER_SEED = 20_240_613
_UNKNOWN_VERB_REPLY = "That's not a verb I recognise."
# How the story announces the end of the game (TextWorld's own wrappers read won/lost from these markers too).
_WON, _LOST = "*** The End ***", "*** You lost! ***"
_BLOCKED_VERBS = frozenset({
    "quit", "q", "save", "restore", "restart", "undo", "verify", "score", "notify", "pronouns", "nouns", "version",
    "script", "transcript", "superbrief", "short", "verbose", "long", "brief", "normal",
    "again", "g", "oops", "o",
    "print_state", "enable", "disable",
})
_COMMAND_SEPARATOR = re.compile(r"[.,;!?]|\bthen\b", re.IGNORECASE)
_PROMPT_AND_STATUS = re.compile(r"\n>[^\n]*\Z|[ \t]+-= [^\n]*=-\d+/\d+[ \t]*\Z")
_GAME_OVER_TRAILER = re.compile(f"({re.escape(_WON)}|{re.escape(_LOST)}).*\\Z", re.DOTALL)
_BLANK_LINES = re.compile(r"\n{3,}")
_TASK_ID = re.compile(r"(?P<challenge>[^/]+)/L(?P<level>\d+)/s(?P<seed>\d+)")


class GameCacheError(RuntimeError):
    """A cached game that cannot be used: missing files, a bad manifest or a checksum mismatch."""


class GameGenerationError(RuntimeError):
    """TextWorld failed to generate or compile a game."""


def default_cache_dir() -> Path:
    """Where generated games are cached: ``$SPO3_CACHE/textworld``, else ``~/.cache/spo3/textworld``."""
    return cache_root() / "textworld"


@dataclass(frozen=True)
class GameSpec:
    """One generated game: what :func:`ensure_games` generates and caches. Build it with :meth:`create`."""

    challenge: str
    level: int
    seed: int
    settings_json: str
    """The challenge's full settings (what its ``make`` receives), as canonical JSON so the spec is hashable."""

    @classmethod
    def create(cls, challenge: str, level: int, seed: int, options: Mapping[str, Any] | None = None) -> GameSpec:
        """Validate and build a spec.

        Args:
          challenge: one of :data:`CHALLENGES`.
          level: coin collector 1-300 (TextWorld allows at most 100 rooms), treasure hunter 1-30, cooking a key of
            :data:`COOKING_LEVELS`.
          seed: the generation seed in ``[0, 2**32)`` (``tw-make --seed``).
          options: cooking only, settings that override the level's (keys of :data:`COOKING_LEVELS` values).

        Raises:
          ValueError: naming the bad argument.
        """
        if challenge not in CHALLENGES:
            raise ValueError(f"unknown TextWorld challenge {challenge!r}; expected one of {CHALLENGES}")
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
            raise ValueError(f"{challenge}: level must be an int, got {level!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < _SEED_LIMIT:
            raise ValueError(f"{challenge}: seed must be an int in [0, 2**32), got {seed!r}")
        if challenge == "tw-cooking":
            if level not in COOKING_LEVELS:
                raise ValueError(f"tw-cooking: level must be one of {sorted(COOKING_LEVELS)}, got {level}")
            unknown = sorted(set(options or {}) - set(_COOKING_BASE))
            if unknown:
                raise ValueError(f"tw-cooking: unknown option(s) {unknown}; known: {sorted(_COOKING_BASE)}")
            settings = {**COOKING_LEVELS[level], **(options or {})}
        else:
            if level not in _LEVEL_RANGES[challenge]:
                bounds = _LEVEL_RANGES[challenge]
                raise ValueError(f"{challenge}: level must be in [{bounds.start}, {bounds.stop - 1}], got {level}")
            if options:
                raise ValueError(f"{challenge}: options are only supported for tw-cooking, got {dict(options)}")
            settings = {"level": int(level)}
        return cls(challenge, int(level), int(seed), json.dumps(settings, sort_keys=True))

    @property
    def settings(self) -> dict[str, Any]:
        """The settings dict passed to the challenge's ``make``."""
        return json.loads(self.settings_json)

    @property
    def task_id(self) -> str:
        """``"<challenge>/L<level>/s<seed>"``, e.g. ``"tw-coin_collector/L5/s3"``."""
        return f"{self.challenge}/L{self.level}/s{self.seed}"

    @property
    def dirname(self) -> str:
        """The cache entry's directory name; its digest covers settings, textworld version and cache format."""
        identity = json.dumps([_CACHE_FORMAT, textworld.__version__, self.settings_json])
        digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
        return f"{self.challenge}-L{self.level}-s{self.seed}-{digest}"

    def manifest_identity(self) -> dict[str, Any]:
        """The fields a manifest must carry for this spec."""
        return {
            "format": _CACHE_FORMAT, "textworld": textworld.__version__, "challenge": self.challenge,
            "level": self.level, "seed": self.seed, "settings": self.settings,
        }


# --------------------------------------------------------------------------------------------------- disk cache


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_game_dir(path: Path, spec: GameSpec) -> None:
    """Check a cache entry against its manifest and the spec.

    Raises:
      GameCacheError: naming the file and the problem (missing, unreadable manifest, another spec, bad checksum).
    """
    path = Path(path)
    manifest_path = path / _MANIFEST
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except FileNotFoundError:
        raise GameCacheError(f"{manifest_path}: missing") from None
    except (OSError, ValueError) as err:
        raise GameCacheError(f"{manifest_path}: unreadable ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise GameCacheError(f"{manifest_path}: not a spo3 TextWorld game manifest")
    for key, expected in spec.manifest_identity().items():
        if manifest.get(key) != expected:
            raise GameCacheError(f"{manifest_path}: field {key!r} is {manifest.get(key)!r}, expected {expected!r}")
    for name in _GAME_FILES:
        file_path = path / name
        try:
            actual = _sha256(file_path.read_bytes())
        except OSError as err:
            raise GameCacheError(f"{file_path}: unreadable ({err})") from None
        if actual != manifest["files"].get(name):
            raise GameCacheError(f"{file_path}: sha256 {actual} does not match the manifest")


@contextlib.contextmanager
def _exclusive_lock(cache_dir: Path) -> Iterator[None]:
    with open(cache_dir / ".lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _entry_problem(entry: Path, spec: GameSpec) -> str | None:
    """None if the entry is valid, "" if it is absent, else the corruption report."""
    if not entry.exists():
        return ""
    try:
        verify_game_dir(entry, spec)
    except GameCacheError as err:
        return str(err)
    return None


def ensure_games(specs: Iterable[GameSpec], cache_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the cache entry of each spec, generating the missing ones and regenerating corrupt ones.

    All games to generate are made by one child process. Corrupt entries are reported with a
    :class:`RuntimeWarning` (file and problem) before they are replaced.

    Args:
      specs: the games wanted.
      cache_dir: the cache directory (created if needed); default :func:`default_cache_dir`.

    Returns:
      The entry directory of each spec, in the order given; each holds ``game.z8``, ``game.json`` and
      ``manifest.json``.

    Raises:
      GameGenerationError: if TextWorld fails on a spec (with its error output).
    """
    specs = list(specs)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entries = [root / spec.dirname for spec in specs]
    todo = {spec: entry for spec, entry in zip(specs, entries) if _entry_problem(entry, spec) is not None}
    if not todo:
        return entries
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(root):
        # Another process may have generated or repaired some of them while we waited for the lock.
        jobs = []
        for spec, entry in todo.items():
            problem = _entry_problem(entry, spec)
            if problem is None:
                continue
            if problem:
                warnings.warn(f"regenerating a corrupt cached TextWorld game: {problem}", RuntimeWarning, stacklevel=2)
            jobs.append((spec, entry, Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=root))))
        try:
            _generate(jobs)
            for spec, entry, tmp in jobs:
                _install(spec, entry, tmp)
        finally:
            for _, _, tmp in jobs:
                shutil.rmtree(tmp, ignore_errors=True)
    return entries


def _install(spec: GameSpec, entry: Path, tmp: Path) -> None:
    files = {name: _sha256((tmp / name).read_bytes()) for name in _GAME_FILES}
    manifest = {**spec.manifest_identity(), "files": files}
    (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.chmod(0o755)  # mkdtemp made it private; a cache entry is readable like any other cache file
    if entry.exists():  # corrupt: move it out of the way first (a rename), then delete it
        trash = entry.with_name(f".trash-{entry.name}-{uuid.uuid4().hex}")
        entry.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    tmp.rename(entry)


def _generate(jobs: Sequence[tuple[GameSpec, Path, Path]]) -> None:
    """Generate games into their temporary directories in one child process with a fixed hash seed."""
    if not jobs:
        return
    request = [
        {"challenge": spec.challenge, "settings": spec.settings, "seed": spec.seed, "out": str(tmp)}
        for spec, _, tmp in jobs
    ]
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-c", "from spo3.envs.textworld_games import _generation_worker; _generation_worker()"],
        input=json.dumps(request), capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        names = ", ".join(spec.task_id for spec, _, _ in jobs)
        raise GameGenerationError(f"TextWorld failed to generate {names}:\n{proc.stderr[-4000:]}")


def _generation_worker() -> None:
    """Child-process entry: read jobs (JSON on stdin) and write ``game.z8``/``game.json`` into each ``out``."""
    for job in json.load(sys.stdin):
        out = Path(job["out"])
        options = textworld.GameOptions()
        options.seeds = int(job["seed"])
        options.path = str(out / "game.z8")
        options.file_ext = ".z8"
        _, make, _ = textworld.challenges.CHALLENGES[job["challenge"]]
        game = make(dict(job["settings"]), options)
        compile_game(game, options)
        (out / "game.ni").unlink(missing_ok=True)  # the Inform 7 source: not needed to play


# ------------------------------------------------------------------------------------------------- playing games


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class TextWorldSnapshot:
    """An exact, immutable state of a :class:`TextWorldGamesEnv` episode (see the module docstring)."""

    owner: object
    task_id: str
    interpreter_state: tuple
    """jericho ``FrotzEnv.get_state()``, with its arrays made read-only."""
    world: State
    """TextWorld's logic facts; never mutated (restore works on a copy)."""
    valid_actions: tuple[Action, ...]
    """The logic actions applicable in ``world``."""
    observation: Observation
    done: bool


@dataclass(eq=False)
class _LoadedGame:
    """A game ready to play: interpreter, logic and the initial snapshot."""

    spec: GameSpec
    game: Game
    inform7: Inform7Game
    interpreter: jericho.FrotzEnv
    walkthrough: list[str]
    initial: TextWorldSnapshot = field(init=False)

    @classmethod
    def load(cls, spec: GameSpec, entry: Path, owner: object) -> _LoadedGame:
        game = Game.deserialize(json.loads((entry / "game.json").read_bytes()))
        with warnings.catch_warnings():
            # TextWorld stories lack jericho's per-game bindings; we use none of what that warning is about.
            warnings.simplefilter("ignore", jericho.UnsupportedGameWarning)
            interpreter = jericho.FrotzEnv(str(entry / "game.z8"), _INTERPRETER_SEED)
        intro, _ = interpreter.reset()
        interpreter.step("tw-trace-actions")  # make the story print the action events the logic follows
        loaded = cls(spec, game, Inform7Game(game), interpreter, list(game.walkthrough or []))
        world = game.world.state.copy()
        valid_actions = loaded.applicable_actions(world)
        observation = Observation(
            text=_clean_feedback(intro, intro=True),
            admissible_actions=loaded.admissible(valid_actions),
            task_id=spec.task_id,
            task=game.objective,
            step=0,
        )
        loaded.initial = TextWorldSnapshot(owner, spec.task_id, loaded.interpreter_state(), world, valid_actions,
                                           observation, done=False)
        return loaded

    def interpreter_state(self) -> tuple:
        return tuple(_frozen(part) if isinstance(part, np.ndarray) else part
                     for part in self.interpreter.get_state())

    def set_interpreter_state(self, state: tuple) -> None:
        # jericho hands numpy buffers to C through ctypes, which refuses read-only arrays.
        self.interpreter.set_state(tuple(part.copy() if isinstance(part, np.ndarray) else part for part in state))

    def applicable_actions(self, world: State) -> tuple[Action, ...]:
        """What ``GameProgression.valid_actions`` holds for these facts."""
        kb = self.game.kb
        return tuple(world.all_applicable_actions(kb.rules.values(), kb.types.constants_mapping))

    def admissible(self, valid_actions: Sequence[Action]) -> tuple[str, ...]:
        """TextWorld's ``admissible_commands``: the commands of the applicable actions, deduplicated and sorted."""
        return tuple(sorted(set(self.inform7.gen_commands_from_actions(valid_actions))))


def _clean_feedback(raw: str, intro: bool = False) -> str:
    """The observation text of a raw interpreter output (the conventions in the module docstring)."""
    _, text = _detect_i7_events_debug_tags(raw)
    text = _PROMPT_AND_STATUS.sub("", text)
    text = _GAME_OVER_TRAILER.sub(r"\1", text)
    lines = [line.strip() for line in text.split("\n")]
    if intro:  # the banner art: the intro's leading lines without a single letter
        while lines and not re.search(r"[A-Za-z]", lines[0]):
            lines.pop(0)
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _sanitize_command(action: str) -> str:
    command = sanitize_command(action)
    # The interpreter reads at most INPUT_BUFFER_SIZE bytes; cut here (on a character boundary) rather than let
    # jericho cut and warn.
    return command.encode()[: jericho.jericho.INPUT_BUFFER_SIZE].decode(errors="ignore")


def _is_blocked(command: str) -> bool:
    """Whether any sub-command (Inform splits a line at '.', 'then'...) starts with an out-of-world verb."""
    for part in _COMMAND_SEPARATOR.split(command.lower()):
        words = part.split()
        if words and (words[0] in _BLOCKED_VERBS or words[0].startswith("tw-")):
            return True
    return False


class TextWorldGamesEnv(TextEnv):
    """Generated TextWorld games of one challenge and level, split by generation seed.

    Example::

        env = TextWorldGamesEnv("tw-coin_collector", level=3, train_seeds=range(8), max_steps=20)
        obs = env.reset(env.tasks("train")[0])
        tr = env.step(obs.admissible_actions[0])

    Args:
      challenge: ``"tw-coin_collector"``, ``"tw-treasure_hunter"`` or ``"tw-cooking"``.
      level: the challenge's difficulty level (see :meth:`GameSpec.create`), or several (a ladder of levels:
        every split then holds one game per level and seed).
      train_seeds, valid_seeds, test_seeds: generation seeds of the ``"train"``, ``"valid"`` and ``"test"``
        splits; pairwise disjoint.
      options: cooking only, settings overriding :data:`COOKING_LEVELS` ``[level]`` (e.g. ``{"go": 9}``).
      cache_dir: where generated games are cached; default :func:`default_cache_dir`.
      max_steps: episode step limit (>= 1).
      reward_scale: reward of the winning step (1.0; upstream ALFWorld used 10.0).
      max_loaded_games: how many games stay loaded in memory (LRU; >= 1). A loaded cooking game takes ~6 MB.
    """

    family: ClassVar[str] = "textworld"

    def __init__(
        self,
        challenge: str = "tw-coin_collector",
        level: int | Sequence[int] = 5,
        train_seeds: Iterable[int] = range(0, 8),
        valid_seeds: Iterable[int] = range(100, 108),
        test_seeds: Iterable[int] = range(200, 208),
        options: Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        max_steps: int = 50,
        reward_scale: float = 1.0,
        max_loaded_games: int = 16,
    ) -> None:
        self.challenge = challenge
        self.levels = tuple(sorted(set(level))) if isinstance(level, Sequence) else (level,)
        if not self.levels:
            raise ValueError("level: give at least one level")
        self.level = self.levels[0]
        self.options = dict(options or {})
        for lvl in self.levels:
            GameSpec.create(challenge, lvl, 0, self.options)  # validate challenge, levels and options now
        self._splits = {
            split: sorted(self._spec(seed, lvl).task_id for lvl in self.levels for seed in set(seeds))
            for split, seeds in (("train", train_seeds), ("valid", valid_seeds), ("test", test_seeds))
        }
        for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
            shared = sorted(set(self._splits[a]) & set(self._splits[b]))
            if shared:
                raise ValueError(f"{a}_seeds and {b}_seeds overlap: {shared}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
        if not np.isfinite(reward_scale):
            raise ValueError(f"reward_scale must be finite, got {reward_scale!r}")
        if isinstance(max_loaded_games, bool) or not isinstance(max_loaded_games, int) or max_loaded_games < 1:
            raise ValueError(f"max_loaded_games must be an int >= 1, got {max_loaded_games!r}")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.max_steps = max_steps
        self.reward_scale = float(reward_scale)
        self.max_loaded_games = max_loaded_games
        self._owner = object()
        self._loaded: collections.OrderedDict[str, _LoadedGame] = collections.OrderedDict()
        self._game: _LoadedGame | None = None
        self._world: State | None = None
        self._valid_actions: tuple[Action, ...] = ()
        self._observation: Observation | None = None
        self._done = False

    # ---------------------------------------------------------------------------------------------- tasks

    def _spec(self, seed: int, level: int) -> GameSpec:
        return GameSpec.create(self.challenge, level, seed, self.options)

    def spec(self, task_id: str) -> GameSpec:
        """The :class:`GameSpec` of a task id of this environment's challenge and level (any seed).

        Raises:
          EnvError: for a malformed id or one of another challenge or level.
        """
        match = _TASK_ID.fullmatch(task_id) if isinstance(task_id, str) else None
        if match is None:
            raise EnvError(f"malformed TextWorld task id {task_id!r}; expected '<challenge>/L<level>/s<seed>'")
        if match["challenge"] != self.challenge or int(match["level"]) not in self.levels:
            levels = self.levels[0] if len(self.levels) == 1 else list(self.levels)
            raise EnvError(f"task {task_id!r} is not a {self.challenge} level {levels} game of this environment")
        return self._spec(int(match["seed"]), int(match["level"]))

    def tasks(self, split: str) -> list[str]:
        """Task ids (``"<challenge>/L<level>/s<seed>"``) of ``"train"``, ``"valid"`` or ``"test"``, sorted."""
        if split not in self._splits:
            raise EnvError(f"unknown split {split!r}; expected one of {sorted(self._splits)}")
        return list(self._splits[split])

    def task_type(self, task_id: str) -> str:
        """The challenge name; with a ladder of levels, the challenge and level (``"tw-coin_collector/L4"``), so that
        success is reported per level."""
        spec = self.spec(task_id)
        return spec.challenge if len(self.levels) == 1 else f"{spec.challenge}/L{spec.level}"

    def prepare(self, split: str | None = None) -> list[Path]:
        """Generate (in one batch) or verify the cached games of a split, or of all splits if ``split`` is None.

        Returns:
          The cache entry of each game, in task order.
        """
        splits = [split] if split is not None else sorted(self._splits)
        specs = [self.spec(task_id) for name in splits for task_id in self.tasks(name)]
        return ensure_games(specs, self.cache_dir)

    def walkthrough(self, task_id: str) -> list[str]:
        """The game's walkthrough (TextWorld's, or its winning policy where the generator recorded none)."""
        return list(self._load(task_id).walkthrough)

    # -------------------------------------------------------------------------------------------- playing

    def _load(self, task_id: str) -> _LoadedGame:
        spec = self.spec(task_id)
        loaded = self._loaded.get(spec.task_id)
        if loaded is None:
            (entry,) = ensure_games([spec], self.cache_dir)
            loaded = _LoadedGame.load(spec, entry, self._owner)
            self._loaded[spec.task_id] = loaded
            while len(self._loaded) > self.max_loaded_games:
                self._loaded.popitem(last=False)
        self._loaded.move_to_end(spec.task_id)
        return loaded

    def reset(self, task_id: str) -> Observation:
        """Start ``task_id`` (generating or loading the game if needed) and return its intro observation."""
        return self.restore(self._load(task_id).initial)

    def step(self, action: str) -> Transition:
        """Send ``action`` to the game. Unknown, impossible and out-of-world commands are no-ops.

        Raises:
          EnvError: if no episode is running or it has ended.
          TypeError: if ``action`` is not a string.
        """
        if self._game is None or self._world is None or self._observation is None:
            raise EnvError("no episode is running: call reset() first")
        if self._done:
            raise EnvError(f"the episode of {self._game.spec.task_id} has ended: reset() or restore() first")
        if not isinstance(action, str):
            raise TypeError(f"action must be a str, got {type(action).__name__}")
        game, world, valid_actions = self._game, self._world, self._valid_actions
        command = _sanitize_command(action)
        changed = False
        if _is_blocked(command):
            raw = text = _UNKNOWN_VERB_REPLY
        else:
            raw, _, _, _ = game.interpreter.step(command)
            events, _ = _detect_i7_events_debug_tags(raw)
            if events:
                facts_before = frozenset(world.facts)
                for event in events:
                    logic_action = game.inform7.detect_action(event, valid_actions)
                    if logic_action is not None:
                        world.apply(logic_action)
                        valid_actions = game.applicable_actions(world)
                changed = frozenset(world.facts) != facts_before
                self._valid_actions = valid_actions
            text = _clean_feedback(raw)
        won, lost = _WON in raw, _LOST in raw
        step = self._observation.step + 1
        truncated = step >= self.max_steps and not (won or lost)
        self._done = won or lost or truncated
        self._observation = Observation(
            text=text,
            admissible_actions=() if (won or lost) else game.admissible(valid_actions),
            task_id=game.spec.task_id,
            task=game.game.objective,
            step=step,
        )
        return Transition(
            observation=self._observation,
            reward=self.reward_scale if won else 0.0,
            done=self._done,
            won=won,
            changed=changed,
            info={"truncated": truncated, "lost": lost},
        )

    def snapshot(self) -> TextWorldSnapshot:
        """The current state, restorable with :meth:`restore` into this environment."""
        if self._game is None or self._world is None or self._observation is None:
            raise EnvError("no episode is running: call reset() first")
        return TextWorldSnapshot(self._owner, self._game.spec.task_id, self._game.interpreter_state(),
                                 self._world.copy(), self._valid_actions, self._observation, self._done)

    def restore(self, snapshot: TextWorldSnapshot) -> Observation:
        """Return exactly to ``snapshot``'s state (reloading its game if it left the LRU cache).

        Raises:
          EnvError: if the snapshot was taken by another environment instance.
        """
        if not isinstance(snapshot, TextWorldSnapshot) or snapshot.owner is not self._owner:
            raise EnvError("this snapshot was not taken by this TextWorldGamesEnv instance")
        game = self._load(snapshot.task_id)
        game.set_interpreter_state(snapshot.interpreter_state)
        self._game = game
        self._world = snapshot.world.copy()
        self._valid_actions = snapshot.valid_actions
        self._observation = snapshot.observation
        self._done = snapshot.done
        return snapshot.observation

    def close(self) -> None:
        """Unload every game (the disk cache stays)."""
        self._loaded.clear()
        self._game = self._world = self._observation = None
        self._valid_actions = ()
        self._done = False
