"""A policy whose size does not grow with the number of assets: one shared per-asset encoder.

Pure (no dagster). Imports torch and stable_baselines3 at module import: it is loaded only by
the training code (:func:`portfolio_pipeline.policies.drl.build_model` with
``policy_architecture="shared_encoder"``, and SB3 when it reloads such a policy), never by the
Dagster definitions.

Why: SB3's ``MlpPolicy`` reads the flat observation, whose window part is ``lookback x N x
(F + 1)`` wide, so its first layer (and the time of every forward and backward pass) grows
with N. Following EIIE (Jiang, Xu & Liang 2017, "A Deep Reinforcement Learning Framework for
the Financial Portfolio Management Problem"), the same small network reads every asset's own
window, and per-asset scores plus a cash score become the action, so the weights are shared
across assets and the parameter count is the same at 10 or 1,000 assets. Assets are
exchangeable: permuting the assets of an observation permutes the action (equivariance), the
cash entry and the value do not change.

Layout (:class:`~portfolio_pipeline.policies.env.ObservationLayout`, the env's
``_observation``): the window ``(lookback, N, C)`` flattened date-major, the ``N + 1`` drifted
weights (cash last), then per-date blocks ``(N, k)`` flattened asset-major (forecasts,
sentiment). :class:`SharedAssetEncoder` reads each asset's numbers (its window, its weight,
its per-date channels; :func:`split_observation` shows them as one token per asset) with the
same small network (EIIE's shared per-asset weights; a dense layer over the window) into
``embedding_dim`` numbers, and adds a global part: the mean of the embeddings (DeepSets
pooling, order-free) and the cash weight. The heads read the embeddings with the global part:

- actor (PPO/A2C mean, SAC mean and log-std, DDPG action): a shared layer per asset -> one
  score per asset; a linear map of the global part -> the cash score; the ``N + 1`` scores
  go through the env's existing action map (``relu`` then normalise, cash last);
- critic (PPO/A2C value, SAC/DDPG Q): a shared layer per asset (with that asset's action for a
  Q), mean-pooled, then an MLP (``net_arch``) with the global part (and the cash action).

Per-asset layers run N times per sample, so they are narrow and fixed; ``net_arch`` sizes
only the pooled layers, which run once per sample.

The covariance channel (``include_covariance``) is cross-asset and grows as N^2: this
architecture refuses it. The only N-sized parameters left are PPO/A2C's state-independent
Gaussian log-std, one per action entry (N + 1 numbers, not a network weight).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import gymnasium as gym
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy, ContinuousCritic
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from portfolio_pipeline.policies.observation import ObservationLayout

DEFAULT_EMBEDDING_DIM = 32
DEFAULT_ENCODER_HIDDEN = 64
# Width of the per-asset layers of the heads: they run N times per sample, so they stay
# narrow; ``net_arch`` sizes the pooled (once per sample) layers instead.
PER_ASSET_HIDDEN = 32
DEFAULT_HEAD_ARCH: tuple[int, ...] = (64, 64)


def _mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``, each followed by ``activation``."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(width_in, width_out), activation()]
    return nn.Sequential(*layers)


def _check_width(obs: th.Tensor, layout: ObservationLayout) -> None:
    if obs.shape[1] != layout.size:
        raise ValueError(
            f"observation width {obs.shape[1]} does not match the layout's {layout.size} "
            f"({layout.n_assets} assets, lookback {layout.lookback}, {layout.n_channels} "
            f"channels, per-asset blocks {layout.per_asset_blocks})"
        )


def asset_windows(obs: th.Tensor, layout: ObservationLayout) -> th.Tensor:
    """(B, lookback, N, C) view of the window part: ``[:, l, i, :]`` = asset i's channels at
    the l-th date of the window (oldest first). No copy."""
    _check_width(obs, layout)
    return obs[:, : layout.window_width].reshape(
        obs.shape[0], layout.lookback, layout.n_assets, layout.n_channels
    )


def asset_extras(obs: th.Tensor, layout: ObservationLayout) -> th.Tensor:
    """(B, N, 1 + sum(blocks)): each asset's weight, then its per-date channels in order."""
    _check_width(obs, layout)
    batch, n, offset = obs.shape[0], layout.n_assets, layout.window_width
    parts = [obs[:, offset : offset + n, None]]
    offset += n + 1
    for width in layout.per_asset_blocks:
        parts.append(obs[:, offset : offset + n * width].reshape(batch, n, width))
        offset += n * width
    return th.cat(parts, dim=2)


