#!/usr/bin/env python3
"""PyTorch versions of DESIGN.md's workloads W1 and W2, the yardstick for `build/apps/bench w1|w2`.

The same training step as apps/bench_model.cpp, on random inputs of the same shapes: forward, the CCC loss
(MODEL.md §4), backward, Adam (W2 also clips the gradient norm at 5), timed per step with the device
synchronised at its end (minidl's step ends in loss.item(), which waits too). Median over --steps steps after
--warmup.
  W1  B 64 sequences of L 16 clips, 512-d audio and visual features -> JCA (d 128, k 32) -> heads.
      --jca batched: the JCA written with batched matrix products (what minidl does);
      --jca loop:    the authors' per-sequence loop (their released CAM), for the "official code" figure.
  W2  B 4 x L 16 clips: video 3 x 8 x 112 x 112 -> torchvision's R(2+1)D-18, audio 1 x 64 x F -> ResNet-18
      with a 1-channel stem, 2-layer BiLSTMs (256 per direction), JCA, heads. F = 107 by default, minidl's
      paper preset (16 kHz audio, 10 ms hops over a 32-frame clip at 30 fps); DESIGN.md quotes 104.
Modes (--mode): fp32 (TF32 off everywhere), tf32 (PyTorch's defaults: TF32 convolutions, fp32 matmuls
unless --matmul-tf32), bf16 (autocast to bfloat16).

A tool for measuring, never a dependency of the build:
    python3 tools/bench_workloads.py w1 --device cuda
    python3 tools/bench_workloads.py w2 --device cuda --mode tf32
    python3 tools/bench_workloads.py all --device cuda --json results.json
"""
import argparse
import json
import math
import statistics
import time

import torch
from torch import nn


def regressor(width, hidden=128, dropout=0.6):
    return nn.Sequential(nn.Linear(width, hidden), nn.Dropout(dropout), nn.Linear(hidden, 1))


class JCA(nn.Module):
    """Joint cross-attention with the paper's head input [X_att,v, X_att,a]; names as the authors' CAM."""

    def __init__(self, clips=16, features=512, d=128, k=32, loop=False):
        super().__init__()
        self.loop = loop
        self.encoder1 = nn.Linear(features, d)
        self.encoder2 = nn.Linear(features, d)
        self.affine_a = nn.Linear(clips, clips, bias=False)
        self.affine_v = nn.Linear(clips, clips, bias=False)
        self.W_a = nn.Linear(clips, k, bias=False)
        self.W_v = nn.Linear(clips, k, bias=False)
        self.W_ca = nn.Linear(2 * d, k, bias=False)
        self.W_cv = nn.Linear(2 * d, k, bias=False)
        self.W_ha = nn.Linear(k, clips, bias=False)
        self.W_hv = nn.Linear(k, clips, bias=False)
        self.vregressor = regressor(2 * d)
        self.aregressor = regressor(2 * d)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.xavier_uniform_(p)
            else:
                nn.init.zeros_(p)

    def attend(self, xa, xv):
        # xa, xv [B, L, d]; the time-mixing weights act on the L axis.
        j = torch.cat((xa, xv), -1)  # [B, L, 2d]
        scale = math.sqrt(j.shape[-1])
        ja = self.affine_a(j.transpose(1, 2))  # [B, 2d, L] = (W_ja J)^T
        jv = self.affine_v(j.transpose(1, 2))
        ca = torch.tanh(torch.bmm(xa.transpose(1, 2), ja.transpose(1, 2)) / scale)  # [B, d, 2d]
        cv = torch.tanh(torch.bmm(xv.transpose(1, 2), jv.transpose(1, 2)) / scale)
        ha = torch.relu(self.W_ca(ca) + self.W_a(xa.transpose(1, 2)))  # [B, d, k]
        hv = torch.relu(self.W_cv(cv) + self.W_v(xv.transpose(1, 2)))
        return self.W_ha(ha).transpose(1, 2) + xa, self.W_hv(hv).transpose(1, 2) + xv

    def forward(self, audio, visual):
        xa, xv = self.encoder1(audio), self.encoder2(visual)
        if self.loop:  # the authors' per-sequence loop
            outs = [self.attend(xa[i:i + 1], xv[i:i + 1]) for i in range(xa.shape[0])]
            xa, xv = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
        else:
            xa, xv = self.attend(xa, xv)
        f = torch.cat((xv, xa), -1)
        return torch.cat((self.vregressor(f), self.aregressor(f)), -1)


