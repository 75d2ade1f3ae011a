"""A local VLM through Hugging Face transformers (LLaVA, Qwen2-VL / Qwen2.5-VL, Idefics3 / SmolVLM).

Loads with ``AutoProcessor`` + ``AutoModelForImageTextToText`` and renders prompts with the processor's own
chat template, so any model of a supported family works without per-model prompt code. Its profile
(``vlm.profile``) comes from the model's family (``foveate.vlm.families``) with the numbers of the loaded
model: the visual-token rule read off its processor, its language model's depth, the pruning methods that
run on it. All operations read real logits: ``score`` each option's tokens (``scoring``),
``yes_probability`` the single-token spellings of "Yes" and "No" normalised over the two; ``generate``
decodes free text.

``probe_views`` shares each view's encoding among its questions where the family allows
(``prefix_probes``); ``relevance_maps`` reads attention (``relevance``).

Budgets: images are resized to the per-image visual-token cap *before* the processor runs, and the exact
token count of the processed prompt is held on the ledger before the model is called, so
``BudgetExceeded`` never costs a forward pass; nor does a prompt longer than the model's context window
(``ContextLengthError``, ``foveate.vlm.context_window``). A budget with ``prune`` set runs the language
model on fewer visual tokens (``foveate.vlm.pruning``); the ledger then holds and charges those.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import torch
from PIL import Image

from foveate.errors import ModelLoadError, UnsupportedRequestError
from foveate.imaging.images import resize_to
from foveate.vlm.base import NO_WORDS, YES_WORDS, BaseVLM, ledger_or_own
from foveate.vlm.budget import TokenLedger, TokenUsage
from foveate.vlm.context_window import check_prompt_fits, context_length_of, room_to_generate
from foveate.vlm.families import FamilyRegistry, builtin_families
from foveate.vlm.fingerprint import source_fingerprint
from foveate.vlm.loading import hub_load_error, resolve_model_source
from foveate.vlm.profile import Family, VLMProfile
from foveate.vlm.pruning import PruneSpec
from foveate.vlm.pruning.pruner import VisualTokenPruner
from foveate.vlm.transformers_vlm.encoding import (
    Encoded,
    default_device,
    eos_ids,
    find_image_token_id,
    single_token_ids,
    to_device,
)
from foveate.vlm.transformers_vlm.generation import decode_kept, new_tokens, until_eos
from foveate.vlm.transformers_vlm.prefix_probes import probe_views_sharing_prefix
from foveate.vlm.transformers_vlm.relevance import relevance_maps
from foveate.vlm.transformers_vlm.scoring import option_token_ids, score_batched, spellings
from foveate.vlm.types import (
    ImagePart,
    RelevanceMap,
    ScoreResult,
    VLMRequest,
    VLMResult,
    YesNoResult,
)
from foveate.vlm.visual_tokens import VisualTokenRule

logger = logging.getLogger(__name__)

__all__ = ["TransformersVLM"]


class TransformersVLM(BaseVLM):
    """A VLM running in this process.

    ``model`` is a local folder or a hub id (hub only where the machine has a network or a cache).
    ``max_batch_size`` bounds how many sequences share one forward pass. The family comes from the
    folder's ``config.json`` (``"foveate_family"``, else ``model_type``) looked up in ``families`` (the
    built-in ones by default); ``family`` names or gives one outright.
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
        family: Family | str | None = None,
        families: FamilyRegistry | None = None,
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        source = resolve_model_source(model)
        self.model_id = source
        self.device = torch.device(device or default_device())
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
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
        self.model_type = str(self.config.model_type)
        self.tokenizer: Any = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ModelLoadError(f"model {source} has no tokenizer in its processor")
        self.image_token_id = find_image_token_id(self.processor, self.config, source)
        registry = families if families is not None else builtin_families()
        self.family_facts: Family | None = (
            registry.get(family) if isinstance(family, str) else family or registry.for_config(self.config)
        )
        text_config = getattr(self.config, "text_config", self.config)
        self.lm_depth = int(text_config.num_hidden_layers)
        self.window = context_length_of(self.config)  # (tokens, the config key it came from) or None
        self.pruner = VisualTokenPruner(self.model, self.image_token_id, self.model_id, self.family_facts)
        self.yes_ids = single_token_ids(self.tokenizer, YES_WORDS)
        self.no_ids = single_token_ids(self.tokenizer, NO_WORDS)
        self.eos_ids = eos_ids(self.model, self.config, self.tokenizer)
        window = self.window[0] if self.window else None
        self.profile = self._profile(registry, max_batch_size).with_(context_length=window)
        self._lock = threading.RLock()
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        """SHA-256 of the model folder's files (a hub id: its snapshot in the local cache), hashed once."""
        if self._fingerprint is None:
            self._fingerprint = source_fingerprint(self.model_id)
        return self._fingerprint

    def _profile(self, registry: FamilyRegistry, max_batch_size: int) -> VLMProfile:
        """The family's facts with this model's numbers: its token rule, depth, batch size and pruning."""
        rule: VisualTokenRule | None
        try:
            rule = registry.read_rule(self.processor, self.config)
        except ValueError as exc:
            logger.warning("visual-token counts cannot be predicted for %s: %s", self.model_id, exc)
            rule = None
        prune_methods = tuple(m for m in ("fastv", "cls") if self._prunes(m))
        if self.family_facts is None:
            return VLMProfile.unknown(
                family=self.model_type,
                token_rule=rule,
                lm_depth=self.lm_depth,
                max_batch_size=max_batch_size,
                prune_methods=prune_methods,
            )
        return self.family_facts.profile(
            token_rule=rule,
            lm_depth=self.lm_depth,
            max_batch_size=max_batch_size,
            prune_methods=prune_methods,
        ).with_(prefix_reuse=self.family_facts.prefix_reuse and bool(self.yes_ids))

    def _prunes(self, method: str) -> bool:
        """Whether ``method`` runs on this model at FastV's default layer (2), the one searches plan with."""
        try:
            self.pruner.check(PruneSpec(method=method, keep=0.5, layer=2))  # type: ignore[arg-type]
        except UnsupportedRequestError:
            return False
        return True

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

    def _plan(self, enc: Encoded, images: Sequence[int], spec: PruneSpec | None) -> Encoded:
        """Record on ``enc`` the visual tokens the LM will compute under ``spec`` (held before the call)."""
        if spec is not None:
            enc.computed = [
                spec.computed_visual(v, n, self.lm_depth) for v, n in zip(enc.visual, images, strict=True)
            ]
        return enc

    def fit_images(self, request: VLMRequest, cap: int | None) -> VLMRequest:
        """Shrink each image (aspect ratio kept) so it yields at most ``cap`` visual tokens."""
        if cap is None or not request.images:
            return request
        rule = self.profile.token_rule
        if rule is None:
            raise UnsupportedRequestError(
                f"a per-image visual-token cap needs a known processor family; {self.model_type} is not one"
            )
        resized = []
        for img in request.images:
            height, width = rule.fit(img.height, img.width, cap)
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

    def encode(
        self, texts: list[str], images: list[list[Image.Image]], padding_side: str = "right"
    ) -> Encoded:
        """Rendered prompts and their images through the processor, with each row's length and image
        placeholders counted (what a call holds on the ledger before its forward pass). Right padding keeps
        every row's positions identical to an unpadded run; generation pads on the left."""
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
        if self.window is not None:
            check_prompt_fits(max(lengths), self.window[0], self.model_id, f"{self.window[1]} in its config")
        return Encoded(inputs=dict(batch), lengths=lengths, visual=visual)

    def to_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """A batch from ``encode`` on the model's device, pixels in its dtype."""
        return to_device(inputs, self.device, self.dtype)

    @torch.inference_mode()
    def _logits(self, enc: Encoded, keep: int | torch.Tensor, spec: PruneSpec | None = None) -> torch.Tensor:
        if spec is not None:
            logits, state = self.pruner.logits(self.to_device(enc.inputs), spec, keep)
            enc.computed = state.computed_visual
            return logits
        out = self.model(**self.to_device(enc.inputs), logits_to_keep=keep, use_cache=False)
        return out.logits.float()

    # ------------------------------------------------------------------ operations
    # Each operation holds ``self._lock`` from encoding to the last forward pass: the processor's
    # tokenizer keeps padding state, and one model should not run two forward passes at once.
    def generate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult:
        """Free text, by transformers' ``generate``; with pruning, by ``VisualTokenPruner.generate`` (its
        own cached loop: greedy, or temperature / top-p sampling; the model's other generation-config
        processors, e.g. a repetition penalty, are not applied there).

        ``token_logprobs``: each kept token's log-probability under the model's raw logits (the end of
        sequence included when decoding stopped on it). Text cut at a ``stop`` string keeps those of the
        tokens the remaining text needs (approximate: ``generation.kept_for_text``)."""
        ledger = ledger_or_own(request, ledger)
        request = self.fit_images(request, self._budget_cap(request, ledger))
        spec = self._prune_spec(request, ledger)
        opts = request.options
        with self._lock:
            enc = self.encode([self.render(request)], [request.images], padding_side="left")
            self._plan(enc, [len(request.images)], spec)
            room = room_to_generate(enc.lengths[0], opts.max_new_tokens, self.profile.context_length)
            opts = opts.model_copy(update={"max_new_tokens": room})
            with ledger.hold(enc.charged_lengths[0] + opts.max_new_tokens, "generate") as held:
                start = time.perf_counter()
                generated = new_tokens(self, enc, opts, spec)
                latency = time.perf_counter() - start
                kept, finish = until_eos(generated, self.eos_ids)
                usage = enc.usage + TokenUsage(generated_tokens=len(kept.tokens))
                held.commit(usage)
        text, finish, kept = decode_kept(self.tokenizer, kept, self.eos_ids, opts.stop, finish)
        return VLMResult(
            text=text,
            finish_reason=finish,
            token_logprobs=kept.logprobs,
            usage=usage,
            latency_s=latency,
            model_id=self.model_id,
        )

    # ------------------------------------------------------------------ scoring
    def score(
        self, request: VLMRequest, options: Sequence[str], ledger: TokenLedger | None = None
    ) -> ScoreResult:
        """Log-probability of each option (its most likely spelling), from real logits.

        Single-token spellings need one forward pass of the prompt; otherwise every spelling of
        every option goes through right-padded batches, all held on the ledger before the first.
        """
        if not options:
            raise UnsupportedRequestError("score needs at least one option")
        ledger = ledger_or_own(request, ledger)
        request = self.fit_images(request, self._budget_cap(request, ledger))
        spec = self._prune_spec(request, ledger)
        prompt = self.render(request)
        variants = [spellings(o) for o in options]
        flat = [v for vs in variants for v in vs]
        with self._lock:
            start = time.perf_counter()
            variant_ids = option_token_ids(self.tokenizer, prompt, flat)
            if all(len(ids) == 1 for ids in variant_ids):
                enc = self.encode([prompt], [request.images], padding_side="right")
                self._plan(enc, [len(request.images)], spec)
                with ledger.hold(enc.charged_lengths[0], "score") as held:
                    logp = torch.log_softmax(self._logits(enc, keep=1, spec=spec)[0, -1], dim=-1)
                    held.commit(enc.usage)
                flat_scores = [float(logp[ids[0]]) for ids in variant_ids]
                usage = enc.usage
            else:
                flat_scores, usage = score_batched(self, prompt, request.images, flat, ledger, spec)
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

    def yes_probability(self, request: VLMRequest, ledger: TokenLedger | None = None) -> YesNoResult:
        return self.yes_probabilities([request], ledger)[0]

    def yes_probabilities(
        self, requests: Sequence[VLMRequest], ledger: TokenLedger | None = None
    ) -> list[YesNoResult]:
        """All probes in as few forward passes as ``max_batch_size`` allows, all held before the first.

        Probes whose budgets ask for different pruning run as separate batches, in the callers' order.
        """
        if not self.yes_ids or not self.no_ids:
            raise UnsupportedRequestError(
                f"the tokenizer of {self.model_id} has no single token for Yes or No; "
                "yes_probability needs both"
            )
        ledgers = [ledger_or_own(r, ledger) for r in requests]
        fitted = [
            self.fit_images(r, self._budget_cap(r, lg)) for r, lg in zip(requests, ledgers, strict=True)
        ]
        specs = [self._prune_spec(r, lg) for r, lg in zip(fitted, ledgers, strict=True)]
        if len(set(specs)) > 1:
            return self._by_spec(requests, specs, ledger)
        spec = specs[0] if specs else None
        size = self.profile.max_batch_size
        results: list[YesNoResult] = []
        with self._lock, ExitStack() as stack:
            encs = [
                self._plan(
                    self.encode([self.render(r) for r in chunk], [r.images for r in chunk], "right"),
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
            float(torch.logsumexp(logp[self.yes_ids], dim=0)),
            float(torch.logsumexp(logp[self.no_ids], dim=0)),
            usage=usage,
            latency_s=latency,
            model_id=self.model_id,
        )

    # ------------------------------------------------------------------ views
    def probe_views(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[Sequence[str]],
        ledger: TokenLedger | None = None,
        *,
        reuse_prefix: bool = True,
    ) -> list[list[YesNoResult]]:
        """Yes/No probes about several views; each view's image and template prefix is encoded once where
        the family allows (``profile.prefix_reuse``).

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
        if pruning or not reuse_prefix or not shared or not self.profile.prefix_reuse:
            return super().probe_views(views, questions, ledger, reuse_prefix=False)
        return probe_views_sharing_prefix(self, views, questions, ledger)

    def relevance_maps(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[str],
        ledger: TokenLedger | None = None,
        *,
        layer: int | None = None,
        normalize: bool = True,
    ) -> list[RelevanceMap]:
        """Where in each view the model looks for each question (see ``transformers_vlm.relevance``)."""
        return relevance_maps(self, views, questions, ledger, layer=layer, normalize=normalize)