def cash_weight(obs: th.Tensor, layout: ObservationLayout) -> th.Tensor:
    """(B, 1): the cash weight (the last of the N + 1 weights)."""
    start = layout.window_width + layout.n_assets
    return obs[:, start : start + 1]


def split_observation(obs: th.Tensor, layout: ObservationLayout) -> tuple[th.Tensor, th.Tensor]:
    """Cut (B, D) observations into per-asset tokens (B, N, W) and the cash weight (B, 1).

    Token ``i`` is ``[window of asset i (lookback x C, date-major), weight of asset i, its
    per-date channels (each block in order)]``, ``W = lookback x C + 1 + sum(blocks)``: the
    inverse of the env's observation layout (``PortfolioEnv._observation``). The encoder reads
    the same numbers through :func:`asset_windows` and :func:`asset_extras` without
    building the tokens (a copy of the whole window).
    """
    windows = asset_windows(obs, layout).permute(0, 2, 1, 3)
    tokens = windows.reshape(obs.shape[0], layout.n_assets, layout.lookback * layout.n_channels)
    return th.cat([tokens, asset_extras(obs, layout)], dim=2), cash_weight(obs, layout)


class SharedAssetEncoder(BaseFeaturesExtractor):
    """SB3 features extractor: the same network encodes every asset's numbers.

    Per asset: a dense layer over its window (``lookback x C`` weights per hidden unit, the
    same for every asset, applied by one ``einsum`` to the (B, lookback, N, C) window in its
    own memory order, so the window is never reordered or copied into tokens), plus a dense
    layer over its weight and per-date channels, then ReLU and a linear map to
    ``embedding_dim`` (ReLU).

    Output features, shape (B, N x E + E + 1): the N embeddings (asset-major), their mean
    over assets and the cash weight. ``E`` = ``embedding_dim``.

    Parameters
    ----------
    observation_space : gymnasium.spaces.Box
        The env's (D,) observation space.
    layout : mapping
        :meth:`ObservationLayout.as_dict` of the env (plain ints, so a saved policy reloads).
    embedding_dim, hidden : int
        Encoder sizes: asset numbers -> hidden -> embedding_dim.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        layout: Mapping[str, Any],
        embedding_dim: int = DEFAULT_EMBEDDING_DIM,
        hidden: int = DEFAULT_ENCODER_HIDDEN,
    ) -> None:
        parsed = ObservationLayout.from_dict(layout)
        if parsed.covariance_width:
            raise ValueError(
                "policy_architecture 'shared_encoder' reads each asset on its own and cannot "
                "take the cross-asset covariance channel: set include_covariance=False"
            )
        super().__init__(observation_space, parsed.n_assets * embedding_dim + embedding_dim + 1)
        self.layout = parsed
        self.embedding_dim = int(embedding_dim)
        # nn.Linear's default initialisation, for fan_in = lookback x C.
        bound = 1.0 / math.sqrt(parsed.lookback * parsed.n_channels)
        self.window_weight = nn.Parameter(
            th.empty(parsed.lookback, parsed.n_channels, hidden).uniform_(-bound, bound)
        )
        self.extras = nn.Linear(1 + sum(parsed.per_asset_blocks), hidden)
        self.embed_out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, embedding_dim), nn.ReLU())

    @property
    def n_assets(self) -> int:
        return self.layout.n_assets

    @property
    def global_dim(self) -> int:
        """Width of the global part (mean embedding, cash weight)."""
        return self.embedding_dim + 1

    def embed(self, obs: th.Tensor) -> th.Tensor:
        """(B, N, E) embeddings, asset ``i`` from asset ``i``'s numbers only."""
        windows = asset_windows(obs, self.layout)  # (B, L, N, C)
        hidden = th.einsum("blnc,lch->bnh", windows, self.window_weight)
        return self.embed_out(hidden + self.extras(asset_extras(obs, self.layout)))

    def forward(self, obs: th.Tensor) -> th.Tensor:
        embeddings = self.embed(obs)
        return th.cat(
            [embeddings.flatten(1), embeddings.mean(dim=1), cash_weight(obs, self.layout)], dim=1
        )


