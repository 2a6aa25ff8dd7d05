#!/usr/bin/python3
"""Reference values for minidl's log-mel front end (data/logmel.cpp), computed with torchaudio.

What: for a few deterministic test signals and configurations this runs torchaudio's
    MelSpectrogram(power=2, center=True, pad_mode="reflect", norm, mel_scale)
    -> AmplitudeToDB(stype="power", top_db) -> (x + db_offset) / db_scale
and writes the inputs' description, the configuration, the mel filter bank, a slice of the power
spectrogram and the final normalised log-mel image to tests/data/fixtures/logmel_reference.json, which
tests/data/test_logmel.cpp compares data::LogMel against.

How to run (Debian's python3-torch 1.13 and python3-torchaudio 0.13; numpy is not needed):
    /usr/bin/python3 tools/logmel_reference.py            # from the repository root
    /usr/bin/python3 tools/logmel_reference.py OUT.json   # somewhere else

This is a tool for refreshing the fixture by hand. It is never a build or test dependency: the JSON it
writes is committed, and the C++ tests only read that.

Precision. The spectrogram and log-mel references run torchaudio in float64 (module.double() and a float64
Hann window through wkwargs), so they carry the definitions and not float32 rounding; the filter bank is
what torchaudio builds (it always computes it in float32 and casts). For one case the log-mel image of the
default float32 pipeline, the one the paper's code ran, is stored too ("logmel_f32"), to show how far the
float32 arithmetic alone moves the result.

The signals are not stored sample by sample: each is a linear chirp plus uniform noise from a 32-bit LCG,
with a stretch of exact zeros longer than n_fft in the middle (so the top_db floor is active while both
reflect-padded edges carry signal), built from the parameters in "signal" by make_signal() below. The test
rebuilds them with the same formula (same double operations, then float32), and checks the stored sum and
first samples before using them.
"""

import json
import math
import os
import sys

import torch
import torchaudio

# Default output: the fixture folder next to the C++ test that reads it.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "fixtures", "logmel_reference.json")


def make_signal(n, sample_rate, f0, f1, amp, noise, seed, zeros_from, zeros_to):
    """Chirp f0 -> f1 Hz over n samples, plus noise * U[-1, 1), exactly zero on [zeros_from, zeros_to).

    Kept to plain double arithmetic in a fixed order (math.sin, not numpy) so that C++ reproduces it.
    """
    out = []
    state = seed & 0xFFFFFFFF
    duration = n / sample_rate
    rate = (f1 - f0) / duration
    for i in range(n):
        state = (1664525 * state + 1013904223) & 0xFFFFFFFF
        u = (state >> 8) / 16777216.0 * 2.0 - 1.0  # exact: 24 random bits
        t = i / sample_rate
        phase = 2.0 * math.pi * (f0 * t + 0.5 * rate * t * t)
        v = amp * math.sin(phase) + noise * u
        out.append(0.0 if zeros_from <= i < zeros_to else v)
    # Round to float32, as the C++ side holds audio.
    return torch.tensor(out, dtype=torch.float32)


# Four configurations: LogMelConfig's 16 kHz default; the paper's 44.1 kHz setting (LogMelConfig::paper());
# Slaney scale and norm with f_min/f_max and an odd n_fft with a shorter window (Bluestein, asymmetric
# window padding, odd reflect padding; n = 2816 is a multiple of the hop, where torch.stft's frame count
# 1 + (n - 1) // hop for odd n_fft differs from 1 + n // hop); n_fft 400 = win 400 (Bluestein, no window
# padding).
CASES = [
    {
        "name": "default_16k",
        "config": dict(sample_rate=16000, n_fft=1024, win_length=320, hop_length=160, n_mels=64, f_min=0.0,
                       f_max=0.0, mel_scale="htk", norm=None),
        "signal": dict(n=3200, f0=100.0, f1=7000.0, amp=0.5, noise=0.01, seed=1, zeros_from=1400, zeros_to=2700),
        "f32": False,
    },
    {
        "name": "paper_44k",
        "config": dict(sample_rate=44100, n_fft=1024, win_length=882, hop_length=441, n_mels=64, f_min=0.0,
                       f_max=0.0, mel_scale="htk", norm=None),
        "signal": dict(n=5292, f0=200.0, f1=15000.0, amp=0.3, noise=0.02, seed=2, zeros_from=2000, zeros_to=3400),
        "f32": True,
    },
    {
        "name": "slaney_odd_nfft",
        "config": dict(sample_rate=22050, n_fft=511, win_length=400, hop_length=128, n_mels=40, f_min=50.0,
                       f_max=8000.0, mel_scale="slaney", norm="slaney"),
        "signal": dict(n=2816, f0=60.0, f1=9000.0, amp=0.7, noise=0.005, seed=3, zeros_from=1200, zeros_to=2000),
        "f32": False,
    },
    {
        "name": "nfft400_bluestein",
        "config": dict(sample_rate=16000, n_fft=400, win_length=400, hop_length=160, n_mels=80, f_min=0.0,
                       f_max=0.0, mel_scale="htk", norm=None),
        "signal": dict(n=3000, f0=300.0, f1=5000.0, amp=0.4, noise=0.03, seed=4, zeros_from=1000, zeros_to=1800),
        "f32": False,
    },
]
TOP_DB, DB_OFFSET, DB_SCALE = 80.0, 14.8, 19.895


