// cuda/kernels.h for a build without CUDA. No tensor can live on a CUDA device in such a build
// (allocating one is already an error), so these are never reached; they exist so the op front ends
// link, and say clearly what happened if one ever is.
#include "autograd/error.h"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {
[[noreturn]] void not_built(const char* op) {
  fail(op, ": minidl was built without CUDA; install the CUDA toolkit and configure with -DMINIDL_CUDA=ON");
}
}  // namespace

void unary(UnaryOp, const UnaryParams&, const Tensor&, const Tensor&) { not_built("unary"); }
void unary_backward(UnaryOp, const UnaryParams&, const Tensor&, const Tensor&, const Tensor&) { not_built("unary"); }
void binary(BinaryOp, const Tensor&, const Tensor&, const Tensor&) { not_built("binary"); }
void compare(CompareOp, const Tensor&, const Tensor&, const Tensor&) { not_built("compare"); }
void ternary(TernaryOp, const Tensor&, const Tensor&, const Tensor&, const Tensor&) { not_built("ternary"); }
void where(const Tensor&, const Tensor&, const Tensor&, const Tensor&) { not_built("where"); }
void copy(const Tensor&, const Tensor&) { not_built("copy"); }
void fill(const Tensor&, double) { not_built("fill"); }
void axpy(double, const Tensor&, const Tensor&) { not_built("add_"); }

void reduce(ReduceOp, const Tensor&, const std::vector<int64_t>&, const Tensor&) { not_built("reduce"); }
void var(const Tensor&, const std::vector<int64_t>&, int64_t, const Tensor&) { not_built("var"); }
void argmax(const Tensor&, int64_t, const Tensor&) { not_built("argmax"); }

void set_gemm_path(GemmPath) {}
GemmPath gemm_path() { return GemmPath::Simt; }
void matmul(const Tensor&, const Tensor&, const Tensor&) { not_built("matmul"); }
bool matmul_group(const std::vector<GemmProblem>&) { not_built("matmul_group"); }
void sgemm(GemmPath, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int) {
  not_built("sgemm");
}

void index_select(const Tensor&, int64_t, const Tensor&, const Tensor&) { not_built("index_select"); }
void index_add(const Tensor&, int64_t, const Tensor&, const Tensor&) { not_built("index_add"); }
void gather(const Tensor&, int64_t, const Tensor&, const Tensor&) { not_built("gather"); }
void scatter_add(const Tensor&, int64_t, const Tensor&, const Tensor&) { not_built("scatter_add"); }

void softmax(const Tensor&, int64_t, bool, const Tensor&) { not_built("softmax"); }
void softmax_backward(const Tensor&, const Tensor&, int64_t, bool, const Tensor&) { not_built("softmax"); }

void ccc_forward(const Tensor&, const Tensor&, const Tensor&, double, const Tensor&, const Tensor&) {
  not_built("ccc");
}
void ccc_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                  const Tensor&, const Tensor&) {
  not_built("ccc");
}

void uniform(const Tensor&, uint64_t, uint64_t, double, double) { not_built("rand"); }
void normal(const Tensor&, uint64_t, uint64_t, double, double) { not_built("randn"); }
void bernoulli(const Tensor&, uint64_t, uint64_t, double) { not_built("bernoulli"); }
void arange(const Tensor&, double, double) { not_built("arange"); }
void dropout(const Tensor&, uint64_t, uint64_t, double, const Tensor&, const Tensor&) { not_built("dropout"); }
void fill_contiguous(const Tensor&, double) { not_built("fill"); }

void conv_forward(const Tensor&, const Tensor&, const Tensor&, const ConvShape&, const Tensor&) { not_built("conv"); }
void conv_backward(const Tensor&, const Tensor&, const Tensor&, const ConvShape&, const Tensor&, const Tensor&,
                   const Tensor&) {
  not_built("conv");
}
void set_conv_path(GemmPath) {}
GemmPath conv_path() { return GemmPath::Simt; }
void set_conv_tile(ConvTile) {}
ConvTile conv_tile() { return ConvTile::Auto; }
ConvTableStats conv_table_stats() { return {}; }

void max_pool_forward(const Tensor&, const PoolShape&, const Tensor&, const Tensor&) { not_built("max_pool"); }
void max_pool_backward(const Tensor&, const Tensor&, const PoolShape&, const Tensor&) { not_built("max_pool"); }
void avg_pool_forward(const Tensor&, const PoolShape&, int64_t, const Tensor&) { not_built("avg_pool"); }
void avg_pool_backward(const Tensor&, const PoolShape&, int64_t, const Tensor&) { not_built("avg_pool"); }

void batch_norm_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool, double, double,
                        const Tensor&, const Tensor&, const Tensor&) {
  not_built("batch_norm");
}
void batch_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool, const Tensor&,
                         const Tensor&, const Tensor&) {
  not_built("batch_norm");
}
void layer_norm_forward(const Tensor&, const Tensor&, const Tensor&, double, const Tensor&, const Tensor&,
                        const Tensor&) {
  not_built("layer_norm");
}
void layer_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&, const Tensor&) {
  not_built("layer_norm");
}

void lstm_forward(const Tensor&, const std::vector<LstmForwardDirection>&) { not_built("lstm"); }
void lstm_backward(const Tensor&, const std::vector<LstmBackwardDirection>&) { not_built("lstm"); }
void jca_forward(const Tensor&, const Tensor&, const JcaWeights&, const JcaWeights&, const Tensor&, const Tensor&) {
  not_built("joint_cross_attention");
}
void jca_backward(const Tensor&, const Tensor&, const JcaWeights&, const JcaWeights&, const Tensor&, const Tensor&,
                  const Tensor&, const Tensor&, const JcaWeights&, const JcaWeights&) {
  not_built("joint_cross_attention");
}

void sgd_update(const std::vector<SgdSlot>&) { not_built("SGD.step"); }
void adam_update(const std::vector<AdamSlot>&) { not_built("Adam.step"); }
void scale(const std::vector<Tensor>&, double) { not_built("scale"); }
void global_norm(const std::vector<Tensor>&, const Tensor&) { not_built("global_norm"); }

}  // namespace minidl::cuda
