"""Multi-task actor-critic: one shared trunk, one policy head and one value head per game.

Heads are added as games come (``add_head``), sized by each game's minimal action set, so a
checkpoint after game k holds k heads. ``activate(k)`` routes SB3's forward passes through head
k. The trunk (``features_extractor``) is what a continual method protects.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space, preprocess_obs
from torch import nn

from .extractors import TRUNKS

__all__ = ["MultiHeadPolicy"]


@contextmanager
def _transposed_linears(module: nn.Module) -> Iterator[None]:
    """Within the block, every ``nn.Linear`` of ``module`` computes ``addmm(b, x, W^T)`` with a
    contiguous copy of ``W^T`` made once (weights must not change in the block; inference only)."""
    patched = []
    for m in module.modules():
        if isinstance(m, nn.Linear) and "forward" not in m.__dict__:
            def forward(x: torch.Tensor, m: nn.Linear = m, wt: torch.Tensor = m.weight.detach().t().contiguous()):
                if x.dim() != 2 or torch.is_grad_enabled():  # the cached copy serves flat inference batches
                    return nn.functional.linear(x, m.weight, m.bias)
                return torch.addmm(m.bias, x, wt) if m.bias is not None else x @ wt

            m.forward = forward
            patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


class MultiHeadPolicy(ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` with per-game heads over a shared BLIP trunk.

    ``action_net`` and ``value_net`` are properties returning the active head, so SB3's own
    ``forward``, ``evaluate_actions`` and ``predict_values`` work unchanged. SB3's orthogonal
    init is off: it would overwrite the BLIP layers' bounded init; heads get SB3's usual gains
    (0.01 policy, 1 value).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Discrete, lr_schedule,
                 *args: Any, extractor_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        extractor_kwargs = dict(extractor_kwargs or {})
        # checkpoints before trunks were chosen by observation hold no "trunk": the paper's
        kwargs.setdefault("features_extractor_class", TRUNKS[extractor_kwargs.pop("trunk", "atari")])
        kwargs.setdefault("features_extractor_kwargs", extractor_kwargs)
        kwargs["ortho_init"] = False
        kwargs.setdefault("net_arch", [])
        if not kwargs.setdefault("share_features_extractor", True):
            raise ValueError("MultiHeadPolicy shares one trunk between its policy and value heads; "
                             "share_features_extractor=False is not supported")
        self.active = 0
        #: float32 rollouts and evaluations multiply by cached transposed weights
        #: (:meth:`weight_cast_cache`); False: the arithmetic of stock SB3, bit for bit.
        self.transposed_inference = True
        #: bf16 (the "fast" mode) runs the trunk under autocast; parameters stay float32.
        self.autocast_dtype: torch.dtype | None = None
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)
        self._scales_images = bool(self.normalize_images and is_image_space(observation_space))

    def extract_features(self, obs, features_extractor=None):  # type: ignore[override]
        """SB3's feature extraction, under autocast in fast mode; features come back float32."""
        extractor = features_extractor if features_extractor is not None else self.features_extractor
        if self.autocast_dtype is None:
            return extractor(self.images(obs, extractor))
        with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
            features = extractor(self.images(obs, extractor))
        return features.float()

    def images(self, obs: torch.Tensor, extractor: nn.Module | None = None) -> torch.Tensor:
        """uint8 frames scaled to [0, 1] with one conversion, in the extractor's memory layout and,
        in fast mode, directly in bf16: the values SB3's ``obs.float() / 255`` gives, without its
        extra float32 copies of every minibatch (16% of a fast update's time, docs/benchmarks.md).
        Anything but uint8 images goes through SB3's own ``preprocess_obs``."""
        if not (isinstance(obs, torch.Tensor) and obs.dtype == torch.uint8 and self._scales_images):
            return preprocess_obs(obs, self.observation_space, normalize_images=self.normalize_images)
        if getattr(extractor if extractor is not None else self.features_extractor, "channels_last", False):
            obs = obs.contiguous(memory_format=torch.channels_last)  # permute the small uint8 tensor
        return obs.to(self.autocast_dtype or torch.float32).div_(255.0)

    # SB3 calls its base class's extract_features here; route them through the override so that
    # bootstrap values and distributions use the same (fast-mode) trunk as forward().
    def get_distribution(self, obs):  # type: ignore[override]
        features = self.extract_features(obs, self.pi_features_extractor)
        return self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(features))

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.extract_features(obs, self.vf_features_extractor)
        return self.value_net(self.mlp_extractor.forward_critic(features))

    @contextmanager
    def weight_cast_cache(self) -> Iterator[None]:
        """For a block in which the parameters do not change (rollouts, evaluations): the trunk's
        weights prepared once for the whole block instead of on every batch-of-``n_envs`` forward.

        * fast mode: cast to bf16 once (the 6272x1024 layer's cast costs more than its batch-16
          matmul). It keeps a (disabled) autocast context open around the block, so autocast's
          weight-cast cache lives until the block ends instead of being cleared after each step;
          the heads and everything outside :meth:`extract_features` still run in float32.
        * float32: each fully connected layer of the trunk multiplies by a contiguous copy of its
          transposed weight (``addmm(b, x, W^T)``), which MKL ran 1.6-3x faster at batch 16 on a 2-core
          Xeon, fp32 (1024x128 and 6272x1024 layers) than ``F.linear``'s transposed view; equal to float rounding.

        A change of the trunk's parameters is detected at the end of the block and raises
        ``RuntimeError``.
        """
        params = list(self.features_extractor.parameters())
        versions = [p._version for p in params]
        if self.autocast_dtype is None:
            with _transposed_linears(self.features_extractor) if self.transposed_inference else nullcontext():
                yield
        else:
            with torch.autocast(device_type=self.device.type, enabled=False):
                yield
        if any(p._version != v for p, v in zip(params, versions)):
            raise RuntimeError("the trunk's parameters changed inside weight_cast_cache(): forwards in the "
                               "block may have used stale (bf16 or transposed) weights; change parameters outside it")

    # -- SB3's forward passes, without a torch Distribution per batch ----------------------------
    @staticmethod
    def _categorical(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized logits and probabilities, computed as ``torch.distributions.Categorical``
        computes them (so sampled actions and log-probabilities are those of SB3's path)."""
        logits = logits - logits.logsumexp(-1, keepdim=True)
        return logits, torch.softmax(logits, -1)

    def forward(self, obs: torch.Tensor, deterministic: bool = False):  # type: ignore[override]
        """SB3's ``ActorCriticPolicy.forward`` (actions, values, log-probabilities) for the
        active head, with the categorical's sampling and log-probability done directly: the
        same actions from the same generator state, without building a ``Categorical`` (whose
        argument checks cost more than the batch-16 network of a MinAtar rollout step)."""
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs, self.pi_features_extractor))
        values = self.value_net(latent_vf)
        logits, probs = self._categorical(self.action_net(latent_pi))
        actions = probs.argmax(-1) if deterministic else torch.multinomial(probs, 1, True)[:, 0]
        return actions, values, logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor):  # type: ignore[override]
        """SB3's ``evaluate_actions`` (values, log-probabilities, entropy), computed as
        ``Categorical.log_prob`` and ``Categorical.entropy`` compute them."""
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs, self.pi_features_extractor))
        logits, probs = self._categorical(self.action_net(latent_pi))
        log_prob = logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        entropy = -(torch.clamp(logits, min=torch.finfo(logits.dtype).min) * probs).sum(-1)
        return self.value_net(latent_vf), log_prob, entropy

    # -- heads -----------------------------------------------------------------------------------
    def _build(self, lr_schedule) -> None:
        self._build_mlp_extractor()
        self.action_heads = nn.ModuleList()
        self.value_heads = nn.ModuleList()
        self.add_head(int(self.action_space.n))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def add_head(self, n_actions: int) -> int:
        """Add a policy head with ``n_actions`` logits and a value head; returns its index."""
        device = next(self.features_extractor.parameters()).device
        pi = nn.Linear(self.mlp_extractor.latent_dim_pi, n_actions).to(device)
        vf = nn.Linear(self.mlp_extractor.latent_dim_vf, 1).to(device)
        self.init_weights(pi, gain=0.01)
        self.init_weights(vf, gain=1.0)
        self.action_heads.append(pi)
        self.value_heads.append(vf)
        return len(self.action_heads) - 1

    @property
    def n_heads(self) -> int:
        return len(self.action_heads)

    def activate(self, k: int) -> None:
        """Route SB3's forward passes through head ``k`` and set the matching action space."""
        if not 0 <= k < self.n_heads:
            raise ValueError(f"no head {k}: the policy has {self.n_heads}")
        self.active = k
        n = self.action_heads[k].out_features
        self.action_space = spaces.Discrete(n)
        self.action_dist = CategoricalDistribution(n)

    @property
    def action_net(self) -> nn.Module:  # type: ignore[override]
        return self.action_heads[self.active]

    @property
    def value_net(self) -> nn.Module:  # type: ignore[override]
        return self.value_heads[self.active]

    @property
    def trunk(self) -> nn.Module:
        return self.features_extractor

    # -- helpers for the continual loop ----------------------------------------------------------
    def head_logits(self, obs: torch.Tensor, k: int, *, exact: bool = False) -> torch.Tensor:
        """Logits of head ``k`` for raw observations (uint8 images, batch-first).

        :param exact: float32 even in fast mode (the Fisher is always computed in float32).
        """
        saved = self.autocast_dtype
        if exact:
            self.autocast_dtype = None
        try:
            features = self.extract_features(obs, self.pi_features_extractor)
        finally:
            self.autocast_dtype = saved
        latent_pi = self.mlp_extractor.forward_actor(features)
        return self.action_heads[k](latent_pi)

    def head_outputs(self, obs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and values of head ``k`` for raw observations, with gradients (one trunk pass)."""
        features = self.extract_features(obs, self.pi_features_extractor)
        latent_pi, latent_vf = self.mlp_extractor(features)
        return self.action_heads[k](latent_pi), self.value_heads[k](latent_vf).flatten()

    @torch.no_grad()
    def act(self, obs: np.ndarray, k: int, *, deterministic: bool = True,
            generator: torch.Generator | None = None) -> np.ndarray:
        """Actions of head ``k`` for a batch of observations: greedy when ``deterministic``, else
        sampled (with ``generator``, for reproducible evaluations)."""
        obs_t = torch.as_tensor(obs, device=self.device)
        logits = self.head_logits(obs_t, k)
        if deterministic:
            return logits.argmax(-1).cpu().numpy()
        probs = torch.softmax(logits.float(), -1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0].cpu().numpy()
