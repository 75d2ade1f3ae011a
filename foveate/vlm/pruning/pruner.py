"""Training-free visual-token pruning inside a local VLM: FasterVLM ("cls") and FastV ("fastv").

Why: a VLM prompt is mostly image placeholders (576 of ~650 tokens for LLaVA-1.5), and zoom search
multiplies the calls, so the language model's prefill is where the time goes. Both methods drop visual
tokens the model is unlikely to need, without any training:

- ``cls`` (FasterVLM): in the vision layer LLaVA takes its features from (``config.vision_feature_layer``),
  the [CLS] token's attention over the patches, averaged over heads, ranks them; the top ``keep`` fraction
  (kept in their original order) is projected and the language model sees only those. The prompt really
  becomes shorter: the dropped placeholders are removed and positions are contiguous, as if the image had
  produced fewer tokens.
- ``fastv`` (FastV): the first ``layer`` decoder layers run on every token; the attention the last prompt
  token pays each visual token in the last of those layers (head-averaged, recomputed from that layer's
  query and key projections, so no eager attention is needed) ranks them, and the deeper layers run on the
  kept ones only. Kept tokens keep their original rotary positions: for Qwen2-VL and Qwen2.5-VL the 3-D
  M-RoPE (temporal, height, width) positions ``get_rope_index`` gives the full prompt, so generated tokens
  continue from the unpruned prompt's last position (``rope_deltas``' rule), as if nothing was dropped.

Why a hand-written decoder loop rather than ``model(...)``: FastV changes the sequence between layers, and
``generate`` then needs a cache whose deeper layers are shorter than the first ones, which transformers'
masks cannot describe. The loop uses the model's own modules (embeddings, decoder layers, rotary
embedding, mask builder, norm, head), so at ``keep=1.0`` it reproduces the stock forward pass (tested).

Which methods run on which models is a fact of each family (``Family.pruning``, ``Family.mrope`` in
``foveate.vlm.families``). Results are returned in the *original* column layout (the processor's,
with every placeholder), so callers index logits exactly as they do without pruning; columns of
dropped tokens hold zero hidden states and must not be read (no caller reads logits at image
placeholders).

Supported: ``fastv`` for LLaVA with a Llama language model and for Qwen2-VL and Qwen2.5-VL
(``model_type`` ``"qwen2_vl"`` / ``"qwen2_5_vl"``, images only, full-attention layers only); ``cls`` for
LLaVA only, with a CLIP-style vision tower with a [CLS] token (``vision_feature_select_strategy ==
"default"``, an integer feature layer): the Qwen vision towers have no [CLS] token. Qwen2.5-VL takes the
Qwen2-VL path unchanged: its language model is the same Qwen2 decoder with M-RoPE, its window-attention
vision tower is reached through the same ``get_image_features``, and its ``get_rope_index`` differs from
Qwen2-VL's only for videos (``second_per_grid_ts`` spaces their temporal positions), which pruning
refuses. Anything else raises ``UnsupportedRequestError`` naming the model. Idefics3 is not implemented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from foveate.errors import UnsupportedRequestError
from foveate.vlm.pruning.spec import PruneSpec, kept_count

if TYPE_CHECKING:
    from foveate.vlm.profile import Family


@dataclass
class Prefill:
    """The language model's state after the prompt, in the pruned layout (right-padded rows)."""

    hidden: torch.Tensor  # (B, W, D) after the final norm
    columns: torch.Tensor  # (B, W) original column of each slot
    valid: torch.Tensor  # (B, W) bool, False for padding
    positions: torch.Tensor  # (B, W) rotary positions, or (B, W, 3) M-RoPE (temporal, height, width)
    cache: Any  # DynamicCache or None
    computed_visual: list[int]  # per row, as PruneSpec.computed_visual
    kept_visual: list[int]  # per row, visual tokens in the deepest layers


def _take(x: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``x[b, columns[b, j], ...]`` for every row b."""
    index = columns.view(*columns.shape, *([1] * (x.dim() - 2))).expand(*columns.shape, *x.shape[2:])
    return x.gather(1, index)


def _pack(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns of each row's kept entries, in order, packed to the left; and which slots are real."""
    counts = keep.sum(dim=1)
    width = max(int(counts.max()), 1)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :width]
    valid = torch.arange(width, device=keep.device)[None, :] < counts[:, None]
    return order, valid


