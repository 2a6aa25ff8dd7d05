// The benchmarks of minidl's convolution and LSTM kernels against cuDNN (apps/bench_cudnn.cu), built when
// the CUDA backend and cuDNN are; DESIGN.md workload W3.
#pragma once

namespace minidl::bench {
// bench cudnn-conv [--net video|audio|both] [--search accurate|heuristic|fastest] [--clips N]
//                  [--mel-frames F] [--algos] [--json FILE]
// Every distinct convolution of W2's R(2+1)D-18 (64 clips of 3x8x112x112) and audio ResNet-18 (64 log-mel
// images of 1x64xF), forward, backward data and backward filter: our kernels, cuDNN float32, cuDNN TF32.
int cudnn_conv(int argc, char** argv);
// bench cudnn-lstm [--batch 64] [--seq 16] [--input 512] [--hidden 256] [--layers 2] [--json FILE]
// W3's BiLSTM forward and forward + backward: nn::LSTM on the GPU (SIMT and TF32 GEMMs) and cuDNN's RNN
// (float32 and TF32 math).
int cudnn_lstm(int argc, char** argv);
}  // namespace minidl::bench
