"""3-D convolutions of cost volumes computed with tensors of rank ≤ 4.

A cost volume ``(B,C,D,H,W)`` is held on the deploy path as a *slice stack* ``(D, B·C, H, W)``:
one 4-D row per disparity (depth) slice, batch-major channels inside the row. A 3-D convolution
then becomes one 2-D convolution over ``(D'·B, kd·Cin, H, W)``: the ``kd`` depth taps each
output slice needs are gathered by contiguous slicing and concatenated along the channels, so
the 2-D kernel sums over depth, height and width at once. A transposed 3-D convolution becomes
one transposed 2-D convolution per depth phase (``stride`` of them), interleaved by a channel
concatenation and a reshape. No tensor in either has more than four dimensions, no slice has a
step other than 1, and the weights are the unchanged 5-D parameters (rearranged on the fly, which
ONNX export folds into constants).

``conv_transpose3d_cropped`` is the 5-D form TensorRT wants: a transposed convolution without
padding or output padding, cropped to the window PyTorch's padded one returns (RT-Stereo's
rewrite of GwcNet, with the crop taken from the correct end).

>>> import torch
>>> volume = torch.randn(2, 4, 6, 8, 8)                   # (B,C,D,H,W)
>>> weight = torch.randn(5, 4, 3, 3, 3)
>>> slices = conv3d_slices(volume_to_slices(volume), weight, None, stride=2, padding=1)
>>> tuple(slices.shape), torch.allclose(slices_to_volume(slices, 5),
...                                     torch.nn.functional.conv3d(volume, weight, None, 2, 1), atol=1e-4)
((3, 10, 4, 4), True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edgestereo.ops.deploy_switch import DeploySwitch

__all__ = [
    "Conv3dOp",
    "ConvTranspose3dOp",
    "conv3d_slices",
    "conv_transpose3d_cropped",
    "conv_transpose3d_slices",
    "slices_to_volume",
    "static_shape",
    "volume_to_slices",
]

Triple = tuple[int, int, int]


def static_shape(tensor: Tensor) -> tuple[int, ...]:
    """The shape as plain ints. While tracing for ONNX, sizes read from a tensor are recorded as
    graph values, and integer arithmetic on them (floor division in particular) can export wrongly;
    plain ints make every derived size a constant of the static graph."""
    return tuple(int(size) for size in tensor.shape)


def _triple(value: int | tuple[int, ...]) -> Triple:
    if isinstance(value, int):
        return (value, value, value)
    if len(value) != 3:
        raise ValueError(f"expected an int or three ints, got {value!r}")
    return (int(value[0]), int(value[1]), int(value[2]))


def volume_to_slices(volume: Tensor) -> Tensor:
    """(B,C,D,H,W) → slice stack (D, B·C, H, W)."""
    if volume.dim() != 5:
        raise ValueError(f"expected a (B,C,D,H,W) volume, got shape {tuple(volume.shape)}")
    b, c, d, h, w = static_shape(volume)
    return volume.permute(2, 0, 1, 3, 4).reshape(d, b * c, h, w)


def slices_to_volume(slices: Tensor, channels: int) -> Tensor:
    """Slice stack (D, B·C, H, W) with ``channels`` = C → (B,C,D,H,W)."""
    d, bc, h, w = _slice_shape(slices, channels)
    return slices.reshape(d, bc // channels, channels, h, w).permute(1, 2, 0, 3, 4)


def _slice_shape(slices: Tensor, channels: int) -> tuple[int, int, int, int]:
    if slices.dim() != 4 or slices.shape[1] % channels:
        raise ValueError(f"expected a (D, B·{channels}, H, W) slice stack, got shape {tuple(slices.shape)}")
    d, bc, h, w = static_shape(slices)
    return d, bc, h, w


def _pad_depth(slices: Tensor, front: int, back: int) -> Tensor:
    """Zero slices before/after along dim 0 (a negative ``back`` drops trailing slices)."""
    if back < 0:
        slices = slices[: static_shape(slices)[0] + back]
        back = 0
    if front == 0 and back == 0:
        return slices
    # F.pad on all four dims keeps it a single Pad node (no large zero constants in the graph).
    return F.pad(slices, (0, 0, 0, 0, 0, 0, front, back))


def _depth_taps(padded: Tensor, taps: int, stride: int, out_depth: int) -> list[Tensor]:
    """For each tap k, the slices ``padded[stride·m + k]`` for m < out_depth, (out_depth, B·C, H, W) each.

    Strided picks are contiguous slices of a regrouped view: row m of ``(rows, stride·B·C, H, W)``
    holds slices stride·m … stride·m + stride − 1, so tap k = stride·q + r is rows q… and block r.
    """
    rows = out_depth + (taps - 1) // stride
    padded = _pad_depth(padded, 0, rows * stride - static_shape(padded)[0])
    _, bc, h, w = static_shape(padded)
    grouped = padded.reshape(rows, stride * bc, h, w) if stride > 1 else padded
    picks = []
    for k in range(taps):
        q, r = divmod(k, stride)
        picks.append(grouped[q : q + out_depth, r * bc : (r + 1) * bc])
    return picks


def conv3d_slices(
    slices: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
) -> Tensor:
    """3-D convolution (zero padding, no dilation, one group) on a slice stack, rank ≤ 4 throughout.

    slices: (D, B·Cin, H, W); weight: (Cout, Cin, kd, kh, kw) → (D', B·Cout, H', W') with the
    sizes ``F.conv3d`` gives.
    """
    cout, cin, kd, kh, kw = static_shape(weight)
    sd, sh, sw = _triple(stride)
    pd, ph, pw = _triple(padding)
    depth, bc, h, w = _slice_shape(slices, cin)
    batch = bc // cin
    out_depth = (depth + 2 * pd - kd) // sd + 1
    if out_depth < 1:
        raise ValueError(f"depth {depth} is too small for kernel {kd} with padding {pd}")
    padded = _pad_depth(slices, pd, pd)
    taps = _depth_taps(padded, kd, sd, out_depth)
    rows = [tap.reshape(out_depth * batch, cin, h, w) for tap in taps]
    stacked = rows[0] if kd == 1 else torch.cat(rows, dim=1)
    # (Cout, Cin, kd, kh, kw) → (Cout, kd·Cin, kh, kw), tap-major like the concatenation above.
    weight_2d = weight.permute(0, 2, 1, 3, 4).reshape(cout, kd * cin, kh, kw)
    out = F.conv2d(stacked, weight_2d, bias, (sh, sw), (ph, pw))
    out_h, out_w = static_shape(out)[-2:]
    return out.reshape(out_depth, batch * cout, out_h, out_w)


def _transposed_sizes(sizes: Triple, kernel: Triple, stride: Triple, padding: Triple, output_padding: Triple
                      ) -> tuple[Triple, Triple]:
    """(full sizes without padding, PyTorch's output sizes) of a transposed convolution."""
    for p, op in zip(padding, output_padding):
        if op > p:
            # The cropped forms below take their window inside the unpadded result; a larger output
            # padding would need zeros past its end, which no published model uses.
            raise ValueError(f"output_padding {output_padding} larger than padding {padding} is not supported")
    full = tuple((n - 1) * s + k for n, s, k in zip(sizes, stride, kernel))
    out = tuple(f - 2 * p + op for f, p, op in zip(full, padding, output_padding))
    return full, out  # type: ignore[return-value]


def conv_transpose3d_cropped(
    volume: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
    output_padding: int | tuple[int, ...] = 0,
) -> Tensor:
    """``F.conv_transpose3d`` computed without padding or output padding, then cropped to its window.

    volume: (B,Cin,D,H,W); weight: (Cin, Cout, kd, kh, kw) → (B,Cout,D',H',W'), equal to the padded
    transposed convolution. TensorRT mishandles the asymmetric output padding; this form has none.
    """
    kernel = _triple(static_shape(weight)[2:])
    stride_, padding_ = _triple(stride), _triple(padding)
    _, out = _transposed_sizes(_triple(static_shape(volume)[2:]), kernel, stride_, padding_, _triple(output_padding))
    full = F.conv_transpose3d(volume, weight, bias, stride_)
    (pd, ph, pw), (od, oh, ow) = padding_, out
    return full[:, :, pd : pd + od, ph : ph + oh, pw : pw + ow]


def conv_transpose3d_slices(
    slices: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
    output_padding: int | tuple[int, ...] = 0,
) -> Tensor:
    """Transposed 3-D convolution (zero padding, no dilation, one group) on a slice stack.

    slices: (D, B·Cin, H, W); weight: (Cin, Cout, kd, kh, kw) → (D', B·Cout, H', W') with the
    sizes and values of ``F.conv_transpose3d``. Output slice ``stride·m + r`` (before cropping) is
    the sum over taps k ≡ r (mod stride) of input slice ``m − (k − r)/stride`` through the 2-D
    kernel ``weight[:, :, k]``; each phase r is one transposed 2-D convolution.
    """
    cin, cout, kd, kh, kw = static_shape(weight)
    sd, sh, sw = _triple(stride)
    pd, ph, pw = _triple(padding)
    if kd < sd:
        raise ValueError(f"depth kernel {kd} smaller than depth stride {sd} is not supported")
    depth, bc, h, w = _slice_shape(slices, cin)
    batch = bc // cin
    (full_depth, _, _), (out_depth, out_h, out_w) = _transposed_sizes(
        (depth, h, w), (kd, kh, kw), (sd, sh, sw), (pd, ph, pw), _triple(output_padding))
    rows = (full_depth + sd - 1) // sd
    max_shift = (kd - 1) // sd
    # padded[i + max_shift] = input slice i; zeros where i is out of range.
    padded = _pad_depth(slices, max_shift, rows - depth)
    phases = []
    for r in range(sd):
        shifts = range((kd - 1 - r) // sd + 1)  # taps k = r + sd·j
        inputs = [padded[max_shift - j : max_shift - j + rows].reshape(rows * batch, cin, h, w) for j in shifts]
        kernels = [weight[:, :, r + sd * j] for j in shifts]
        stacked = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        kernel = kernels[0] if len(kernels) == 1 else torch.cat(kernels, dim=0)
        out = F.conv_transpose2d(stacked, kernel, bias, (sh, sw))
        out = out[:, :, ph : ph + out_h, pw : pw + out_w]
        phases.append(out.reshape(rows, batch * cout, out_h, out_w))
    # Interleave the phases along depth: row m holds phases 0…sd−1 one after the other.
    interleaved = phases[0] if sd == 1 else torch.cat(phases, dim=1).reshape(rows * sd, batch * cout, out_h, out_w)
    return interleaved[pd : pd + out_depth]


class Conv3dOp(DeploySwitch):
    """Parameter-free 3-D convolution with a deploy twin; the owning layer passes its weights.

    Reference: ``F.conv3d`` on (B,Cin,D,H,W). Deploy: :func:`conv3d_slices` on (D, B·Cin, H, W).
    """

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None, stride: Triple, padding: Triple) -> Tensor:
        """x: volume (reference) or slice stack (deploy) → the same layout, convolved."""
        if self.deploy_mode:
            return conv3d_slices(x, weight, bias, stride, padding)
        return F.conv3d(x, weight, bias, stride, padding)



class ConvTranspose3dOp(DeploySwitch):
    """Parameter-free transposed 3-D convolution with a deploy twin; the owning layer passes its weights.

    Reference: :func:`conv_transpose3d_cropped` on (B,Cin,D,H,W) (equal to ``F.conv_transpose3d``,
    exportable for TensorRT). Deploy: :func:`conv_transpose3d_slices` on (D, B·Cin, H, W).
    """

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None, stride: Triple, padding: Triple,
                output_padding: Triple) -> Tensor:
        """x: volume (reference) or slice stack (deploy) → the same layout, up-sampled."""
        if self.deploy_mode:
            return conv_transpose3d_slices(x, weight, bias, stride, padding, output_padding)
        return conv_transpose3d_cropped(x, weight, bias, stride, padding, output_padding)
