"""A local VLM through Hugging Face transformers (LLaVA, Qwen2-VL / Qwen2.5-VL, Idefics3 / SmolVLM).

Loads with ``AutoProcessor`` + ``AutoModelForImageTextToText`` and renders prompts with
the processor's own chat template, so any model of a supported family works without
per-model prompt code. All three operations read real logits:

- ``score`` reads the log-probability of each option's tokens. When every option is one
  token it needs a single forward pass of the prompt; otherwise all options go through one
  right-padded batch (right padding keeps every row's positions identical to an unpadded run).
- ``yes_probability`` sums the next-token probability of the single-token spellings of
  "Yes" and of "No" and normalises over the two.

Budgets: images are resized to the per-image visual-token cap *before* the processor runs,
and the exact token count of the processed prompt is held on the ledger before the model
is called, so ``BudgetExceeded`` never costs a forward pass.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from foveate.errors import ModelLoadError, UnsupportedRequestError
from foveate.tools.images import resize_to
from foveate.vlm.base import NO_WORDS, YES_WORDS, BaseVLM, ledger_for
from foveate.vlm.budget import TokenLedger
from foveate.vlm.loading import hub_load_error, resolve_model_source
from foveate.vlm.types import ImagePart, ScoreResult, TokenUsage, VLMRequest, VLMResult, YesNoResult
from foveate.vlm.visual_tokens import VisualTokenSpec, spec_from_processor

logger = logging.getLogger(__name__)


@dataclass
class _Encoded:
    """A processed batch and what it will cost."""

    inputs: dict[str, Any]
    lengths: list[int]  # valid (non-pad) tokens per row
    visual: list[int]  # image-placeholder tokens per row

    @property
    def usage(self) -> TokenUsage:
        return TokenUsage(
            visual_tokens=sum(self.visual),
            text_tokens=sum(self.lengths) - sum(self.visual),
            forward_passes=1,
        )


def default_device() -> str:
    """CUDA when present, else CPU (Apple's MPS is opt-in: its kernels still differ)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class TransformersVLM(BaseVLM):
    """A VLM running in this process.

    ``model`` is a local folder or a hub id (hub only where the machine has a network or a
    cache). ``max_batch_size`` bounds how many sequences share one forward pass.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        max_batch_size: int = 16,
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        source = resolve_model_source(model)
        self.model_id = source
        self.device = torch.device(device or default_device())
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.max_batch_size = max_batch_size
        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        try:
            self.processor = AutoProcessor.from_pretrained(source, **kwargs)
            if attn_implementation:
                kwargs["attn_implementation"] = attn_implementation
            model_obj: Any = AutoModelForImageTextToText.from_pretrained(source, dtype=self.dtype, **kwargs)
        except ModelLoadError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            if os.path.isdir(source):
                raise ModelLoadError(f"cannot load model folder {source}: {exc}") from exc
            raise hub_load_error(source, exc) from exc
        self.model: Any = model_obj.to(self.device)
        self.model.eval()
        self.config = self.model.config
        self.family: str = str(self.config.model_type)
        self.tokenizer: Any = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ModelLoadError(f"model {source} has no tokenizer in its processor")
        self.image_token_id = self._find_image_token_id()
        try:
            self.token_spec: VisualTokenSpec | None = spec_from_processor(self.processor, self.config)
        except ValueError as exc:
            logger.warning("visual-token counts cannot be predicted for %s: %s", source, exc)
            self.token_spec = None
        self._yes_ids = self._single_token_ids(YES_WORDS)
        self._no_ids = self._single_token_ids(NO_WORDS)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ setup helpers
    def _find_image_token_id(self) -> int:
        for holder, name in (
            (self.processor, "image_token_id"),
            (self.config, "image_token_id"),
            (self.config, "image_token_index"),
        ):
            value = getattr(holder, name, None)
            if isinstance(value, int):
                return value
        raise ModelLoadError(f"cannot find the image token of model {self.model_id}")

    def _single_token_ids(self, words: Sequence[str]) -> list[int]:
        """Ids of the single-token spellings of a word ("Yes", " Yes", "yes", ...)."""
        unk = self.tokenizer.unk_token_id
        ids: set[int] = set()
        for word in words:
            for variant in (word, " " + word):
                encoded = self.tokenizer.encode(variant, add_special_tokens=False)
                if len(encoded) == 1 and encoded[0] != unk:
                    decoded = self.tokenizer.decode(encoded).strip()
                    if decoded == word:
                        ids.add(int(encoded[0]))
        return sorted(ids)

    # ------------------------------------------------------------------ prompt building
    def _budget_cap(self, request: VLMRequest, ledger: TokenLedger) -> int | None:
        if request.budget is not None and request.budget.max_visual_tokens_per_image is not None:
            return request.budget.max_visual_tokens_per_image
        return ledger.budget.max_visual_tokens_per_image

    def fit_images(self, request: VLMRequest, cap: int | None) -> VLMRequest:
        """Shrink each image (aspect ratio kept) so it yields at most ``cap`` visual tokens."""
        if cap is None or not request.images:
            return request
        if self.token_spec is None:
            raise UnsupportedRequestError(
                f"a per-image visual-token cap needs a known processor family; {self.family} is not one"
            )
        resized = []
        for img in request.images:
            height, width = self.token_spec.fit(img.height, img.width, cap)
            resized.append(resize_to(img, height, width))
        return request.with_images(resized)

    def render(self, request: VLMRequest) -> str:
        """The prompt text from the processor's chat template, ending with the assistant turn."""
        conversation = [
            {
                "role": m.role,
                "content": [
                    {"type": "image"} if isinstance(p, ImagePart) else {"type": "text", "text": p.text}
                    for p in m.content
                ],
            }
            for m in request.messages
        ]
        text = self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return str(text)

    def _encode(self, texts: list[str], images: list[list[Image.Image]], padding_side: str) -> _Encoded:
        kwargs: dict[str, Any] = {
            "text": texts,
            "return_tensors": "pt",
            "padding": True,
            "padding_side": padding_side,
        }
        if any(images):
            kwargs["images"] = images
        batch = self.processor(**kwargs)
        ids = batch["input_ids"]
        mask = batch.get("attention_mask", torch.ones_like(ids))
        lengths = [int(x) for x in mask.sum(dim=1)]
        visual = [int(x) for x in ((ids == self.image_token_id) & mask.bool()).sum(dim=1)]
        return _Encoded(inputs=dict(batch), lengths=lengths, visual=visual)

    def _to_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        moved: dict[str, Any] = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.dtype)
            moved[key] = value
        return moved

    @torch.inference_mode()
    def _logits(self, inputs: dict[str, Any], keep: int | torch.Tensor) -> torch.Tensor:
        out = self.model(**self._to_device(inputs), logits_to_keep=keep, use_cache=False)
        return out.logits.float()

    # ------------------------------------------------------------------ operations
    # Each operation holds ``self._lock`` from encoding to the last forward pass: the processor's
    # tokenizer keeps padding state, and one model should not run two forward passes at once.
    def generate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult:
        ledger = ledger_for(request, ledger)
        request = self.fit_images(request, self._budget_cap(request, ledger))
        opts = request.options
        with self._lock:
            enc = self._encode([self.render(request)], [request.images], padding_side="left")
            with ledger.hold(enc.lengths[0] + opts.max_new_tokens, "generate") as held:
                start = time.perf_counter()
                gen_kwargs: dict[str, Any] = {
                    "max_new_tokens": opts.max_new_tokens,
                    "do_sample": opts.temperature > 0,
                    "pad_token_id": self.tokenizer.pad_token_id,
                }
                if opts.temperature > 0:
                    gen_kwargs.update(temperature=opts.temperature, top_p=opts.top_p)
                    if opts.seed is not None:
                        torch.manual_seed(opts.seed)
                else:
                    gen_kwargs.update(temperature=None, top_p=None, top_k=None)
                with torch.inference_mode():
                    out = self.model.generate(**self._to_device(enc.inputs), **gen_kwargs)
                latency = time.perf_counter() - start
                kept, finish = self._until_eos(out[0, enc.inputs["input_ids"].shape[1] :].tolist())
                usage = enc.usage + TokenUsage(generated_tokens=len(kept))
                held.commit(usage)
        eos = self._eos_ids()
        text = self.tokenizer.decode([t for t in kept if t not in eos], skip_special_tokens=True)
        for stop in opts.stop:
            cut = text.find(stop)
            if cut >= 0:
                text, finish = text[:cut], "stop"
        return VLMResult(
            text=text.strip(), finish_reason=finish, usage=usage, latency_s=latency, model_id=self.model_id
        )

    def _until_eos(self, tokens: list[int]) -> tuple[list[int], str]:
        eos = self._eos_ids()
        for i, tok in enumerate(tokens):
            if tok in eos:
                return tokens[: i + 1], "stop"
        return tokens, "length"

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for holder in (getattr(self.model, "generation_config", None), self.config, self.tokenizer):
            value = getattr(holder, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids

    @staticmethod
    def spellings(option: str) -> list[str]:
        """How an answer may follow the generation prompt: as written, and after a space.

        Chat templates differ: Qwen's ends with a newline and answers start bare, LLaVA's ends with
        ``ASSISTANT:`` and Llama tokenizers emit the answer with a leading space. An option is scored
        by its most likely spelling, so the option that greedy decoding would emit ranks first.
        """
        return [option] if option[:1].isspace() else [option, " " + option]

    def score(
        self, request: VLMRequest, options: Sequence[str], ledger: TokenLedger | None = None
    ) -> ScoreResult:
        """Log-probability of each option (its most likely spelling), from real logits.

        Single-token spellings need one forward pass of the prompt; otherwise every spelling of
        every option goes through right-padded batches, all held on the ledger before the first.
        """
        if not options:
            raise UnsupportedRequestError("score needs at least one option")
        ledger = ledger_for(request, ledger)
        request = self.fit_images(request, self._budget_cap(request, ledger))
        prompt = self.render(request)
        variants = [self.spellings(o) for o in options]
        flat = [v for vs in variants for v in vs]
        with self._lock:
            start = time.perf_counter()
            variant_ids = self._option_token_ids(prompt, flat)
            if all(len(ids) == 1 for ids in variant_ids):
                enc = self._encode([prompt], [request.images], padding_side="right")
                with ledger.hold(enc.lengths[0], "score") as held:
                    logp = torch.log_softmax(self._logits(enc.inputs, keep=1)[0, -1], dim=-1)
                    held.commit(enc.usage)
                flat_scores = [float(logp[ids[0]]) for ids in variant_ids]
                usage = enc.usage
            else:
                flat_scores, usage = self._score_batched(prompt, request.images, flat, ledger)
        scores, k = [], 0
        for vs in variants:
            scores.append(max(flat_scores[k : k + len(vs)]))
            k += len(vs)
        return ScoreResult(
            options=list(options),
            logprobs=scores,
            usage=usage,
            latency_s=time.perf_counter() - start,
            model_id=self.model_id,
        )

    def _option_token_ids(self, prompt: str, options: Sequence[str]) -> list[list[int]]:
        """Each option's tokens as they follow the prompt (tokenised in context, not alone)."""
        text_prompt = self.tokenizer.encode(prompt, add_special_tokens=False)
        result = []
        for option in options:
            full = self.tokenizer.encode(prompt + option, add_special_tokens=False)
            common = 0
            while common < min(len(full), len(text_prompt)) and full[common] == text_prompt[common]:
                common += 1
            ids = full[common:]
            if common < len(text_prompt) or not ids:
                raise UnsupportedRequestError(
                    f"option {option!r} merges with the end of the prompt when tokenised; "
                    "use options that start a new token (e.g. 'A', 'B', ...)"
                )
            result.append(ids)
        return result

    def _score_batched(
        self, prompt: str, images: list[Image.Image], options: Sequence[str], ledger: TokenLedger
    ) -> tuple[list[float], TokenUsage]:
        prompt_ids = self.processor(text=[prompt], images=[images] if images else None, return_tensors="pt")[
            "input_ids"
        ][0]
        prefix = len(prompt_ids)
        chunks = [
            list(options[lo : lo + self.max_batch_size]) for lo in range(0, len(options), self.max_batch_size)
        ]
        encs = [self._encode([prompt + o for o in chunk], [images] * len(chunk), "right") for chunk in chunks]
        usage = TokenUsage.sum(enc.usage for enc in encs)
        scores: list[float] = []
        with ledger.hold(usage.total, "score") as held:
            for enc in encs:
                ids = enc.inputs["input_ids"]
                if not bool((ids[:, :prefix] == prompt_ids).all()):
                    raise UnsupportedRequestError("an option changed how the prompt itself is tokenised")
                keep = torch.arange(prefix - 1, ids.shape[1] - 1)
                logp = torch.log_softmax(self._logits(enc.inputs, keep=keep), dim=-1)
                for row, length in enumerate(enc.lengths):
                    targets = ids[row, prefix:length]
                    picked = logp[row, : length - prefix].gather(-1, targets.unsqueeze(-1))
                    scores.append(float(picked.sum()))
            held.commit(usage)
        return scores, usage

    def yes_probability(self, request: VLMRequest, ledger: TokenLedger | None = None) -> YesNoResult:
        return self.yes_probabilities([request], ledger)[0]

    def yes_probabilities(
        self, requests: Sequence[VLMRequest], ledger: TokenLedger | None = None
    ) -> list[YesNoResult]:
        """All probes in as few forward passes as ``max_batch_size`` allows, all held before the first."""
        if not self._yes_ids or not self._no_ids:
            raise UnsupportedRequestError(
                f"the tokenizer of {self.model_id} has no single token for Yes or No; "
                "yes_probability needs both"
            )
        ledgers = [ledger_for(r, ledger) for r in requests]
        fitted = [
            self.fit_images(r, self._budget_cap(r, lg)) for r, lg in zip(requests, ledgers, strict=True)
        ]
        size = self.max_batch_size
        results: list[YesNoResult] = []
        with self._lock, ExitStack() as stack:
            encs = [
                self._encode([self.render(r) for r in chunk], [r.images for r in chunk], "right")
                for chunk in (fitted[lo : lo + size] for lo in range(0, len(fitted), size))
            ]
            lengths = [n for enc in encs for n in enc.lengths]
            # A shared ledger holds the whole batch; without one each probe has its own budget.
            if ledger is not None:
                holds = [stack.enter_context(ledger.hold(sum(lengths), "yes_probability"))]
            else:
                holds = [
                    stack.enter_context(own.hold(n, "yes_probability"))
                    for own, n in zip(ledgers, lengths, strict=True)
                ]
            yes_idx, no_idx = torch.tensor(self._yes_ids), torch.tensor(self._no_ids)
            for enc in encs:
                start = time.perf_counter()
                last = torch.tensor([n - 1 for n in enc.lengths])
                positions = torch.unique(last)
                logp = torch.log_softmax(self._logits(enc.inputs, keep=positions), dim=-1)
                column = torch.searchsorted(positions, last)
                latency = (time.perf_counter() - start) / len(enc.lengths)
                for row in range(len(enc.lengths)):
                    dist = logp[row, column[row]]
                    lp_yes = float(torch.logsumexp(dist[yes_idx], dim=0))
                    lp_no = float(torch.logsumexp(dist[no_idx], dim=0))
                    usage = TokenUsage(
                        visual_tokens=enc.visual[row],
                        text_tokens=enc.lengths[row] - enc.visual[row],
                        forward_passes=1 if row == 0 else 0,
                    )
                    results.append(
                        YesNoResult.from_logprobs(
                            lp_yes, lp_no, usage=usage, latency_s=latency, model_id=self.model_id
                        )
                    )
            if ledger is not None:
                holds[0].commit(TokenUsage.sum(r.usage for r in results))
            else:
                for held, r in zip(holds, results, strict=True):
                    held.commit(r.usage)
        return results
