"""Prism's local fusion model, whole, in one file.

An item is a set of modality vectors (text, image, captions, metadata, ...), each of which
may be missing. Each present modality is projected into a shared ``d_model`` space (its
*token*); a fusion module turns the tokens into one item vector; a user is the attention
pooled vector of their history items (plus an optional user id embedding); a score is the
cosine of the two divided by a temperature.

Missing modalities are masked, never filled with noise: a missing modality's input is zeroed
before projection, its token is zero and it gets exactly zero weight in every fusion
strategy, so changing a masked input changes no output. An item with no modality at all
gets a learned ``empty`` vector (trained through modality dropout and the items that really
have nothing); with ``use_item_id`` its id embedding is added on top. Id embeddings start at
zero, so an item never seen in training is ranked from its content alone (cold start).

Training objectives live here too: the recommendation loss (in-batch sampled softmax with
log-Q correction, or BPR) and the symmetric InfoNCE loss that aligns an item's text and
image tokens, so that text→image and image→text retrieval work in the token space.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

FUSIONS = ("concat", "weighted", "attention", "gated")
LOSSES = ("softmax", "bpr")


@dataclass
class FusionConfig:
    """Everything that defines a model's shape and objective (saved in checkpoints)."""

    modalities: tuple[str, ...] = ("text", "image")
    dims: dict[str, int] = field(default_factory=lambda: {"text": 384, "image": 1280})
    n_users: int = 0  # needed only with use_user_id (train_fusion fills it from the data)
    n_items: int = 0  # needed only with use_item_id (train_fusion fills it from the data)
    d_model: int = 64
    fusion: str = "attention"
    n_heads: int = 4  # attention fusion only
    use_user_id: bool = False
    use_item_id: bool = False
    loss: str = "softmax"
    temperature: float = 0.1  # scores are cosine / temperature
    logq_correction: bool = True  # softmax loss: undo the popularity bias of in-batch negatives
    align_pair: tuple[str, str] = ("text", "image")
    align_weight: float = 0.2  # 0 turns the InfoNCE alignment off
    align_temperature: float = 0.1
    dropout: float = 0.1
    modality_dropout: float = 0.1  # training only: drop each present modality with this probability
    max_history: int = 50

    def __post_init__(self) -> None:
        self.modalities = tuple(self.modalities)
        self.align_pair = tuple(self.align_pair)  # type: ignore[assignment]
        self.dims = {str(k): int(v) for k, v in self.dims.items()}
        problems = []
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            problems.append(f"modalities must be a non-empty list of distinct names, got {list(self.modalities)}")
        if missing := [m for m in self.modalities if m not in self.dims]:
            problems.append(f"no input dimension for modalities {missing} (dims has {sorted(self.dims)})")
        if self.fusion not in FUSIONS:
            problems.append(f"fusion must be one of {FUSIONS}, got '{self.fusion}'")
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {LOSSES}, got '{self.loss}'")
        if self.d_model % self.n_heads:
            problems.append(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if len(self.align_pair) != 2:
            problems.append(f"align_pair must name two modalities, got {list(self.align_pair)}")
        if self.temperature <= 0 or self.align_temperature <= 0 or self.max_history <= 0:
            problems.append("temperature, align_temperature and max_history must be positive")
        if problems:
            raise ValueError("invalid FusionConfig: " + "; ".join(problems))

    @property
    def aligns(self) -> bool:
        """True when the InfoNCE loss is on: a positive weight and both aligned modalities present."""
        return self.align_weight > 0 and all(m in self.modalities for m in self.align_pair)

    def to_dict(self) -> dict:
        """Plain JSON-able values (tuples become lists)."""
        out = asdict(self)
        out["modalities"], out["align_pair"] = list(self.modalities), list(self.align_pair)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "FusionConfig":
        """Inverse of ``to_dict``; unknown keys are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        if unknown := set(data) - known:
            raise ValueError(f"invalid FusionConfig: unknown fields {sorted(unknown)}")
        return cls(**data)


@dataclass
class ItemInputs:
    """Per-item modality inputs: ``features[m]`` is ``[N, dims[m]]`` float, ``masks[m]`` is ``[N]``
    bool (True = present). Rows of a missing modality may hold anything; they are never read."""

    features: dict[str, Tensor]
    masks: dict[str, Tensor]

    def __post_init__(self) -> None:
        if set(self.features) != set(self.masks) or not self.features:
            raise ValueError(f"features {sorted(self.features)} and masks {sorted(self.masks)} "
                             "must name the same modalities")
        n = {len(t) for t in self.features.values()} | {len(t) for t in self.masks.values()}
        if len(n) != 1:
            raise ValueError(f"every modality needs the same number of rows, got {sorted(n)}")
        self.masks = {m: t.bool() for m, t in self.masks.items()}

    @classmethod
    def from_numpy(cls, features: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> "ItemInputs":
        return cls({m: torch.as_tensor(np.asarray(x, dtype=np.float32)) for m, x in features.items()},
                   {m: torch.as_tensor(np.asarray(x, dtype=bool)) for m, x in masks.items()})

    def __len__(self) -> int:
        return len(next(iter(self.masks.values())))

    @property
    def device(self) -> torch.device:
        return next(iter(self.masks.values())).device

    def take(self, rows: Tensor) -> "ItemInputs":
        """The items at ``rows`` (a 1-d index tensor on the same device)."""
        return ItemInputs({m: x[rows] for m, x in self.features.items()}, {m: x[rows] for m, x in self.masks.items()})

    def to(self, device: torch.device | str) -> "ItemInputs":
        return ItemInputs({m: x.to(device) for m, x in self.features.items()},
                          {m: x.to(device) for m, x in self.masks.items()})


@dataclass
class ItemEncoding:
    vectors: Tensor  # [N, d] what users are scored against (fused, or empty, + item id)
    tokens: Tensor  # [N, M, d] per-modality projections, the aligned space; zero where missing
    mask: Tensor  # [N, M] present modalities
    # [N, M] each modality's share of the fused vector: 0 where missing (or hidden by modality
    # dropout), rows sum to 1, or to 0 for an item with no modality
    weights: Tensor


@dataclass
class UserEncoding:
    vectors: Tensor  # [U, d]
    attention: Tensor  # [U, L] weight of each history slot: 0 on padding, rows sum to 1 (or 0 for an empty history)


@dataclass
class FusionOutput:
    scores: Tensor  # [U, N]
    items: ItemEncoding
    users: UserEncoding


def masked_softmax(logits: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Softmax over ``dim`` where masked entries get exactly 0; an all-masked slice is all 0.

    A finite fill (not -inf) keeps all-masked slices free of NaN in forward and backward."""
    logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return torch.softmax(logits, dim) * mask


def build_history(users: np.ndarray, items: np.ndarray, times: np.ndarray, n_users: int,
                  max_history: int) -> tuple[Tensor, Tensor]:
    """Each user's items, most recent first, truncated to ``max_history``: ``(items [U, L] long,
    mask [U, L] bool)``; padding holds item 0 with mask False. Ties in time: later row first."""
    users, items, times = (np.asarray(a, dtype=np.int64) for a in (users, items, times))
    order = np.lexsort((-np.arange(len(users)), -times, users))
    u, i = users[order], items[order]
    counts = np.bincount(u, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    slot = np.arange(len(u)) - starts[u]
    keep = slot < max_history
    history = np.zeros((n_users, max_history), dtype=np.int64)
    mask = np.zeros((n_users, max_history), dtype=bool)
    history[u[keep], slot[keep]] = i[keep]
    mask[u[keep], slot[keep]] = True
    return torch.from_numpy(history), torch.from_numpy(mask)


class ModalityProjection(nn.Module):
    """Unit-normalised input → MLP → LayerNorm: one modality's token in the shared space.

    Unit-normalising first makes modalities of very different scales (MiniLM unit vectors,
    EfficientNet activations) comparable."""

    def __init__(self, d_in: int, d_model: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_model), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(d_model, d_model), nn.LayerNorm(d_model))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(F.normalize(x, dim=-1))


# Every fusion module maps (tokens [N, M, d], mask [N, M]) to (fused [N, d], weights [N, M]).
# Masked tokens are zero on entry and get weight 0; rows with no modality are replaced by the
# model's empty vector afterwards, so what a module returns for them does not matter.

class ConcatFusion(nn.Module):
    """Concatenated tokens and presence bits → MLP. Weights: each modality's share of the norm
    of the first layer's input-dependent pre-activation (a modality's term W_m h_m)."""

    def __init__(self, n_modalities: int, d: int, dropout: float) -> None:
        super().__init__()
        self.m, self.d = n_modalities, d
        self.hidden = nn.Linear(n_modalities * d + n_modalities, 2 * d)
        self.out = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * d, d))

    def forward(self, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        w = self.hidden.weight
        per_modality = w[:, : self.m * self.d].reshape(-1, self.m, self.d)
        parts = torch.einsum("nmd,hmd->nmh", tokens, per_modality)
        pre = parts.sum(1) + mask.to(w.dtype) @ w[:, self.m * self.d:].T + self.hidden.bias
        share = parts.float().norm(dim=-1) * mask
        return self.out(pre), share / share.sum(1, keepdim=True).clamp_min(1e-12)


class WeightedFusion(nn.Module):
    """A learned weight per modality (softmax over the present ones) × its token."""

    def __init__(self, n_modalities: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_modalities))

    def forward(self, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        weights = masked_softmax(self.logits.expand(mask.shape), mask, dim=1)
        return (weights.unsqueeze(-1).to(tokens.dtype) * tokens).sum(1), weights


class AttentionFusion(nn.Module):
    """Multi-head attention pooling over modality tokens (+ a type embedding each) with a
    learned query: item-specific weights. Weights: attention averaged over heads."""

    def __init__(self, n_modalities: int, d: int, n_heads: int) -> None:
        super().__init__()
        self.h = n_heads
        self.type_embedding = nn.Parameter(torch.randn(n_modalities, d) * 0.02)
        self.query = nn.Parameter(torch.randn(n_heads, d // n_heads) * (d // n_heads) ** -0.5)
        self.key, self.value, self.out = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        n, m, d = tokens.shape
        x = tokens + self.type_embedding
        keys = self.key(x).view(n, m, self.h, -1)
        values = self.value(x).view(n, m, self.h, -1)
        logits = torch.einsum("nmhe,he->nhm", keys, self.query.to(keys.dtype)) / math.sqrt(d // self.h)
        attention = masked_softmax(logits, mask[:, None, :], dim=-1)
        pooled = torch.einsum("nhm,nmhe->nhe", attention.to(values.dtype), values).reshape(n, d)
        return self.out(pooled), attention.mean(1)


class GatedFusion(nn.Module):
    """Per-dimension gates computed from all present tokens, softmax over present modalities:
    fused[:, k] = Σ_m g[m, k] · token_m[k]. Weights: each modality's gate averaged over dims."""

    def __init__(self, n_modalities: int, d: int) -> None:
        super().__init__()
        self.m, self.d = n_modalities, d
        self.gate = nn.Linear(n_modalities * d + n_modalities, n_modalities * d)

    def forward(self, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        n = len(tokens)
        logits = self.gate(torch.cat([tokens.reshape(n, -1), mask.to(tokens.dtype)], dim=1)).view(n, self.m, self.d)
        gates = masked_softmax(logits, mask[:, :, None], dim=1)
        return (gates.to(tokens.dtype) * tokens).sum(1), gates.mean(-1)


class UserEncoder(nn.Module):
    """u = Σ_l a_l · W v_l + b (+ user id embedding): attention pooling over the history item
    vectors v_l, a_l = softmax_l(q · K v_l / √d + r_l) with a learned query q and a learned
    recency logit r_l per slot (slot 0 = most recent).

    The value map W has no bias so a score splits exactly into per-history-item terms (see
    ``explain``); b is a learned global vector, the whole user for an empty history."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        d = config.d_model
        self.query = nn.Parameter(torch.randn(d) * d ** -0.5)
        self.key = nn.Linear(d, d, bias=False)  # a key bias would shift every logit alike
        self.value = nn.Linear(d, d, bias=False)
        self.recency = nn.Parameter(torch.zeros(config.max_history))  # a logit per slot
        self.bias = nn.Parameter(torch.zeros(d))
        self.user_id = nn.Embedding(config.n_users, d) if config.use_user_id else None
        if self.user_id is not None:
            nn.init.zeros_(self.user_id.weight)

    def forward(self, item_vectors: Tensor, history: Tensor, history_mask: Tensor,
                users: Tensor | None = None) -> UserEncoding:
        """``history [U, L]`` (row indices into ``item_vectors [N, d]``) and its mask; ``users [U]``
        needed with user ids."""
        # Keys and values are per-item maps: computing them on the N items and gathering is
        # the same as on the U × L history slots, and L times cheaper.
        item_logits = self.key(item_vectors) @ self.query.to(item_vectors.dtype) / math.sqrt(item_vectors.shape[-1])
        logits = item_logits[history] + self.recency[: history.shape[1]].to(item_logits.dtype)
        attention = masked_softmax(logits, history_mask, dim=1)
        values = self.value(item_vectors)
        pooled = torch.einsum("ul,uld->ud", attention.to(values.dtype), values[history])
        return UserEncoding(pooled + self.offset(users, len(pooled)).to(pooled.dtype), attention)

    def offset(self, users: Tensor | None, n: int) -> Tensor:
        """The history-independent part of each user vector: b (+ user id embedding)."""
        if self.user_id is None:
            return self.bias.expand(n, -1)
        if users is None:
            raise ValueError("this model uses user id embeddings: pass users")
        return self.bias + self.user_id(users)


class FusionModel(nn.Module):
    """Projections, fusion, user encoder and the scoring and loss functions (see the module
    docstring for the contract on missing modalities and cold items)."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        if (config.use_user_id and config.n_users <= 0) or (config.use_item_id and config.n_items <= 0):
            raise ValueError("user / item id embeddings need n_users / n_items > 0 in the config")
        self.config = config
        d, m = config.d_model, len(config.modalities)
        self.projections = nn.ModuleDict({name: ModalityProjection(config.dims[name], d, config.dropout)
                                          for name in config.modalities})
        self.fusion = {
            "concat": lambda: ConcatFusion(m, d, config.dropout),
            "weighted": lambda: WeightedFusion(m),
            "attention": lambda: AttentionFusion(m, d, config.n_heads),
            "gated": lambda: GatedFusion(m, d),
        }[config.fusion]()
        self.empty = nn.Parameter(torch.randn(d) * 0.02)
        self.item_id = nn.Embedding(config.n_items, d) if config.use_item_id else None
        if self.item_id is not None:
            nn.init.zeros_(self.item_id.weight)  # untrained (cold) items: content only
        self.user = UserEncoder(config)

    def encode_items(self, inputs: ItemInputs, item_index: Tensor | None = None,
                     modality_dropout: float = 0.0) -> ItemEncoding:
        """Fused vectors of the items in ``inputs``. ``item_index [N]`` gives their catalog
        indices (needed with item ids; default ``0..N-1``). ``modality_dropout`` (training)
        hides present modalities from fusion at random; tokens and ``mask`` stay unchanged."""
        n = len(inputs)
        device = self.empty.device
        mask = torch.stack([inputs.masks[name] for name in self.config.modalities], dim=1).to(device)
        tokens = torch.stack([
            self.projections[name](torch.where(mask[:, k, None], inputs.features[name].to(device), 0.0))
            for k, name in enumerate(self.config.modalities)], dim=1)
        tokens = torch.where(mask[..., None], tokens, torch.zeros((), dtype=tokens.dtype, device=device))
        fusion_mask = mask
        if modality_dropout > 0:
            fusion_mask = mask & (torch.rand(mask.shape, device=device) >= modality_dropout)
        fused, weights = self.fusion(torch.where(fusion_mask[..., None], tokens, 0.0), fusion_mask)
        vectors = torch.where(fusion_mask.any(1, keepdim=True), fused, self.empty.to(fused.dtype))
        if self.item_id is not None:
            index = item_index if item_index is not None else torch.arange(n, device=device)
            vectors = vectors + self.item_id(index.to(device)).to(vectors.dtype)
        return ItemEncoding(vectors, tokens, mask, weights.float())

    def encode_users(self, item_vectors: Tensor, history: Tensor, history_mask: Tensor,
                     users: Tensor | None = None) -> UserEncoding:
        """User vectors from ``history [U, L]`` (row indices into ``item_vectors``) and its mask."""
        return self.user(item_vectors, history, history_mask, users)

    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """``[U, N]`` cosine similarities / temperature, in float32 even under autocast (bf16
        scores would tie items that differ in the fourth digit)."""
        with torch.autocast(user_vectors.device.type, enabled=False):
            users, items = F.normalize(user_vectors.float(), dim=-1), F.normalize(item_vectors.float(), dim=-1)
            return users @ items.T / self.config.temperature

    def forward(self, inputs: ItemInputs, history: Tensor, history_mask: Tensor,
                users: Tensor | None = None, item_index: Tensor | None = None) -> FusionOutput:
        """Score every item in ``inputs`` for each user, with the modality weights and history
        attention behind the scores; ``history`` holds row indices into ``inputs``."""
        items = self.encode_items(inputs, item_index)
        user = self.encode_users(items.vectors, history, history_mask, users)
        return FusionOutput(self.score(user.vectors, items.vectors), items, user)

    def recommendation_loss(self, user_vectors: Tensor, positive_vectors: Tensor, positive_items: Tensor,
                            negative_vectors: Tensor | None = None, log_q: Tensor | None = None) -> Tensor:
        """Softmax: row b's positive against the other rows' positives (in-batch negatives;
        repeats of the same item are not negatives), minus ``log_q [B]`` (the log sampling
        probability of each positive) when given. BPR: ``-log σ(s(u, i) - s(u, j))`` against
        ``negative_vectors``."""
        if self.config.loss == "bpr":
            if negative_vectors is None:
                raise ValueError("the BPR loss needs negative_vectors")
            pos = (F.normalize(user_vectors.float(), dim=-1) * F.normalize(positive_vectors.float(), dim=-1)).sum(-1)
            neg = (F.normalize(user_vectors.float(), dim=-1) * F.normalize(negative_vectors.float(), dim=-1)).sum(-1)
            return F.softplus((neg - pos) / self.config.temperature).mean()
        logits = self.score(user_vectors, positive_vectors)
        if log_q is not None:
            logits = logits - log_q[None, :]
        same = positive_items[:, None] == positive_items[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, torch.finfo(logits.dtype).min)
        return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))

    def alignment_loss(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """Symmetric InfoNCE between the ``align_pair`` tokens of items that have both (each
        item's other-modality token is its positive, the other items' are negatives). Zero
        (with a graph) when fewer than two items have both or alignment is off."""
        if not self.config.aligns:
            return tokens.sum() * 0.0
        a, b = (self.config.modalities.index(name) for name in self.config.align_pair)
        both = mask[:, a] & mask[:, b]
        if int(both.sum()) < 2:
            return tokens.sum() * 0.0
        with torch.autocast(tokens.device.type, enabled=False):
            za = F.normalize(tokens[both, a].float(), dim=-1)
            zb = F.normalize(tokens[both, b].float(), dim=-1)
            logits = za @ zb.T / self.config.align_temperature
        target = torch.arange(len(logits), device=logits.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


@dataclass
class Explanation:
    """Why ``item`` got ``score`` for one user. ``modalities``: fusion weight per modality (0 when
    missing). ``history``: the top history items as (item, contribution to the score, cosine
    similarity of their item vectors), by contribution; ``others``: the summed contribution of
    the history items not listed; ``rest``: the user bias / user id part. Listed contributions
    + ``others`` + ``rest`` = ``score`` (up to float rounding)."""

    item: int
    score: float
    modalities: dict[str, float]
    history: list[tuple[int, float, float]]
    others: float
    rest: float


@torch.no_grad()
def explain(model: FusionModel, inputs: ItemInputs, history: Tensor, history_mask: Tensor, items: Tensor,
            user: int | None = None, top_history: int = 3) -> list[Explanation]:
    """Explanations for one user (``history [L]``, ``history_mask [L]``: catalog indices into
    ``inputs``; ``user`` needed with user ids) and the catalog items ``items [K]``.

    With u = Σ_l a_l W v_l + o and s = <u, v> / (|u| |v| τ), history item l contributes
    a_l <W v_l, v> / (|u| |v| τ) and the offset o the rest. Leaves the model in eval mode."""
    model.eval()
    device = model.empty.device
    history, history_mask, items = history.to(device), history_mask.to(device), items.to(device)
    rows, inverse = torch.unique(torch.cat([items, history]), return_inverse=True)
    encoded = model.encode_items(inputs.take(rows.to(inputs.device)), rows)
    vectors = encoded.vectors.float()
    item_v, hist_v = vectors[inverse[: len(items)]], vectors[inverse[len(items):]]
    users = torch.tensor([user], device=device) if user is not None else None
    encoding = model.user(vectors, inverse[len(items):][None], history_mask[None], users)
    u = encoding.vectors[0].float()
    attention = encoding.attention[0].float()
    scale = u.norm() * item_v.norm(dim=-1) * model.config.temperature  # [K]
    values = model.user.value(hist_v).float()  # [L, d]
    contributions = attention[None, :] * (item_v @ values.T) / scale[:, None]  # [K, L]
    rest = (item_v @ model.user.offset(users, 1)[0].float()) / scale
    similarity = F.normalize(item_v, dim=-1) @ F.normalize(hist_v, dim=-1).T
    scores = model.score(u[None], item_v)[0]
    weights = encoded.weights[inverse[: len(items)]]
    out = []
    for k, item in enumerate(items.tolist()):
        slots = [s for s in torch.argsort(contributions[k], descending=True).tolist() if history_mask[s]][:top_history]
        listed = [(int(history[s]), float(contributions[k, s]), float(similarity[k, s])) for s in slots]
        out.append(Explanation(
            item=item, score=float(scores[k]),
            modalities={name: float(weights[k, j]) for j, name in enumerate(model.config.modalities)},
            history=listed, others=float(contributions[k].sum()) - sum(c for _, c, _ in listed), rest=float(rest[k]),
        ))
    return out