def mel_transform(cfg, dtype):
    f_max = cfg["f_max"] if cfg["f_max"] > 0 else None  # None: torchaudio's sample_rate // 2
    wkwargs = {"dtype": torch.float64} if dtype == torch.float64 else None
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg["sample_rate"], n_fft=cfg["n_fft"], win_length=cfg["win_length"],
        hop_length=cfg["hop_length"], f_min=cfg["f_min"], f_max=f_max, n_mels=cfg["n_mels"], power=2.0,
        center=True, pad_mode="reflect", norm=cfg["norm"], mel_scale=cfg["mel_scale"], wkwargs=wkwargs)
    return mel.to(dtype)


def logmel(mel, x):
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=TOP_DB)
    return (to_db(mel(x)) + DB_OFFSET) / DB_SCALE


def g9(values):
    """float32-level values: 9 significant digits round-trip a float32 exactly."""
    return [float("%.9g" % v) for v in values]


def build_case(case):
    cfg, sig = case["config"], case["signal"]
    x32 = make_signal(sample_rate=cfg["sample_rate"], **sig)
    x64 = x32.to(torch.float64)

    mel64 = mel_transform(cfg, torch.float64)
    power = mel64.spectrogram(x64)  # [n_freqs, frames]
    out = logmel(mel64, x64)  # [n_mels, frames]
    fb = mel64.mel_scale.fb  # [n_freqs, n_mels], computed by torchaudio in float32
    n_freqs, frames = power.shape

    # The filter bank as one nonzero run per mel band (each bin feeds at most two bands, so this is ~2 n_freqs
    # numbers instead of n_freqs * n_mels).
    bands = []
    for m in range(cfg["n_mels"]):
        nz = torch.nonzero(fb[:, m]).flatten().tolist()
        start = nz[0] if nz else 0
        stop = nz[-1] + 1 if nz else 0
        bands.append({"start": start, "values": g9(fb[start:stop, m].tolist())})

    # Power spectrogram: every bin of four frames: the first and last (reflect-padded edges), one inside the
    # signal and the middle one, which lies in the silent stretch (exact zeros).
    slice_frames = sorted({0, frames // 4, frames // 2, frames - 1})
    entry = {
        "name": case["name"],
        "config": dict(cfg, top_db=TOP_DB, db_offset=DB_OFFSET, db_scale=DB_SCALE),
        "signal": sig,
        "input_check": {"sum": float(x64.sum()), "first": g9(x32[:8].tolist())},
        "n_freqs": n_freqs,
        "frames": frames,
        "filterbank": bands,
        "power": {"frames": slice_frames, "values": [g9(power[:, t].tolist()) for t in slice_frames]},
        # Normalised dB values are O(1); 7 decimals are far below the tests' 1e-4 tolerance.
        "logmel": [round(v, 7) for v in out.flatten().tolist()],  # [n_mels, frames] row-major
    }
    if case["f32"]:
        out32 = logmel(mel_transform(cfg, torch.float32), x32)
        entry["logmel_f32"] = [round(v, 7) for v in out32.flatten().tolist()]
        print("%s: max |float32 pipeline - float64 pipeline| = %.3g" % (case["name"], float((out32 - out).abs().max())))
    return entry


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    doc = {
        "about": "Reference log-mel values from torchaudio %s / torch %s, written by tools/logmel_reference.py; "
                 "see that script for the layout and the signal formula." % (torchaudio.__version__, torch.__version__),
        "cases": [build_case(c) for c in CASES],
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print("wrote %s (%d bytes)" % (out_path, os.path.getsize(out_path)))


if __name__ == "__main__":
    main()