def ccc_loss(pred, target):
    # Population moments per column over the batch's clips: (1 - CCC_V) + (1 - CCC_A).
    x, y = pred.reshape(-1, 2).float(), target.reshape(-1, 2).float()
    mx, my = x.mean(0), y.mean(0)
    vx, vy = ((x - mx) ** 2).mean(0), ((y - my) ** 2).mean(0)
    cov = ((x - mx) * (y - my)).mean(0)
    ccc = 2 * cov / (vx + vy + (mx - my) ** 2 + 1e-8)
    return (1 - ccc).sum()


class EmotionModel(nn.Module):
    """W2: the paper preset end to end (MODEL.md §2)."""

    def __init__(self, clips=16):
        super().__init__()
        import torchvision
        self.visual = torchvision.models.video.r2plus1d_18()
        self.visual.fc = nn.Identity()
        self.audio = torchvision.models.resnet18()
        self.audio.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.audio.fc = nn.Identity()
        self.visual_temporal = nn.LSTM(512, 256, num_layers=2, bidirectional=True, batch_first=True)
        self.audio_temporal = nn.LSTM(512, 256, num_layers=2, bidirectional=True, batch_first=True)
        self.fusion = JCA(clips)

    def forward(self, video, audio):
        B, L = video.shape[:2]
        v = self.visual(video.flatten(0, 1)).view(B, L, -1)
        a = self.audio(audio.flatten(0, 1)).view(B, L, -1)
        v, _ = self.visual_temporal(v)
        a, _ = self.audio_temporal(a)
        return self.fusion(a, v)


def time_steps(step, device, steps, warmup):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss = step()
        loss.item()  # waits for the device, as minidl's step does
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def run(workload, args):
    device = torch.device(args.device)
    torch.manual_seed(1)
    torch.backends.cudnn.allow_tf32 = args.mode != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = args.mode != "fp32" and args.matmul_tf32
    torch.backends.cudnn.benchmark = True
    if workload == "w1":
        B, L = 64, 16
        model = JCA(L, loop=args.jca == "loop").to(device)
        inputs = (torch.randn(B, L, 512, device=device), torch.randn(B, L, 512, device=device))
        clip_norm = None
    else:
        B, L = 4, 16
        model = EmotionModel(L).to(device)
        inputs = (torch.randn(B, L, 3, 8, 112, 112, device=device), torch.randn(B, L, 1, 64, args.mel_frames, device=device))
        clip_norm = 5.0
    labels = torch.rand(B, L, 2, device=device) * 2 - 1
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.mode == "bf16"):
            pred = model(*inputs)
        loss = ccc_loss(pred, labels)
        loss.backward()
        if clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        opt.step()
        return loss

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    median, lo, hi = time_steps(step, device, args.steps, args.warmup)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0
    print(f"PyTorch {torch.__version__} {workload} ({args.mode}{', jca loop' if workload == 'w1' and args.jca == 'loop' else ''}) "
          f"on {name}: median step {median * 1e3:.2f} ms (min {lo * 1e3:.2f}, max {hi * 1e3:.2f}), "
          f"{B * L / median:.0f} clips/s" + (f", peak memory {peak:.0f} MiB" if peak else ""))
    return {"workload": workload, "mode": args.mode, "device": name, "median_ms": median * 1e3,
            "clips_per_s": B * L / median, "peak_mib": peak}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=["w1", "w2", "all"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--mode", choices=["fp32", "tf32", "bf16"], default="fp32")
    p.add_argument("--matmul-tf32", action="store_true", help="TF32 for matmuls too (PyTorch's default is off)")
    p.add_argument("--jca", choices=["batched", "loop"], default="batched")
    p.add_argument("--mel-frames", type=int, default=107)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args()
    results = [run(w, args) for w in (["w1", "w2"] if args.workload == "all" else [args.workload])]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
