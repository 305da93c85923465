"""RAFT-Stereo (Lipson, Teed, Deng, 3DV 2021): recurrent refinement of a disparity field by multi-level
ConvGRUs that index a 1-D all-pairs correlation pyramid.

Parameter names and shapes are those of princeton-vl/RAFT-Stereo, so its published checkpoints load
as they are. Two paths share the weights: the reference path is the published computation (for
training and parity); the deploy path (``model.deploy()``) uses the export-safe ops of
:mod:`edgestereo.ops`, carries only the x coordinate (no ScatterND from ``delta[:, 1] = 0``) and keeps
every tensor at most 4-D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgestereo.errors import EdgeStereoError
from edgestereo.models._base import StereoModel, TrainingLoss, build_config, check_stereo_inputs
from edgestereo.models._checkpoint import Checkpoint, load_state_dict_strict
from edgestereo.models._registry import register_model
from edgestereo.models.raft_stereo.encoder import NORMS, BasicEncoder, MultiBasicEncoder, ResidualBlock
from edgestereo.models.raft_stereo.update import MultiLevelUpdateBlock
from edgestereo.ops.convex_upsample import ConvexUpsample
from edgestereo.ops.correlation_pyramid import CorrelationPyramid1d

__all__ = ["VARIANTS", "RAFTStereo", "RAFTStereoConfig"]


@dataclass(frozen=True)
class RAFTStereoConfig:
    """Architecture and iteration counts; field names follow the published command-line flags.

    ``hidden_dims`` is ordered coarsest GRU level first. The disparity field lives at 1/2**n_downsample
    of the input. ``iters`` refinement steps at test time (a fixed count in exported graphs),
    ``train_iters`` in :meth:`RAFTStereo.forward_train`.
    """

    hidden_dims: tuple[int, int, int] = (128, 128, 128)
    n_downsample: int = 2
    n_gru_layers: int = 3
    corr_levels: int = 4
    corr_radius: int = 4
    shared_backbone: bool = False
    context_norm: str = "batch"
    slow_fast_gru: bool = False
    iters: int = 32
    train_iters: int = 22

    def __post_init__(self) -> None:
        problems = []
        if len(self.hidden_dims) != 3 or any(int(d) < 1 for d in self.hidden_dims):
            problems.append(f"hidden_dims must be three positive sizes, got {self.hidden_dims}")
        if not 0 <= self.n_downsample <= 3:
            problems.append(f"n_downsample must be 0 to 3, got {self.n_downsample}")
        if not 1 <= self.n_gru_layers <= 3:
            problems.append(f"n_gru_layers must be 1 to 3, got {self.n_gru_layers}")
        if self.corr_levels < 1 or self.corr_radius < 1:
            problems.append(f"corr_levels and corr_radius must be ≥ 1, got {self.corr_levels}, {self.corr_radius}")
        if self.context_norm not in NORMS:
            problems.append(f"context_norm must be one of {', '.join(NORMS)}, got {self.context_norm!r}")
        if self.iters < 1 or self.train_iters < 1:
            problems.append(f"iters and train_iters must be ≥ 1, got {self.iters}, {self.train_iters}")
        if problems:
            raise EdgeStereoError("RAFTStereoConfig: " + "; ".join(problems))
        # JSON and command lines give lists; the frozen config keeps a hashable tuple
        object.__setattr__(self, "hidden_dims", tuple(int(d) for d in self.hidden_dims))


class RAFTStereo(StereoModel):
    """RAFT-Stereo. forward(left, right): (B,3,H,W) RGB in [0,255] → disparity (B,1,H,W) pixels.

    H and W must be multiples of 32 (the coarsest GRU level is at most 1/32).
    """

    divisor = 32
    #: L1 of every iteration's prediction, weighted γ^(N−i−1) with γ = 0.9.
    training_loss = TrainingLoss("edgestereo.training.losses:SequenceLoss", {"gamma": 0.9})

    def __init__(self, config: RAFTStereoConfig) -> None:
        super().__init__()
        self.config = config
        hidden_dims = tuple(config.hidden_dims)
        # the published model sizes the context like the hidden state
        context_dims = hidden_dims
        self.cnet = MultiBasicEncoder([hidden_dims, context_dims], norm=config.context_norm,
                                      downsample=config.n_downsample)
        self.correlation = CorrelationPyramid1d(config.corr_levels, config.corr_radius)
        self.update_block = MultiLevelUpdateBlock(hidden_dims, self.correlation.channels, config.n_gru_layers,
                                                  config.n_downsample)
        self.context_zqr_convs = nn.ModuleList(
            nn.Conv2d(context_dims[i], hidden_dims[i] * 3, 3, padding=1) for i in range(config.n_gru_layers)
        )
        if config.shared_backbone:
            self.conv2 = nn.Sequential(ResidualBlock(128, 128, "instance", stride=1), nn.Conv2d(128, 256, 3, padding=1))
        else:
            self.fnet = BasicEncoder(output_dim=256, norm="instance", downsample=config.n_downsample)
        self.upsample = ConvexUpsample(2**config.n_downsample)

    def export_uses_deploy(self, profile: str) -> bool:
        """Every profile exports the deploy path: it is also the cleaner graph for TensorRT and ONNX
        Runtime (no 7-D views, no ScatterND, no GridSample border cases)."""
        return True

    @classmethod
    def adapt_checkpoint(cls, checkpoint: Checkpoint, base: RAFTStereoConfig, config: dict[str, Any]
                         ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Published files need no key remapping. A file of another registered RAFT-Stereo variant is
        refused here, with the key lists and the name of the variant it fits."""
        state_dict = checkpoint.state_dict
        expected = _meta_model(build_config(base, config))
        if _shapes(expected.state_dict()) != _shapes(state_dict):
            fits = [name for name in VARIANTS if _shapes(_meta_model(_variant_config(name)).state_dict())
                    == _shapes(state_dict)]
            # ``base`` is the default config of the variant asked for: name it in the error
            expected.model_name = next((name for name in VARIANTS if _variant_config(name) == base), "")
            if fits:
                try:
                    load_state_dict_strict(expected, state_dict, str(checkpoint.path or "checkpoint"))
                except EdgeStereoError as exc:
                    raise EdgeStereoError(f"{exc} (the file fits {' / '.join(fits)})") from None
        return state_dict, config

    def _features(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor, list[Tensor], list[list[Tensor]]]:
        """Normalised images → matching features (B,256,h,w) x2, hidden states, GRU context terms."""
        image1 = 2 * (left / 255.0) - 1.0
        image2 = 2 * (right / 255.0) - 1.0
        layers = self.config.n_gru_layers
        if self.config.shared_backbone:
            *context_levels, trunk = self.cnet(torch.cat([image1, image2], dim=0), num_layers=layers,
                                               dual_input=True)
            fmap1, fmap2 = self.conv2(trunk).split(trunk.shape[0] // 2, dim=0)
        else:
            context_levels = self.cnet(image1, num_layers=layers)
            fmap1, fmap2 = self.fnet(torch.cat([image1, image2], dim=0)).split(image1.shape[0], dim=0)
        net = [torch.tanh(level[0]) for level in context_levels]
        inputs = [torch.relu(level[1]) for level in context_levels]
        # the context's share of the GRU gates is constant over iterations: computed once
        context = [list(conv(x).split(conv.out_channels // 3, dim=1))
                   for x, conv in zip(inputs, self.context_zqr_convs)]
        return fmap1, fmap2, net, context

    def _step(self, net: list[Tensor], context: list[list[Tensor]], corr: Tensor,
              flow: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
        """Slow-fast extra steps of the coarse GRUs, then the full update."""
        layers = self.config.n_gru_layers
        if self.config.slow_fast_gru:
            if layers == 3:
                net = self.update_block.update_coarse(net, context, level32=True, level16=False)
            if layers >= 2:
                net = self.update_block.update_coarse(net, context, level32=layers == 3, level16=True)
        return self.update_block(net, context, corr, flow)

    def _refine(self, left: Tensor, right: Tensor, iters: int, every_step: bool) -> list[Tensor]:
        """Disparities (B,1,H,W) px after the last step, or after each one when ``every_step``."""
        check_stereo_inputs(left, right, self.divisor)
        narrowest = 2 ** (self.config.n_downsample + self.config.corr_levels)
        if left.shape[-1] < narrowest:
            raise EdgeStereoError(f"input width {left.shape[-1]} is too small for this RAFT-Stereo: its "
                                  f"correlation pyramid needs at least {narrowest} px")
        fmap1, fmap2, net, context = self._features(left, right)
        pyramid = self.correlation.build(fmap1, fmap2)
        if self.is_deploy:
            return self._iterate_deploy(fmap1, fmap2, pyramid, net, context, iters, every_step)
        return self._iterate_reference(pyramid, net, context, iters, every_step)

    def _iterate_reference(self, pyramid: list[Tensor], net: list[Tensor], context: list[list[Tensor]],
                           iters: int, every_step: bool) -> list[Tensor]:
        """The published loop: 2-channel coordinates, the y update zeroed in place."""
        batch, _, height, width = net[0].shape
        ys, xs = torch.meshgrid(torch.arange(height, device=net[0].device), torch.arange(width, device=net[0].device),
                                indexing="ij")
        coords0 = torch.stack([xs, ys]).float()[None].repeat(batch, 1, 1, 1)
        coords1 = coords0.clone()
        predictions = []
        for step in range(iters):
            coords1 = coords1.detach()
            corr = self.correlation.lookup(pyramid, coords1[:, :1])
            net, mask, delta_flow = self._step(net, context, corr, coords1 - coords0)
            delta_flow[:, 1] = 0.0  # stereo: matches stay on the epipolar line
            coords1 = coords1 + delta_flow
            if every_step or step == iters - 1:
                predictions.append(-self.upsample(coords1 - coords0, mask)[:, :1])
        return predictions

    def _iterate_deploy(self, fmap1: Tensor, fmap2: Tensor, pyramid: list[Tensor], net: list[Tensor],
                        context: list[list[Tensor]], iters: int, every_step: bool) -> list[Tensor]:
        """The same loop on the x coordinate alone; the flow's y channel is a constant zero. The first
        lookup, at the constant start x0, comes from the features (no gather with constant indices)."""
        batch, _, height, width = net[0].shape
        x0 = torch.arange(width, device=net[0].device, dtype=torch.float32).view(1, 1, 1, width)
        x0 = x0.repeat(batch, 1, height, 1)
        x1 = x0
        # (B,2,H,W) flow with y = 0 as a 1x1 convolution with weights (1, 0): no scatter, no data-dependent
        # shape, and no Pad of the channel axis (which the RK3588 compiler runs on its CPU)
        x_to_xy = torch.tensor([1.0, 0.0], device=x0.device, dtype=x0.dtype).view(2, 1, 1, 1)
        # disparity = -flow as a 1x1 convolution too: the compiler runs Neg, and a constant minus a tensor
        # (x0 - x1, x0 broadcast over rows), on its CPU
        flow_to_disparity = torch.full((1, 1, 1, 1), -1.0, device=x0.device, dtype=x0.dtype)
        predictions = []
        for step in range(iters):
            x1 = x1.detach()
            if step == 0:
                corr = self.correlation.lookup_at_rest(pyramid, fmap1, fmap2)
            else:
                corr = self.correlation.lookup(pyramid, x1)
            flow = F.conv2d(x1 - x0, x_to_xy)
            net, mask, delta_flow = self._step(net, context, corr, flow)
            x1 = x1 + delta_flow[:, :1]
            if every_step or step == iters - 1:
                # convex upsampling is linear: the sign can go in first
                predictions.append(self.upsample(F.conv2d(x1 - x0, flow_to_disparity), mask))
        return predictions

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        """left, right: (B,3,H,W) RGB in [0,255] → disparity (B,1,H,W) pixels after ``config.iters`` steps."""
        return self._refine(left, right, self.config.iters, every_step=False)[0]

    def forward_train(self, left: Tensor, right: Tensor) -> list[Tensor]:
        """Disparity (B,1,H,W) px after each of ``config.train_iters`` steps, for the sequence loss."""
        return self._refine(left, right, self.config.train_iters, every_step=True)


def _shapes(state_dict: dict[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state_dict.items()}


def _meta_model(config: RAFTStereoConfig) -> RAFTStereo:
    """The model on the meta device: names and shapes only, no memory, no initialisation cost."""
    with torch.device("meta"):
        return RAFTStereo(config)


#: registry name → config fields of the published configurations (the flags of the public README).
VARIANTS: dict[str, dict[str, Any]] = {
    "raft-stereo": {},
    "raft-stereo-realtime": {"shared_backbone": True, "n_downsample": 3, "n_gru_layers": 2, "slow_fast_gru": True,
                             "iters": 7},
    "raft-stereo-rvc": {"context_norm": "instance"},
}


def _variant_config(name: str) -> RAFTStereoConfig:
    return build_config(RAFTStereoConfig(), VARIANTS[name])


register_model("raft-stereo", RAFTStereo, _variant_config("raft-stereo"),
               description="RAFT-Stereo: 1/4 resolution, 3 GRU levels, 32 iterations "
               "(raftstereo-sceneflow/-middlebury/-eth3d.pth)")
register_model("raft-stereo-realtime", RAFTStereo, _variant_config("raft-stereo-realtime"),
               description="RAFT-Stereo realtime: shared backbone, 1/8 resolution, 2 GRU levels slow-fast, "
               "7 iterations (raftstereo-realtime.pth)")
register_model("raft-stereo-rvc", RAFTStereo, _variant_config("raft-stereo-rvc"),
               description="iRaftStereo_RVC: RAFT-Stereo with instance-normalised context, 32 iterations "
               "(iraftstereo_rvc.pth)")
