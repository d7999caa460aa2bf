"""The vLLM rollout engine, driven by a fake with the call surface of vLLM 0.33.0 (the version the ``gpu`` extra
pins; vLLM itself cannot run in the test environments): ``LLM.generate(prompts, sampling_params, *, use_tqdm,
lora_request, ...)``, ``LLM.apply_model(func)``, ``LLM.reset_prefix_cache(...)``, ``SamplingParams(**fields)``,
``LoRARequest(lora_name, lora_int_id, lora_path)``, ``RequestOutput.outputs[j].token_ids / .logprobs``."""

import importlib.util
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from spo3.policies.engines.vllm import VLLM_VERSION, VLLMEngine
from tests.policies.helpers import DECISIONS

EOS = 2

# Field names of vllm 0.33.0's SamplingParams (vllm/sampling_params.py): the fake rejects any other keyword.
SAMPLING_FIELDS = set(
    "n presence_penalty frequency_penalty repetition_penalty temperature top_p top_k min_p seed stop stop_token_ids "
    "ignore_eos max_tokens min_tokens logprobs prompt_logprobs detokenize skip_special_tokens output_kind".split()
)


def test_the_fake_names_the_pinned_vllm_version():
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert VLLM_VERSION == "0.33.0"
    assert f"vllm=={VLLM_VERSION}" in [re.sub(r"\s", "", r) for r in pyproject["project"]["optional-dependencies"]["gpu"]]


class FakeSamplingParams:
    def __init__(self, **kwargs):
        unknown = set(kwargs) - SAMPLING_FIELDS
        if unknown:
            raise TypeError(f"SamplingParams has no field {sorted(unknown)}")
        self.__dict__.update(kwargs)


class FakeLoRARequest:
    def __init__(self, lora_name: str, lora_int_id: int, lora_path: str = "", base_model_name=None, load_inplace=False):
        if lora_int_id < 1:
            raise ValueError(f"id must be > 0, got {lora_int_id}")
        assert lora_path, "lora_path cannot be empty"
        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path


@dataclass
class FakeLogprob:
    logprob: float


@dataclass
class FakeCompletion:
    token_ids: list
    logprobs: list


@dataclass
class FakeRequestOutput:
    outputs: list


class FakeModel:
    """vLLM's model: ``load_weights`` takes ``(name, tensor)`` pairs named as in transformers."""

    def __init__(self):
        self.loads = []

    def load_weights(self, weights):
        self.loads.append({name: tensor.clone() for name, tensor in weights})  # live tensors: copy to keep
        return set(self.loads[-1])


class FakeLLM:
    """Continues every prompt with ``[seed % 50 + 10 + j, 7, EOS, 9, 9]`` (tokens past the EOS must be cut) and
    log-probability ``-0.5 * (position + 1)``; records every call. An adapter must be readable at the first
    ``generate`` that names it, as vLLM loads it then."""

    def __init__(self):
        self.model = FakeModel()
        self.calls = []
        self.prefix_resets = 0
        self.adapters_read = []

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None, priority=None,
                 tokenization_kwargs=None, mm_processor_kwargs=None):
        self.calls.append((prompts, sampling_params, lora_request))
        if lora_request is not None and lora_request.lora_int_id not in [a[0] for a in self.adapters_read]:
            files = sorted(p.name for p in Path(lora_request.lora_path).iterdir())
            self.adapters_read.append((lora_request.lora_int_id, files))
        outputs = []
        for p in sampling_params:
            completions = []
            for j in range(p.n):
                ids = [p.seed % 50 + 10 + j, 7, EOS, 9, 9][: p.max_tokens]
                completions.append(FakeCompletion(ids, [{t: FakeLogprob(-0.5 * (k + 1))} for k, t in enumerate(ids)]))
            outputs.append(FakeRequestOutput(completions))
        return outputs

    def apply_model(self, func):
        return [func(self.model)]

    def reset_prefix_cache(self, reset_running_requests=False, reset_connector=False):
        self.prefix_resets += 1
        return True


