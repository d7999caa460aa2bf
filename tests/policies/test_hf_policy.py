"""HFPolicy on a tiny random-init Qwen2: batched sampling, seeding, scoring and padding, entropy, persistence,
LoRA and the reference policy."""

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import spo3.policies.scoring as scoring_module
from spo3.training.builders import build_policy
from spo3.config import PolicyConfig
from spo3.policies.base import Response
from spo3.policies.engines.base import Generated, GenerationEngine
from spo3.policies.hf import HFPolicy, token_logprobs_and_entropy
from spo3.policies.hf_models import tiny_qwen2
from spo3.policies.tabular import TabularPolicy, format_action
from tests.policies.helpers import CORPUS, DECISIONS, decision


def flat(inputs, n, responses):
    """Inputs repeated to align with the flattened responses of ``sample``."""
    return [inp for inp, k in zip(inputs, n) for _ in range(k)], [r for rs in responses for r in rs]


def sequence_logprob(policy, inp, response) -> float:
    with torch.no_grad():
        return float(policy.token_scores([inp], [response], entropy=False).logprobs.sum())


def one_step(policy, optimizer, inputs, responses, lr_sign=1.0):
    """One optimiser step raising (lr_sign=1) the summed log-probability of ``responses``."""
    optimizer.zero_grad()
    scores = policy.token_scores(inputs, responses, entropy=False)
    (-lr_sign * (scores.logprobs * scores.mask).sum()).backward()
    optimizer.step()


# ---------------------------------------------------------------------------------------------------- sampling
def test_sample_returns_n_responses_with_aligned_tokens_and_logprobs(make_policy):
    policy = make_policy(max_new_tokens=7)
    out = policy.sample(DECISIONS, [2, 0, 3], temperature=1.0)
    assert [len(rs) for rs in out] == [2, 0, 3]
    for r in out[0] + out[2]:
        assert 1 <= len(r.token_ids) <= 7
        assert len(r.logprobs) == len(r.token_ids)
        assert all(math.isfinite(x) and x <= 0 for x in r.logprobs)
        assert policy.eos_id not in r.token_ids[:-1]  # nothing after the end of the turn, no padding
        assert r.text == policy.tokenizer.decode(r.token_ids, skip_special_tokens=True)


def test_sample_edge_cases_and_bad_arguments(make_policy):
    policy = make_policy()
    assert policy.sample([], []) == []
    assert policy.sample(DECISIONS, [0, 0, 0]) == [[], [], []]
    with pytest.raises(ValueError, match="3 inputs but 2 counts"):
        policy.sample(DECISIONS, [1, 1])
    with pytest.raises(ValueError, match="negative response count"):
        policy.sample(DECISIONS, [1, -1, 1])
    with pytest.raises(ValueError, match="temperature"):
        policy.sample(DECISIONS, [1, 1, 1], temperature=-0.5)


def test_greedy_repeats_one_response_per_input(make_policy):
    policy = make_policy()
    out = policy.sample(DECISIONS[:2], [3, 1], temperature=0.0)
    assert out[0][0] == out[0][1] == out[0][2]
    assert policy.sample(DECISIONS[:2], [1, 1], temperature=0.0) == [out[0][:1], out[1]]


def test_sampling_draws_from_the_full_distribution(make_policy):
    # transformers' global default top_k=50 must be off: a near-uniform random model over ~550 tokens then shows
    # far more than 50 distinct first tokens in 300 draws.
    policy = make_policy(max_new_tokens=1)
    short = decision("go", ())
    first = {r.token_ids[0] for r in policy.sample([short], [300])[0]}
    assert len(first) > 100


