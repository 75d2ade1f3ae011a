"""The text-only reasoner behind a real llama.cpp server (llama-cpp-python), serving Gemma 3 270M Q4_K_M.

The GGUF is a *base* model (not instruction-tuned): its answers are poor, so these tests prove the
plumbing (prompts reach the model, text and log-probabilities come back, the `reason` node with
`model: text` answers from them), not answer quality. llama-cpp-python computes log-probabilities by
sorting the whole 262k vocabulary in Python for every generated token, so requests that ask for them
generate one token only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from foveate.graphs.services import Services
from foveate.graphs.state import RunInput
from foveate.graphs.workflow import Workflow
from foveate.vlm import OpenAIVLM, TokenBudget, TokenLedger, TransformersVLM, VLMRequest
from serving.conftest import Server, scene

TEXT_REASONING = """\
name: text-reasoning
description: the VLM looks (perceive), a text-only model answers from what was noted
start: perceive
nodes:
  perceive:
    uses: perceive
  reason:
    uses: reason
    params: {model: text}
  abstain:
    uses: abstain
edges:
  - {from: perceive, to: reason}
  - {from: reason, to: abstain}
  - {from: abstain, to: END}
"""


@pytest.fixture(scope="module")
def reasoner(llama_server: Server) -> OpenAIVLM:
    # a base model rarely puts "Yes" / "No" among its top 20 first tokens after a long prompt: option
    # scoring reads the top 1000 (cheap here: llama-cpp-python sorts the whole vocabulary anyway)
    return OpenAIVLM(llama_server.url, timeout=300, max_retries=0, score_top_logprobs=1000)


def test_llama_server_lists_gemma(reasoner: OpenAIVLM) -> None:
    assert reasoner.model_id == "gemma-3-270m"


def test_generate_reaches_the_model(reasoner: OpenAIVLM) -> None:
    prompt = "What colour is the sky on a clear day? Answer in one word."
    ledger = TokenLedger(TokenBudget(max_total_tokens=1_000))
    result = reasoner.generate(VLMRequest.from_prompt(prompt, max_new_tokens=8), ledger)
    print(f"\ngemma: {result.text!r} ({result.usage})")
    assert result.text
    assert result.usage.text_tokens >= 15  # the whole prompt went in (an empty turn would be ~7 tokens)
    assert 1 <= result.usage.generated_tokens <= 8
    assert ledger.spent.total == result.usage.total
    # the free-text gate's confidence: the server returns each token's log-probability when asked
    print(f"gemma token log-probabilities: {result.token_logprobs}")
    assert result.token_logprobs is not None and len(result.token_logprobs) >= 1
    assert all(v <= 0.0 for v in result.token_logprobs) and result.confidence is not None


def test_yes_probability_from_llama_logprobs(reasoner: OpenAIVLM) -> None:
    result = reasoner.yes_probability(VLMRequest.from_prompt("Is the sky blue? Answer Yes or No."))
    print(f"\nP(Yes) {result.p_yes:.3f} (log p Yes {result.logprob_yes:.2f}, No {result.logprob_no:.2f})")
    assert 0.0 < result.p_yes < 1.0
    assert result.logprob_yes != result.logprob_no  # both were among the returned top tokens


@pytest.mark.parametrize(("options", "kind"), [(["Yes", "No"], "scored from logprobs"), (None, "generated")])
def test_reason_node_with_model_text_answers(
    reasoner: OpenAIVLM, local: TransformersVLM, tmp_path: Path, options: list[str] | None, kind: str
) -> None:
    flow_file = tmp_path / "text-reasoning.yaml"
    flow_file.write_text(TEXT_REASONING)
    image, item = scene(0)
    shape = item.targets[0].shape
    question = f"Is there a {shape} in the image? Answer Yes or No."
    runtime = Services(vlm=local, reasoner=reasoner)
    flow = Workflow(flow_file, runtime, image_cache=tmp_path)
    budget = TokenBudget(max_total_tokens=4_000)
    out = flow.run(RunInput(question=question, image=image, options=options or [], budget=budget))
    said = [f"{m.get('node')}: {m.get('text')}" for m in out.messages]
    print(f"\n{kind}: answer {out.answer!r} scores {out.option_scores}\n  " + "\n  ".join(said))
    assert out.status == "done" and out.answer
    assert any(m.get("node") == "reason" for m in out.messages)
    if options:
        assert out.answer in options
        assert sum(out.option_scores) == pytest.approx(1.0)


def test_a_prompt_past_the_servers_window_is_a_context_length_error(reasoner: OpenAIVLM) -> None:
    """The server runs with --n_ctx 2048; llama-cpp-python refuses a longer prompt in OpenAI's words."""
    from foveate.errors import ContextLengthError

    ledger = TokenLedger(TokenBudget())
    with pytest.raises(ContextLengthError, match="context"):
        reasoner.generate(VLMRequest.from_prompt("What colour is the sky? " * 600, max_new_tokens=4), ledger)
    assert ledger.spent.total == 0
