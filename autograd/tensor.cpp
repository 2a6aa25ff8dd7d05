// Tensor basics: metadata, element access, autograd state, conversions and the in-place writes.
// Views are in ops_view.cpp, printing in print.cpp.
#include "autograd/tensor.h"

#include <algorithm>
#include <cstring>

#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"
#include "cuda/runtime.h"

namespace minidl {

void check_defined(const char* op, const Tensor& t, const char* what) {
  MINIDL_CHECK(t.defined(), op, ": ", what, " is an undefined tensor (default-constructed, never assigned)");
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape("empty", shape, static_cast<int64_t>(dtype_size(dtype)));
  const int64_t bytes = numel_of(shape) * static_cast<int64_t>(dtype_size(dtype));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(static_cast<size_t>(bytes), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset) {
  MINIDL_CHECK(shape.size() == strides.size(), "make_view: shape ", shape_str(shape), " and strides ",
               shape_str(strides), " differ in length");
  // The lowest and highest element the view can reach must lie inside the storage.
  int64_t lo = offset, hi = offset;
  bool empty = false;
  for (size_t d = 0; d < shape.size(); ++d) {
    empty |= shape[d] == 0;
    const int64_t reach = (shape[d] - 1) * strides[d];
    (reach < 0 ? lo : hi) += reach;
  }
  const int64_t capacity = static_cast<int64_t>(base.impl()->storage->nbytes() / dtype_size(base.dtype()));
  MINIDL_CHECK(empty || (lo >= 0 && hi < capacity), "make_view: a view of shape ", shape_str(shape), ", strides ",
               shape_str(strides), " at offset ", offset, " reaches outside its storage of ", capacity, " elements");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

// ---- metadata -----------------------------------------------------------------------------------
#define MINIDL_IMPL(op) (check_defined(op, *this, "tensor"), impl_.get())

const Shape& Tensor::shape() const { return MINIDL_IMPL("shape")->shape; }
int64_t Tensor::dim() const { return static_cast<int64_t>(MINIDL_IMPL("dim")->shape.size()); }
int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim("size", d, shape())]; }
int64_t Tensor::numel() const { return numel_of(shape()); }
const Strides& Tensor::strides() const { return MINIDL_IMPL("strides")->strides; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim("stride", d, shape())]; }
int64_t Tensor::offset() const { return MINIDL_IMPL("offset")->offset; }
DType Tensor::dtype() const { return MINIDL_IMPL("dtype")->dtype; }
Device Tensor::device() const { return MINIDL_IMPL("device")->storage->device(); }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // nothing to lay out
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (size(d) == 1) continue;
    if (stride(d) != expected) return false;
    expected *= size(d);
  }
  return true;
}

bool Tensor::has_overlap() const {
  for (int64_t d = 0; d < dim(); ++d)
    if (size(d) > 1 && stride(d) == 0) return true;
  return false;
}

std::string Tensor::meta_str() const { return defined() ? TensorMeta::of(*this).str() : "undefined"; }

