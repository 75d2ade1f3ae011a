"""A VLM behind any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp, Ollama).

Images travel as base64 ``data:`` URLs. ``score`` and ``yes_probability`` ask for one
token with ``logprobs`` / ``top_logprobs`` and read the distribution the server returns,
so they need a server that returns log-probabilities (vLLM does; start it with
``--max-logprobs`` at least ``top_logprobs``). An option that is not among the returned top tokens
cannot be scored and is refused; ``score_top_logprobs`` asks for more tokens for ``score`` alone
(e.g. a small model's whole vocabulary), so that Yes/No probes stay cheap. Timeouts and bounded retries with
exponential backoff come from the official ``openai`` client; every failure is turned into
a ``BackendError`` that names the URL.

``generate`` asks for the log-probability of each generated token too (``logprobs: true``) and returns
them as ``VLMResult.token_logprobs``; a server that returns none leaves them None, and one that refuses the
field (HTTP 400 / 422 naming it) is asked again without it, for this call and every later one.

Budget: the server tokenises, so the pre-call hold is an upper bound computed here: the visual tokens the
family's arithmetic gives (``token_rule``), one token per UTF-8 byte of text (no tokenizer makes more:
byte-level BPE and SentencePiece with byte fallback spend at most one token per byte) plus a margin for the
chat template's markers, plus the tokens it may generate, which are capped in the request (``max_tokens``)
at what the question's budget has left. With no token rule nothing bounds what the server makes of an
image, so under a ``max_total_tokens`` such a call is refused before it is sent. The ledger is charged with
the server's reported usage; a report above the hold is recorded as an overrun and stops the question's
further calls (``foveate.vlm.budget``).

The served model's profile (``foveate.vlm.profile``) is declared by the caller: its family by name
(``family="qwen2_vl"``: the family's facts and its reference checkpoint's token rule), a token rule read
off the model's own processor (``token_rule=``), or a whole ``profile=``. Without any, the profile is
``VLMProfile.unknown()``: no per-image cap can be met and zoom uses ZoomEye's wording.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import math
import time
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import openai
from PIL import Image

from foveate.errors import BackendError, ContextLengthError, LogprobsUnavailableError, UnsupportedRequestError
from foveate.imaging.images import resize_to
from foveate.vlm.base import NO_WORDS, YES_WORDS, BaseVLM, ledger_or_own
from foveate.vlm.budget import Reservation, TokenLedger, TokenUsage
from foveate.vlm.context_window import is_context_refusal
from foveate.vlm.families import FamilyRegistry, builtin_families
from foveate.vlm.profile import VLMProfile
from foveate.vlm.server_budget import reported_usage, text_bound
from foveate.vlm.server_replies import generated_logprobs
from foveate.vlm.types import ImagePart, ScoreResult, VLMRequest, VLMResult, YesNoResult
from foveate.vlm.visual_tokens import VisualTokenRule

logger = logging.getLogger(__name__)


def png_data_uri(img: Image.Image) -> str:
    """A lossless PNG ``data:`` URI at zlib level 1: the server decodes the same pixels, and encoding is
    about 4x faster than PNG's default level (measured: 37 vs 139 ms for an 875x799 scene, 8% larger),
    which is most of the client's CPU time per request when many questions run at once."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAIVLM(BaseVLM):
    """Talks to ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``).

    ``model`` defaults to the first model the server lists. ``family`` (a name in ``families``, the
    built-in ones by default), ``token_rule`` (the served processor's visual-token rule) or ``profile``
    declare what the served model is, so that per-image visual-token caps, visual-token accounting and
    zoom's prompts fit it. ``top_logprobs``: how many first tokens Yes/No probes read;
    ``score_top_logprobs`` (default: the same): how many ``score`` reads.
    ``max_parallel_probes``: how many requests of one ``yes_probabilities`` call are in flight at
    once (the server batches them, as a local backend batches its probes in one forward pass).
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str = "EMPTY",
        timeout: float = 60.0,
        max_retries: int = 2,
        top_logprobs: int = 20,
        score_top_logprobs: int | None = None,
        max_parallel_probes: int = 16,
        family: str | None = None,
        token_rule: VisualTokenRule | None = None,
        profile: VLMProfile | None = None,
        families: FamilyRegistry | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_parallel_probes = max_parallel_probes
        self.top_logprobs = top_logprobs
        self.score_top_logprobs = score_top_logprobs or top_logprobs
        self.profile = profile or served_profile(family, token_rule, families or builtin_families())
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )
        self._client_settings: dict[str, Any] = {
            "base_url": self.base_url,
            "api_key": api_key,
            "timeout": timeout,
            "max_retries": max_retries,
        }
        # One async client per event loop: an async client's pooled connections belong to the loop that
        # opened them, and a second ``asyncio.run`` reusing them failed with "Event loop is closed"
        # (serving/test_vllm.py, after another test's asyncio.run). Weak keys: a loop's client goes with it.
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )
        self.model_id = model or self._first_model()
        self._generate_logprobs = True
        """Whether ``generate`` asks for token log-probabilities (False once the server refused them)."""

    @property
    def _aclient(self) -> openai.AsyncOpenAI:
        """The async client of the running event loop."""
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = self._aclients[loop] = openai.AsyncOpenAI(**self._client_settings)
        return client

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except openai.APITimeoutError as exc:
            raise BackendError(f"the model server at {self.base_url} timed out: {exc}") from exc
        except openai.APIConnectionError as exc:
            raise BackendError(f"cannot reach the model server at {self.base_url}: {exc}") from exc
        except openai.APIStatusError as exc:
            text = str(exc)
            if is_context_refusal(text):  # the server's own window check, made before its model runs
                raise ContextLengthError(f"the model server at {self.base_url} refused: {text}") from exc
            kind = LogprobsUnavailableError if "logprob" in text.lower() else BackendError
            raise kind(
                f"the model server at {self.base_url} answered HTTP {exc.status_code}: {text}"
            ) from exc

    def fingerprint(self) -> str:
        """The server and the name it serves: its weights are out of reach from here."""
        return f"served:{self.base_url}#{self.model_id}"

    def _first_model(self) -> str:
        with self._errors():
            models = self._client.models.list().data
        if not models:
            raise BackendError(f"the model server at {self.base_url} lists no models")
        return str(models[0].id)

    def _fit(self, request: VLMRequest, ledger: TokenLedger) -> tuple[VLMRequest, int | None]:
        """Resize images to the cap and predict their visual tokens (None: images and no token rule)."""
        cap = (request.budget.max_visual_tokens_per_image if request.budget else None) or (
            ledger.budget.max_visual_tokens_per_image
        )
        rule = self.profile.token_rule
        if cap is not None and request.images:
            if rule is None:
                raise UnsupportedRequestError(
                    "a per-image visual-token cap against a server needs the served model's family "
                    "(OpenAIVLM(family=...) or token_rule=...)"
                )
            fitted = []
            for img in request.images:
                height, width = rule.fit(img.height, img.width, cap)
                fitted.append(resize_to(img, height, width))
            request = request.with_images(fitted)
        if rule is None:
            return request, (None if request.images else 0)
        return request, sum(rule.tokens_for(img.height, img.width) for img in request.images)

    @staticmethod
    def messages(request: VLMRequest) -> list[dict[str, Any]]:
        """The request in OpenAI chat format, images as base64 PNG data URLs.

        A message without images goes as a plain string: llama.cpp's built-in chat formats (e.g.
        ``gemma`` in llama-cpp-python) drop list-of-parts content and would send an empty turn.
        """
        out: list[dict[str, Any]] = []
        for message in request.messages:
            if not any(isinstance(part, ImagePart) for part in message.content):
                out.append({"role": message.role, "content": message.text})
                continue
            parts: list[dict[str, Any]] = []
            for part in message.content:
                if isinstance(part, ImagePart):
                    parts.append({"type": "image_url", "image_url": {"url": png_data_uri(part.image)}})
                else:
                    parts.append({"type": "text", "text": part.text})
            out.append({"role": message.role, "content": parts})
        return out

    def _body(
        self, request: VLMRequest, *, logprobs: bool, top: int | None = None, max_tokens: int | None = None
    ) -> dict[str, Any]:
        opts = request.options
        body: dict[str, Any] = {"model": self.model_id, "messages": self.messages(request)}
        if logprobs:
            top = top or self.top_logprobs
            body.update(max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=top)
        else:
            new = opts.max_new_tokens if max_tokens is None else max_tokens
            body.update(max_tokens=new, temperature=opts.temperature, top_p=opts.top_p)
            if self._generate_logprobs:
                # each generated token's own log-probability; top_logprobs 1 because llama-cpp-python's
                # server returns none without it (it passes top_logprobs on as its logprobs count)
                body.update(logprobs=True, top_logprobs=1)
            if opts.stop:
                body["stop"] = opts.stop
            if opts.seed is not None:
                body["seed"] = opts.seed
        return body

    def _top_logprobs(self, response: Any) -> dict[str, float]:
        """The first generated position's top tokens, as {token text: logprob}."""
        try:
            content = response.choices[0].logprobs.content
            entries = content[0].top_logprobs
        except (AttributeError, IndexError, TypeError):
            entries = None
        if not entries:
            raise LogprobsUnavailableError(
                f"the model server at {self.base_url} returned no top_logprobs; scoring needs a server "
                "that returns them (vLLM: start with --max-logprobs >= top_logprobs)"
            )
        table: dict[str, float] = {}
        for entry in entries:
            table[entry.token] = max(table.get(entry.token, -math.inf), float(entry.logprob))
        return table

    @staticmethod
    def _mass(table: dict[str, float], words: Sequence[str]) -> float:
        """log of the total probability of tokens that spell one of ``words`` (-inf if none)."""
        values = [lp for tok, lp in table.items() if tok.strip() in words]
        if not values:
            return -math.inf
        top = max(values)
        return top + math.log(sum(math.exp(v - top) for v in values))

    def _yes_no(self, table: dict[str, float], usage: TokenUsage, latency: float) -> YesNoResult:
        floor = min(table.values())
        lp_yes, lp_no = self._mass(table, YES_WORDS), self._mass(table, NO_WORDS)
        if lp_yes == -math.inf and lp_no == -math.inf:
            logger.warning("neither Yes nor No among the top %d tokens; P(Yes) set to 0.5", len(table))
        # A word missing from the top-k has at most the smallest listed probability: use that bound.
        lp_yes = floor if lp_yes == -math.inf else lp_yes
        lp_no = floor if lp_no == -math.inf else lp_no
        return YesNoResult.from_logprobs(
            lp_yes, lp_no, usage=usage, latency_s=latency, model_id=self.model_id
        )

    def _option_scores(self, table: dict[str, float], options: Sequence[str]) -> list[float]:
        """Each option's log-prob as a first token; an option missing from the top-k is an error.

        A chat-completions server only returns the top-k first tokens, so a multi-token option or
        one outside the top-k cannot be scored exactly: refuse rather than guess.
        """
        scores = []
        for option in options:
            matches = [lp for tok, lp in table.items() if tok.strip() == option.strip()]
            if not matches:
                raise UnsupportedRequestError(
                    f"option {option!r} is not among the top {len(table)} first tokens that the server at "
                    f"{self.base_url} returned; use single-token options (e.g. letters A-D) or raise "
                    "top_logprobs"
                )
            top = max(matches)
            scores.append(top + math.log(sum(math.exp(m - top) for m in matches)))
        return scores

    def _prepare(
        self, request: VLMRequest, ledger: TokenLedger, *, logprobs: bool, top: int | None = None
    ) -> tuple[dict[str, Any], int, int]:
        """The HTTP body, the tokens to hold, and the predicted visual tokens."""
        request, fitted = self._fit(request, ledger)
        if fitted is None and ledger.limit is not None:
            raise UnsupportedRequestError(
                f"cannot hold this call within the question's {ledger.limit}-token budget: nothing bounds "
                f"how many visual tokens the server at {self.base_url} makes of an image. Declare the served "
                "model's family (OpenAIVLM(family=...), --family, or token_rule=...), or set no "
                "max_total_tokens"
            )
        visual = fitted or 0
        prompt = visual + text_bound(request)
        new_tokens = 1 if logprobs else request.options.max_new_tokens
        remaining = ledger.remaining
        if not logprobs and remaining is not None:
            # the server may write no more than the budget has left after the prompt (the hold refuses
            # the call when not even one token is left)
            new_tokens = max(1, min(new_tokens, remaining - prompt))
        body = self._body(request, logprobs=logprobs, top=top, max_tokens=new_tokens)
        return body, prompt + new_tokens, visual

    def _refused_logprobs(self, exc: openai.APIStatusError, body: dict[str, Any]) -> dict[str, Any] | None:
        """The generate ``body`` without ``logprobs`` when ``exc`` is the server refusing that field (HTTP
        400 / 422 naming it); from then on ``generate`` no longer asks. None for any other error."""
        if "logprobs" not in body or exc.status_code not in (400, 422) or "logprob" not in str(exc).lower():
            return None
        logger.warning(
            "the model server at %s refused logprobs for generation (%s); generating without them",
            self.base_url,
            exc,
        )
        self._generate_logprobs = False
        return {k: v for k, v in body.items() if k not in ("logprobs", "top_logprobs")}

    def _generated(
        self, response: Any, visual: int, estimate: int, held: Reservation, latency: float
    ) -> VLMResult:
        usage = reported_usage(response, visual, estimate)
        held.commit(usage)
        choice = response.choices[0]
        return VLMResult(
            text=(choice.message.content or "").strip(),
            finish_reason=choice.finish_reason,
            token_logprobs=generated_logprobs(choice),
            usage=usage,
            latency_s=latency,
            model_id=self.model_id,
        )

    def _probed(
        self, response: Any, visual: int, estimate: int, held: Reservation
    ) -> tuple[dict[str, float], TokenUsage]:
        usage = reported_usage(response, visual, estimate)
        held.commit(usage)
        return self._top_logprobs(response), usage

    def _scored(
        self, table: dict[str, float], options: Sequence[str], usage: TokenUsage, latency: float
    ) -> ScoreResult:
        return ScoreResult(
            options=list(options),
            logprobs=self._option_scores(table, options),
            usage=usage,
            latency_s=latency,
            model_id=self.model_id,
        )

    # ------------------------------------------------------------------ sync operations
    def generate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult:
        ledger = ledger_or_own(request, ledger)
        body, hold, visual = self._prepare(request, ledger, logprobs=False)
        with ledger.hold(hold, "generate") as held, self._errors():
            start = time.perf_counter()
            try:
                response = self._client.chat.completions.create(**body)
            except openai.APIStatusError as exc:
                retry = self._refused_logprobs(exc, body)
                if retry is None:
                    raise
                response = self._client.chat.completions.create(**retry)
            return self._generated(response, visual, hold, held, time.perf_counter() - start)

    def _logprob_call(
        self, request: VLMRequest, ledger: TokenLedger, top: int | None = None
    ) -> tuple[dict[str, float], TokenUsage, float]:
        body, hold, visual = self._prepare(request, ledger, logprobs=True, top=top)
        with ledger.hold(hold, "logprob probe") as held, self._errors():
            start = time.perf_counter()
            response = self._client.chat.completions.create(**body)
            latency = time.perf_counter() - start
            return (*self._probed(response, visual, hold, held), latency)

    def yes_probability(self, request: VLMRequest, ledger: TokenLedger | None = None) -> YesNoResult:
        table, usage, latency = self._logprob_call(request, ledger_or_own(request, ledger))
        return self._yes_no(table, usage, latency)

    def yes_probabilities(
        self, requests: Sequence[VLMRequest], ledger: TokenLedger | None = None
    ) -> list[YesNoResult]:
        """Several probes sent together (answers in request order), so that the server batches them;
        one after another, each would wait for the previous round trip."""
        if len(requests) <= 1 or self.max_parallel_probes <= 1:
            return [self.yes_probability(r, ledger) for r in requests]
        # a pool per call: a shared one would cap the probes in flight across concurrent questions
        with ThreadPoolExecutor(min(len(requests), self.max_parallel_probes)) as pool:
            return list(pool.map(lambda r: self.yes_probability(r, ledger), requests))

    def score(
        self, request: VLMRequest, options: Sequence[str], ledger: TokenLedger | None = None
    ) -> ScoreResult:
        if not options:
            raise UnsupportedRequestError("score needs at least one option")
        table, usage, latency = self._logprob_call(
            request, ledger_or_own(request, ledger), self.score_top_logprobs
        )
        return self._scored(table, options, usage, latency)

    # ------------------------------------------------------------------ async operations
    # Image resizing and PNG encoding run in a worker thread so they never block the event loop.
    async def agenerate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult:
        ledger = ledger_or_own(request, ledger)
        body, hold, visual = await asyncio.to_thread(self._prepare, request, ledger, logprobs=False)
        with ledger.hold(hold, "generate") as held, self._errors():
            start = time.perf_counter()
            try:
                response = await self._aclient.chat.completions.create(**body)
            except openai.APIStatusError as exc:
                retry = self._refused_logprobs(exc, body)
                if retry is None:
                    raise
                response = await self._aclient.chat.completions.create(**retry)
            return self._generated(response, visual, hold, held, time.perf_counter() - start)

    async def _alogprob_call(
        self, request: VLMRequest, ledger: TokenLedger, top: int | None = None
    ) -> tuple[dict[str, float], TokenUsage, float]:
        body, hold, visual = await asyncio.to_thread(self._prepare, request, ledger, logprobs=True, top=top)
        with ledger.hold(hold, "logprob probe") as held, self._errors():
            start = time.perf_counter()
            response = await self._aclient.chat.completions.create(**body)
            latency = time.perf_counter() - start
            return (*self._probed(response, visual, hold, held), latency)

    async def ayes_probability(self, request: VLMRequest, ledger: TokenLedger | None = None) -> YesNoResult:
        table, usage, latency = await self._alogprob_call(request, ledger_or_own(request, ledger))
        return self._yes_no(table, usage, latency)

    async def ayes_probabilities(
        self, requests: Sequence[VLMRequest], ledger: TokenLedger | None = None
    ) -> list[YesNoResult]:
        return list(await asyncio.gather(*(self.ayes_probability(r, ledger) for r in requests)))

    async def ascore(
        self, request: VLMRequest, options: Sequence[str], ledger: TokenLedger | None = None
    ) -> ScoreResult:
        if not options:
            raise UnsupportedRequestError("score needs at least one option")
        table, usage, latency = await self._alogprob_call(
            request, ledger_or_own(request, ledger), self.score_top_logprobs
        )
        return self._scored(table, options, usage, latency)


def served_profile(
    family: str | None, token_rule: VisualTokenRule | None, families: FamilyRegistry
) -> VLMProfile:
    """The profile of a served model: its named family (with ``token_rule``, or the family's reference
    rule); else the family of ``token_rule`` when one is registered under that name; else unknown. A
    server shows no model internals: no attention maps, no pruning, no shared prefixes."""
    if family is None and token_rule is not None and token_rule.family in families:
        family = token_rule.family
    if family is None:
        return VLMProfile.unknown(token_rule=token_rule) if token_rule is not None else VLMProfile.unknown()
    profile = families.get(family).profile(token_rule=token_rule)
    return profile.with_(relevance_maps=False, prefix_reuse=False, prune_methods=())
