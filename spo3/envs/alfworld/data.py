"""Installing the ALFWorld text games: split archives -> ``$ALFWORLD_DATA/json_2.1.1/<split>/...``, verified.

The source directory holds ``alfworld_json_2.1.1_tw-pddl_<split>.tar.xz`` archives and ``SHA256SUMS.members``
(the sha256 of every ``game.tw-pddl`` inside them, ``sha256sum`` format, paths relative to the extraction root), as
``../shared/data/alfworld/`` does. :func:`install_alfworld` produces the layout that ``alfworld-download`` leaves in
``$ALFWORLD_DATA``:

- ``json_2.1.1/<split>/<task_type>-<Object>-<MRecep>-<Parent>-<scene>/trial_*/game.tw-pddl``, every file checked
  against ``SHA256SUMS.members`` (a mismatch, a missing or an unlisted member is an error naming the file);
- a ``traj_data.json`` stub beside each game (only where none exists), holding the two fields alfworld's own
  ``AlfredTWEnv`` reads: ``task_type`` and ``pddl_params``, derived from the task directory name with the rule in
  ``environments.md`` §3 (verified there on 255 real files); spo3's :class:`~spo3.envs.alfworld.AlfworldEnv`
  needs neither;
- ``logic/alfred.pddl`` and ``logic/alfred.twl2`` copied from the installed ``alfworld`` wheel, as
  ``alfworld-download`` does;
- ``json_2.1.1/<split>/.spo3-install.json``, a marker with the archive's sha256 and every member's sha256. A second
  call with the same archive finds the marker, hashes every installed member again (a game zeroed to the same size
  is caught; ~25 ms for valid_unseen, ~1 s for train) and returns without extracting; ``force=True`` reinstalls.
  While files are being moved into place, ``json_2.1.1/<split>/.spo3-installing`` exists: a split interrupted
  there is *partial*. :func:`check_split` (called by :meth:`AlfworldEnv.tasks`) refuses a partial split and one with
  games missing since its install, so a damaged install never silently changes a task panel; running the install
  again completes it.

**Pinned manifests.** The SHA-256 of the ``SHA256SUMS.members`` files spo3 knows, and of each split's archive, are
pinned here (:data:`PINNED_MANIFESTS`, :data:`PINNED_ARCHIVES`): a source directory with another manifest is refused
unless ``allow_unpinned=True`` (``spo3 data alfworld --allow-unpinned``), and a known manifest with an archive that
is not the pinned one is refused before anything is extracted.

Archives are read member by member and never with ``extractall``: a member that is not a regular file or a
directory (links, devices), that has an absolute path or a ``..`` component, that lies outside
``json_2.1.1/<split>/``, or that is larger than the split's cap (the largest game of the pinned archive; 1 MiB for an
unpinned one) is refused before anything of it is written, and no member is ever written past its cap. Files are
first written to a staging directory inside ``data_dir`` and moved into place only once every hash matched, so a
failed extraction leaves the previous state untouched.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import tarfile
import time
from importlib.util import find_spec
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

from spo3.config.loading import SetupError
from spo3.envs.base import EnvError

__all__ = [
    "ALFWORLD_SPLITS",
    "AlfworldDataError",
    "GAMES_DIR",
    "PINNED_ARCHIVES",
    "PINNED_MANIFESTS",
    "archive_name",
    "check_split",
    "default_data_dir",
    "format_install_report",
    "install_alfworld",
    "pddl_params_from_task_dir",
]

ALFWORLD_SPLITS: tuple[str, ...] = ("train", "valid_seen", "valid_unseen", "valid_train")
"""The four splits of ALFWorld >= 0.4 (valid_seen = upstream's eval_in_distribution, valid_unseen =
eval_out_of_distribution)."""
GAMES_DIR = "json_2.1.1"
"""The games' directory under the data root (the name ``alfworld-download`` uses)."""
MANIFEST_NAME = "SHA256SUMS.members"
MARKER_NAME = ".spo3-install.json"
INSTALLING_NAME = ".spo3-installing"
_MARKER_VERSION = 2
PINNED_MANIFESTS: Mapping[str, str] = {
    "f0c7a1c8cd593a2ac252b2ab06b25ff6e1dc4b18cd14610f236c04bcacd053a7":
        "alfworld json_2.1.1 tw-pddl games, 4027 members (../shared/data/alfworld/PROVENANCE.md)",
}
"""SHA-256 of the ``SHA256SUMS.members`` files spo3 trusts without ``allow_unpinned``."""
PINNED_ARCHIVES: Mapping[str, Mapping[str, Any]] = {
    "train": {"sha256": "e2a2d9339992ebea9386df97944edf4dd864619f9e757db113195497411de40e", "max_member_bytes": 138334},
    "valid_seen": {"sha256": "bae5fe3d62d65f0c3e51d77e707bb36c444d9b490a82b7694c818d077155c077",
                   "max_member_bytes": 133703},
    "valid_unseen": {"sha256": "c705161786954cb3882809944755ebef5f80583e0864e84a97ede713211f9657",
                     "max_member_bytes": 111132},
    "valid_train": {"sha256": "e93a045d4ab19007b41954629bf0e27885da7e192788631231dc0cd887a85b28",
                    "max_member_bytes": 134151},
}
"""Per split, the SHA-256 of the archive that goes with a pinned manifest, and its largest member in bytes."""
UNPINNED_MEMBER_CAP = 1 << 20
"""Largest member accepted from an unpinned archive (about 8x the largest known game)."""
INSTALL_HINT = (
    "Install the game files: `spo3 data alfworld --from DIR` (DIR holds alfworld_json_2.1.1_tw-pddl_<split>.tar.xz "
    "and SHA256SUMS.members), or `alfworld-download`; or point env.alfworld.data_dir / $ALFWORLD_DATA at them."
)


