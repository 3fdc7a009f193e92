"""Seconds of compute per minute of audio for task 2's features, without downloading anything.

HuBERT is timed with a randomly initialised model of hubert-large-ls960-ft's exact architecture
(the cost does not depend on the weights), run through the same SpeechEncoder and ER-NeRF chunking
that the task uses. Mel is timed on the same audio. On the CPU, one 20 s chunk is also run through
HuBERT-large with torch's own Linear layers (MKL) and with the oneDNN ones SpeechEncoder uses
(talkprep.models.onednn): CPU seconds of each and the largest difference between their outputs.

    python benchmarks/bench_audio_features.py [--seconds 30] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from talkprep.audio_math import SAMPLE_RATE, log_mel, pair_steps

HUBERT_LARGE = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "conv_dim": (512,) * 7,
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
    "conv_bias": True,
    "feat_extract_norm": "layer",
    "do_stable_layer_norm": True,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}
"""facebook/hubert-large-ls960-ft's config.json, the fields that decide the compute."""


def speech_like(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (x + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def bench_hubert(samples: np.ndarray, device: str) -> dict[str, float]:
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    from talkprep.models.audio_encoders import SpeechEncoder

    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = HubertModel(HubertConfig(**HUBERT_LARGE))
    build_s = time.perf_counter() - t0
    extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    params = sum(p.numel() for p in model.parameters())
    with SpeechEncoder(model, extractor, "hidden", device) as encoder:
        encoder.forward(samples[:SAMPLE_RATE])  # warm-up: allocator, kernels
        t0, c0 = time.perf_counter(), time.process_time()
        features = pair_steps(encoder.encode(samples))
        if device == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    minutes = len(samples) / SAMPLE_RATE / 60.0
    return {
        "params_m": round(params / 1e6, 1),
        "build_s": round(build_s, 2),
        "wall_s": round(wall, 2),
        "s_per_audio_min": round(wall / minutes, 2),
        "real_time_factor": round(wall / (minutes * 60.0), 3),
        "cpu_s_per_audio_min": round(cpu / minutes, 2),
        "shape": list(features.shape),
    }


def bench_linear_backends(seconds: float = 20.0) -> dict[str, float]:
    """CPU seconds of one HuBERT-large chunk with MKL's and with oneDNN's Linear layers."""
    import copy

    import torch
    from transformers import HubertConfig, HubertModel

    from talkprep.models.front_end import segment_front_end
    from talkprep.models.onednn import onednn_linears

    torch.manual_seed(0)
    mkl = HubertModel(HubertConfig(**HUBERT_LARGE)).eval()
    segment_front_end(mkl)
    onednn = copy.deepcopy(mkl)
    replaced = onednn_linears(onednn)
    chunk = torch.from_numpy(speech_like(seconds))[None]
    report: dict[str, float] = {"linear_layers": replaced, "chunk_s": seconds}
    outputs = {}
    with torch.inference_mode():
        for name, model in (("mkl", mkl), ("onednn", onednn), ("mkl_again", mkl)):
            model(chunk[:, :SAMPLE_RATE])  # warm-up
            c0 = time.process_time()
            outputs[name] = model(chunk).last_hidden_state
            report[f"{name}_cpu_s"] = round(time.process_time() - c0, 2)
    report["max_abs_diff"] = float((outputs["mkl"] - outputs["onednn"]).abs().max())
    report["max_abs_value"] = round(float(outputs["mkl"].abs().max()), 3)
    return report


def bench_mel(samples: np.ndarray, repeats: int = 5) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mel = log_mel(samples)
        times.append(time.perf_counter() - t0)
    minutes = len(samples) / SAMPLE_RATE / 60.0
    wall = min(times)
    return {
        "wall_s": round(wall, 4),
        "s_per_audio_min": round(wall / minutes, 4),
        "shape": list(mel.shape),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="audio length to time")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--skip-hubert", action="store_true")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    samples = speech_like(args.seconds)
    report = {
        "audio_s": args.seconds,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "mel": bench_mel(samples),
    }
    if not args.skip_hubert:
        report["hubert_large"] = bench_hubert(samples, args.device)
        if args.device == "cpu":
            report["hubert_large_linear_backends"] = bench_linear_backends()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