def test_same_seed_same_samples_and_global_rng_untouched(make_policy):
    a, b = make_policy(seed=3), make_policy(seed=3)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = a.sample(DECISIONS, [2, 1, 1])
    assert torch.equal(torch.get_rng_state(), before)
    assert b.sample(DECISIONS, [2, 1, 1]) == first
    assert a.sample(DECISIONS, [2, 1, 1]) != first  # the policy's stream moves on
    a.reseed(3)
    assert a.sample(DECISIONS, [2, 1, 1]) == first
    state = a.rng_state()
    again = a.sample(DECISIONS, [2, 1, 1])
    a.set_rng_state(state)
    assert a.sample(DECISIONS, [2, 1, 1]) == again
    b.reseed(4)
    assert b.sample(DECISIONS, [2, 1, 1]) != first


def test_per_input_generators_make_samples_independent_of_the_batch(make_policy):
    """Per-task random streams: an input's responses depend on its generator only, not on the other rows."""
    policy = make_policy()
    gen = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    together = policy.sample(DECISIONS, [2, 3, 1], generators=[gen(1), gen(2), gen(3)])
    alone = [policy.sample([d], [k], generators=[gen(s)])[0] for d, k, s in zip(DECISIONS, [2, 3, 1], [1, 2, 3])]
    assert [[r.token_ids for r in rs] for rs in together] == [[r.token_ids for r in rs] for rs in alone]
    for rs, ra in zip(together, alone):  # log-probabilities up to float error of the batch shape
        assert all(max(abs(x - y) for x, y in zip(r.logprobs, q.logprobs)) < 1e-4 for r, q in zip(rs, ra))
    assert policy.sample(DECISIONS[:1], [2], generators=[gen(5)]) != together[:1]
    # the draws follow the sampling distribution: many distinct first tokens (as without generators)
    short = decision("go", ())
    first = {r.token_ids[0] for r in make_policy(max_new_tokens=1).sample([short], [300], generators=[gen(0)])[0]}
    assert len(first) > 100


def test_generation_stops_at_the_end_of_turn(make_policy):
    # Teach the model to answer one prompt with a short reply; its greedy sample must stop right after
    # <|im_end|> while a longer row of the same batch runs to max_new_tokens.
    policy = make_policy(max_new_tokens=16)
    target = policy.response_for(DECISIONS[0], format_action("take coin"))
    optimizer = torch.optim.Adam(policy.parameters(), lr=5e-3)
    for _ in range(70):  # the loss falls from ~32 to ~0.14 nats
        one_step(policy, optimizer, [DECISIONS[0]], [target])
    short, other = policy.sample(DECISIONS[:2], [1, 1], temperature=0.0)
    assert short[0].token_ids == target.token_ids
    assert short[0].token_ids[-1] == policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert short[0].text == format_action("take coin")
    assert len(other[0].token_ids) <= 16


