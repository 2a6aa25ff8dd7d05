#!/usr/bin/env python3
"""A PyTorch twin of the fusion module (models/fusion.cpp) for tests/models/test_fusion.cpp.

The JCA twin is the authors' CAM (praveena2j/Joint-Cross-Attention-for-Audio-Visual-Fusion, models/cam.py)
with its sizes made parameters and the heads fed [X_att,v, X_att,a] as in the paper (the released code feeds
[raw visual, X_att,v], PAPER-NOTES.md §1.2). It keeps the authors' per-sample loop, so the batched C++ module
is compared against the per-sequence equations, not against another batched implementation. The same class
with recursions > 0 is recursive JCA: the attention block applied that many times with the same weights.
The cross-attention twin follows MODEL.md §1 (C = X_a W X_v^T, a softmax over each index).

For each case this builds the module in float64 with fixed random weights (xavier-uniform weights as the
authors initialise them, and random non-zero biases so a bias that is ignored shows up), runs it in eval
mode (dropout off) on fixed inputs A [B, L, D_a] and V [B, L, D_v], back-propagates sum(output * r) for a
fixed random r, and writes inputs, state_dict, output and every gradient to
tests/models/fixtures/jca_reference.safetensors:
    <case>.audio, <case>.visual, <case>.param.<name>, <case>.output, <case>.grad_output (r),
    <case>.grad_audio, <case>.grad_visual, <case>.grad_param.<name>
Sizes (in the file's metadata too): B 3, L 8, D_a 12, D_v 10, d 6, k 4, head_hidden 5.

A tool, never a build dependency: run it with Debian's PyTorch (python3-torch) when the fusion module's
definition changes, and commit the file it writes.
    /usr/bin/python3 tools/jca_twin.py
The safetensors file is written directly (an 8-byte header length, a JSON header, the raw bytes), as
tools/torch_reference.py does, so nothing beyond torch is needed.
"""
import json
import math
import struct
from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "tests" / "models" / "fixtures" / "jca_reference.safetensors"
SIZES = {"batch": 3, "clips": 8, "audio_features": 12, "visual_features": 10, "encoded": 6, "attention": 4,
         "head_hidden": 5, "head_dropout": 0.6, "recursions": 2}


def regressor(width, hidden, dropout):
    return nn.Sequential(nn.Linear(width, hidden), nn.Dropout(dropout), nn.Linear(hidden, 1))


class CAM(nn.Module):
    """The authors' CAM with configurable sizes and the paper's head input; recursions > 0 repeats the block."""

    def __init__(self, clips, audio_features, visual_features, encoded, attention, head_hidden, head_dropout,
                 recursions=0):
        super().__init__()
        self.recursions = recursions
        self.encoder1 = nn.Linear(audio_features, encoded)
        self.encoder2 = nn.Linear(visual_features, encoded)
        self.affine_a = nn.Linear(clips, clips, bias=False)
        self.affine_v = nn.Linear(clips, clips, bias=False)
        self.W_a = nn.Linear(clips, attention, bias=False)
        self.W_v = nn.Linear(clips, attention, bias=False)
        self.W_ca = nn.Linear(2 * encoded, attention, bias=False)
        self.W_cv = nn.Linear(2 * encoded, attention, bias=False)
        self.W_ha = nn.Linear(attention, clips, bias=False)
        self.W_hv = nn.Linear(attention, clips, bias=False)
        self.tanh = nn.Tanh()
        self.relu = nn.ReLU()
        self.vregressor = regressor(2 * encoded, head_hidden, head_dropout)
        self.aregressor = regressor(2 * encoded, head_hidden, head_dropout)

    def block(self, aud_fts, vis_fts):
        # The body of the authors' loop, on one sequence: [L, d] each.
        aud_vis_fts = torch.cat((aud_fts, vis_fts), 1)
        a_t = self.affine_a(aud_vis_fts.transpose(0, 1))
        att_aud = torch.mm(aud_fts.transpose(0, 1), a_t.transpose(0, 1))
        audio_att = self.tanh(torch.div(att_aud, math.sqrt(aud_vis_fts.shape[1])))
        v_t = self.affine_v(aud_vis_fts.transpose(0, 1))
        att_vis = torch.mm(vis_fts.transpose(0, 1), v_t.transpose(0, 1))
        vis_att = self.tanh(torch.div(att_vis, math.sqrt(aud_vis_fts.shape[1])))
        H_a = self.relu(self.W_ca(audio_att) + self.W_a(aud_fts.transpose(0, 1)))
        H_v = self.relu(self.W_cv(vis_att) + self.W_v(vis_fts.transpose(0, 1)))
        att_audio_features = self.W_ha(H_a).transpose(0, 1) + aud_fts
        att_visual_features = self.W_hv(H_v).transpose(0, 1) + vis_fts
        return att_audio_features, att_visual_features

    def forward(self, audio, visual):
        outs = []
        for i in range(audio.shape[0]):
            aud_fts = self.encoder1(audio[i])
            vis_fts = self.encoder2(visual[i])
            for _ in range(max(self.recursions, 1)):
                aud_fts, vis_fts = self.block(aud_fts, vis_fts)
            features = torch.cat((vis_fts, aud_fts), 1)  # the paper's [X_att,v, X_att,a]
            outs.append(torch.cat((self.vregressor(features), self.aregressor(features)), 1))
        return torch.stack(outs)  # [B, L, 2]: valence, arousal


