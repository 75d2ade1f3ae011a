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
is called, so ``BudgetExceeded`` never costs a forward pass. A budget with ``prune`` set runs
the language model on fewer visual tokens (``foveate.vlm.pruning``); the ledger then holds and
charges the visual tokens the language model really computes.
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

import numpy as np
import torch
from PIL import Image

from foveate.errors import ModelLoadError, UnsupportedRequestError
from foveate.tools.images import resize_to
from foveate.vlm.base import NO_WORDS, YES_WORDS, BaseVLM, ledger_for
from foveate.vlm.budget import TokenLedger
from foveate.vlm.loading import hub_load_error, resolve_model_source
from foveate.vlm.pruning import PruneSpec, VisualTokenPruner
from foveate.vlm.types import (
    GenerationOptions,
    ImagePart,
    RelevanceMap,
    ScoreResult,
    TokenUsage,
    VLMRequest,
    VLMResult,
    YesNoResult,
)
from foveate.vlm.visual_tokens import VisualTokenSpec, spec_from_processor

logger = logging.getLogger(__name__)


@dataclass
class _Encoded:
    """A processed batch and what it will cost."""

    inputs: dict[str, Any]
    lengths: list[int]  # valid (non-pad) tokens per row
    visual: list[int]  # image-placeholder tokens per row
    computed: list[int] | None = None  # visual tokens the LM computes per row when pruning, else None

    @property
    def charged_visual(self) -> list[int]:
        return self.visual if self.computed is None else self.computed

    @property
    def charged_lengths(self) -> list[int]:
        """Tokens charged per row: text tokens plus the visual tokens really computed."""
        return [n - v + c for n, v, c in zip(self.lengths, self.visual, self.charged_visual, strict=True)]

    def row_usage(self, row: int, forward_passes: int) -> TokenUsage:
        return TokenUsage(
            visual_tokens=self.charged_visual[row],
            text_tokens=self.lengths[row] - self.visual[row],
            forward_passes=forward_passes,
        )

    @property
    def usage(self) -> TokenUsage:
        return TokenUsage(
            visual_tokens=sum(self.charged_visual),
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
        self.pruner = VisualTokenPruner(self.model, self.image_token_id, self.model_id)
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

    def _prune_spec(self, request: VLMRequest, ledger: TokenLedger) -> PruneSpec | None:
        """The request's pruning settings (its own budget's when it sets ``prune``, else the ledger's),
        checked against this model before any work."""
        budget = request.budget if request.budget is not None and request.budget.prune else ledger.budget
        spec = PruneSpec.from_budget(budget)
        if spec is not None:
            self.pruner.check(spec)
        return spec

    def _plan(self, enc: _Encoded, images: Sequence[int], spec: PruneSpec | None) -> _Encoded:
        """Record on ``enc`` the visual tokens the LM will compute under ``spec`` (held before the call)."""
        if spec is not None:
            enc.computed = [
                spec.computed_visual(v, n, self.pruner.depth) for v, n in zip(enc.visual, images, strict=True)
            ]
        return enc

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
    def _logits(self, enc: _Encoded, keep: int | torch.Tensor, spec: PruneSpec | None = None) -> torch.Tensor:
        if spec is not None:
            logits, state = self.pruner.logits(self._to_device(enc.inputs), spec, keep)
            enc.computed = state.computed_visual
            return logits
        out = self.model(**self._to_device(enc.inputs), logits_to_keep=keep, use_cache=False)
        return out.logits.float()

    # ------------------------------------------------------------------ operations
    # Each operation holds ``self._lock`` from encoding to the last forward pass: the processor's
    # tokenizer keeps padding state, and one model should not run two forward passes at once.
    def generate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult:
        """Free text, by transformers' ``generate``; with pruning, by ``VisualTokenPruner.generate`` (its
        own cached loop: greedy, or temperature / top-p sampling; the model's other generation-config
        processors, e.g. a repetition penalty, are not applied there)."""
        ledger = ledger_for(request, ledger)
        request = self.fit_images(request, self._budget_cap(request, ledger))
        spec = self._prune_spec(request, ledger)
        opts = request.options
        with self._lock:
            enc = self._encode([self.render(request)], [request.images], padding_side="left")
            self._plan(enc, [len(request.images)], spec)
            with ledger.hold(enc.charged_lengths[0] + opts.max_new_tokens, "generate") as held:
                start = time.perf_counter()
                if spec is not None:
                    if opts.temperature > 0 and opts.seed is not None:
                        torch.manual_seed(opts.seed)
                    tokens, state = self.pruner.generate(
                        self._to_device(enc.inputs),
                        spec,
                        max_new_tokens=opts.max_new_tokens,
                        eos=self._eos_ids(),
                        temperature=opts.temperature,
                        top_p=opts.top_p,
                    )
                    enc.computed = state.computed_visual
                    generated = torch.tensor([tokens])
                else:
                    generated = self._generate_stock(enc, opts)
                latency = time.perf_counter() - start
                kept, finish = self._until_eos(generated[0].tolist())
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

    def _generate_stock(self, enc: _Encoded, opts: GenerationOptions) -> torch.Tensor:
        """transformers' ``generate``; returns only the new tokens."""
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
        return out[:, enc.inputs["input_ids"].shape[1] :].cpu()

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
        spec = self._prune_spec(request, ledger)
        prompt = self.render(request)
        variants = [self.spellings(o) for o in options]
        flat = [v for vs in variants for v in vs]
        with self._lock:
            start = time.perf_counter()
            variant_ids = self._option_token_ids(prompt, flat)
            if all(len(ids) == 1 for ids in variant_ids):
                enc = self._encode([prompt], [request.images], padding_side="right")
                self._plan(enc, [len(request.images)], spec)
                with ledger.hold(enc.charged_lengths[0], "score") as held:
                    logp = torch.log_softmax(self._logits(enc, keep=1, spec=spec)[0, -1], dim=-1)
                    held.commit(enc.usage)
                flat_scores = [float(logp[ids[0]]) for ids in variant_ids]
                usage = enc.usage
            else:
                flat_scores, usage = self._score_batched(prompt, request.images, flat, ledger, spec)
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
        self,
        prompt: str,
        images: list[Image.Image],
        options: Sequence[str],
        ledger: TokenLedger,
        spec: PruneSpec | None = None,
    ) -> tuple[list[float], TokenUsage]:
        prompt_ids = self.processor(text=[prompt], images=[images] if images else None, return_tensors="pt")[
            "input_ids"
        ][0]
        prefix = len(prompt_ids)
        chunks = [
            list(options[lo : lo + self.max_batch_size]) for lo in range(0, len(options), self.max_batch_size)
        ]
        encs = [
            self._plan(
                self._encode([prompt + o for o in chunk], [images] * len(chunk), "right"),
                [len(images)] * len(chunk),
                spec,
            )
            for chunk in chunks
        ]
        usage = TokenUsage.sum(enc.usage for enc in encs)
        scores: list[float] = []
        with ledger.hold(usage.total, "score") as held:
            for enc in encs:
                ids = enc.inputs["input_ids"]
                if not bool((ids[:, :prefix] == prompt_ids).all()):
                    raise UnsupportedRequestError("an option changed how the prompt itself is tokenised")
                keep = torch.arange(prefix - 1, ids.shape[1] - 1)
                logp = torch.log_softmax(self._logits(enc, keep=keep, spec=spec), dim=-1)
                for row, length in enumerate(enc.lengths):
                    targets = ids[row, prefix:length]
                    picked = logp[row, : length - prefix].gather(-1, targets.unsqueeze(-1))
                    scores.append(float(picked.sum()))
            usage = TokenUsage.sum(enc.usage for enc in encs)  # what the model really computed
            held.commit(usage)
        return scores, usage

    def yes_probability(self, request: VLMRequest, ledger: TokenLedger | None = None) -> YesNoResult:
        return self.yes_probabilities([request], ledger)[0]

    def yes_probabilities(
        self, requests: Sequence[VLMRequest], ledger: TokenLedger | None = None
    ) -> list[YesNoResult]:
        """All probes in as few forward passes as ``max_batch_size`` allows, all held before the first.

        Probes whose budgets ask for different pruning run as separate batches, in the callers' order.
        """
        if not self._yes_ids or not self._no_ids:
            raise UnsupportedRequestError(
                f"the tokenizer of {self.model_id} has no single token for Yes or No; "
                "yes_probability needs both"
            )
        ledgers = [ledger_for(r, ledger) for r in requests]
        fitted = [
            self.fit_images(r, self._budget_cap(r, lg)) for r, lg in zip(requests, ledgers, strict=True)
        ]
        specs = [self._prune_spec(r, lg) for r, lg in zip(fitted, ledgers, strict=True)]
        if len(set(specs)) > 1:
            return self._by_spec(requests, specs, ledger)
        spec = specs[0] if specs else None
        size = self.max_batch_size
        results: list[YesNoResult] = []
        with self._lock, ExitStack() as stack:
            encs = [
                self._plan(
                    self._encode([self.render(r) for r in chunk], [r.images for r in chunk], "right"),
                    [len(r.images) for r in chunk],
                    spec,
                )
                for chunk in (fitted[lo : lo + size] for lo in range(0, len(fitted), size))
            ]
            lengths = [n for enc in encs for n in enc.charged_lengths]
            # A shared ledger holds the whole batch; without one each probe has its own budget.
            if ledger is not None:
                holds = [stack.enter_context(ledger.hold(sum(lengths), "yes_probability"))]
            else:
                holds = [
                    stack.enter_context(own.hold(n, "yes_probability"))
                    for own, n in zip(ledgers, lengths, strict=True)
                ]
            for enc in encs:
                start = time.perf_counter()
                last = torch.tensor([n - 1 for n in enc.lengths])
                positions = torch.unique(last)
                logp = torch.log_softmax(self._logits(enc, keep=positions, spec=spec), dim=-1)
                column = torch.searchsorted(positions, last)
                latency = (time.perf_counter() - start) / len(enc.lengths)
                for row in range(len(enc.lengths)):
                    usage = enc.row_usage(row, forward_passes=1 if row == 0 else 0)
                    results.append(self._yes_no(logp[row, column[row]], usage, latency))
            if ledger is not None:
                holds[0].commit(TokenUsage.sum(r.usage for r in results))
            else:
                for held, r in zip(holds, results, strict=True):
                    held.commit(r.usage)
        return results

    def _by_spec(
        self, requests: Sequence[VLMRequest], specs: list[PruneSpec | None], ledger: TokenLedger | None
    ) -> list[YesNoResult]:
        """``yes_probabilities`` run once per distinct pruning setting, answers back in request order."""
        results: dict[int, YesNoResult] = {}
        for spec in dict.fromkeys(specs):
            picked = [i for i, s in enumerate(specs) if s == spec]
            answers = self.yes_probabilities([requests[i] for i in picked], ledger)
            results.update(zip(picked, answers, strict=True))
        return [results[i] for i in range(len(requests))]

    def _yes_no(self, logp: torch.Tensor, usage: TokenUsage, latency: float) -> YesNoResult:
        """P(Yes) from one next-token log-distribution: every single-token spelling of Yes and of No."""
        return YesNoResult.from_logprobs(
            float(torch.logsumexp(logp[self._yes_ids], dim=0)),
            float(torch.logsumexp(logp[self._no_ids], dim=0)),
            usage=usage,
            latency_s=latency,
            model_id=self.model_id,
        )

    # ------------------------------------------------------------------ shared-prefix probes
    # Families whose forward pass can continue from a cached image-and-template prefix with plain
    # input ids (no per-image rotary state, as Qwen2-VL's M-RoPE has). Others batch every probe whole.
    PREFIX_REUSE_FAMILIES = frozenset({"llava", "idefics3"})

    def probe_views(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[Sequence[str]],
        ledger: TokenLedger | None = None,
        *,
        reuse_prefix: bool = True,
    ) -> list[list[YesNoResult]]:
        """Yes/No probes about several views; each view's image and template prefix is encoded once.

        Two forward passes in all (per ``max_batch_size`` chunk): one over the views' shared prefixes
        (vision tower included), one over every question's own tokens, attending to its view's cached
        prefix. The probabilities equal those of ``yes_probabilities`` up to float rounding (tested).

        With visual-token pruning on (the ledger's budget sets ``prune``) there is no prefix reuse: every
        probe is batched whole through ``yes_probabilities``, which prunes each row, because a pruned
        prefix's cache is not what the unpruned suffix pass expects. Nor when no view has two questions:
        there is nothing to share, and the prefix pass would only add a second forward pass (on the tiny
        VLM's one-probe-per-child zoom search that made the shared-prefix path slower than no reuse).
        """
        if len(views) != len(questions):
            raise UnsupportedRequestError("probe_views needs one list of questions per view")
        pruning = ledger is not None and ledger.budget.prune is not None
        shared = any(len(qs) > 1 for qs in questions)
        usable = self.family in self.PREFIX_REUSE_FAMILIES and bool(self._yes_ids)
        if pruning or not reuse_prefix or not shared or not usable:
            return super().probe_views(views, questions, ledger, reuse_prefix=False)
        if not self._no_ids:
            raise UnsupportedRequestError(f"the tokenizer of {self.model_id} has no single token for No")
        base = ledger if ledger is not None else TokenLedger()
        requests = [
            [self._fitted(VLMRequest.from_prompt(q, images=[v]), base) for q in qs]
            for v, qs in zip(views, questions, strict=True)
        ]
        results: list[list[YesNoResult]] = [[] for _ in views]
        order = [i for i, qs in enumerate(questions) if qs]
        size = self.max_batch_size
        with self._lock:
            for lo in range(0, len(order), size):
                chunk = order[lo : lo + size]
                for index, answers in zip(
                    chunk, self._probe_chunk([requests[i] for i in chunk], base), strict=True
                ):
                    results[index] = answers
        return results

    def _fitted(self, request: VLMRequest, ledger: TokenLedger) -> VLMRequest:
        return self.fit_images(request, self._budget_cap(request, ledger))

    def _probe_chunk(self, groups: list[list[VLMRequest]], ledger: TokenLedger) -> list[list[YesNoResult]]:
        texts = [self.render(r) for group in groups for r in group]
        images = [r.images for group in groups for r in group]
        enc = self._encode(texts, images, "right")
        ids = enc.inputs["input_ids"]
        owners = torch.tensor([g for g, group in enumerate(groups) for _ in group])
        firsts = [int((owners == g).nonzero()[0]) for g in range(len(groups))]
        # the longest prefix every row shares with its view's first row (image and template)
        prefix = min(enc.lengths) - 1
        for row in range(len(ids)):
            differs = (ids[row, :prefix] != ids[firsts[int(owners[row])], :prefix]).nonzero()
            if len(differs):
                prefix = int(differs[0])
        if prefix <= 0 or bool((ids[:, prefix:] == self.image_token_id).any()):
            flat = [r for group in groups for r in group]
            whole = self.yes_probabilities(flat, ledger)
            return [whole[firsts[g] : firsts[g] + len(groups[g])] for g in range(len(groups))]
        suffix_lengths = [n - prefix for n in enc.lengths]
        visual = [enc.visual[i] for i in firsts]
        total = sum(prefix for _ in firsts) + sum(suffix_lengths)
        with ledger.hold(total, "probe_views") as held:
            start = time.perf_counter()
            first_idx = torch.tensor(firsts)
            prefix_inputs = {
                key: (
                    value[first_idx]
                    if isinstance(value, torch.Tensor) and value.shape[0] == len(ids)
                    else value
                )
                for key, value in enc.inputs.items()
            }
            prefix_inputs["input_ids"] = ids[first_idx, :prefix]
            prefix_inputs["attention_mask"] = torch.ones(len(firsts), prefix, dtype=torch.long)
            with torch.inference_mode():
                out = self.model(**self._to_device(prefix_inputs), use_cache=True, logits_to_keep=1)
                cache = out.past_key_values
                cache.batch_select_indices(owners.to(self.device))
                suffix = ids[:, prefix:]
                mask = torch.cat(
                    [
                        torch.ones(len(ids), prefix, dtype=torch.long),
                        enc.inputs["attention_mask"][:, prefix:],
                    ],
                    dim=1,
                )
                last = torch.tensor([n - 1 for n in suffix_lengths])
                positions = torch.unique(last)
                logits = self.model(
                    input_ids=suffix.to(self.device),
                    attention_mask=mask.to(self.device),
                    past_key_values=cache,
                    logits_to_keep=positions.to(self.device),
                    use_cache=False,
                ).logits.float()
            logp = torch.log_softmax(logits, dim=-1).cpu()
            column = torch.searchsorted(positions, last)
            latency = (time.perf_counter() - start) / len(ids)
            answers: list[list[YesNoResult]] = [[] for _ in groups]
            for row in range(len(ids)):
                g = int(owners[row])
                lead = row == firsts[g]
                usage = TokenUsage(
                    visual_tokens=visual[g] if lead else 0,
                    text_tokens=suffix_lengths[row] + (prefix - visual[g] if lead else 0),
                    forward_passes=(2 if g == 0 else 0) if lead else 0,
                )
                answers[g].append(self._yes_no(logp[row, column[row]], usage, latency))
            held.commit(TokenUsage.sum(a.usage for group in answers for a in group))
        return answers

    # ------------------------------------------------------------------ relevance maps
    GENERIC_PROMPT = "Write a general description of the image."

    def relevance_maps(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[str],
        ledger: TokenLedger | None = None,
        *,
        layer: int | None = None,
        normalize: bool = True,
    ) -> list[RelevanceMap]:
        """ViCrop's rel-att: the last token's attention over the image tokens for the question, divided by
        the same attention under a generic description prompt, averaged over heads, at a middle layer.

        ``normalize=False`` returns the question's attention alone (one prompt per view instead of two):
        the division removes attention a model pays some patches whatever it is asked (sinks), but when
        the model's generic attention already goes to the objects a question could name, as the embedded
        tiny VLM's does, it divides the signal away (see docs/benchmarks/zoom.md).
        All prompts go through one forward pass with eager attention (switched on only for this call).
        LLaVA-style (square patch grid) and Qwen2-VL (merged patch grid) are supported.
        """
        if len(views) != len(questions):
            raise UnsupportedRequestError("relevance_maps needs one question per view")
        if self.family not in ("llava", "qwen2_vl", "qwen2_5_vl"):
            raise UnsupportedRequestError(f"relevance maps are not implemented for {self.family} models")
        base = ledger if ledger is not None else TokenLedger()
        texts_per_view = 2 if normalize else 1
        requests = [
            self._fitted(VLMRequest.from_prompt(text, images=[view]), base)
            for view, q in zip(views, questions, strict=True)
            for text in ((q, self.GENERIC_PROMPT) if normalize else (q,))
        ]
        text_config = getattr(self.config, "text_config", self.config)
        depth = int(text_config.num_hidden_layers)
        layer = depth // 2 if layer is None else layer
        maps: list[RelevanceMap] = []
        with self._lock:
            enc = self._encode([self.render(r) for r in requests], [r.images for r in requests], "right")
            with base.hold(sum(enc.lengths), "relevance_maps") as held:
                previous = self.config._attn_implementation
                self.model.set_attn_implementation("eager")
                try:
                    with torch.inference_mode():
                        out = self.model(
                            **self._to_device(enc.inputs), output_attentions=True, logits_to_keep=1
                        )
                finally:
                    self.model.set_attn_implementation(previous)
                attention = out.attentions[layer].float().mean(dim=1).cpu()  # (rows, query, key)
                usage = enc.usage
                held.commit(usage)
        ids = enc.inputs["input_ids"]
        for v in range(len(views)):
            rows = range(texts_per_view * v, texts_per_view * (v + 1))
            weights = []
            for row in rows:
                image_positions = (ids[row] == self.image_token_id).nonzero().flatten()
                weights.append(attention[row, enc.lengths[row] - 1, image_positions].numpy())
            ratio = weights[0] / np.maximum(weights[1], 1e-12) if normalize else weights[0]
            grid, region = self._grid_shape(enc.inputs, rows[0], requests[rows[0]].images[0], len(ratio))
            maps.append(
                RelevanceMap(
                    grid=ratio.reshape(grid),
                    region=region,
                    usage=TokenUsage(
                        visual_tokens=sum(enc.visual[r] for r in rows),
                        text_tokens=sum(enc.lengths[r] - enc.visual[r] for r in rows),
                        forward_passes=1 if v == 0 else 0,
                    ),
                )
            )
        return maps

    def _grid_shape(
        self, inputs: dict[str, Any], row: int, image: Image.Image, count: int
    ) -> tuple[tuple[int, int], tuple[float, float, float, float]]:
        """The patch grid of the image in prompt ``row`` (one image per prompt) and the region it covers."""
        if self.family == "llava":
            side = round(count**0.5)
            if side * side != count:
                raise UnsupportedRequestError(f"{count} image tokens do not form a square patch grid")
            spec = self.token_spec
            region = (0.0, 0.0, 1.0, 1.0)
            if spec is not None and spec.crop_size is not None and spec.do_resize:
                # a shortest-edge resize then a centre crop: the model saw the middle of the long side
                shortest = spec.resize.shortest_edge or min(spec.crop_size)
                scale = shortest / min(image.height, image.width)
                fy = min(1.0, spec.crop_size[0] / max(1.0, image.height * scale))
                fx = min(1.0, spec.crop_size[1] / max(1.0, image.width * scale))
                region = ((1 - fx) / 2, (1 - fy) / 2, (1 + fx) / 2, (1 + fy) / 2)
            return (side, side), region
        merge = int(getattr(self.processor.image_processor, "merge_size", 2))
        _, h, w = (int(x) for x in inputs["image_grid_thw"][row])
        return (h // merge, w // merge), (0.0, 0.0, 1.0, 1.0)