def unflatten_features(
    features: th.Tensor, n_assets: int, embedding_dim: int
) -> tuple[th.Tensor, th.Tensor]:
    """(B, N x E + G) features -> (B, N, E) asset embeddings and (B, G) global part."""
    width = n_assets * embedding_dim
    return features[:, :width].reshape(-1, n_assets, embedding_dim), features[:, width:]


class AssetScores(nn.Module):
    """Per-asset scores from a shared MLP, plus a cash score: (B, features) -> (B, N + 1)."""

    def __init__(self, n_assets: int, embedding_dim: int, global_dim: int) -> None:
        super().__init__()
        self.n_assets, self.embedding_dim = n_assets, embedding_dim
        self.trunk = _mlp([embedding_dim + global_dim, PER_ASSET_HIDDEN])
        self.score = nn.Linear(PER_ASSET_HIDDEN, 1)
        self.cash = nn.Linear(global_dim, 1)  # EIIE's cash bias, here also reading the context

    def forward(self, features: th.Tensor) -> th.Tensor:
        embeddings, context = unflatten_features(features, self.n_assets, self.embedding_dim)
        tokens = th.cat([embeddings, context[:, None, :].expand(-1, self.n_assets, -1)], dim=2)
        scores = self.score(self.trunk(tokens)).squeeze(2)
        return th.cat([scores, self.cash(context)], dim=1)


class PooledValue(nn.Module):
    """A shared layer per asset, mean-pooled, then an MLP (``head_arch``) with the global
    part: -> (B, out_dim), or the last hidden layer when ``out_dim`` is None.

    With ``with_actions`` the input is ``cat(features, actions)`` (SB3's critic convention)
    and each asset's token carries its own action; the cash action joins the global part.
    """

    def __init__(
        self,
        n_assets: int,
        embedding_dim: int,
        global_dim: int,
        head_arch: Sequence[int],
        out_dim: int | None = 1,
        *,
        with_actions: bool = False,
    ) -> None:
        super().__init__()
        self.n_assets, self.embedding_dim = n_assets, embedding_dim
        self.with_actions = with_actions
        extra = 1 if with_actions else 0
        self.per_asset = _mlp([embedding_dim + global_dim + 2 * extra, PER_ASSET_HIDDEN])
        pooled_sizes = [PER_ASSET_HIDDEN + global_dim + extra, *head_arch]
        self.pooled = _mlp(pooled_sizes)
        self.out = nn.Linear(pooled_sizes[-1], out_dim) if out_dim is not None else nn.Identity()
        self.latent_dim = out_dim if out_dim is not None else pooled_sizes[-1]

    def forward(self, inputs: th.Tensor) -> th.Tensor:
        n = self.n_assets
        features, actions = inputs, None
        if self.with_actions:
            features, actions = inputs[:, : -(n + 1)], inputs[:, -(n + 1) :]
        embeddings, context = unflatten_features(features, n, self.embedding_dim)
        shared = context if actions is None else th.cat([context, actions[:, n:]], dim=1)
        parts = [embeddings, shared[:, None, :].expand(-1, n, -1)]
        if actions is not None:
            parts.append(actions[:, :n, None])
        pooled = self.per_asset(th.cat(parts, dim=2)).mean(dim=1)
        return self.out(self.pooled(th.cat([pooled, shared], dim=1)))


def _head_arch(net_arch: Any, key: str) -> list[int]:
    if net_arch is None:
        return list(DEFAULT_HEAD_ARCH)
    if isinstance(net_arch, Mapping):
        return list(net_arch.get(key, DEFAULT_HEAD_ARCH))
    return list(net_arch)


class _SharedExtractorHeads(nn.Module):
    """PPO/A2C's ``mlp_extractor``: latent_pi = the N + 1 action means, latent_vf = pooled."""

    def __init__(self, extractor: SharedAssetEncoder, net_arch: Any) -> None:
        super().__init__()
        sizes = (extractor.n_assets, extractor.embedding_dim, extractor.global_dim)
        self.policy_net = AssetScores(*sizes)
        self.value_net = PooledValue(*sizes, _head_arch(net_arch, "vf"), out_dim=None)
        self.latent_dim_pi = extractor.n_assets + 1
        self.latent_dim_vf = self.value_net.latent_dim

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        return self.policy_net(features)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.value_net(features)