@pytest.fixture
def llm():
    return FakeLLM()


@pytest.fixture
def vllm_policy(make_policy, llm):
    return make_policy(engine=VLLMEngine(llm, FakeSamplingParams, FakeLoRARequest))


def one_update(policy):
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.1)
    scores = policy.token_scores(DECISIONS[:1], [policy.response_for(DECISIONS[0], "look")])
    scores.logprobs.sum().backward()
    optimizer.step()


def test_samples_n_completions_per_prompt_with_logprobs(vllm_policy, llm):
    out = vllm_policy.sample(DECISIONS, [2, 0, 1], temperature=0.7)
    assert [len(rs) for rs in out] == [2, 0, 1]
    (requests, params, lora), = llm.calls
    assert lora is None
    assert [r["prompt_token_ids"] for r in requests] == vllm_policy.prompt_token_ids([DECISIONS[0].prompt, DECISIONS[2].prompt])
    assert [p.n for p in params] == [2, 1]
    first = params[0]
    assert (first.temperature, first.top_p, first.top_k, first.min_p, first.max_tokens, first.logprobs) == (0.7, 1.0, 0, 0.0, 12, 0)
    assert first.stop_token_ids == [EOS] and params[1].seed == first.seed + 2
    for r in out[0] + out[2]:
        assert r.token_ids[1:] == (7, EOS)  # cut right after the end of turn
        assert r.logprobs == (-0.5, -1.0, -1.5)
        assert r.text == vllm_policy.tokenizer.decode(r.token_ids, skip_special_tokens=True)
    assert out[0][0].token_ids[0] != out[0][1].token_ids[0]


def test_sampling_is_seeded_by_the_policy(make_policy):
    a = make_policy(seed=5, engine=VLLMEngine(FakeLLM(), FakeSamplingParams, FakeLoRARequest))
    b = make_policy(seed=5, engine=VLLMEngine(FakeLLM(), FakeSamplingParams, FakeLoRARequest))
    assert a.sample(DECISIONS, [1, 1, 1]) == b.sample(DECISIONS, [1, 1, 1])


def test_full_weights_are_synced_first_and_after_every_update(vllm_policy, llm):
    loads = llm.model.loads
    vllm_policy.sample(DECISIONS[:1], [1])
    assert len(loads) == 1 and set(loads[0]) == set(vllm_policy.model.state_dict())
    vllm_policy.sample(DECISIONS[:1], [1])
    assert len(loads) == 1  # unchanged weights are not sent again
    one_update(vllm_policy)
    vllm_policy.sample(DECISIONS[:1], [1])
    assert len(loads) == 2 and llm.prefix_resets == 2  # the engine is never restarted, its prefix cache is reset
    name = "model.embed_tokens.weight"
    assert torch.equal(loads[1][name], vllm_policy.model.state_dict()[name])
    assert not torch.equal(loads[0][name], loads[1][name])


def test_lora_without_adapter_serving_sends_merged_weights(make_policy, llm):
    policy = make_policy(lora_rank=4, engine=VLLMEngine(llm, FakeSamplingParams, FakeLoRARequest))
    one_update(policy)
    policy.sample(DECISIONS[:1], [1])
    (weights,) = llm.model.loads
    assert not any("lora_" in k or "base_layer" in k for k in weights)
    merged = dict(policy.inference_weights())
    assert torch.equal(weights["model.layers.0.self_attn.q_proj.weight"], merged["model.layers.0.self_attn.q_proj.weight"])


