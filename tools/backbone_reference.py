#!/usr/bin/env python3
"""Reference tensors from torchvision for the backbone tests (tests/models/test_backbones.cpp).

Writes three files to tests/models/fixtures/:
  backbone_r2plus1d.safetensors  torchvision's R(2+1)D (VideoResNet + BasicBlock + Conv2Plus1D) at reduced widths
  backbone_audio.safetensors     torchvision's ResNet (BasicBlock) with a 1-channel stem, reduced widths
  backbone_names.safetensors     no tensors; its metadata lists every state_dict name and shape of the real
                                 r2plus1d_18 and resnet18 (1-channel conv1), fc removed, in torchvision's order

Reduced widths: torchvision fixes its stage widths at 64 * 2^i (and the R(2+1)D stem at 45), so the small
networks are torchvision's own classes with only __init__ replaced: VideoResNet._make_layer, BasicBlock,
Conv2Plus1D, ResNet._make_layer, resnet.BasicBlock and both forward()s are torchvision's code. main() first
builds the same classes at the paper widths and checks them against r2plus1d_18() / resnet18() (names,
shapes and outputs for the same weights), so "faithful copy" is checked, not assumed.

Widths (3, 4, 6, 8), 2 blocks per stage, stem 5: every width differs (a swapped width fails to load),
stage 1 has an identity residual, stages 2-4 a strided downsample, and the second block of each stage has
in == out, so the (2+1)D midplanes of first and second blocks differ (torchvision takes a block's midplanes
from its input width, also for its conv2). The tiny preset's widths (8, 16, 32, 64) would give 4.4 MB of
float64 weights and gradients; these give about 400 KB for both files.

What is recorded, all in float64 arithmetic:
  param.<name>        the state_dict (conv weights as torchvision initialises them, BatchNorm affine parameters
                      drawn at random, running statistics from one calibration pass), rounded to float32 and
                      stored as F32/I64, so both sides compute with exactly these values;
  input, grad_output  x and a fixed r (float32-rounded);
  eval.output, eval.grad_input, eval.grad.<param>   eval mode (BatchNorm uses the running statistics):
                      out = model(x), and the gradients of sum(out * r) w.r.t. x and every parameter;
  train.output, train.grad_input, train.grad.<BatchNorm weight/bias>, train.state.<running stats>
                      one training-mode forward / backward from the same state (batch statistics, running
                      statistics updated with momentum 0.1).

A tool, never a build dependency: run it with Debian's PyTorch when the backbones change, commit the files.
    /usr/bin/python3 tools/backbone_reference.py
"""
import json
import struct
from pathlib import Path

import torch
import torch.nn as nn
import torchvision
from torchvision.models import resnet as tv_resnet
from torchvision.models.video import resnet as tv_video

OUT = Path(__file__).resolve().parent.parent / "tests" / "models" / "fixtures"
WIDTHS, BLOCKS, STEM = (3, 4, 6, 8), 2, 5
# Odd sizes, so every stride-2 layer rounds up (ceil(n / 2)); a batch of 3 gives the last BatchNorms of the
# training step 3 values per channel.
VIDEO_INPUT = (3, 3, 4, 12, 11)
AUDIO_INPUT = (3, 1, 33, 27)

DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def save_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, t in tensors.items():
        t = t.detach().contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