class SharedEncoderActorCriticPolicy(ActorCriticPolicy):
    """PPO/A2C policy: :class:`SharedAssetEncoder` features, per-asset action means, a pooled
    value. ``net_arch`` (list, or dict's ``vf``) sizes the pooled value MLP."""

    def _build_mlp_extractor(self) -> None:
        if not isinstance(self.features_extractor, SharedAssetEncoder):
            raise TypeError("SharedEncoderActorCriticPolicy needs a SharedAssetEncoder extractor")
        # SB3 annotates mlp_extractor as its MlpExtractor; any module with the same interface
        # (latent_dim_pi/vf, forward_actor/critic) is what the policy actually needs.
        self.mlp_extractor = _SharedExtractorHeads(  # type: ignore[assignment]
            self.features_extractor, self.net_arch
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        # The heads already give one mean per action entry: SB3's Linear(N+1, N+1) on top
        # would bring back N^2 weights. The optimizer must then see the parameters anew.
        self.action_net = nn.Identity()
        # type: ignore: SB3 types optimizer_class as torch's abstract Optimizer, whose
        # __init__ takes no lr; every concrete optimizer (Adam, RMSprop) does.
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )


def _shared_critic(critic: ContinuousCritic, net_arch: Sequence[int]) -> ContinuousCritic:
    extractor = critic.features_extractor
    if not isinstance(extractor, SharedAssetEncoder):
        raise TypeError("the shared-encoder critic needs a SharedAssetEncoder extractor")
    sizes = (extractor.n_assets, extractor.embedding_dim, extractor.global_dim)
    for index in range(len(critic.q_networks)):
        q_net = PooledValue(*sizes, net_arch, out_dim=1, with_actions=True)
        setattr(critic, f"qf{index}", q_net)  # replaces the registered module
        critic.q_networks[index] = q_net
    return critic.to(critic.device)


def _critic_arch(critic_kwargs: dict[str, Any]) -> Sequence[int]:
    """The critic's ``net_arch`` (SB3 keeps it untyped in ``critic_kwargs``), else the default."""
    return cast(Sequence[int], critic_kwargs["net_arch"] or DEFAULT_HEAD_ARCH)


def _actor_sizes(actor: Any) -> tuple[int, int, int]:
    extractor = actor.features_extractor
    if not isinstance(extractor, SharedAssetEncoder):
        raise TypeError("the shared-encoder actor needs a SharedAssetEncoder extractor")
    return extractor.n_assets, extractor.embedding_dim, extractor.global_dim


class SharedEncoderSACPolicy(SACPolicy):
    """SAC policy: per-asset mean and log-std heads, a pooled twin Q (no gSDE)."""

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Any:
        # Any: the heads are replaced by modules of other classes than SB3 annotates.
        actor: Any = super().make_actor(features_extractor)
        if actor.use_sde:
            raise ValueError("policy_architecture 'shared_encoder' does not support SAC's gSDE")
        sizes = _actor_sizes(actor)
        actor.latent_pi = nn.Identity()
        actor.mu = AssetScores(*sizes)
        actor.log_std = AssetScores(*sizes)
        return actor.to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> Any:
        critic = super().make_critic(features_extractor)
        return _shared_critic(critic, _critic_arch(self.critic_kwargs))


class SharedEncoderTD3Policy(TD3Policy):
    """DDPG/TD3 policy: per-asset scores squashed by tanh, a pooled Q."""

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Any:
        actor: Any = super().make_actor(features_extractor)  # its mu head is replaced
        actor.mu = nn.Sequential(AssetScores(*_actor_sizes(actor)), nn.Tanh())
        return actor.to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> Any:
        critic = super().make_critic(features_extractor)
        return _shared_critic(critic, _critic_arch(self.critic_kwargs))


POLICY_CLASSES: dict[str, type] = {
    "PPO": SharedEncoderActorCriticPolicy,
    "A2C": SharedEncoderActorCriticPolicy,
    "SAC": SharedEncoderSACPolicy,
    "DDPG": SharedEncoderTD3Policy,
}


def shared_encoder_policy(
    algorithm: str, layout: ObservationLayout, policy_kwargs: Mapping[str, Any] | None = None
) -> tuple[type, dict[str, Any]]:
    """(policy class, policy_kwargs) of the shared-encoder architecture for ``algorithm``."""
    kwargs = dict(policy_kwargs or {})
    kwargs["features_extractor_class"] = SharedAssetEncoder
    kwargs["features_extractor_kwargs"] = {"layout": layout.as_dict()}
    return POLICY_CLASSES[algorithm.upper()], kwargs
