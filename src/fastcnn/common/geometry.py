"""The output size of a window slid over an image: one formula for the layers,
the op intake and the reference (the native core has its twin in
src/cpp/geometry.h).

A window of (KH, KW) slid with stride (SH, SW) over an (H, W) image padded by
(PH, PW) zeros on each side covers OH = (H + 2*PH - KH) // SH + 1 rows and
OW = (W + 2*PW - KW) // SW + 1 columns (the floor: a last partial window is
dropped). Pooling is the same with no padding.
"""
from __future__ import annotations

from .limits import MAX_SIZE


def _shape(s) -> str:
    return str(tuple(int(v) for v in s))


def conv_output_size(x_shape, kernel, stride, padding, x_name: str = "x") -> tuple[int, int]:
    """(OH, OW) of a window sweep over the last two axes (H, W) of x_shape;
    ValueError when the window is larger than the padded input or the output
    would hold more than MAX_SIZE pixels per channel."""
    h, w = x_shape[-2], x_shape[-1]
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(
            f"kernel {_shape((kh, kw))} is larger than the padded input "
            f"{_shape((h + 2 * ph, w + 2 * pw))} of {x_name} with shape "
            f"{_shape(x_shape)} and padding {_shape((ph, pw))}")
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if oh * ow > MAX_SIZE:
        raise ValueError(
            f"output of {_shape((oh, ow))} pixels per channel is too large ({x_name} shape "
            f"{_shape(x_shape)}, padding {_shape((ph, pw))}, stride {_shape((sh, sw))})")
    return oh, ow


def pool_output_size(x_shape, size, stride, x_name: str = "x") -> tuple[int, int]:
    """(OH, OW) of a pooling window sweep (no padding) over x_shape's (H, W)."""
    return conv_output_size(x_shape, size, stride, (0, 0), x_name)


def same_padding(kernel, stride) -> tuple[int, int]:
    """The padding that keeps H and W ("same"): odd kernels at stride 1 only."""
    if tuple(stride) != (1, 1) or any(k % 2 == 0 for k in kernel):
        raise ValueError("padding='same' needs an odd kernel_size and stride 1, got "
                         f"kernel_size={tuple(kernel)}, stride={tuple(stride)}")
    return kernel[0] // 2, kernel[1] // 2


__all__ = ["conv_output_size", "pool_output_size", "same_padding", "MAX_SIZE"]
