"""Errors a newcomer meets print one line that names the fix (the traceback only under --debug), and no path of
the developer's machine."""

import sys
from pathlib import Path

import pytest
import torch

from spo3.cli import main
from spo3.config import SetupError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
REPO_ROOT = CONFIGS.parent


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert str(REPO_ROOT) not in err and str(Path.home()) not in err, err
    assert "--debug" in err
    return err


def test_missing_alfworld_data_names_the_install_command(capsys, tmp_path):
    (tmp_path / "empty").mkdir()  # a data_dir that does not exist is refused by the config, naming the field
    argv = ["train", str(CONFIGS / "alfworld_panel_tabular.yaml"), f"env.alfworld.data_dir={tmp_path / 'empty'}",
            f"log.output_dir={tmp_path}"]
    err = _one_line_error(capsys, argv)
    assert "spo3 data alfworld --from DIR" in err and "valid_unseen" in err
    with pytest.raises(SetupError):
        main(["--debug", *argv])
    with pytest.raises(SetupError):  # --debug also after the subcommand
        main([*argv, "--debug"])


def test_default_alfworld_data_dir_is_shown_relative_to_home(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    err = _one_line_error(capsys, ["train", str(CONFIGS / "alfworld_panel_tabular.yaml"), f"log.output_dir={tmp_path}"])
    assert "~/.cache/alfworld" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_says_what_to_do(capsys, tmp_path):
    err = _one_line_error(capsys, ["train", str(CONFIGS / "textworld_tabular.yaml"), "policy.kind=hf",
                                   "policy.device=cuda", f"log.output_dir={tmp_path}"])
    assert "policy.device=cuda" in err and "no CUDA GPU" in err and "policy.device=cpu" in err


def test_model_neither_cached_nor_local(capsys, tmp_path):
    err = _one_line_error(capsys, ["train", str(CONFIGS / "textworld_tabular.yaml"), "policy.kind=hf",
                                   "policy.model=spo3-tests/no-such-model", f"log.output_dir={tmp_path}"])
    assert "neither a local model directory nor in the Hugging Face cache" in err
    assert "hf download spo3-tests/no-such-model" in err


def test_tensorboard_missing(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    err = _one_line_error(capsys, ["train", str(CONFIGS / "textworld_tabular.yaml"), "log.tensorboard=true",
                                   f"log.output_dir={tmp_path}"])
    assert "log.tensorboard=true needs the tensorboard package" in err and "spo3[tracking]" in err


def test_webshop_data_dir_without_the_attribute_file(capsys, tmp_path):
    (tmp_path / "shop").mkdir()
    err = _one_line_error(capsys, ["train", str(CONFIGS / "webshop_tabular.yaml"),
                                   f"env.webshop.data_dir={tmp_path / 'shop'}", f"log.output_dir={tmp_path}"])
    assert "items_ins_v2_1000.json: not found" in err and "env.webshop.data_dir" in err