// ---- element access -----------------------------------------------------------------------------
template <class T>
T* Tensor::data() const {
  check_defined("data", *this, "tensor");
  MINIDL_CHECK(device().is_cpu(), "data<", dtype_name(dtype_of<T>()), ">(): the tensor is ", meta_str(),
               "; copy it to the CPU with .to(Device::cpu()) first");
  MINIDL_CHECK(dtype() == dtype_of<T>(), "data<", dtype_name(dtype_of<T>()), ">(): the tensor is ", meta_str(),
               "; use data<> with its own dtype or convert it with .to(dtype)");
  return static_cast<T*>(impl_->storage->data()) + impl_->offset;
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int64_t* Tensor::data<int64_t>() const;
template bool* Tensor::data<bool>() const;

void* Tensor::raw_data() const {
  check_defined("raw_data", *this, "tensor");
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * static_cast<int64_t>(dtype_size(dtype()));
}

double Tensor::item() const {
  check_defined("item", *this, "tensor");
  MINIDL_CHECK(numel() == 1, "item: only a one-element tensor has a single value; this one is ", meta_str());
  return values<double>()[0];
}

template <class T>
std::vector<T> Tensor::values() const {
  check_defined("values", *this, "tensor");
  Tensor host = device().is_cpu() ? *this : detach().to(Device::cpu());
  Tensor typed = empty(host.shape(), dtype_of<T>());
  cpu::copy(host, typed);
  const T* p = typed.data<T>();
  return std::vector<T>(p, p + typed.numel());
}
template std::vector<float> Tensor::values<float>() const;
template std::vector<double> Tensor::values<double>() const;
template std::vector<int64_t> Tensor::values<int64_t>() const;
template std::vector<bool> Tensor::values<bool>() const;

// ---- autograd state -----------------------------------------------------------------------------
bool Tensor::requires_grad() const { return MINIDL_IMPL("requires_grad")->requires_grad; }

Tensor& Tensor::requires_grad_(bool on) {
  check_defined("requires_grad_", *this, "tensor");
  MINIDL_CHECK(!on || is_floating(dtype()),
               "requires_grad_: only float32 and float64 tensors can require grad; this one is ", meta_str());
  MINIDL_CHECK(is_leaf(), "requires_grad_: only a leaf tensor can change requires_grad; this one was produced by '",
               impl_->grad_fn->name(), "'. Use detach() to make a new leaf from it");
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return Tensor(MINIDL_IMPL("grad")->grad); }

void Tensor::set_grad(const Tensor& g) const {
  check_defined("set_grad", *this, "tensor");
  if (g.defined())
    MINIDL_CHECK(g.shape() == shape() && g.dtype() == dtype() && g.device() == device(), "set_grad: gradient ",
                 g.meta_str(), " does not match the tensor ", meta_str());
  impl_->grad = g.defined() ? g.detach().impl_ptr() : nullptr;  // no history: a grad must not hold a graph
}

void Tensor::zero_grad() const { MINIDL_IMPL("zero_grad")->grad.reset(); }
const std::shared_ptr<Node>& Tensor::grad_fn() const { return MINIDL_IMPL("grad_fn")->grad_fn; }
bool Tensor::is_leaf() const { return grad_fn() == nullptr; }

void Tensor::backward(const Tensor& grad, bool retain_graph) const { run_backward(*this, grad, retain_graph); }

Tensor Tensor::detach() const {
  check_defined("detach", *this, "tensor");
  return make_view(*this, shape(), strides(), offset());
}

// ---- conversions --------------------------------------------------------------------------------
namespace {

// Copies a tensor between devices: made contiguous on its own device first (a strided copy kernel on
// either side), then one block copy. Two GPUs exchange through the host.
Tensor copy_across(const Tensor& src, Device to) {
  if (src.device().is_cuda() && to.is_cuda()) return copy_across(copy_across(src, Device::cpu()), to);
  const Tensor c = src.is_contiguous() ? src : src.detach().clone();
  Tensor out = Tensor::empty(src.shape(), src.dtype(), to);
  const size_t bytes = static_cast<size_t>(c.numel()) * dtype_size(c.dtype());
  if (to.is_cuda())
    cuda::copy(out.raw_data(), c.raw_data(), bytes, cuda::CopyKind::HostToDevice, to.index);
  else
    cuda::copy(out.raw_data(), c.raw_data(), bytes, cuda::CopyKind::DeviceToHost, src.device().index);
  return out;
}

}  // namespace

Tensor Tensor::to(Device target) const {
  check_defined("to", *this, "tensor");
  if (target == device()) return *this;
  OpScope scope("to", *this);
  const std::string unavailable = device_unavailable(target);
  MINIDL_CHECK(unavailable.empty(), "to: cannot move ", meta_str(), " to ", target.str(), ": ", unavailable);
  Tensor out = copy_across(detach(), target);
  scope.work(0, bytes_of(out));
  if (needs_grad(*this)) {
    const Device from = device();
    record(out, "to", {*this}, [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
  }
  return out;
}

Tensor Tensor::to(DType target) const {
  check_defined("to", *this, "tensor");
  if (target == dtype()) return *this;
  OpScope scope("to", *this);
  Tensor out = empty(shape(), target, device());
  switch (device().type) {
    case DeviceType::CPU: cpu::copy(*this, out); break;
    case DeviceType::CUDA: cuda::copy(*this, out); break;
  }
  scope.work(0, bytes_of(*this) + bytes_of(out));
  if (is_floating(dtype()) && is_floating(target) && needs_grad(*this)) {
    const DType from = dtype();
    record(out, "to", {*this}, [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
  }
  return out;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  check_defined("clone", *this, "tensor");
  OpScope scope("clone", *this);
  Tensor out = empty(shape(), dtype(), device());
  switch (device().type) {
    case DeviceType::CPU: cpu::copy(*this, out); break;
    case DeviceType::CUDA: cuda::copy(*this, out); break;
  }
  scope.work(0, 2 * bytes_of(out));
  if (needs_grad(*this)) record(out, "clone", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  return out;
}

// ---- in-place writes ----------------------------------------------------------------------------
namespace {

// A source that shares the destination's storage with a different geometry (x.copy_(x.t()), a shifted
// slice) would be read after parts of it were overwritten; such a source is copied first. The identical
// geometry (x.add_(x)) is safe: every element is read before it is written.
Tensor unaliased_source(const Tensor& src, const Tensor& dst) {
  const bool shared = src.impl()->storage == dst.impl()->storage;
  const bool same_view = src.shape() == dst.shape() && src.strides() == dst.strides() && src.offset() == dst.offset();
  return shared && !same_view ? src.detach().clone() : src;
}

void check_inplace(const char* op, const Tensor& t, bool allow_overlap = false) {
  check_defined(op, t, "tensor");
  MINIDL_CHECK(!(t.requires_grad() && grad_enabled()), op, ": cannot write in place into ", t.meta_str(),
               ", which requires grad, while grad mode is on: autograd does not track in-place writes. Do the update "
               "inside a NoGradGuard scope (as optimisers do)");
  MINIDL_CHECK(allow_overlap || !t.has_overlap(), op, ": cannot write in place into an expanded tensor ", t.meta_str(),
               " (several indices share one element); clone() it first");
}

}  // namespace

Tensor& Tensor::fill_(double value) {
  OpScope scope("fill_", *this);
  check_inplace("fill_", *this, true);
  // An expanded tensor has elements under several indices; fill each stored element once (several
  // threads writing one element would be a data race, even with the same value).
  Shape s = shape();
  for (int64_t d = 0; d < dim(); ++d)
    if (stride(d) == 0) s[d] = 1;
  const Tensor target = s == shape() ? *this : make_view(*this, s, strides(), offset());
  switch (device().type) {
    case DeviceType::CPU: cpu::fill(target, value); break;
    case DeviceType::CUDA: cuda::fill(target, value); break;
  }
  scope.work(0, bytes_of(target));
  impl_->storage->bump_version();
  return *this;
}

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::copy_(const Tensor& src) {
  OpScope scope("copy_", *this, src);
  check_inplace("copy_", *this);
  check_defined("copy_", src, "source");
  MINIDL_CHECK(broadcast_shapes("copy_", src.shape(), shape()) == shape(), "copy_: source ", src.meta_str(),
               " does not broadcast to the destination ", meta_str());
  const Tensor s = src.device() == device() ? unaliased_source(src, *this) : src.detach().to(device());
  switch (device().type) {
    case DeviceType::CPU: cpu::copy(s, *this); break;
    case DeviceType::CUDA: cuda::copy(s, *this); break;
  }
  scope.work(0, bytes_of(s) + bytes_of(*this));
  impl_->storage->bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  OpScope scope("add_", *this, other);
  check_inplace("add_", *this);
  check_same("add_", *this, other);
  MINIDL_CHECK(broadcast_shapes("add_", other.shape(), shape()) == shape(), "add_: ", other.meta_str(),
               " does not broadcast to the destination ", meta_str());
  switch (device().type) {
    case DeviceType::CPU: cpu::axpy(alpha, unaliased_source(other, *this), *this); break;
    case DeviceType::CUDA: cuda::axpy(alpha, unaliased_source(other, *this), *this); break;
  }
  scope.work(2 * static_cast<double>(numel()), bytes_of(other) + 2 * bytes_of(*this));
  impl_->storage->bump_version();
  return *this;
}

Tensor& Tensor::mul_(double factor) {
  OpScope scope("mul_", *this);
  check_inplace("mul_", *this);
  check_float("mul_", *this);
  switch (device().type) {
    case DeviceType::CPU: cpu::binary(BinaryOp::Mul, *this, scalar_like(factor, *this), *this); break;
    case DeviceType::CUDA: cuda::binary(BinaryOp::Mul, *this, scalar_like(factor, *this), *this); break;
  }
  scope.work(static_cast<double>(numel()), 2 * bytes_of(*this));
  impl_->storage->bump_version();
  return *this;
}

// ---- devices ------------------------------------------------------------------------------------
Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5 && text.size() <= 14 &&
      std::all_of(text.begin() + 5, text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return Device::cuda(std::stoi(text.substr(5)));
  fail("parse_device: '", text, "' is not a device; expected cpu, cuda or cuda:N");
}

bool cuda_built() { return cuda::built(); }
bool cuda_emulated() { return cuda::emulated(); }
int cuda_device_count() { return cuda::device_count(); }

std::string device_unavailable(Device device) {
  if (device.is_cpu() || (device.index >= 0 && device.index < cuda_device_count())) return "";
  return cuda_built() ? "this machine has " + std::to_string(cuda_device_count()) + " CUDA device(s)"
                      : std::string("minidl was built without CUDA (configure with -DMINIDL_CUDA=ON)");
}

}  // namespace minidl
