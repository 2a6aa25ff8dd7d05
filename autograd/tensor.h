// Tensor: a strided view (shape, strides, offset, dtype) over shared Storage, plus its autograd state.
//
// A Tensor is a cheap handle (one shared_ptr): copying it aliases the same data, like torch.Tensor in
// Python. Views (reshape, permute, narrow, expand, ...) share the storage and differ only in shape,
// strides and offset. Every op that produces a tensor from tensors that require grad records a Node
// (autograd/node.h) in the output's grad_fn; backward() walks those nodes.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "autograd/device.h"
#include "autograd/dtype.h"
#include "autograd/shape.h"
#include "autograd/storage.h"

namespace minidl {

class Node;

// Everything a tensor handle points to. Internals and kernels read it; users go through Tensor.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;  // in elements; 0 where a dimension is broadcast (expand)
  int64_t offset = 0;
  DType dtype = DType::Float32;

  // Autograd state. A tensor that requires grad is either a leaf (grad_fn empty; backward accumulates
  // into `grad`) or the output of a recorded op (grad_fn set).
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;
  int32_t output_nr = 0;  // which output of grad_fn this tensor is (ops with several outputs)
  std::shared_ptr<TensorImpl> grad;
  std::weak_ptr<Node> grad_accumulator;  // leaves: the node that writes `grad`, made on first use
};

struct TensorOptions {
  DType dtype = DType::Float32;
  Device device = Device::cpu();
  bool requires_grad = false;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false, every other call is an error
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // A fresh contiguous tensor with uninitialised contents (kernels fill it).
  static Tensor empty(const Shape& shape, DType dtype = kFloat32, Device device = Device::cpu());

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

  // ---- metadata ---------------------------------------------------------------------------------
  const Shape& shape() const;
  int64_t dim() const;
  int64_t size(int64_t d) const;  // d may be negative
  int64_t numel() const;
  const Strides& strides() const;
  int64_t stride(int64_t d) const;
  int64_t offset() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  // True when two distinct indices can reach the same element (a stride 0 on a dimension of size > 1).
  bool has_overlap() const;

  // ---- element access (CPU) -------------------------------------------------------------------
  // Pointer to the element at index [0, ..., 0]. The tensor must be on the CPU and of dtype T.
  template <class T>
  T* data() const;
  void* raw_data() const;  // same, untyped; also works for CUDA tensors (a device pointer)
  // The value of a one-element tensor on any device, converted to double.
  double item() const;
  // All values in row-major order, converted to T (copies to the CPU if needed).
  template <class T>
  std::vector<T> values() const;

  // ---- autograd -------------------------------------------------------------------------------
  bool requires_grad() const;
  // Marks a leaf as requiring grad (float dtypes only). Returns *this so it chains after a factory.
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const;  // undefined until a backward reaches this leaf
  void set_grad(const Tensor& g) const;
  void zero_grad() const;  // drops the accumulated gradient (grad() becomes undefined)
  const std::shared_ptr<Node>& grad_fn() const;
  bool is_leaf() const;
  // Backpropagates from this tensor. With no `grad`, the tensor must hold one element (a loss) and the
  // seed is 1. The graph's saved tensors are freed unless retain_graph is true.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // same data, no history, requires_grad false

  // ---- conversion and copies --------------------------------------------------------------------
  Tensor to(Device device) const;  // differentiable; returns *this when already there
  Tensor to(DType dtype) const;    // differentiable between float dtypes; returns *this when equal
  Tensor contiguous() const;       // *this when already contiguous, else a differentiable copy
  Tensor clone() const;            // always a differentiable copy

  // ---- views (no data copied; all differentiable) --------------------------------------------
  Tensor view(const Shape& shape) const;     // needs strides compatible with the new shape; -1 infers
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // transpose of a 2-D tensor
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;  // Python a[start:end:step]
  Tensor select(int64_t dim, int64_t index) const;  // narrow to one element and drop the dim
  Tensor expand(const Shape& shape) const;          // broadcast size-1 dims (stride 0); -1 keeps a size
  Tensor squeeze() const;                           // drops every size-1 dim
  Tensor squeeze(int64_t dim) const;                // drops dim if its size is 1
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  // ---- in-place writes (not recorded by autograd) ---------------------------------------------
  // For optimisers and initialisers. They refuse a tensor that requires grad while grad mode is on,
  // and bump the storage version so a backward that saved this data notices the change.
  Tensor& fill_(double value);
  Tensor& zero_();
  Tensor& copy_(const Tensor& src);  // src broadcast to this shape; dtype converted
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(double factor);

  // ---- printing ------------------------------------------------------------------------------
  std::string str() const;       // values (elided when large), shape, dtype, device, grad state
  std::string meta_str() const;  // "float32[2,3] on cpu" for error messages

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Throws a minidl::Error naming `op` when `t` is undefined.
void check_defined(const char* op, const Tensor& t, const char* what = "input");

// A view of `base`'s storage with the given geometry, for op implementations: no autograd is recorded.
// The geometry must stay inside the storage (checked; a violation is a minidl::Error).
Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset);

}  // namespace minidl
