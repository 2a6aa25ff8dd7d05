#!/usr/bin/python3
"""A safetensors file written by PyTorch and the reference `safetensors` package, for minidl's reader.

What: builds a few small tensors with PyTorch, each a simple formula that tests/layers/test_safetensors.cpp
recomputes, and saves them with safetensors.torch.save_file to tests/layers/fixtures/torch_written.safetensors.
The set covers every dtype minidl reads: F32, F64, I64, BOOL, and F16 / BF16 (widened to float32 on load),
plus a 0-d tensor, an empty one, and half-precision specials (infinities, the largest half, a subnormal,
negative zero, a rounded 1/3) so the widening is checked bit for bit.

How to run (Debian's python3-torch 1.13; the `safetensors` package is not in Debian, so install it for the
session outside the system's site-packages):
    pip install --target /tmp/pylib safetensors
    PYTHONPATH=/tmp/pylib /usr/bin/python3 tools/safetensors_fixture.py           # from the repository root
    PYTHONPATH=/tmp/pylib /usr/bin/python3 tools/safetensors_fixture.py OUT.safetensors

    PYTHONPATH=/tmp/pylib /usr/bin/python3 tools/safetensors_fixture.py --check FILE.safetensors
loads a file written by minidl (save_safetensors) with safetensors.torch.load_file and prints every tensor,
the development-time check that PyTorch reads our files.

A rerun writes the same tensors, but the reference writer keeps __metadata__ in a hash map, so the order of
the two metadata keys (and with it the file's bytes) can differ from run to run; the test does not depend on it.

This is a tool for refreshing the fixture by hand. It is never a build or test dependency: the file it
writes is committed, and the C++ test only reads that.
"""
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def tensors():
    f16_special = torch.tensor(
        [float("inf"), float("-inf"), 65504.0, 2.0**-24, -0.0, 1.0 / 3.0], dtype=torch.float16)
    return {
        # i * 0.5 - 1 for i = 0..5, shape [2, 3]
        "f32": (torch.arange(6, dtype=torch.float32) * 0.5 - 1).reshape(2, 3),
        # i / 3 for i = 0..3 (not exact in binary: checks all 8 bytes arrive)
        "f64": torch.arange(4, dtype=torch.float64) / 3,
        # 2^40 + i - 3 for i = 0..5, shape [3, 2] (needs all 64 bits)
        "i64": (torch.arange(6, dtype=torch.int64) - 3 + 2**40).reshape(3, 2),
        # i % 2 == 0 for i = 0..4
        "mask": torch.arange(5) % 2 == 0,
        # i * 0.25 - 1 for i = 0..7, shape [2, 4] (exact in half)
        "half": (torch.arange(8, dtype=torch.float32) * 0.25 - 1).reshape(2, 4).to(torch.float16),
        "half_special": f16_special,
        # i * 0.5 - 2 for i = 0..5, shape [3, 2], then 1/3 rounded to bfloat16
        "bf16": (torch.arange(6, dtype=torch.float32) * 0.5 - 2).reshape(3, 2).to(torch.bfloat16),
        "bf16_third": torch.tensor([1.0 / 3.0], dtype=torch.bfloat16),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
    }


def check(path):
    loaded = load_file(path)
    with safe_open(path, framework="pt") as f:
        print("metadata:", f.metadata())
    for name, t in loaded.items():
        print(f"{name}: {t.dtype} {list(t.shape)}\n{t}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "layers", "fixtures",
                                                               "torch_written.safetensors")
    save_file(tensors(), out, metadata={"producer": "pytorch", "note": "minidl reader fixture"})
    # Read back with the reference reader, so a broken fixture never gets committed.
    back = load_file(out)
    for name, t in tensors().items():
        assert torch.equal(back[name], t), name
    print(f"wrote {out} ({os.path.getsize(out)} bytes, {len(back)} tensors)")


if __name__ == "__main__":
    main()