# ---------------------------------------------------------------------------------------------------- scoring
@pytest.mark.parametrize("lora_rank", [0, 4])
def test_shared_prompt_prefill_samples_what_a_prefill_per_row_samples(make_policy, lora_rank):
    """A prompt with several continuations is prefilled once (policy.share_prompts): generate() then feeds only
    the last prompt column, and the samples and their log-probabilities are those of a prefill per row."""
    samples = {}
    for share in (False, True):
        policy = make_policy(lora_rank=lora_rank, share_prompts=share)
        lengths = []
        hook = policy.base_model.model.register_forward_pre_hook(
            lambda module, args, kwargs: lengths.append(kwargs["input_ids"].shape), with_kwargs=True)
        streams = [torch.Generator().manual_seed(i) for i in range(len(DECISIONS))]
        samples[share] = (policy.sample(DECISIONS, [3, 0, 2], temperature=1.0),
                          policy.sample(DECISIONS, [2, 2, 1], temperature=0.7, generators=streams))
        hook.remove()
        if share:  # one row per prompt (a prompt without rows: none), then generate() feeds the last column only
            assert lengths[0][0] == 2 and tuple(lengths[1]) == (5, 1)
        else:  # generate()'s own prefill: every row, every column
            assert lengths[0][0] == 5 and lengths[0][1] > 1
    for alone, shared in zip(samples[False], samples[True]):
        for rows_alone, rows_shared in zip(alone, shared):
            assert [r.token_ids for r in rows_shared] == [r.token_ids for r in rows_alone]
            for a, b in zip(rows_alone, rows_shared):
                assert max((abs(x - y) for x, y in zip(a.logprobs, b.logprobs)), default=0.0) < 2e-5


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampling_logprobs_match_token_scores_with_left_and_right_padding(make_policy, temperature):
    policy = make_policy(max_new_tokens=10, score_temperature=temperature)
    n = [2, 1, 3]
    inputs, responses = flat(DECISIONS, n, policy.sample(DECISIONS, n, temperature=temperature))
    scores = policy.token_scores(inputs, responses)
    assert scores.logprobs.shape == scores.mask.shape == scores.entropy.shape == (6, max(len(r.token_ids) for r in responses))
    for j, r in enumerate(responses):
        k = len(r.token_ids)
        assert scores.mask[j].tolist() == [1.0] * k + [0.0] * (scores.mask.shape[1] - k)
        torch.testing.assert_close(scores.logprobs[j, :k].detach(), torch.tensor(r.logprobs), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def scoring_policy(tiny_tokenizer):
    return HFPolicy(tiny_qwen2(tiny_tokenizer, 5), tiny_tokenizer, seed=5)


@settings(max_examples=15)
@given(st.lists(st.tuples(st.integers(0, 2), st.lists(st.integers(3, 400), min_size=0, max_size=6)), min_size=1, max_size=4))
def test_batched_scores_equal_single_row_scores(scoring_policy, rows):
    inputs = [DECISIONS[i] for i, _ in rows]
    responses = [Response("", tuple(ids), ()) for _, ids in rows]
    with torch.no_grad():
        batch = scoring_policy.token_scores(inputs, responses)
        for j, (inp, r) in enumerate(zip(inputs, responses)):
            k = len(r.token_ids)
            assert batch.mask[j].sum() == k
            if k:
                alone = scoring_policy.token_scores([inp], [r])
                torch.testing.assert_close(batch.logprobs[j, :k], alone.logprobs[0], atol=2e-5, rtol=0)
                torch.testing.assert_close(batch.entropy[j, :k], alone.entropy[0], atol=2e-5, rtol=0)


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_shared_prompt_scoring_equals_scoring_each_row_alone(make_policy, monkeypatch, lora_rank):
    """Rows that share a prompt, scored over one pass of it (policy.share_prompts), get the
    log-probabilities, entropies, reference log-probabilities and gradients of scoring every row on its own."""
    policy = make_policy(lora_rank=lora_rank)
    inputs = [DECISIONS[i] for i in (0, 2, 0, 1, 2, 0)]
    responses = [Response("", tuple(range(3, 3 + k)), ()) for k in (5, 1, 7, 3, 4, 2)]
    passes = []
    shared_pass = HFPolicy._score_shared
    monkeypatch.setattr(HFPolicy, "_score_shared", lambda self, *a: passes.append(1) or shared_pass(self, *a))
    results = {}
    for shared in (False, True):
        policy.share_prompts = shared
        policy.model.zero_grad()
        scores = policy.token_scores(inputs, responses)
        ((scores.logprobs + scores.entropy) * scores.mask).sum().backward()
        grads = [p.grad.clone() for p in policy.parameters()]
        results[shared] = scores, grads, policy.reference_logprobs(inputs, responses)
        assert len(passes) == 2 * shared  # the shared pass ran (scores and reference) only when asked for
    (alone, alone_grads, alone_ref), (shared, shared_grads, shared_ref) = results[False], results[True]
    assert torch.equal(shared.mask, alone.mask)
    for a, b in ((shared.logprobs, alone.logprobs), (shared.entropy, alone.entropy), (shared_ref, alone_ref)):
        torch.testing.assert_close(a.detach(), b.detach(), atol=2e-5, rtol=0)
    for a, b in zip(shared_grads, alone_grads):
        torch.testing.assert_close(a, b, atol=1e-5 * float(b.abs().max()) + 1e-12, rtol=1e-4)


def test_token_logprobs_and_entropy_golden():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    target = torch.tensor([[1]])
    logp, ent = token_logprobs_and_entropy(logits, target)
    assert logp.item() == pytest.approx(-0.2876820724517809, abs=1e-6)  # log 3/4
    assert ent.item() == pytest.approx(0.5623351446188083, abs=1e-6)  # H(1/4, 3/4)
    logp, ent = token_logprobs_and_entropy(logits, target, temperature=2.0)
    assert logp.item() == pytest.approx(-0.45574639440832626, abs=1e-6)
    assert ent.item() == pytest.approx(0.6568063976894718, abs=1e-6)
    assert token_logprobs_and_entropy(logits, target, entropy=False)[1] is None


def test_chunked_scores_and_gradients_equal_the_naive_formulas(monkeypatch):
    monkeypatch.setattr(scoring_module, "_SCORE_CHUNK_ELEMENTS", 7 * 11)  # 7 positions per chunk: 3 chunks
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, requires_grad=True)
    targets = torch.randint(0, 11, (3, 5))
    logp, ent = token_logprobs_and_entropy(logits, targets, temperature=0.7)
    naive_all = torch.log_softmax(logits / 0.7, dim=-1)
    naive = naive_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    naive_ent = -(naive_all.exp() * naive_all).sum(-1)
    torch.testing.assert_close(logp, naive)
    torch.testing.assert_close(ent, naive_ent)
    weights = torch.randn(3, 5)
    grad = torch.autograd.grad((logp * weights).sum() + ent.sum(), logits)[0]
    naive_grad = torch.autograd.grad((naive * weights).sum() + naive_ent.sum(), logits)[0]
    torch.testing.assert_close(grad, naive_grad)