def test_lora_adapter_is_served_by_lora_request_with_a_new_id_per_sync(make_policy, llm):
    policy = make_policy(lora_rank=4, engine=VLLMEngine(llm, FakeSamplingParams, FakeLoRARequest, serves_adapters=True))
    policy.sample(DECISIONS[:1], [1])
    assert len(llm.model.loads) == 1  # the base weights once, without the adapter
    assert not any("lora_" in k for k in llm.model.loads[0])
    assert llm.calls[-1][2].lora_int_id == 1
    (read_id, files), = llm.adapters_read
    assert read_id == 1 and {"adapter_config.json", "adapter_model.safetensors"} <= set(files)  # peft's format

    policy.sample(DECISIONS[:1], [1])
    assert llm.calls[-1][2].lora_int_id == 1  # nothing changed: same adapter
    one_update(policy)
    policy.sample(DECISIONS[:1], [1])
    assert llm.calls[-1][2].lora_int_id == 2 and len(llm.model.loads) == 1  # only the adapter moved
    assert [a[0] for a in llm.adapters_read] == [1, 2]

    policy.freeze_reference()  # folds the adapter into the base weights: both are sent
    policy.sample(DECISIONS[:1], [1])
    assert llm.calls[-1][2].lora_int_id == 3 and len(llm.model.loads) == 2
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(llm.model.loads[0][q], llm.model.loads[1][q])


def test_engine_without_lora_refuses_an_adapter(llm):
    with pytest.raises(RuntimeError, match="started without LoRA"):
        VLLMEngine(llm, FakeSamplingParams, FakeLoRARequest).load_adapter(lambda directory: None)


def test_greedy_and_empty_requests(vllm_policy, llm):
    out = vllm_policy.sample(DECISIONS[:2], [3, 0], temperature=0.0)
    assert len(out[0]) == 3 and out[0][0] == out[0][2] and out[1] == []
    assert [p.n for p in llm.calls[-1][1]] == [1]
    assert vllm_policy.sample(DECISIONS[:2], [0, 0]) == [[], []]


def test_engine_returning_too_few_outputs_is_reported(make_policy):
    class Short(FakeLLM):
        def generate(self, prompts, sampling_params=None, **kwargs):
            return super().generate(prompts, sampling_params, **kwargs)[:-1]

    policy = make_policy(engine=VLLMEngine(Short(), FakeSamplingParams, FakeLoRARequest))
    with pytest.raises(RuntimeError, match="vLLM returned 1 outputs for 2 requests"):
        policy.sample(DECISIONS[:2], [1, 1])


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_backend_vllm_without_vllm_says_how_to_install():
    from spo3.config import PolicyConfig
    from spo3.policies.hf import build_hf_policy

    with pytest.raises(ModuleNotFoundError, match=r"pip install 'spo3\[gpu\]'"):
        build_hf_policy(PolicyConfig(kind="hf", backend="vllm", max_new_tokens=4), seed=0, corpus=["take coin"])


def test_training_recomputes_old_logprobs_and_only_logs_the_engines(make_policy, vllm_policy):
    from spo3.config import OptimConfig
    from spo3.rollout.common import StepSample
    from spo3.training.update import build_optimizer, ppo_update

    def update(policy):
        responses = [r[0] for r in policy.sample(DECISIONS, [1, 1, 1])]
        samples = [
            StepSample(task_id="t", input=inp, response=resp, action="look", valid=True, key="k", next_key="k2",
                       anchor="", env_reward=0.0, won=False, done=False, group=0, traj=i, advantage=1.0 - i)
            for i, (inp, resp) in enumerate(zip(DECISIONS, responses))
        ]
        optim = OptimConfig(lr=1e-3, kl_coef=0.0)
        return ppo_update(policy, build_optimizer(policy, optim), samples, optim)

    engine_diag, hf_diag = update(vllm_policy), update(make_policy())
    # the fake engine's log-probabilities are far from the model's: logged, while the PPO ratio starts at exactly 1
    assert engine_diag["sampling_logprob_gap"] > 0.1 and engine_diag["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert hf_diag["sampling_logprob_gap"] < 1e-4  # the HF engine samples from the trainer's own distribution
