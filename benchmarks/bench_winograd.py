"""Would Winograd convolutions speed up the EDSR encoder on CPU? A probe, kept because its answer was no.

The encoder's 3x3, 64 -> 64 convolutions are half of what irad's IRAD computes on CPU. Winograd F(2x2, 3x3) needs
2.25x fewer multiplications; oneDNN uses it only on AVX-512 machines. This script implements it with PyTorch
operations (tile extraction, the input / output transforms as small matmuls, 16 batched channel-mixing GEMMs),
checks it against ``F.conv2d`` and times both (and oneDNN in channels-last layout) side by side.

    python benchmarks/bench_winograd.py [--batch-sizes 8,64] [--repeats 10]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# F(2x2, 3x3) (Lavin & Gray 2016): Y = A^T [(G g G^T) * (B^T d B)] A on 4x4 input tiles with stride 2
B_T = torch.tensor([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=torch.float32)
G = torch.tensor([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=torch.float32)
A_T = torch.tensor([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=torch.float32)
IN_TRANSFORM = torch.kron(B_T, B_T)  # vec(B^T d B) = (B^T kron B^T) vec(d), 16 x 16
OUT_TRANSFORM = torch.kron(A_T, A_T)  # 4 x 16


def winograd_weights(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 3, 3) -> (16, C_out, C_in): G g G^T per filter, one matrix per tile position."""
    u = G @ weight @ G.T
    return u.reshape(*u.shape[:2], 16).permute(2, 0, 1).contiguous()


def winograd_conv3x3(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """3x3 convolution, padding 1, of x (N, C, H, W) with even H, W, through F(2x2, 3x3)."""
    n, c, h, w = x.shape
    th, tw = h // 2, w // 2
    tiles = F.pad(x, (1, 1, 1, 1)).unfold(2, 4, 2).unfold(3, 4, 2)  # N, C, th, tw, 4, 4
    tiles = tiles.permute(4, 5, 1, 0, 2, 3).reshape(16, c * n * th * tw)
    v = (IN_TRANSFORM @ tiles).view(16, c, n * th * tw)
    m = torch.bmm(u, v)  # 16, C_out, N * tiles
    y = (OUT_TRANSFORM @ m.view(16, -1)).view(2, 2, -1, n, th, tw)
    return y.permute(3, 2, 4, 0, 5, 1).reshape(n, -1, h, w) + bias.view(1, -1, 1, 1)


def _ms_per_image(fn, batch: int, repeats: int) -> float:
    for _ in range(3):
        fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats / batch * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-sizes", default="8,64")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    conv_cl = torch.nn.Conv2d(64, 64, 3, padding=1).eval().to(memory_format=torch.channels_last)
    conv_cl.load_state_dict(conv.state_dict())
    u, b = winograd_weights(conv.weight.detach()), conv.bias.detach()
    print(f"3x3 conv 64 -> 64 on 32 x 32, {torch.get_num_threads()} threads, ms per image (mean of {args.repeats})")
    print("| batch | oneDNN | oneDNN channels-last | Winograd F(2,3) in PyTorch ops | Winograd / channels-last | max diff |")
    print("|---:|---:|---:|---:|---:|---:|")
    with torch.inference_mode():
        for batch in (int(v) for v in args.batch_sizes.split(",")):
            x = torch.randn(batch, 64, 32, 32)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            diff = float((conv(x) - winograd_conv3x3(x, u, b)).abs().max())
            t = [_ms_per_image(f, batch, args.repeats) for f in
                 (lambda: conv(x), lambda: conv_cl(x_cl), lambda: winograd_conv3x3(x, u, b))]
            print(f"| {batch} | {t[0]:.3f} | {t[1]:.3f} | {t[2]:.3f} | {t[2] / t[1]:.1f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