def test_token_scores_carry_gradients_and_reference_does_not(make_policy):
    policy = make_policy()
    responses = [policy.response_for(d, format_action("look")) for d in DECISIONS]
    scores = policy.token_scores(DECISIONS, responses)
    assert scores.logprobs.requires_grad and scores.entropy.requires_grad
    (scores.logprobs * scores.mask).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters() if p.dim() == 2)
    assert not policy.reference_logprobs(DECISIONS, responses).requires_grad


def test_scoring_edge_cases(make_policy):
    policy = make_policy()
    empty = policy.token_scores([DECISIONS[0]], [Response("", (), ())])
    assert empty.logprobs.shape == empty.mask.shape == (1, 0)
    with pytest.raises(ValueError, match="2 inputs but 1 responses"):
        policy.token_scores(DECISIONS[:2], [Response("", (5,), ())])


def test_response_for_appends_the_end_of_turn(make_policy):
    policy = make_policy()
    text = format_action("take coin")
    r = policy.response_for(DECISIONS[0], text)
    assert r.text == text and r.logprobs == ()
    assert r.token_ids[-1] == policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert policy.tokenizer.decode(r.token_ids[:-1]) == text


# ---------------------------------------------------------------------------------------------------- persistence
def trained(policy, steps=1):
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    responses = [policy.response_for(d, format_action("go north")) for d in DECISIONS]
    for _ in range(steps):
        one_step(policy, optimizer, DECISIONS, responses)
    return responses


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_save_load_round_trip(make_policy, tmp_path, lora_rank):
    policy = make_policy(seed=1, lora_rank=lora_rank)
    responses = trained(policy)
    policy.save(tmp_path / "p")
    want = policy.token_scores(DECISIONS, responses).logprobs.detach()
    want_ref = policy.reference_logprobs(DECISIONS, responses)
    assert not torch.allclose(want, want_ref)
    # compact: the untouched reference (frozen copy / LoRA base) is fingerprinted, not stored
    stored = {p.name for p in (tmp_path / "p").iterdir()}
    assert "reference.safetensors" not in stored
    assert ("adapter.safetensors" in stored) == (lora_rank > 0) and ("weights.safetensors" in stored) == (lora_rank == 0)

    other = make_policy(seed=1, lora_rank=lora_rank)  # built from the same source, as the trainer does
    other.reseed(7)
    other.load(tmp_path / "p")
    torch.testing.assert_close(other.token_scores(DECISIONS, responses).logprobs.detach(), want, atol=1e-6, rtol=0)
    torch.testing.assert_close(other.reference_logprobs(DECISIONS, responses), want_ref, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="different one"):
        make_policy(seed=2, lora_rank=lora_rank).load(tmp_path / "p")
    with pytest.raises(ValueError, match="compact checkpoint"):
        HFPolicy.from_directory(tmp_path / "p")

    # after freeze_reference the checkpoint carries its reference and rebuilds from the directory alone
    policy.freeze_reference()
    responses = trained(policy)
    policy.save(tmp_path / "q")
    want = policy.token_scores(DECISIONS, responses).logprobs.detach()
    want_ref = policy.reference_logprobs(DECISIONS, responses)
    stranger = make_policy(seed=3, lora_rank=lora_rank)
    stranger.load(tmp_path / "q")
    rebuilt = HFPolicy.from_directory(tmp_path / "q")
    for p in (stranger, rebuilt):
        torch.testing.assert_close(p.token_scores(DECISIONS, responses).logprobs.detach(), want, atol=1e-6, rtol=0)
        torch.testing.assert_close(p.reference_logprobs(DECISIONS, responses), want_ref, atol=1e-6, rtol=0)
    assert rebuilt.lora == policy.lora and rebuilt.max_new_tokens == policy.max_new_tokens