def _rope_positions(positions: torch.Tensor) -> torch.Tensor:
    """Positions as the rotary embedding takes them: (B, W), or (3, B, W) for M-RoPE."""
    return positions.permute(2, 0, 1) if positions.dim() == 3 else positions


def _layer_positions(positions: torch.Tensor) -> torch.Tensor | None:
    """What the decoder layers (and the mask builder) get as ``position_ids``.

    Qwen2-VL's own forward passes None for 3-D positions (its layers read them only to find packed
    sequences for flash attention, which an explicit attention mask makes moot), so we do the same.
    """
    return None if positions.dim() == 3 else positions


class VisualTokenPruner:
    """Runs a VLM's prefill (and greedy or sampled decoding) with visual tokens pruned."""

    def __init__(self, model: Any, image_token_id: int, model_id: str, family: Family | None) -> None:
        """``family``: the model's family, whose ``pruning`` table says which methods run on which language
        models and whose ``mrope`` says how positions are kept (None: no method runs)."""
        self.model = model
        self.config = model.config
        self.image_token_id = image_token_id
        self.model_id = model_id
        self.family = family
        self.mrope = family is not None and family.mrope

    # ------------------------------------------------------------------ support checks
    @property
    def _lm(self) -> Any:
        return self.model.model.language_model

    @property
    def depth(self) -> int:
        text = getattr(self.config, "text_config", self.config)
        return int(text.num_hidden_layers)

    def check(self, spec: PruneSpec) -> None:
        """Raise ``UnsupportedRequestError`` (before any model work) if this model cannot do ``spec``."""
        model_type = str(self.config.model_type)
        text_type = str(getattr(getattr(self.config, "text_config", None), "model_type", "?"))
        if spec.method == "cls" and self.mrope:
            raise UnsupportedRequestError(
                f"cls visual-token pruning needs a vision tower with a [CLS] token (LLaVA's CLIP); "
                f"{self.model_id} is a {model_type} model, whose vision tower has none: use prune='fastv'"
            )
        runs_on = (
            self.family.pruning.get(spec.method, frozenset()) if self.family is not None else frozenset()
        )
        if text_type not in runs_on:
            where = (
                f"on {', '.join(sorted(runs_on))} language models of the {self.family.name} family"
                if self.family is not None and runs_on
                else f"for no model of {'its' if self.family is not None else 'an unknown'} family"
            )
            raise UnsupportedRequestError(
                f"{spec.method!r} visual-token pruning is implemented {where}; "
                f"{self.model_id} is a {model_type} model ({text_type} language model)"
            )
        if getattr(self._lm, "has_sliding_layers", False):
            raise UnsupportedRequestError(
                f"visual-token pruning needs full-attention decoder layers; {self.model_id} uses "
                "sliding-window attention"
            )
        if spec.method == "fastv" and not 1 <= spec.layer < self.depth:
            raise UnsupportedRequestError(
                f"fastv layer {spec.layer} must be between 1 and {self.depth - 1} for {self.model_id} "
                f"({self.depth} decoder layers)"
            )
        if spec.method == "cls":
            tower = self.model.model.vision_tower
            layer = self.config.vision_feature_layer
            has_cls = getattr(getattr(tower, "embeddings", None), "class_embedding", None) is not None
            if (
                not has_cls
                or self.config.vision_feature_select_strategy != "default"
                or not isinstance(layer, int)
                or not hasattr(tower, "encoder")
            ):
                raise UnsupportedRequestError(
                    f"cls pruning needs a CLIP-style vision tower with a [CLS] token and one feature layer; "
                    f"{self.model_id} has neither or selects several layers"
                )

    # ------------------------------------------------------------------ vision side
    def _image_features(self, inputs: dict[str, Any]) -> torch.Tensor:
        """Every image's projected features, concatenated in image order, (tokens, D), as the model's
        own forward computes them (Qwen2-VL's images may each give a different number of tokens)."""
        if self.mrope:
            out = self.model.model.get_image_features(
                inputs["pixel_values"], inputs["image_grid_thw"], return_dict=True
            )
        else:
            out = self.model.model.get_image_features(
                pixel_values=inputs["pixel_values"],
                vision_feature_layer=self.config.vision_feature_layer,
                vision_feature_select_strategy=self.config.vision_feature_select_strategy,
                return_dict=True,
            )
        return torch.cat([f.reshape(-1, f.shape[-1]) for f in out.pooler_output])

    def cls_attention(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The [CLS] token's head-averaged attention over the patches in the feature layer, (images, N),
        and that layer's patch features (images, N, D_vision), CLS excluded.

        Recomputed from the layer's input (its LayerNorm, query and key projections): only the CLS query
        is needed, and the vision tower keeps its fast attention kernel.
        """
        tower = self.model.model.vision_tower
        out = tower(pixel_values=pixel_values, output_hidden_states=True, return_dict=True)
        states = out.hidden_states
        index = int(self.config.vision_feature_layer) % len(states)
        if index == 0:
            raise UnsupportedRequestError(f"{self.model_id} takes image features from the patch embeddings")
        layer = tower.encoder.layers[index - 1]
        attn = layer.self_attn
        x = layer.layer_norm1(states[index - 1])
        images, tokens, _ = x.shape
        heads, dim = attn.num_heads, attn.head_dim
        q = attn.q_proj(x[:, :1]).view(images, 1, heads, dim).transpose(1, 2)
        k = attn.k_proj(x).view(images, tokens, heads, dim).transpose(1, 2)
        weights = torch.softmax((q @ k.transpose(-1, -2)).float() * attn.scale, dim=-1)
        return weights.mean(dim=1)[:, 0, 1:], states[index][:, 1:]

    def _cls_pruned_features(
        self, pixel_values: torch.Tensor, keep: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Kept projected features (images, k, D) in patch order, and the kept-patch mask (images, N)."""
        scores, patches = self.cls_attention(pixel_values)
        k = kept_count(scores.shape[1], keep)
        index = scores.topk(k, dim=1).indices.sort(dim=1).values
        kept = self.model.model.multi_modal_projector(_take(patches, index))
        mask = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, index, True)
        return kept, mask

    # ------------------------------------------------------------------ language side
    def _mask_and_rope(
        self, hidden: torch.Tensor, valid: torch.Tensor, positions: torch.Tensor
    ) -> tuple[Any, tuple[torch.Tensor, torch.Tensor]]:
        from transformers.masking_utils import create_causal_mask

        lm = self._lm
        mask = create_causal_mask(
            config=lm.config,
            inputs_embeds=hidden,
            attention_mask=valid.long(),
            past_key_values=None,
            position_ids=_layer_positions(positions),
        )
        return mask, lm.rotary_emb(hidden, position_ids=_rope_positions(positions))

    def _mrope_positions(self, inputs: dict[str, Any], real: torch.Tensor) -> torch.Tensor:
        """Qwen2-VL's (or Qwen2.5-VL's) 3-D positions of the whole prompt in the processor's layout,
        (B, L, 3), from the model's own ``get_rope_index`` (padding ignored, as in its forward and
        ``generate``). Images only: Qwen2.5-VL's ``second_per_grid_ts`` spaces video frames, not images."""
        ids = inputs["input_ids"]
        types = inputs.get("mm_token_type_ids")
        if types is None:
            types = (ids == self.image_token_id).long()
        positions, _ = self.model.model.get_rope_index(
            ids,
            mm_token_type_ids=types,
            image_grid_thw=inputs.get("image_grid_thw"),
            attention_mask=real.long(),
        )
        return positions.permute(1, 2, 0)

    @staticmethod
    def last_token_attention(
        layer: Any, hidden: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], valid: torch.Tensor
    ) -> torch.Tensor:
        """Head-averaged attention of each row's last real token over its keys in ``layer``, (B, W).

        Recomputed from the layer's input exactly as the layer's attention computes it (RMSNorm, q/k
        projections, rotary embedding, grouped key heads, scaling), for the last query only. Llama's
        rotate-half serves Qwen2-VL and Qwen2.5-VL too: their rotary embeddings already fold M-RoPE's
        three axes into ``rope``'s cos and sin.
        """
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

        attn = layer.self_attn
        x = layer.input_layernorm(hidden)
        batch, width, _ = x.shape
        rows = torch.arange(batch, device=x.device)
        last = valid.sum(dim=1) - 1
        cos, sin = rope
        q = attn.q_proj(x[rows, last][:, None]).view(batch, 1, -1, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(batch, width, -1, attn.head_dim).transpose(1, 2)
        q, _ = apply_rotary_pos_emb(q, q, cos[rows, last][:, None], sin[rows, last][:, None])
        _, k = apply_rotary_pos_emb(k, k, cos, sin)
        k = repeat_kv(k, attn.num_key_value_groups)
        scores = (q @ k.transpose(-1, -2)).float() * attn.scaling  # (B, H, 1, W)
        scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
        return torch.softmax(scores, dim=-1).mean(dim=1)[:, 0]

    @torch.inference_mode()
    def prefill(self, inputs: dict[str, Any], spec: PruneSpec, *, use_cache: bool = False) -> Prefill:
        """Run the prompt through the model with ``spec``'s pruning; inputs as the processor made them."""
        lm = self._lm
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        real = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
        image = (ids == self.image_token_id) & real
        embeds = lm.embed_tokens(ids)
        keep_columns = real.clone()
        pixel_values = inputs.get("pixel_values")
        if inputs.get("pixel_values_videos") is not None:
            raise UnsupportedRequestError(f"visual-token pruning takes images, not videos ({self.model_id})")
        if pixel_values is not None and bool(image.any()):
            where = image.nonzero()  # row-major, the order the processor lays images out in
            if spec.method == "cls":
                features, kept = self._cls_pruned_features(pixel_values, spec.keep)
                if kept.numel() != len(where):
                    raise UnsupportedRequestError(
                        f"{len(where)} image placeholders but {kept.numel()} image patches in {self.model_id}"
                    )
                dropped = where[~kept.reshape(-1)]
                keep_columns[dropped[:, 0], dropped[:, 1]] = False
                slots = where[kept.reshape(-1)]
                embeds[slots[:, 0], slots[:, 1]] = features.reshape(-1, features.shape[-1]).to(embeds.dtype)
            else:
                features = self._image_features(inputs)
                if len(features) != len(where):
                    raise UnsupportedRequestError(
                        f"{len(where)} image placeholders but {len(features)} image features "
                        f"in {self.model_id}"
                    )
                embeds[image] = features.to(embeds.dtype)

        columns, valid = _pack(keep_columns)
        hidden = _take(embeds, columns)
        visual = _take(image, columns) & valid
        if self.mrope:
            positions = _take(self._mrope_positions(inputs, real), columns)
        else:  # contiguous: cls's trimmed prompt reads as if the image had produced fewer tokens
            positions = torch.arange(columns.shape[1], device=ids.device)[None, :].expand_as(columns)
        visual_before = [int(v) for v in visual.sum(dim=1)]

        from transformers import DynamicCache

        cache = DynamicCache(config=lm.config) if use_cache else None
        split = spec.layer if spec.method == "fastv" else -1
        causal, rope = self._mask_and_rope(hidden, valid, positions)
        ranking: torch.Tensor | None = None
        for i, layer in enumerate(lm.layers):
            if i == split and ranking is not None:
                hidden, columns, valid, positions, visual = self._drop(
                    ranking, spec.keep, hidden, columns, valid, positions, visual
                )
                causal, rope = self._mask_and_rope(hidden, valid, positions)
            if i == split - 1:
                ranking = self.last_token_attention(layer, hidden, rope, valid)
            hidden = layer(
                hidden,
                attention_mask=causal,
                position_ids=_layer_positions(positions),
                past_key_values=cache,
                use_cache=use_cache,
                position_embeddings=rope,
            )
        hidden = lm.norm(hidden)
        kept_visual = [int(v) for v in visual.sum(dim=1)]
        if spec.method == "fastv":
            depth = len(lm.layers)
            computed = [
                math.ceil((spec.layer * n + (depth - spec.layer) * k) / depth) if n else 0
                for n, k in zip(visual_before, kept_visual, strict=True)
            ]
        else:
            computed = kept_visual
        return Prefill(hidden, columns, valid, positions, cache, computed, kept_visual)

    @staticmethod
    def _drop(
        ranking: torch.Tensor,
        keep: float,
        hidden: torch.Tensor,
        columns: torch.Tensor,
        valid: torch.Tensor,
        positions: torch.Tensor,
        visual: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep every text token and each row's top ``keep`` visual tokens by ``ranking``."""
        width = ranking.shape[1]
        order = ranking.masked_fill(~visual, float("-inf")).argsort(dim=1, descending=True, stable=True)
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(width, device=order.device)[None, :].expand_as(order)
        )
        quota = torch.tensor([kept_count(int(n), keep) for n in visual.sum(dim=1)], device=order.device)
        keep_slots = valid & (~visual | (rank < quota[:, None]))
        index, new_valid = _pack(keep_slots)
        return (
            _take(hidden, index),
            _take(columns, index),
            new_valid,
            _take(positions, index),
            _take(visual, index) & new_valid,
        )

    def logits(
        self, inputs: dict[str, Any], spec: PruneSpec, keep: int | torch.Tensor
    ) -> tuple[torch.Tensor, Prefill]:
        """Logits at original columns ``keep`` (``logits_to_keep`` semantics: an int keeps the last n)."""
        state = self.prefill(inputs, spec)
        batch, length = inputs["input_ids"].shape
        full = state.hidden.new_zeros(batch, length, state.hidden.shape[-1])
        rows = torch.arange(batch, device=full.device)[:, None].expand_as(state.columns)
        full[rows[state.valid], state.columns[state.valid]] = state.hidden[state.valid]
        if isinstance(keep, int):
            picked = full[:, -keep:] if keep > 0 else full
        else:
            picked = full[:, keep.to(full.device)]
        return self.model.lm_head(picked).float(), state

    @torch.inference_mode()
    def generate(
        self,
        inputs: dict[str, Any],
        spec: PruneSpec,
        *,
        max_new_tokens: int,
        eos: set[int],
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> tuple[list[int], list[float], Prefill]:
        """Decode one prompt (batch of one) after a pruned prefill; greedy when ``temperature`` is 0.

        Returns the tokens, the log-probability the model gave each (``log_softmax`` of its raw logits, not
        the temperature / top-p distribution it was sampled from), and the prefill's state.

        Each layer's cache holds what that layer saw (FastV's deeper layers hold fewer tokens); new
        tokens take the positions after the prompt's largest one, on every M-RoPE axis alike: what
        transformers' ``generate`` gives them (for Qwen2(.5)-VL, text position plus ``rope_deltas``), from
        the unpruned prompt's positions, which the kept tokens carry.
        """
        if inputs["input_ids"].shape[0] != 1:
            raise UnsupportedRequestError("pruned generation decodes one prompt at a time")
        lm = self._lm
        state = self.prefill(inputs, spec, use_cache=True)
        last = int(state.valid[0].sum()) - 1
        hidden = state.hidden[:, last]
        position = int(state.positions[0, : last + 1].max()) + 1
        axes = state.positions.shape[2:]  # () or (3,) for M-RoPE
        tokens: list[int] = []
        logprobs: list[float] = []
        for step in range(max_new_tokens):
            logits = self.model.lm_head(hidden).float()[0]
            token = _choose(logits, temperature, top_p)
            tokens.append(token)
            logprobs.append(float(torch.log_softmax(logits, dim=-1)[token]))
            if token in eos or step == max_new_tokens - 1:
                break
            x = lm.embed_tokens(torch.tensor([[token]], device=hidden.device))
            pos = torch.full((1, 1, *axes), position, device=hidden.device)
            rope = lm.rotary_emb(x, position_ids=_rope_positions(pos))
            for layer in lm.layers:
                x = layer(
                    x,
                    attention_mask=None,
                    position_ids=_layer_positions(pos),
                    past_key_values=state.cache,
                    use_cache=True,
                    position_embeddings=rope,
                )
            hidden = lm.norm(x)[:, -1]
            position += 1
        return tokens, logprobs, state


def _choose(logits: torch.Tensor, temperature: float, top_p: float) -> int:
    """Greedy pick, or a sample from the temperature-scaled nucleus of mass ``top_p``."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    outside = sorted_probs.cumsum(0) - sorted_probs > top_p
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    return int(order[torch.multinomial(sorted_probs / sorted_probs.sum(), 1)])