class AlfworldDataError(EnvError, SetupError):
    """ALFWorld game files are missing, corrupt or unsafe to install."""


def default_data_dir() -> Path:
    """Where ALFWorld data lives by default: ``$ALFWORLD_DATA``, else ``~/.cache/alfworld`` (as alfworld)."""
    configured = os.environ.get("ALFWORLD_DATA")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "alfworld"


def archive_name(split: str) -> str:
    """File name of a split's archive, e.g. ``alfworld_json_2.1.1_tw-pddl_valid_unseen.tar.xz``."""
    return f"alfworld_json_2.1.1_tw-pddl_{split}.tar.xz"


def pddl_params_from_task_dir(task_dir: str) -> dict[str, Any]:
    """``traj_data.json`` fields alfworld reads, derived from a task directory name.

    Args:
      task_dir: ``<task_type>-<Object[Sliced]>-<MRecep|None>-<Parent>-<scene>``,
        e.g. ``pick_heat_then_place_in_recep-Egg-None-Fridge-10``.

    Returns:
      ``{"task_type": ..., "pddl_params": {"object_target", "parent_target", "mrecep_target", "toggle_target",
      "object_sliced"}}``; for ``look_at_obj_in_light`` the last receptacle is the lamp (``toggle_target``) and
      ``parent_target`` is empty (``environments.md`` §3).

    Raises:
      AlfworldDataError: the name does not have the five dash-separated fields.
    """
    fields = task_dir.split("-")
    if len(fields) != 5 or not all(fields[:4]):
        raise AlfworldDataError(
            f"ALFWorld task directory {task_dir!r} is not '<task_type>-<Object>-<MRecep|None>-<Parent>-<scene>'"
        )
    task_type, obj, mrecep, parent, _scene = fields
    sliced = obj.endswith("Sliced")
    params = {
        "object_target": obj[: -len("Sliced")] if sliced else obj,
        "parent_target": parent,
        "mrecep_target": "" if mrecep == "None" else mrecep,
        "toggle_target": "",
        "object_sliced": sliced,
    }
    if task_type == "look_at_obj_in_light":
        params["toggle_target"], params["parent_target"] = parent, ""
    return {"task_type": task_type, "pddl_params": params}