class SmallVideoResNet(tv_video.VideoResNet):
    """VideoResNet with configurable widths: torchvision's __init__ with 64/128/256/512 and the stem's 45 replaced."""

    def __init__(self, widths, blocks, stem_width):
        nn.Module.__init__(self)
        self.inplanes = widths[0]
        self.stem = nn.Sequential(  # R2Plus1dStem's layers, with its widths as arguments
            nn.Conv3d(3, stem_width, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(stem_width),
            nn.ReLU(inplace=True),
            nn.Conv3d(stem_width, widths[0], kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
        )
        for i, w in enumerate(widths):
            setattr(self, f"layer{i + 1}", self._make_layer(tv_video.BasicBlock, tv_video.Conv2Plus1D, w, blocks,
                                                            stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Identity()  # forward() ends in fc; no parameters, so no state_dict entry
        for m in self.modules():  # VideoResNet's initialisation
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


class SmallResNet(tv_resnet.ResNet):
    """ResNet with configurable widths and a 1-channel stem: torchvision's __init__ with the widths replaced."""

    def __init__(self, widths, blocks):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = widths[0], 1, 1, 64
        self.conv1 = nn.Conv2d(1, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, w in enumerate(widths):
            setattr(self, f"layer{i + 1}", self._make_layer(tv_resnet.BasicBlock, w, blocks, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        for m in self.modules():  # ResNet's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def torchvision_r2plus1d():
    m = torchvision.models.video.r2plus1d_18()
    m.fc = nn.Identity()
    return m


def torchvision_audio_resnet():
    m = torchvision.models.resnet18()
    m.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    m.fc = nn.Identity()
    return m


def shapes(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def check_faithful():
    """The small classes at the paper widths are r2plus1d_18 / resnet18: same names, shapes, outputs."""
    pairs = [(SmallVideoResNet((64, 128, 256, 512), 2, 45), torchvision_r2plus1d(), (1, 3, 4, 24, 24)),
             (SmallResNet((64, 128, 256, 512), 2), torchvision_audio_resnet(), (1, 1, 40, 40))]
    for ours, ref, size in pairs:
        assert shapes(ours) == shapes(ref), f"{type(ours).__name__}: state_dict differs from torchvision"
        ours.load_state_dict(ref.state_dict())
        ours.eval()
        ref.eval()
        x = torch.randn(size)
        with torch.no_grad():
            assert torch.equal(ours(x), ref(x)), f"{type(ours).__name__}: output differs from torchvision"
    print("small classes at paper widths == torchvision (names, shapes, outputs)")


def names_metadata():
    def listing(model):
        return "\n".join(f"{k} {','.join(map(str, s))}" for k, s in shapes(model))

    video, audio = torchvision_r2plus1d(), torchvision_audio_resnet()
    return {"r2plus1d_18": listing(video), "resnet18_1ch": listing(audio),
            "r2plus1d_18_parameters": str(sum(p.numel() for p in video.parameters())),
            "resnet18_1ch_parameters": str(sum(p.numel() for p in audio.parameters())),
            "torchvision": torchvision.__version__}


def prepare(model, input_size):
    """Random BatchNorm affine parameters, running statistics from one calibration pass, all float32-exact."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.momentum = 1.0  # running statistics := this batch's (a network whose activations keep their scale)
        model.train()
        model(torch.randn(4, *input_size[1:]))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.1
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.float().double())


def record(model, input_size):
    out = {}
    prepare(model, input_size)
    for name, t in model.state_dict().items():
        out[f"param.{name}"] = t.float() if t.is_floating_point() else t.clone()
    x = torch.randn(input_size).float().double()
    out["input"] = x.float()

    model.eval()
    xe = x.clone().requires_grad_(True)
    y = model(xe)
    r = torch.randn_like(y).float().double()
    out["grad_output"] = r.float()
    (y * r).sum().backward()
    out["eval.output"], out["eval.grad_input"] = y.detach(), xe.grad
    for name, p in model.named_parameters():
        out[f"eval.grad.{name}"] = p.grad.clone()
    model.zero_grad()

    model.train()
    xt = x.clone().requires_grad_(True)
    y = model(xt)
    (y * r).sum().backward()
    out["train.output"], out["train.grad_input"] = y.detach(), xt.grad
    bn = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters()}
    for name, p in model.named_parameters():
        if id(p) in bn:  # BatchNorm weights and biases: the batch-statistics backward, at little size
            out[f"train.grad.{name}"] = p.grad.clone()
    for name, t in model.state_dict().items():
        if "running_" in name or "num_batches_tracked" in name:
            out[f"train.state.{name}"] = t.clone()
    return out


def main():
    torch.manual_seed(20261124)
    torch.set_default_dtype(torch.float64)
    check_faithful()
    meta = {"producer": "tools/backbone_reference.py", "torch": torch.__version__,
            "widths": ",".join(map(str, WIDTHS)), "blocks": str(BLOCKS), "stem_width": str(STEM)}
    files = {
        "backbone_r2plus1d.safetensors": record(SmallVideoResNet(WIDTHS, BLOCKS, STEM), VIDEO_INPUT),
        "backbone_audio.safetensors": record(SmallResNet(WIDTHS, BLOCKS), AUDIO_INPUT),
        "backbone_names.safetensors": {},
    }
    for name, tensors in files.items():
        path = OUT / name
        save_safetensors(path, tensors, names_metadata() if not tensors else meta)
        print(f"wrote {len(tensors)} tensors to {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
