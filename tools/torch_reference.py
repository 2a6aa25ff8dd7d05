#!/usr/bin/env python3
"""Reference tensors from PyTorch for the layer tests (tests/layers/test_torch_reference.cpp).

For Conv2d, Conv3d, BatchNorm2d and a 2-layer bidirectional LSTM this builds the torch module with fixed
random weights, runs a forward pass on a fixed input, back-propagates a fixed random output gradient, and
writes inputs, weights (under torch's state_dict names), outputs and gradients to
tests/layers/fixtures/torch_reference.safetensors. Everything is float64, so the C++ test can compare to
about 1e-10: the comparison checks the definitions (padding, strides, gate order, running-statistics
update), not float32 rounding.

A tool, never a build dependency: run it with Debian's PyTorch (python3-torch) when the layers change,
and commit the file it writes.
    /usr/bin/python3 tools/torch_reference.py
The safetensors file is written here directly (the format is an 8-byte header length, a JSON header and
the raw bytes), so the script needs nothing beyond torch.
"""
import json
import struct
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "layers" / "fixtures" / "torch_reference.safetensors"


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
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def run(prefix, module, inputs, out):
    """Forward, then backward of sum(output * r) for a fixed random r; records everything under prefix."""
    for x in inputs.values():
        x.requires_grad_(True)
    y = module(*inputs.values())
    ys = y if isinstance(y, tuple) else (y,)
    flat = []
    for item in ys:
        flat.extend(item if isinstance(item, tuple) else (item,))
    loss = 0
    for k, t in enumerate(flat):
        r = torch.randn_like(t)
        out[f"{prefix}.grad_output{k}"] = r
        out[f"{prefix}.output{k}"] = t
        loss = loss + (t * r).sum()
    loss.backward()
    for name, x in inputs.items():
        out[f"{prefix}.{name}"] = x
        out[f"{prefix}.grad_{name}"] = x.grad
    for name, p in module.state_dict().items():
        out[f"{prefix}.param.{name}"] = p
    for name, p in module.named_parameters():
        # A copy: the same module may run again (BatchNorm in eval after training), and torch adds into .grad.
        out[f"{prefix}.grad_param.{name}"] = None if p.grad is None else p.grad.clone()
    module.zero_grad()


def main():
    torch.manual_seed(20261124)
    torch.set_default_dtype(torch.float64)
    out = {}

    conv2d = torch.nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
    run("conv2d", conv2d, {"input": torch.randn(2, 3, 9, 11)}, out)

    grouped = torch.nn.Conv2d(4, 6, kernel_size=(3, 2), stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2)
    run("conv2d_grouped", grouped, {"input": torch.randn(2, 4, 7, 8)}, out)

    # The two halves of an R(2+1)D block: a spatial 1x3x3 conv and a temporal 3x1x1 conv.
    spatial = torch.nn.Conv3d(3, 5, kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)
    run("conv3d_spatial", spatial, {"input": torch.randn(2, 3, 4, 9, 9)}, out)
    temporal = torch.nn.Conv3d(5, 4, kernel_size=(3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))
    run("conv3d_temporal", temporal, {"input": torch.randn(2, 5, 5, 3, 3)}, out)

    bn = torch.nn.BatchNorm2d(6, momentum=0.1)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    bn.train()
    run("batchnorm2d_train", bn, {"input": torch.randn(4, 6, 5, 3) * 2 + 1}, out)
    for k, v in before.items():  # the state before the training step; "param." holds the state after it
        out[f"batchnorm2d_train.before.{k}"] = v.to(torch.float64)
    bn.eval()
    run("batchnorm2d_eval", bn, {"input": torch.randn(3, 6, 4, 4)}, out)

    lstm = torch.nn.LSTM(input_size=7, hidden_size=5, num_layers=2, bidirectional=True, batch_first=True)

    class WithState(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, h0, c0):
            y, (h, c) = self.inner(x, (h0, c0))
            return y, h, c

    wrapped = WithState(lstm)
    run("lstm", wrapped, {"input": torch.randn(3, 4, 7), "h0": torch.randn(4, 3, 5), "c0": torch.randn(4, 3, 5)}, out)

    out = {k: v for k, v in out.items() if v is not None}
    save_safetensors(OUT, out, {"producer": "tools/torch_reference.py", "torch": torch.__version__})
    print(f"wrote {len(out)} tensors to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