def install_alfworld(
    source_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    splits: Iterable[str] | None = None,
    *,
    force: bool = False,
    allow_unpinned: bool = False,
) -> dict[str, Any]:
    """Install (or check) ALFWorld split archives into a data directory.

    Args:
      source_dir: directory holding ``alfworld_json_2.1.1_tw-pddl_<split>.tar.xz`` and ``SHA256SUMS.members``.
      data_dir: the ALFWorld data root to fill (``$ALFWORLD_DATA`` layout); ``None``: :func:`default_data_dir`.
      splits: splits to install; ``None``: every split whose archive is in ``source_dir``.
      force: extract and verify again even where a matching install marker exists.
      allow_unpinned: accept a ``SHA256SUMS.members`` that is not in :data:`PINNED_MANIFESTS` (module docstring).

    Returns:
      A report: ``{"data_dir": str, "source_dir": str, "seconds": float, "splits": {split: {"status":
      "installed" | "already installed", "games": int, "seconds": float}}}``.
      :func:`format_install_report` turns it into a few lines of text.

    Raises:
      AlfworldDataError: a missing archive or manifest, a malformed manifest line, an unsafe archive member, a
        member missing from the archive or not listed in the manifest, or a sha256 mismatch (each names the file);
        an unpinned manifest without ``allow_unpinned``, or a known manifest with an unknown archive.
    """
    t_start = time.perf_counter()
    source = Path(source_dir).expanduser()
    target = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    manifest_path = source / MANIFEST_NAME
    if not manifest_path.is_file():
        raise AlfworldDataError(f"{manifest_path} not found. {INSTALL_HINT}")
    manifest_sha = _sha256_file(manifest_path)
    pinned = manifest_sha in PINNED_MANIFESTS
    if not pinned and not allow_unpinned:
        raise AlfworldDataError(
            f"{manifest_path} is not a manifest spo3 knows (sha256 {manifest_sha}); if you trust it, install with "
            "--allow-unpinned (allow_unpinned=True)"
        )
    manifest = _read_manifest(manifest_path)

    if splits is None:
        chosen = [s for s in ALFWORLD_SPLITS if (source / archive_name(s)).is_file()]
        if not chosen:
            raise AlfworldDataError(f"no alfworld_json_2.1.1_tw-pddl_<split>.tar.xz archive in {source}. {INSTALL_HINT}")
    else:
        chosen = [splits] if isinstance(splits, str) else list(splits)
        for split in chosen:
            if split not in ALFWORLD_SPLITS:
                raise AlfworldDataError(f"unknown ALFWorld split {split!r}; expected one of {list(ALFWORLD_SPLITS)}")

    report: dict[str, Any] = {"data_dir": str(target), "source_dir": str(source), "splits": {}}
    for split in chosen:
        t_split = time.perf_counter()
        archive = source / archive_name(split)
        if not archive.is_file():
            raise AlfworldDataError(f"{archive} not found. {INSTALL_HINT}")
        prefix = f"{GAMES_DIR}/{split}/"
        expected = {path: digest for path, digest in manifest.items() if path.startswith(prefix)}
        if not expected:
            raise AlfworldDataError(f"{manifest_path} lists no file under {prefix}")
        status = _install_split(archive, expected, target, split, force, pinned)
        report["splits"][split] = {
            "status": status,
            "games": len(expected),
            "seconds": round(time.perf_counter() - t_split, 3),
        }
    _copy_logic_files(target)
    report["seconds"] = round(time.perf_counter() - t_start, 3)
    return report


def format_install_report(report: Mapping[str, Any]) -> str:
    """A few human-readable lines summarising :func:`install_alfworld`'s report."""
    lines = [f"ALFWorld data in {report['data_dir']} (from {report['source_dir']}):"]
    for split, info in report["splits"].items():
        lines.append(f"  {split:<13} {info['games']:>5} games  {info['status']}  ({info['seconds']:.1f} s)")
    lines.append(f"  total {report['seconds']:.1f} s; use it with ALFWORLD_DATA={report['data_dir']}")
    return "\n".join(lines)


