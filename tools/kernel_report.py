#!/usr/bin/env python3
"""What the compiler made of each CUDA kernel, without a GPU: registers, spills, shared memory and,
where cuobjdump is at hand, the instruction mix of the kernel's main loop.

    tools/kernel_report.py [cuda/gemm.cu ...] [--arch sm_90] [--cuobjdump PATH] [--fail-on-spills]

Each file (default: every cuda/*.cu) is compiled as the build compiles it (-O3, --fmad=false) for one
architecture, with `ptxas -v`. The columns:

  regs      registers per thread. An SM has 64K; a warp takes regs x 32 rounded up to 256, so
            `warps/SM` is how many warps the registers alone let an SM hold (at most 64 on sm_90),
            before rounding down to whole blocks, whose size the launch sets.
  spill     bytes stored / loaded to local memory because registers ran out (0 / 0 is the goal;
            `stack` alone is a local array, not a spill).
  smem      static shared memory per block (dynamic shared memory is set at launch and not shown).
  loop      with cuobjdump: the backward branch whose body holds the most FFMA or HMMA instructions
            (the K loop of a GEMM or convolution), as `math / all` instructions in that body. An SM
            sub-partition issues one instruction per cycle, so a low share means the loop is bound by
            the bookkeeping around the arithmetic, not by the arithmetic.

cuobjdump is not in every toolkit install; PyPI's nvidia-cuda-cuobjdump package has one
(pip download --no-deps nvidia-cuda-cuobjdump; the binary is in the wheel's nvidia/cu*/bin/).
"""
import argparse
import concurrent.futures
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MATH_OPS = ("FFMA", "HMMA", "DFMA")


def compile_file(path, arch, nvcc, outdir):
    obj = os.path.join(outdir, os.path.basename(path) + ".o")
    cmd = [nvcc, "-O3", "-DNDEBUG", f"--generate-code=arch=compute_{arch[3:]},code={arch}", "--fmad=false",
           "-std=c++20", f"-I{ROOT}", "-Xptxas", "-v", "-c", path, "-o", obj]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"kernel_report: nvcc failed on {path}:\n{run.stderr}")
    return path, obj, run.stderr


def parse_ptxas(text):
    """[(mangled name, regs, stack, spill stores, spill loads, static smem)] from ptxas -v output."""
    kernels, name, frame = [], None, (0, 0, 0)
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            name = m.group(1)
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and name:
            frame = tuple(map(int, m.groups()))
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and name:
            smem = re.search(r"(\d+) bytes smem", line)
            kernels.append((name, int(m.group(1)), *frame, int(smem.group(1)) if smem else 0))
            name, frame = None, (0, 0, 0)
    return kernels


def main_loops(cuobjdump, obj):
    """{mangled name: (math instructions, all instructions, most common opcodes)} for each kernel's
    backward branch with the most math in its body."""
    sass = subprocess.run([cuobjdump, "-sass", obj], capture_output=True, text=True, check=True).stdout
    code, current = {}, None
    for line in sass.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            current = m.group(1)
            code[current] = []
            continue
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)
        if m and current:
            code[current].append((int(m.group(1), 16), m.group(2)))
    loops = {}
    for name, instructions in code.items():
        best = None
        for address, text in instructions:
            m = re.search(r"\bBRA\s+(?:`?\(?[^)]*\)?\s*)?0x([0-9a-f]+)", text)
            if not m or int(m.group(1), 16) >= address:
                continue
            start = int(m.group(1), 16)
            ops = [re.sub(r"^@!?U?P\w+\s+", "", t).split()[0].split(".")[0] for a, t in instructions
                   if start <= a <= address]
            math = sum(op in MATH_OPS for op in ops)
            if math and (best is None or math > best[0]):
                best = (math, len(ops), Counter(ops).most_common(4))
        if best:
            loops[name] = best
    return loops


def demangle(names):
    if not names or not shutil.which("c++filt"):
        return names
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.split("\n")
    short = []
    for n in out[:len(names)]:
        n = re.sub(r"minidl::cuda::(\(anonymous namespace\)::)?", "", n)
        n = re.sub(r"minidl::", "", n)
        short.append(re.sub(r"\((?:[^()]|\([^()]*\))*\)$", "", n))  # drop the parameter list
    return short


def warps_per_sm(regs):
    per_warp = -(-regs * 32 // 256) * 256
    return min(64, 65536 // per_warp)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="CUDA sources (default: cuda/*.cu)")
    parser.add_argument("--arch", default="sm_90")
    parser.add_argument("--nvcc", default=shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")
    parser.add_argument("--cuobjdump", default=shutil.which("cuobjdump"))
    parser.add_argument("--fail-on-spills", action="store_true", help="exit 1 if any kernel spills")
    args = parser.parse_args()
    files = args.files or sorted(glob.glob(os.path.join(ROOT, "cuda", "*.cu")))
    if not os.path.exists(args.nvcc):
        sys.exit(f"kernel_report: no nvcc at {args.nvcc} (--nvcc PATH)")
    if not args.cuobjdump:
        print("kernel_report: no cuobjdump on PATH, so no main-loop column (see --help)", file=sys.stderr)

    spilled = 0
    with tempfile.TemporaryDirectory() as outdir, concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        results = pool.map(lambda f: compile_file(f, args.arch, args.nvcc, outdir), files)
        print(f"{'file':12} {'regs':>4} {'warps/SM':>8} {'spill':>9} {'stack':>5} {'smem':>6} {'loop':>12}  kernel")
        for path, obj, log in results:
            kernels = parse_ptxas(log)
            loops = main_loops(args.cuobjdump, obj) if args.cuobjdump else {}
            for (mangled, regs, stack, stores, loads, smem), name in zip(kernels, demangle([k[0] for k in kernels])):
                spilled += stores + loads > 0
                loop = loops.get(mangled)
                loop_text = f"{loop[0]}/{loop[1]}" if loop else "-"
                print(f"{os.path.basename(path)[:-3]:12} {regs:4} {warps_per_sm(regs):8} {stores:4}/{loads:<4} "
                      f"{stack:5} {smem:6} {loop_text:>12}  {name[:100]}")
    if spilled:
        print(f"kernel_report: {spilled} kernel(s) spill registers", file=sys.stderr)
        if args.fail_on_spills:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
