// Front end of joint_cross_attention, the JCA block as one op (MODEL.md §1), and of its reference, the same
// math composed of generic ops. Kernels: cpu/attention.cpp (declared in cpu/attention.h) and
// cuda/attention.cu.
//
// What the fused op saves for backward: X_a and X_v (contiguous) and the eight weights, and on the CPU also
// C [B, 2, d, 2d] and H [B, 2, d, k] as the forward computed them. The two devices choose differently:
//   CPU  the step is bound by its multiply-adds, and recomputing C and H would repeat 40% of the
//        backward's (every product of the forward but W_h's); keeping them costs what the composition
//        keeps of them anyway (it keeps C for tanh's backward and H for the ReLU's).
//   CUDA the forward keeps a block's C and H in shared memory and never writes them out; the backward
//        recomputes them, trading products, which the GPU has to spare, for memory traffic.
// Either way the graph is one node, where the composition records about 25 and keeps their outputs
// (docs/perf.md has the memory of a W1 step both ways).
#include <cmath>

#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/attention.h"
#include "cuda/kernels.h"

namespace minidl {
namespace {

constexpr const char* kOp = "joint_cross_attention";

// The CUDA kernels' limits (cuda/attention.cu sizes its shared memory by them).
constexpr int64_t kMaxClips = 64, kMaxWidth = 1024, kMaxAttention = 256;

struct JcaShape {
  int64_t B, L, d, k;
};

void check_weight(const Tensor& x, const Tensor& w, const char* branch, const char* name, const Shape& want) {
  MINIDL_CHECK(w.defined(), kOp, ": the ", branch, " branch's ", name, " is undefined");
  check_same(kOp, x, w);
  MINIDL_CHECK(w.shape() == want, kOp, ": the ", branch, " branch's ", name, " must be ", shape_str(want),
               " for inputs ", x.meta_str(), ", got ", w.meta_str());
}

// cuda_limits: the fused CUDA kernels' size limits apply (not to the composition).
JcaShape check_args(const Tensor& xa, const Tensor& xv, const JcaWeights& audio, const JcaWeights& visual,
                    bool cuda_limits) {
  check_float(kOp, xa, "audio features");
  check_same(kOp, xa, xv);
  MINIDL_CHECK(xa.dim() == 3 && xa.shape() == xv.shape(), kOp,
               ": the audio and visual features must both be [B, L, d], ", "got ", xa.meta_str(), " and ",
               xv.meta_str());
  const int64_t B = xa.size(0), L = xa.size(1), d = xa.size(2);
  MINIDL_CHECK(B > 0 && L > 0 && d > 0, kOp, ": the features ", xa.meta_str(), " hold nothing");
  MINIDL_CHECK(audio.w.defined() && audio.w.dim() == 2 && audio.w.size(0) > 0, kOp,
               ": the audio branch's w must be [k, L] with k >= 1, got ",
               audio.w.defined() ? audio.w.meta_str() : std::string("undefined"));
  const int64_t k = audio.w.size(0);
  for (const auto& [branch, w] : {std::pair<const char*, const JcaWeights*>{"audio", &audio}, {"visual", &visual}}) {
    check_weight(xa, w->affine, branch, "affine (W_j)", {L, L});
    check_weight(xa, w->w, branch, "w (W_a / W_v)", {k, L});
    check_weight(xa, w->w_c, branch, "w_c (W_ca / W_cv)", {k, 2 * d});
    check_weight(xa, w->w_h, branch, "w_h (W_ha / W_hv)", {L, k});
  }
  if (cuda_limits && xa.device().is_cuda())
    MINIDL_CHECK(L <= kMaxClips && d <= kMaxWidth && k <= kMaxAttention, kOp,
                 ": the CUDA kernels take L <= ", kMaxClips, ", d <= ", kMaxWidth, " and k <= ", kMaxAttention,
                 "; got L = ", L, ", d = ", d, ", k = ", k, " (inputs ", xa.meta_str(), ")");
  return {B, L, d, k};
}

Tensor plain(const Tensor& t) { return t.detach().contiguous(); }

JcaWeights plain(const JcaWeights& w) { return {plain(w.affine), plain(w.w), plain(w.w_c), plain(w.w_h)}; }

// Multiply-adds of one branch over the batch, by product: G = W_j J (L L 2d), the correlation X^T G
// (d L 2d), C W_c^T (d 2d k), and two of L d k: X^T W^T and W_h H^T. The backward makes G again, dW_j and
// dJ (L L 2d each), dG and dX's dP G^T (d L 2d each), dC and dW_c (d 2d k each), dH, dW_h, dW and dX's
// dZ W (L d k each); recomputing C and H (on CUDA) adds the forward's products but W_h's.
struct MultiplyAdds {
  double forward, backward;
};
MultiplyAdds branch_multiply_adds(const JcaShape& s, bool recompute) {
  const double B = static_cast<double>(s.B), L = static_cast<double>(s.L), d = static_cast<double>(s.d),
               k = static_cast<double>(s.k);
  const double joint = L * L * 2 * d, correlation = d * L * 2 * d, attention = d * 2 * d * k, time = d * L * k;
  const double backward = 3 * joint + 2 * correlation + 2 * attention + 4 * time;
  return {B * (joint + correlation + attention + 2 * time),
          B * (backward + (recompute ? correlation + attention + time : 0.0))};
}

double bytes_of(const JcaWeights& w) {
  return minidl::bytes_of(w.affine) + minidl::bytes_of(w.w) + minidl::bytes_of(w.w_c) + minidl::bytes_of(w.w_h);
}

bool wants(const Tensor& t) { return t.defined() && t.requires_grad(); }

}  // namespace

JcaResult joint_cross_attention(const Tensor& xa_in, const Tensor& xv_in, const JcaWeights& audio_in,
                                const JcaWeights& visual_in) {
  OpScope scope(kOp, xa_in, xv_in, audio_in.w_c, visual_in.w_c);
  const JcaShape s = check_args(xa_in, xv_in, audio_in, visual_in, true);
  const Tensor xa = plain(xa_in), xv = plain(xv_in);
  const JcaWeights audio = plain(audio_in), visual = plain(visual_in);
  JcaResult r{Tensor::empty(xa.shape(), xa.dtype(), xa.device()), Tensor::empty(xa.shape(), xa.dtype(), xa.device())};
  const std::vector<Tensor> inputs{xa_in,         xv_in,        audio_in.affine,  audio_in.w,
                                   audio_in.w_c,  audio_in.w_h, visual_in.affine, visual_in.w,
                                   visual_in.w_c, visual_in.w_h};
  bool any = false;
  for (const Tensor& t : inputs) any = any || wants(t);
  const bool backward = any && grad_enabled();
  Tensor kept_c, kept_h;  // the CPU forward's C and H, for its backward
  switch (xa.device().type) {
    case DeviceType::CPU:
      if (backward) {
        kept_c = Tensor::empty({s.B, 2, s.d, 2 * s.d}, xa.dtype(), xa.device());
        kept_h = Tensor::empty({s.B, 2, s.d, s.k}, xa.dtype(), xa.device());
      }
      cpu::jca_forward(xa, xv, audio, visual, r.audio, r.visual, kept_c, kept_h);
      break;
    case DeviceType::CUDA: cuda::jca_forward(xa, xv, audio, visual, r.audio, r.visual); break;
  }
  scope.work(2 * 2 * branch_multiply_adds(s, false).forward,  // two operations per multiply-add, two branches
             bytes_of(xa) + bytes_of(xv) + bytes_of(audio) + bytes_of(visual) + bytes_of(r.audio) + bytes_of(r.visual));

  if (backward) {
    std::vector<bool> want;
    for (const Tensor& t : inputs) want.push_back(wants(t));
    const SavedTensor sxa(xa), sxv(xv), sa0(audio.affine), sa1(audio.w), sa2(audio.w_c), sa3(audio.w_h),
        sv0(visual.affine), sv1(visual.w), sv2(visual.w_c), sv3(visual.w_h), sc(kept_c), sh(kept_h);
    record_multi({&r.audio, &r.visual}, kOp, inputs, [=](const std::vector<Tensor>& g) {
      const Tensor xa_s = sxa.get(kOp), xv_s = sxv.get(kOp);
      const JcaWeights a{sa0.get(kOp), sa1.get(kOp), sa2.get(kOp), sa3.get(kOp)};
      const JcaWeights v{sv0.get(kOp), sv1.get(kOp), sv2.get(kOp), sv3.get(kOp)};
      auto grad_if = [&](size_t i, const Tensor& like) {
        return want[i] ? Tensor::empty(like.shape(), like.dtype(), like.device()) : Tensor();
      };
      const Tensor gxa = grad_if(0, xa_s), gxv = grad_if(1, xv_s);
      const JcaWeights ga{grad_if(2, a.affine), grad_if(3, a.w), grad_if(4, a.w_c), grad_if(5, a.w_h)};
      const JcaWeights gv{grad_if(6, v.affine), grad_if(7, v.w), grad_if(8, v.w_c), grad_if(9, v.w_h)};
      const Tensor g0 = g[0].defined() ? g[0].contiguous() : Tensor(),
                   g1 = g[1].defined() ? g[1].contiguous() : Tensor();
      switch (xa_s.device().type) {
        case DeviceType::CPU:
          cpu::jca_backward(xa_s, xv_s, a, v, sc.get(kOp), sh.get(kOp), g0, g1, gxa, gxv, ga, gv);
          break;
        case DeviceType::CUDA: cuda::jca_backward(xa_s, xv_s, a, v, g0, g1, gxa, gxv, ga, gv); break;
      }
      count_work(2 * 2 * branch_multiply_adds(s, xa_s.device().is_cuda()).backward,
                 2 * bytes_of(xa_s) + 2 * bytes_of(xv_s) + bytes_of(g0) + bytes_of(g1) + bytes_of(a) + bytes_of(v) +
                     bytes_of(ga) + bytes_of(gv));
      return std::vector<Tensor>{gxa, gxv, ga.affine, ga.w, ga.w_c, ga.w_h, gv.affine, gv.w, gv.w_c, gv.w_h};
    });
  }
  return r;
}

JcaResult joint_cross_attention_reference(const Tensor& xa, const Tensor& xv, const JcaWeights& audio,
                                          const JcaWeights& visual) {
  const OpScope scope("joint_cross_attention_reference", xa, xv, audio.w_c, visual.w_c);
  check_args(xa, xv, audio, visual, false);
  const Tensor joint = cat({xa, xv}, 2);  // J [B, L, 2d]
  // Divided by sqrt(2d), as the authors' torch.div does (not multiplied by its inverse: another rounding).
  const double scale = std::sqrt(static_cast<double>(joint.size(2)));
  const Tensor joint_t = joint.transpose(1, 2);  // J^T [B, 2d, L]: time last, for the time-mixing products
  auto attend = [&](const Tensor& x, const JcaWeights& w) {
    const Tensor x_t = x.transpose(1, 2);                                                   // X^T [B, d, L]
    const Tensor c = tanh(matmul(x_t, linear(joint_t, w.affine).transpose(1, 2)) / scale);  // [B, d, 2d]
    const Tensor h = relu(linear(c, w.w_c) + linear(x_t, w.w));                             // [B, d, k]
    return linear(h, w.w_h).transpose(1, 2) + x;                                            // [B, L, d]
  };
  return {attend(xa, audio), attend(xv, visual)};
}

}  // namespace minidl