class CrossAttention(nn.Module):
    """Vanilla cross-attention, MODEL.md §1, with the JCA's encoders and heads."""

    def __init__(self, audio_features, visual_features, encoded, head_hidden, head_dropout):
        super().__init__()
        self.W = nn.Parameter(torch.empty(encoded, encoded))
        self.encoder1 = nn.Linear(audio_features, encoded)
        self.encoder2 = nn.Linear(visual_features, encoded)
        self.vregressor = regressor(2 * encoded, head_hidden, head_dropout)
        self.aregressor = regressor(2 * encoded, head_hidden, head_dropout)

    def forward(self, audio, visual):
        outs = []
        for i in range(audio.shape[0]):
            xa, xv = self.encoder1(audio[i]), self.encoder2(visual[i])
            c = xa @ self.W @ xv.t()  # [L, L]
            alpha_a = torch.softmax(c, dim=0)
            alpha_v = torch.softmax(c.t(), dim=0)
            features = torch.cat((alpha_v.t() @ xv, alpha_a.t() @ xa), 1)
            outs.append(torch.cat((self.vregressor(features), self.aregressor(features)), 1))
        return torch.stack(outs)


def randomise(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                nn.init.xavier_uniform_(p)
            else:
                p.uniform_(-0.5, 0.5)


def run(prefix, module, audio, visual, out):
    randomise(module)
    module.eval()
    audio = audio.clone().requires_grad_(True)
    visual = visual.clone().requires_grad_(True)
    y = module(audio, visual)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    out[f"{prefix}.audio"] = audio
    out[f"{prefix}.visual"] = visual
    out[f"{prefix}.output"] = y
    out[f"{prefix}.grad_output"] = r
    out[f"{prefix}.grad_audio"] = audio.grad
    out[f"{prefix}.grad_visual"] = visual.grad
    for name, p in module.state_dict().items():
        out[f"{prefix}.param.{name}"] = p
    for name, p in module.named_parameters():
        out[f"{prefix}.grad_param.{name}"] = p.grad


def save_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, t in tensors.items():
        t = t.detach().contiguous().to(torch.float64)
        data = t.numpy().tobytes()
        header[name] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    torch.manual_seed(20261125)
    torch.set_default_dtype(torch.float64)
    s = SIZES
    out = {}
    sizes = dict(clips=s["clips"], audio_features=s["audio_features"], visual_features=s["visual_features"],
                 encoded=s["encoded"], attention=s["attention"], head_hidden=s["head_hidden"],
                 head_dropout=s["head_dropout"])
    audio = torch.randn(s["batch"], s["clips"], s["audio_features"])
    visual = torch.randn(s["batch"], s["clips"], s["visual_features"])
    run("jca", CAM(**sizes), audio, visual, out)
    run("recursive_jca", CAM(**sizes, recursions=s["recursions"]), audio, visual, out)
    cross = CrossAttention(s["audio_features"], s["visual_features"], s["encoded"], s["head_hidden"],
                           s["head_dropout"])
    run("cross_attention", cross, audio, visual, out)

    missing = [k for k, v in out.items() if v is None]
    assert not missing, f"no gradient for {missing}"
    metadata = {"producer": "tools/jca_twin.py", "torch": torch.__version__}
    metadata.update({k: str(v) for k, v in s.items()})
    save_safetensors(OUT, out, metadata)
    print(f"wrote {len(out)} tensors to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