def test_load_rejects_foreign_and_damaged_directories_without_changing_weights(make_policy, tmp_path):
    policy = make_policy()
    responses = [policy.response_for(DECISIONS[0], "look")]
    before = policy.token_scores(DECISIONS[:1], responses).logprobs.detach()

    with pytest.raises(ValueError, match="no such policy directory"):
        policy.load(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not an HF policy directory"):
        policy.load(tmp_path / "empty")
    TabularPolicy().save(tmp_path / "tabular")
    with pytest.raises(ValueError, match="not an HF policy directory"):
        policy.load(tmp_path / "tabular")

    make_policy(seed=1).save(tmp_path / "good")
    meta = tmp_path / "good" / "spo3_hf_policy.json"
    meta_text = meta.read_text()
    meta.write_text(meta_text[:20])
    with pytest.raises(ValueError, match="spo3_hf_policy.json: damaged"):
        policy.load(tmp_path / "good")
    meta.write_text(json.dumps({**json.loads(meta_text), "format": "something.else"}))
    with pytest.raises(ValueError, match="not a spo3.hf_policy version 1 file"):
        policy.load(tmp_path / "good")
    meta.write_text(meta_text)

    weights = tmp_path / "good" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="weights.safetensors: unreadable weights"):
        policy.load(tmp_path / "good")

    make_policy(seed=1, lora_rank=2).save(tmp_path / "lora")
    with pytest.raises(ValueError, match="LoRA settings"):
        policy.load(tmp_path / "lora")

    tokenizer = policy.tokenizer
    wider = HFPolicy(tiny_qwen2(tokenizer, 0, hidden_size=64, intermediate_size=128), tokenizer)
    wider.save(tmp_path / "wider")
    with pytest.raises(ValueError, match="does not fit this model"):
        policy.load(tmp_path / "wider")

    torch.testing.assert_close(policy.token_scores(DECISIONS[:1], responses).logprobs.detach(), before)


