"""The ALFWorld installer: verification, idempotence and refusal of unsafe archives (tiny hand-made archives), plus
a check of the real install the session fixture made."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from spo3.envs.alfworld.data import (
    AlfworldDataError,
    archive_name,
    default_data_dir,
    format_install_report,
    install_alfworld,
    pddl_params_from_task_dir,
)

TASK = "json_2.1.1/valid_unseen/pick_heat_then_place_in_recep-Egg-None-Fridge-10"
GAME_A = f"{TASK}/trial_T1/game.tw-pddl"
GAME_B = f"{TASK}/trial_T2/game.tw-pddl"


def install(*args, **kwargs):
    """The installer on hand-made archives, whose manifests are not pinned."""
    return install_alfworld(*args, allow_unpinned=True, **kwargs)


def make_source(tmp_path: Path, members: dict[str, bytes], manifest: dict[str, bytes] | None = None,
                special: list[tarfile.TarInfo] = ()) -> Path:
    """A source dir with a valid_unseen archive of ``members`` (+ ``special`` entries) and a manifest listing the
    sha256 of ``manifest`` (default: of ``members``)."""
    source = tmp_path / "source"
    source.mkdir(parents=True)
    with tarfile.open(source / archive_name("valid_unseen"), "w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in special:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    listed = members if manifest is None else manifest
    lines = [f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in listed.items()]
    (source / "SHA256SUMS.members").write_text("".join(lines))
    return source


def test_install_writes_games_stubs_logic_and_is_idempotent(tmp_path):
    source = make_source(tmp_path, {GAME_A: b'{"a": 1}', GAME_B: b'{"b": 2}'})
    data = tmp_path / "data"
    report = install(source, data)
    assert list(report["splits"]) == ["valid_unseen"]
    assert (report["splits"]["valid_unseen"]["status"], report["splits"]["valid_unseen"]["games"]) == ("installed", 2)
    assert (data / GAME_A).read_bytes() == b'{"a": 1}'
    stub = json.loads((data / TASK / "trial_T2" / "traj_data.json").read_text())
    assert stub == {"task_type": "pick_heat_then_place_in_recep", "pddl_params": {
        "object_target": "Egg", "parent_target": "Fridge", "mrecep_target": "", "toggle_target": "",
        "object_sliced": False}}
    assert (data / "logic" / "alfred.pddl").stat().st_size > 1000 and (data / "logic" / "alfred.twl2").is_file()
    assert not list(data.glob(".spo3-staging*"))
    assert "valid_unseen" in format_install_report(report) and "2 games  installed" in format_install_report(report)

    assert install(source, data)["splits"]["valid_unseen"]["status"] == "already installed"
    (data / GAME_B).write_bytes(b"damaged, other size")
    assert install(source, data)["splits"]["valid_unseen"]["status"] == "installed"  # repaired
    assert (data / GAME_B).read_bytes() == b'{"b": 2}'
    assert install(source, data, force=True)["splits"]["valid_unseen"]["status"] == "installed"


def test_sha_mismatch_is_detected_and_nothing_is_installed(tmp_path):
    source = make_source(tmp_path, {GAME_A: b"good", GAME_B: b"tampered"}, manifest={GAME_A: b"good", GAME_B: b"orig"})
    with pytest.raises(AlfworldDataError, match=f"sha256 mismatch for {GAME_B}"):
        install(source, tmp_path / "data")
    assert not (tmp_path / "data" / GAME_A).exists() and not list((tmp_path / "data").glob(".spo3-staging*"))


def test_missing_and_unlisted_members_are_errors(tmp_path):
    source = make_source(tmp_path, {GAME_A: b"a"}, manifest={GAME_A: b"a", GAME_B: b"b"})
    with pytest.raises(AlfworldDataError, match=f"{GAME_B} listed in SHA256SUMS.members but missing"):
        install(source, tmp_path / "data")
    other = make_source(tmp_path / "x", {GAME_A: b"a", GAME_B: b"b"}, manifest={GAME_A: b"a"})
    with pytest.raises(AlfworldDataError, match=f"member '{GAME_B}' is not listed"):
        install(other, tmp_path / "data")


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("json_2.1.1/valid_unseen/../../../escaped.txt", tarfile.REGTYPE, "unsafe member path"),
        ("/tmp/spo3-absolute-member.txt", tarfile.REGTYPE, "unsafe member path"),
        (f"{TASK}/trial_T3/game.tw-pddl", tarfile.SYMTYPE, "not a regular file or directory"),
        (f"{TASK}/trial_T3/game.tw-pddl", tarfile.LNKTYPE, "not a regular file or directory"),
        ("json_2.1.1/train/x/trial/game.tw-pddl", tarfile.REGTYPE, "lies outside json_2.1.1/valid_unseen/"),
    ],
)
def test_unsafe_members_are_refused_before_writing(tmp_path, name, kind, message):
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.REGTYPE:
        info.size = 4
    else:
        info.linkname = "/etc/passwd"
    source = make_source(tmp_path, {GAME_A: b"a"}, special=[info])
    with pytest.raises(AlfworldDataError, match=message):
        install(source, tmp_path / "data")
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/spo3-absolute-member.txt").exists()
    assert not (tmp_path / "data" / GAME_A).exists()


def test_bad_sources_are_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AlfworldDataError, match="SHA256SUMS.members not found"):
        install(empty, tmp_path / "data")
    (empty / "SHA256SUMS.members").write_text("")
    with pytest.raises(AlfworldDataError, match="no alfworld_json_2.1.1_tw-pddl_<split>.tar.xz archive"):
        install(empty, tmp_path / "data")
    with pytest.raises(AlfworldDataError, match="alfworld_json_2.1.1_tw-pddl_train.tar.xz not found"):
        install(empty, tmp_path / "data", splits=["train"])
    with pytest.raises(AlfworldDataError, match="unknown ALFWorld split 'test'"):
        install(empty, tmp_path / "data", splits="test")
    (empty / "SHA256SUMS.members").write_text(f"{'0' * 64}  {GAME_A}\nnot a checksum line\n")
    with pytest.raises(AlfworldDataError, match=r"SHA256SUMS.members:2: malformed line"):
        install(empty, tmp_path / "data")


def test_corrupt_archive_is_reported(tmp_path):
    source = make_source(tmp_path, {GAME_A: b"a" * 5000})
    archive = source / archive_name("valid_unseen")
    archive.write_bytes(archive.read_bytes()[:100])
    with pytest.raises(AlfworldDataError, match="cannot read the archive"):
        install(source, tmp_path / "data")


def test_traj_data_rule_from_directory_names():
    assert pddl_params_from_task_dir("look_at_obj_in_light-AlarmClock-None-DeskLamp-308") == {
        "task_type": "look_at_obj_in_light", "pddl_params": {
            "object_target": "AlarmClock", "parent_target": "", "mrecep_target": "", "toggle_target": "DeskLamp",
            "object_sliced": False}}
    assert pddl_params_from_task_dir("pick_cool_then_place_in_recep-AppleSliced-Bowl-Fridge-2")["pddl_params"] == {
        "object_target": "Apple", "parent_target": "Fridge", "mrecep_target": "Bowl", "toggle_target": "",
        "object_sliced": True}
    with pytest.raises(AlfworldDataError, match="is not '<task_type>-<Object>"):
        pddl_params_from_task_dir("trial_T20190908_222917_366542")


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("ALFWORLD_DATA")
    assert default_data_dir() == Path.home() / ".cache" / "alfworld"


def test_real_install_is_complete_and_fast_to_recheck(alfworld_data_dir, shared_data):
    games = sorted(alfworld_data_dir.glob("json_2.1.1/valid_unseen/*/*/game.tw-pddl"))
    assert len(games) == 134 and all((g.parent / "traj_data.json").is_file() for g in games)
    split = install_alfworld(shared_data / "alfworld", alfworld_data_dir, splits=["valid_unseen"])["splits"]
    assert (split["valid_unseen"]["status"], split["valid_unseen"]["games"]) == ("already installed", 134)


def test_marker_checks_content_not_size(tmp_path):
    source = make_source(tmp_path, {GAME_A: b'{"a": 1}', GAME_B: b'{"b": 2}'})
    data = tmp_path / "data"
    install(source, data)
    (data / GAME_B).write_bytes(b"\0" * len(b'{"b": 2}'))  # zeroed, same size
    assert install(source, data)["splits"]["valid_unseen"]["status"] == "installed"
    assert (data / GAME_B).read_bytes() == b'{"b": 2}'


def test_partial_install_is_refused_then_completed(tmp_path, monkeypatch):
    from spo3.envs.alfworld import data as alfworld_data
    from spo3.envs.alfworld import AlfworldEnv

    source = make_source(tmp_path, {GAME_A: b'{"a": 1}', GAME_B: b'{"b": 2}'})
    data = tmp_path / "data"
    moves = []
    real_replace = alfworld_data.os.replace

    def killed_after_one_move(a, b):
        if moves:
            raise KeyboardInterrupt
        moves.append(b)
        real_replace(a, b)

    monkeypatch.setattr(alfworld_data.os, "replace", killed_after_one_move)
    with pytest.raises(KeyboardInterrupt):
        install(source, data)
    monkeypatch.undo()
    assert (data / GAME_A).exists() and not (data / GAME_B).exists()
    with pytest.raises(AlfworldDataError, match="'valid_unseen' .* is partially installed .*spo3 data alfworld"):
        AlfworldEnv(data).tasks("valid_unseen")
    assert install(source, data)["splits"]["valid_unseen"]["status"] == "installed"
    assert len(AlfworldEnv(data).tasks("valid_unseen")) == 2
    (data / GAME_B).unlink()  # games lost after the install: refused, not a silently smaller panel
    with pytest.raises(AlfworldDataError, match="lacks 1 of its 2 games"):
        AlfworldEnv(data).tasks("valid_unseen")


def test_member_larger_than_the_cap_is_refused_before_writing(tmp_path):
    from spo3.envs.alfworld.data import UNPINNED_MEMBER_CAP

    bomb = b"\0" * (UNPINNED_MEMBER_CAP + 1)  # compresses to a few hundred bytes
    source = make_source(tmp_path, {GAME_A: bomb})
    assert (source / archive_name("valid_unseen")).stat().st_size < 10_000
    with pytest.raises(AlfworldDataError, match=f"claims {len(bomb)} bytes, more than the {UNPINNED_MEMBER_CAP}"):
        install(source, tmp_path / "data")
    assert not list((tmp_path / "data").rglob("game.tw-pddl"))


def test_manifests_are_pinned(tmp_path, shared_data):
    source = make_source(tmp_path, {GAME_A: b"a"})
    with pytest.raises(AlfworldDataError, match="not a manifest spo3 knows .* --allow-unpinned"):
        install_alfworld(source, tmp_path / "data")
    # The known manifest with an archive that is not the pinned one: refused before extraction.
    manifest = shared_data / "alfworld" / "SHA256SUMS.members"
    if not manifest.exists():
        pytest.skip(f"{manifest} not found")
    (source / "SHA256SUMS.members").write_bytes(manifest.read_bytes())
    with pytest.raises(AlfworldDataError, match="is not the pinned archive of split 'valid_unseen'"):
        install_alfworld(source, tmp_path / "data", splits=["valid_unseen"])
    assert not (tmp_path / "data" / "json_2.1.1").exists()