def _read_manifest(path: Path) -> dict[str, str]:
    """``{relative path: sha256 hex}`` from a ``sha256sum`` listing (text ``"  "`` or binary ``" *"`` mode)."""
    manifest: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else ""
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()) or not name:
            raise AlfworldDataError(f"{path}:{number}: malformed line {line!r} (expected '<sha256>  <path>')")
        manifest[name] = digest.lower()
    return manifest


def _read_marker(split_dir: Path) -> dict[str, Any] | None:
    try:
        recorded = json.loads((split_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(recorded, dict) and recorded.get("version") == _MARKER_VERSION
    return recorded if ok and isinstance(recorded.get("members"), dict) else None


def _marker_matches(split_dir: Path, archive_sha: str, expected: Mapping[str, str], root: Path) -> bool:
    recorded = _read_marker(split_dir)
    if (
        recorded is None
        or (split_dir / INSTALLING_NAME).exists()
        or recorded.get("archive_sha256") != archive_sha
        or recorded["members"] != dict(expected)
    ):
        return False
    for member, digest in expected.items():
        try:
            if _sha256_file(root / member) != digest:
                return False
        except OSError:
            return False
    return True


def check_split(data_dir: str | os.PathLike[str], split: str) -> None:
    """Refuse a split whose install was interrupted or has lost games since (module docstring). A split without
    spo3's marker (installed by ``alfworld-download``) is accepted as it is.

    Raises:
      AlfworldDataError: naming the split, what is wrong and how to complete it.
    """
    split_dir = Path(data_dir) / GAMES_DIR / split
    fix = "run `spo3 data alfworld --from DIR` again to complete it"
    if (split_dir / INSTALLING_NAME).exists():
        raise AlfworldDataError(f"ALFWorld split {split!r} at {split_dir} is partially installed (an install was "
                                f"interrupted); {fix}")
    recorded = _read_marker(split_dir)
    if recorded is None:
        return
    missing = [m for m in recorded["members"] if not (Path(data_dir) / m).is_file()]
    if missing:
        raise AlfworldDataError(f"ALFWorld split {split!r} at {split_dir} lacks {len(missing)} of its "
                                f"{len(recorded['members'])} games (e.g. {missing[0]}); {fix}")


def _safe_member_path(member: tarfile.TarInfo, archive: Path, prefix: str) -> PurePosixPath | None:
    """The member's relative path, None for a directory entry; raises on anything unsafe."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or member.name.startswith(("/", "\\")):
        raise AlfworldDataError(f"{archive}: unsafe member path {member.name!r} (absolute or with '..'); refused")
    if not (member.isfile() or member.isdir()):
        raise AlfworldDataError(
            f"{archive}: member {member.name!r} is not a regular file or directory (link or device); refused"
        )
    normalized = path.as_posix().rstrip("/") + ("/" if member.isdir() else "")
    if not (normalized.startswith(prefix) or prefix.startswith(normalized)):
        raise AlfworldDataError(f"{archive}: member {member.name!r} lies outside {prefix}; refused")
    return None if member.isdir() else path


def _install_split(archive: Path, expected: Mapping[str, str], root: Path, split: str, force: bool, pinned: bool) -> str:
    split_dir = root / GAMES_DIR / split
    archive_sha = _sha256_file(archive)
    if pinned and archive_sha != PINNED_ARCHIVES[split]["sha256"]:
        raise AlfworldDataError(
            f"{archive}: sha256 {archive_sha} is not the pinned archive of split {split!r} "
            f"({PINNED_ARCHIVES[split]['sha256']}); refused before extraction"
        )
    if not force and _marker_matches(split_dir, archive_sha, expected, root):
        return "already installed"
    cap = PINNED_ARCHIVES[split]["max_member_bytes"] if pinned else UNPINNED_MEMBER_CAP

    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".spo3-staging-{split}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        digests = _extract_verified(archive, expected, staging, f"{GAMES_DIR}/{split}/", cap)
        stubs = {(root / member).parent: pddl_params_from_task_dir(PurePosixPath(member).parent.parent.name)
                 for member in digests}
        # The markers go first, so that a move interrupted half-way is never taken for a finished install.
        split_dir.mkdir(parents=True, exist_ok=True)
        (split_dir / INSTALLING_NAME).write_text(f"{archive.name}\n")
        (split_dir / MARKER_NAME).unlink(missing_ok=True)
        for member in sorted(digests):
            final = root / member
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / member, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    for trial_dir, traj_data in sorted(stubs.items()):
        stub = trial_dir / "traj_data.json"
        if not stub.exists():
            stub.write_text(json.dumps(traj_data, indent=1), encoding="utf-8")
    marker = {"version": _MARKER_VERSION, "archive": archive.name, "archive_sha256": archive_sha, "members": digests}
    (split_dir / MARKER_NAME).write_text(json.dumps(marker, indent=0, sort_keys=True), encoding="utf-8")
    (split_dir / INSTALLING_NAME).unlink()
    return "installed"


def _extract_verified(
    archive: Path, expected: Mapping[str, str], staging: Path, prefix: str, cap: int,
) -> dict[str, str]:
    """Stream every member (at most ``cap`` bytes each) into ``staging`` while hashing it; returns
    ``{member: sha256}``."""
    digests: dict[str, str] = {}
    try:
        with tarfile.open(archive, mode="r:xz") as tar:
            for member in tar:
                path = _safe_member_path(member, archive, prefix)
                if path is None:
                    continue
                name = path.as_posix()
                if name not in expected:
                    raise AlfworldDataError(f"{archive}: member {name!r} is not listed in {MANIFEST_NAME}; refused")
                if name in digests:
                    raise AlfworldDataError(f"{archive}: member {name!r} appears twice")
                if member.size > cap:
                    raise AlfworldDataError(
                        f"{archive}: member {name!r} claims {member.size} bytes, more than the {cap} a game of this "
                        "archive may have; refused before writing it"
                    )
                source = tar.extractfile(member)
                if source is None:
                    raise AlfworldDataError(f"{archive}: member {name!r} has no readable data")
                destination = staging / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                digest, written = hashlib.sha256(), 0
                with source, open(destination, "wb") as out:
                    for block in iter(lambda: source.read(1 << 16), b""):
                        written += len(block)
                        if written > cap:
                            raise AlfworldDataError(f"{archive}: member {name!r} exceeds {cap} bytes; refused")
                        digest.update(block)
                        out.write(block)
                if digest.hexdigest() != expected[name]:
                    raise AlfworldDataError(
                        f"{archive}: sha256 mismatch for {name}: expected {expected[name]}, got {digest.hexdigest()}"
                    )
                digests[name] = digest.hexdigest()
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as exc:
        raise AlfworldDataError(f"{archive}: cannot read the archive ({exc}); it may be truncated or corrupt") from exc
    missing = sorted(set(expected) - set(digests))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise AlfworldDataError(f"{archive}: {missing[0]}{more} listed in {MANIFEST_NAME} but missing from the archive")
    return digests


def _copy_logic_files(root: Path) -> None:
    """Copy alfworld's ``alfred.pddl`` / ``alfred.twl2`` into ``<root>/logic`` (what ``alfworld-download`` does)."""
    spec = find_spec("alfworld")  # locates the package without importing it (its import creates $ALFWORLD_DATA)
    if spec is None or spec.origin is None:
        raise AlfworldDataError("the alfworld package is not installed: pip install alfworld==0.4.2")
    builtin = Path(spec.origin).parent / "data"
    (root / "logic").mkdir(parents=True, exist_ok=True)
    for name in ("alfred.pddl", "alfred.twl2"):
        source, destination = builtin / name, root / "logic" / name
        if not destination.is_file() or destination.read_bytes() != source.read_bytes():
            shutil.copyfile(source, destination)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
