"""RAFT-Stereo's multi-level ConvGRU update block.

Module and parameter names follow princeton-vl/RAFT-Stereo (``core/update.py``) so that the
published checkpoints load unchanged. Level 0 is the finest GRU (1/2**d of the input), level 2 the
coarsest; ``hidden_dims`` is ordered coarsest first, as the published ``--hidden_dims``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgestereo.ops.resize2d import AlignedBilinearResize

__all__ = ["BasicMotionEncoder", "ConvGRU", "FlowHead", "MultiLevelUpdateBlock"]

#: channels of the motion features, the input the finest GRU gets from the correlation and flow.
MOTION_DIM = 128


class FlowHead(nn.Module):
    """hidden state (B,C,H,W) → flow update (B,2,H,W) in pixels of that level."""

    def __init__(self, input_dim: int = 128, hidden_dim: int = 256, output_dim: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, output_dim, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class ConvGRU(nn.Module):
    """Convolutional GRU whose gates get a constant context term (``cz``, ``cr``, ``cq``).

    h (B,C,H,W), context terms (B,C,H,W) each, inputs (B,*,H,W) concatenated → new h (B,C,H,W).
    """

    def __init__(self, hidden_dim: int, input_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.convz = nn.Conv2d(hidden_dim + input_dim, hidden_dim, kernel_size, padding=padding)
        self.convr = nn.Conv2d(hidden_dim + input_dim, hidden_dim, kernel_size, padding=padding)
        self.convq = nn.Conv2d(hidden_dim + input_dim, hidden_dim, kernel_size, padding=padding)

    def forward(self, h: Tensor, cz: Tensor, cr: Tensor, cq: Tensor, *inputs: Tensor) -> Tensor:
        x = torch.cat(inputs, dim=1)
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx) + cz)
        r = torch.sigmoid(self.convr(hx) + cr)
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)) + cq)
        return (1 - z) * h + z * q


class BasicMotionEncoder(nn.Module):
    """flow (B,2,H,W) pixels, correlation features (B,L*(2r+1),H,W) → motion features (B,128,H,W).

    The last two channels are the flow itself.
    """

    def __init__(self, corr_channels: int) -> None:
        super().__init__()
        self.convc1 = nn.Conv2d(corr_channels, 64, 1, padding=0)
        self.convc2 = nn.Conv2d(64, 64, 3, padding=1)
        self.convf1 = nn.Conv2d(2, 64, 7, padding=3)
        self.convf2 = nn.Conv2d(64, 64, 3, padding=1)
        self.conv = nn.Conv2d(64 + 64, MOTION_DIM - 2, 3, padding=1)

    def forward(self, flow: Tensor, corr: Tensor) -> Tensor:
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


def pool2x(x: Tensor) -> Tensor:
    """(B,C,H,W) → (B,C,ceil(H/2),ceil(W/2)): the next coarser GRU level."""
    return F.avg_pool2d(x, 3, stride=2, padding=1)


class MultiLevelUpdateBlock(nn.Module):
    """Updates the hidden states of 1 to 3 GRU levels; the finest one also predicts the flow update
    (B,2,H,W) and the convex upsampling mask (B,9*f*f,H,W), f = 2**downsample.

    The three GRUs always exist (the published checkpoints hold them); ``n_gru_layers`` says how many run.
    A coarser state enters a finer GRU by bilinear ``align_corners=True`` resizing (a parameter-free op
    twin: two MatMuls on the deploy path).
    """

    def __init__(self, hidden_dims: tuple[int, int, int], corr_channels: int, n_gru_layers: int,
                 downsample: int) -> None:
        super().__init__()
        self.n_gru_layers = n_gru_layers
        self.encoder = BasicMotionEncoder(corr_channels)
        self.gru08 = ConvGRU(hidden_dims[2], MOTION_DIM + hidden_dims[1] * (n_gru_layers > 1))
        self.gru16 = ConvGRU(hidden_dims[1], hidden_dims[0] * (n_gru_layers == 3) + hidden_dims[2])
        self.gru32 = ConvGRU(hidden_dims[0], hidden_dims[1])
        self.flow_head = FlowHead(hidden_dims[2], hidden_dim=256, output_dim=2)
        factor = 2**downsample
        self.mask = nn.Sequential(
            nn.Conv2d(hidden_dims[2], 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, factor**2 * 9, 1, padding=0),
        )
        self.resize = AlignedBilinearResize()

    def update_coarse(self, net: list[Tensor], context: list[list[Tensor]], *, level32: bool,
                      level16: bool) -> list[Tensor]:
        """Only the coarser GRUs (the extra steps of the slow-fast schedule); returns the new states."""
        net = list(net)
        if level32:
            net[2] = self.gru32(net[2], *context[2], pool2x(net[1]))
        if level16:
            if self.n_gru_layers > 2:
                net[1] = self.gru16(net[1], *context[1], pool2x(net[0]), self.resize(net[2], net[1].shape[2:]))
            else:
                net[1] = self.gru16(net[1], *context[1], pool2x(net[0]))
        return net

    def forward(self, net: list[Tensor], context: list[list[Tensor]], corr: Tensor,
                flow: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
        """One full step: net (hidden states, finest first), context (cz, cr, cq per level), corr
        (B,L*(2r+1),H,W), flow (B,2,H,W) → (new states, mask (B,9*f*f,H,W), flow update (B,2,H,W))."""
        net = self.update_coarse(net, context, level32=self.n_gru_layers == 3, level16=self.n_gru_layers >= 2)
        motion = self.encoder(flow, corr)
        if self.n_gru_layers > 1:
            net[0] = self.gru08(net[0], *context[0], motion, self.resize(net[1], net[0].shape[2:]))
        else:
            net[0] = self.gru08(net[0], *context[0], motion)
        delta_flow = self.flow_head(net[0])
        # the published scale on the mask logits (it balances their gradients in training)
        mask = 0.25 * self.mask(net[0])
        return net, mask, delta_flow