# ---------------------------------------------------------------------------------------------------- LoRA, reference
def test_lora_trains_only_the_adapter_and_its_reference_is_the_base_model(make_policy):
    base = make_policy(seed=0)
    policy = make_policy(seed=0, lora_rank=4)
    trainable = [name for name, p in policy.model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    assert {name.split(".lora_")[0].rpartition(".")[2] for name in trainable} == set(policy.lora.targets)
    assert set(policy.lora.targets) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

    responses = trained(policy, steps=3)
    base_logprobs = base.token_scores(DECISIONS, responses).logprobs.detach()
    torch.testing.assert_close(policy.reference_logprobs(DECISIONS, responses), base_logprobs, atol=1e-6, rtol=0)
    assert not torch.allclose(policy.token_scores(DECISIONS, responses).logprobs.detach(), base_logprobs, atol=1e-3)


def test_lora_rejects_a_model_without_the_target_projections(make_policy):
    with pytest.raises(ValueError, match="no linear layer named any of"):
        make_policy(lora_rank=2, lora_targets=("c_attn",))


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_freeze_reference_makes_the_current_policy_the_reference(make_policy, lora_rank):
    policy = make_policy(seed=0, lora_rank=lora_rank)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    params_before = [id(p) for p in policy.parameters()]
    responses = [policy.response_for(d, format_action("go north")) for d in DECISIONS]
    for _ in range(3):
        one_step(policy, optimizer, DECISIONS, responses)
    current = policy.token_scores(DECISIONS, responses).logprobs.detach()
    assert not torch.allclose(policy.reference_logprobs(DECISIONS, responses), current, atol=1e-3)

    policy.freeze_reference()
    torch.testing.assert_close(policy.token_scores(DECISIONS, responses).logprobs.detach(), current, atol=1e-5, rtol=0)
    torch.testing.assert_close(policy.reference_logprobs(DECISIONS, responses), current, atol=1e-5, rtol=0)

    # The optimiser built before the freeze still drives the policy; the reference stays put.
    assert [id(p) for p in policy.parameters()] == params_before
    for _ in range(3):
        one_step(policy, optimizer, DECISIONS, responses)
    assert not torch.allclose(policy.token_scores(DECISIONS, responses).logprobs.detach(), current, atol=1e-3)
    torch.testing.assert_close(policy.reference_logprobs(DECISIONS, responses), current, atol=1e-5, rtol=0)


def test_train_mode_switches_the_model(make_policy):
    policy = make_policy()
    assert not policy.model.training
    policy.train_mode(True)
    assert policy.model.training
    policy.train_mode(False)
    assert not policy.model.training


@pytest.mark.parametrize("lora_rank", [0, 3])
def test_inference_weights_are_a_plain_model_of_the_current_policy(make_policy, tiny_tokenizer, lora_rank):
    policy = make_policy(seed=0, lora_rank=lora_rank)
    responses = trained(policy, steps=2)
    plain = tiny_qwen2(tiny_tokenizer, 7)
    weights = dict(policy.inference_weights())
    assert set(weights) == set(plain.state_dict())
    plain.load_state_dict(weights)
    copy = HFPolicy(plain, tiny_tokenizer)
    torch.testing.assert_close(
        copy.token_scores(DECISIONS, responses).logprobs.detach(),
        policy.token_scores(DECISIONS, responses).logprobs.detach(), atol=1e-5, rtol=0,
    )


def test_inference_weights_leave_grad_mode_alone_while_consumed(make_policy):
    policy = make_policy(lora_rank=2)
    weights = policy.inference_weights()
    next(weights)
    assert torch.is_grad_enabled()
    for _, tensor in weights:
        assert not tensor.requires_grad


# ---------------------------------------------------------------------------------------------------- building
def test_build_policy_makes_a_deterministic_tiny_hf_policy():
    cfg = PolicyConfig(kind="hf", model="tiny", lora_rank=2, max_new_tokens=5)
    a = build_policy(cfg, seed=0, corpus=CORPUS)
    b = build_policy(cfg, seed=0, corpus=CORPUS)
    assert isinstance(a, HFPolicy) and a.lora is not None and a.max_new_tokens == 5
    assert a.tokenizer.backend_tokenizer.to_str() == b.tokenizer.backend_tokenizer.to_str()
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
    assert a.sample([decision(CORPUS[0])], [2]) == b.sample([decision(CORPUS[0])], [2])
    c = build_policy(PolicyConfig(kind="hf", model="tiny"), seed=1, corpus=CORPUS)
    assert not torch.equal(c.model.get_input_embeddings().weight, a.base_model.get_input_embeddings().weight)



# ---------------------------------------------------------------------------------------- recorded log-probs
@pytest.mark.parametrize("temperature, score_temperature", [(1.0, 1.0), (0.7, 0.7), (0.0, 1.0)])
@pytest.mark.parametrize("lora_rank", [0, 4])
def test_recorded_logprobs_equal_a_fresh_forward_pass_until_the_weights_change(
    make_policy, temperature, score_temperature, lora_rank
):
    policy = make_policy(max_new_tokens=10, score_temperature=score_temperature, lora_rank=lora_rank)
    n = [2, 1, 3]
    inputs, responses = flat(DECISIONS, n, policy.sample(DECISIONS, n, temperature=temperature))
    assert all(r.weights_version == policy.weights_version() for r in responses)
    recorded = policy.recorded_logprobs(responses)
    with torch.no_grad():
        fresh = policy.token_scores(inputs, responses, entropy=False)
    assert recorded is not None and recorded.shape == fresh.logprobs.shape
    torch.testing.assert_close(recorded, fresh.logprobs * fresh.mask, atol=1e-5, rtol=0)

    optimizer = torch.optim.SGD(list(policy.parameters()), lr=1e-3)
    one_step(policy, optimizer, inputs[:1], responses[:1])
    assert policy.recorded_logprobs(responses) is None  # the weights moved: the old log-probs must be recomputed
    fresh_responses = [rs[0] for rs in policy.sample(DECISIONS, [1, 1, 1], temperature=temperature)]
    assert policy.recorded_logprobs(fresh_responses) is not None


def test_recorded_logprobs_only_for_the_scoring_distribution_and_current_weights(make_policy, tmp_path):
    policy = make_policy(max_new_tokens=6, score_temperature=1.0)
    (at_other_temperature,) = policy.sample(DECISIONS[:1], [2], temperature=0.5)  # log-probs of softmax(z / 0.5)
    assert all(r.weights_version is None for r in at_other_temperature)
    assert policy.recorded_logprobs(at_other_temperature) is None
    (replies,) = policy.sample(DECISIONS[:1], [2], temperature=1.0)
    assert policy.recorded_logprobs(replies) is not None
    assert policy.recorded_logprobs(list(replies) + [policy.response_for(DECISIONS[0], "look")]) is None  # no log-probs
    policy.freeze_reference()  # full fine-tuning: only the reference copy changes, so they stay valid
    assert policy.recorded_logprobs(replies) is not None
    policy.save(tmp_path)
    policy.load(tmp_path)  # same weights, but a load may bring any: never trusted across it
    assert policy.recorded_logprobs(replies) is None


def test_recorded_logprobs_never_come_from_an_external_engine(make_policy):
    class Engine(GenerationEngine):  # continues every prompt with the same tokens and made-up log-probs
        def generate(self, prompts, n, spec):
            return [[Generated((5, 6, spec.stop_ids[0]), (-0.1, -0.2, -0.3))] * k for k in n]

        def load_weights(self, weights):
            list(weights)

    policy = make_policy(engine=Engine())
    (replies,) = policy.sample(DECISIONS[:1], [2], temperature=1.0)
    assert replies[0].logprobs == (-0.1, -0.2, -0.3) and replies[0].weights_version is None
    assert policy.recorded_logprobs(replies) is None


def test_lora_freeze_reference_invalidates_recorded_logprobs(make_policy):
    policy = make_policy(max_new_tokens=6, lora_rank=4)
    (replies,) = policy.sample(DECISIONS[:1], [2], temperature=1.0)
    policy.freeze_reference()  # folds the adapter into the base weights and re-initialises it (weights touched)
    assert policy.recorded_logprobs(replies) is None
