"""Throughput and model FLOPs utilisation (MFU).

MFU = achieved model FLOPs / peak: tokens/s times the model's training FLOPs per token
(6N plus attention, from :meth:`Transformer.flops_per_token`) over the device's dense bf16
peak. Only devices in the table have a peak; elsewhere (CPU) MFU is not reported.
"""

from __future__ import annotations

import torch

# Dense (no sparsity) bf16 tensor-core peaks, FLOP/s per GPU, from NVIDIA's data sheets.
PEAK_BF16_FLOPS: dict[str, float] = {
    "H100 SXM": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H200": 989e12,
    "A100": 312e12,
}


def peak_flops(device: torch.device) -> float | None:
    """The bf16 peak of ``device``, or None when unknown (CPU, unlisted GPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "H100" in name:
        if "PCIe" in name:
            return PEAK_BF16_FLOPS["H100 PCIe"]
        if "NVL" in name:
            return PEAK_BF16_FLOPS["H100 NVL"]
        return PEAK_BF16_FLOPS["H100 SXM"]
    for key, value in PEAK_BF16_FLOPS.items():
        if key in name:
            return value
    return None


def mfu(
    tokens_per_s: float, flops_per_token: float, peak: float | None, n_devices: int
) -> float | None:
    if peak is None:
        return None
    return tokens_per_s * flops_per_token / (peak * n_devices)


def format_mfu(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
