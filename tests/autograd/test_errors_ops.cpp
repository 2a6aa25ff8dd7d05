// Error messages of elementwise, matmul, reduction, view, joining / indexing and softmax / loss ops.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd/minidl.h"
#include "tests/autograd/expect_error.h"

using namespace minidl;
using namespace errors_test;

// ---- the helper itself --------------------------------------------------------------------------------

TEST(Errors, HelperRejectsNoThrowOtherExceptionsCrashesAndMissingFragments) {
  EXPECT_NONFATAL_FAILURE(expect_error([] {}, {}), "no exception at all");
  EXPECT_NONFATAL_FAILURE(expect_error([] { throw std::runtime_error("boom"); }, {}), "different exception type");
  EXPECT_NONFATAL_FAILURE(expect_error([] { throw minidl::Error("add: [2]"); }, {"add:", "[3]"}), "lacks \"[3]\"");
#ifdef MINIDL_ERRORS_CAN_FORK
  if (std::getenv("MINIDL_ERRORS_NO_FORK") == nullptr) {
    EXPECT_NONFATAL_FAILURE(expect_error([] { std::raise(SIGSEGV); }, {}), "CRASHED");
    EXPECT_NONFATAL_FAILURE(expect_error([] { std::abort(); }, {}), "CRASHED");
  }
#endif
  expect_error([] { throw minidl::Error("matmul: [2,3] @ [4,5]"); }, {"matmul:", "[2,3]", "[4,5]"});
}

// ---- elementwise ----------------------------------------------------------------------------------------

TEST(Errors, BroadcastInEveryBinaryOp) {
  const Tensor a = f32({2, 3}), b = f32({4});
  for (const auto& [name, fn] : arithmetic_ops()) {
    SCOPED_TRACE(name);
    expect_error([&] { fn(a, b); }, {op(name), "[2,3]", "[4]", "cannot be broadcast", "3 vs 4"});
  }
  for (const auto& [name, fn] : comparison_ops()) {
    SCOPED_TRACE(name);
    expect_error([&] { fn(a, b); }, {op(name), "[2,3]", "[4]", "cannot be broadcast"});
  }
  // Leading dims too, not only the last one.
  EXPECT_ERROR(add(f32({2, 3, 3}), f32({4, 3})), "add:", "[2,3,3]", "[4,3]", "dimension -2", "3 vs 4");
}

TEST(Errors, BroadcastInWhereAndMaskedFill) {
  // values against each other
  EXPECT_ERROR(where(b8({2, 3}), f32({2, 3}), f32({4})), "where:", "[2,3]", "[4]", "cannot be broadcast");
  // the condition against the values
  EXPECT_ERROR(where(b8({5}), f32({2, 3}), f32({2, 3})), "where:", "[5]", "[2,3]", "cannot be broadcast");
  EXPECT_ERROR(masked_fill(f32({2, 3}), b8({4}), 0.0), "masked_fill:", "[4]", "[2,3]", "cannot be broadcast");
  EXPECT_ERROR(masked_fill(f32({2, 3}), b8({3, 3}), 1.0), "masked_fill:", "[3,3]", "[2,3]");
}

TEST(Errors, DtypeMismatch) {
  const Tensor a = f32({2, 3}), b = f64({2, 3});
  for (const auto& [name, fn] : arithmetic_ops()) {
    SCOPED_TRACE(name);
    expect_error([&] { fn(a, b); }, {op(name), "dtype mismatch", "float32[2,3]", "float64[2,3]"});
  }
  for (const auto& [name, fn] : comparison_ops()) {
    SCOPED_TRACE(name);
    expect_error([&] { fn(a, b); }, {op(name), "dtype mismatch", "float32[2,3]", "float64[2,3]"});
  }
  EXPECT_ERROR(gt(f32({2}), i64({2})), "gt:", "float32[2]", "int64[2]");
  EXPECT_ERROR(where(b8({2, 3}), a, b), "where:", "float32[2,3]", "float64[2,3]");
  EXPECT_ERROR(matmul(f32({2, 3}), f64({3, 4})), "matmul:", "float32[2,3]", "float64[3,4]");
  EXPECT_ERROR(linear(f32({2, 3}), f64({4, 3})), "linear:", "float32[2,3]", "float64[4,3]");
  EXPECT_ERROR(linear(f32({2, 3}), f32({4, 3}), f64({4})), "linear:", "float32[2,3]", "float64[4]");
  EXPECT_ERROR(cat({f32({2, 3}), f64({2, 3})}), "cat:", "float32[2,3]", "float64[2,3]");
  EXPECT_ERROR(ccc(f32({4, 2}), f64({4, 2})), "ccc:", "float32[4,2]", "float64[4,2]");
  EXPECT_ERROR(f32({3}).add_(f64({3})), "add_:", "float32[3]", "float64[3]");
}

TEST(Errors, NonFloatInputsToFloatOps) {
  const Tensor n = index_of({1, 2, 3});  // int64[3]
  const Tensor m = b8({3});
  using Unary = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<const char*, Unary>> unary = {
      {"neg", [](const Tensor& x) { return neg(x); }},
      {"neg", [](const Tensor& x) { return -x; }},
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"log", [](const Tensor& x) { return log(x); }},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }},
      {"abs", [](const Tensor& x) { return abs(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"relu", [](const Tensor& x) { return relu(x); }},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x); }},
      {"clamp", [](const Tensor& x) { return clamp(x, 0, 1); }},
      {"sum", [](const Tensor& x) { return sum(x); }},
      {"mean", [](const Tensor& x) { return mean(x); }},
      {"var", [](const Tensor& x) { return var(x); }},
      {"max", [](const Tensor& x) { return max(x); }},
      {"min", [](const Tensor& x) { return min(x); }},
      {"argmax", [](const Tensor& x) { return argmax(x, 0); }},
      {"softmax", [](const Tensor& x) { return softmax(x); }},
      {"log_softmax", [](const Tensor& x) { return log_softmax(x); }},
      {"add", [](const Tensor& x) { return add(x, 1.0); }},
      {"sub", [](const Tensor& x) { return sub(x, 1.0); }},
      {"sub", [](const Tensor& x) { return sub(1.0, x); }},
      {"mul", [](const Tensor& x) { return x * 2.0; }},
      {"div", [](const Tensor& x) { return div(x, 2.0); }},
      {"div", [](const Tensor& x) { return div(2.0, x); }},
      {"pow", [](const Tensor& x) { return pow(x, 2.0); }},
      {"pow", [](const Tensor& x) { return pow(2.0, x); }},
      {"add", [](const Tensor& x) { return add(x, x); }},
      {"mul", [](const Tensor& x) { return mul(x, x); }},
      {"pow", [](const Tensor& x) { return pow(x, x); }},
      {"masked_fill", [](const Tensor& x) { return masked_fill(x, full({3}, 1.0, {.dtype = kBool}), 0.0); }},
      {"where", [](const Tensor& x) { return where(full({3}, 1.0, {.dtype = kBool}), x, x); }},
      {"matmul", [](const Tensor& x) { return matmul(x, x); }},
      {"linear",
       [](const Tensor& x) {
         return linear(x, x.reshape({1, 3}));
       }},
      {"index_select", [](const Tensor& x) { return index_select(x, 0, index_of({0})); }},
      {"gather", [](const Tensor& x) { return gather(x, 0, index_of({0})); }},
  };
  for (const Tensor& x : {n, m}) {
    const std::string meta = x.meta_str();  // "int64[3] on cpu" / "bool[3] on cpu"
    for (const auto& [name, fn] : unary) {
      SCOPED_TRACE(std::string(name) + " on " + meta);
      expect_error([&] { fn(x); }, {op(name), meta, "float32 or float64"});
    }
  }
  EXPECT_ERROR(ccc(n.reshape({3, 1}), n.reshape({3, 1})), "ccc:", "int64[3,1]", "float32 or float64");
  EXPECT_ERROR(i64({3}).mul_(2.0), "mul_:", "int64[3]");
  EXPECT_ERROR(i64({3}).add_(i64({3})), "add_:", "int64");
  EXPECT_ERROR(rand({2}, {.dtype = kInt64}), "rand:", "int64");
  EXPECT_ERROR(randn({2}, {.dtype = kBool}), "randn:", "bool");
  EXPECT_ERROR(bernoulli({2}, 0.5, {.dtype = kInt64}), "bernoulli:", "int64");
}

TEST(Errors, WhereAndMaskedFillNeedABoolCondition) {
  EXPECT_ERROR(where(f32({2, 3}), f32({2, 3}), f32({2, 3})), "where:", "condition", "bool", "float32[2,3]");
  EXPECT_ERROR(where(i64({2, 3}), f32({2, 3}), f32({2, 3})), "where:", "condition", "bool", "int64[2,3]");
  EXPECT_ERROR(masked_fill(f32({2, 3}), f32({2, 3}), 0.0), "masked_fill:", "bool", "float32[2,3]");
  EXPECT_ERROR(masked_fill(f32({2, 3}), i64({3}), 0.0), "masked_fill:", "bool", "int64[3]");
}

TEST(Errors, Clamp) {
  EXPECT_ERROR(clamp(f32({3}), 1.0, 0.0), "clamp:", "1", "0", "above");
  EXPECT_ERROR(clamp(f32({3}), 2.5, -0.5), "clamp:", "2.5", "-0.5");
}

// ---- matrix products ----------------------------------------------------------------------------------

TEST(Errors, Matmul) {
  EXPECT_ERROR(matmul(f32({2, 3}), f32({4, 5})), "matmul: [2,3] @ [4,5]: inner dimensions 3 and 4 differ");
  EXPECT_ERROR(matmul(f32({3}), f32({4})), "matmul:", "[3] @ [4]", "3 and 4");
  EXPECT_ERROR(matmul(f32({2, 3}), f32({4})), "matmul:", "[2,3] @ [4]", "3 and 4");
  EXPECT_ERROR(matmul(f32({5}), f32({4, 2})), "matmul:", "[5] @ [4,2]", "5 and 4");
  EXPECT_ERROR(matmul(f32({7, 2, 3}), f32({7, 4, 5})), "matmul:", "[7,2,3] @ [7,4,5]", "3 and 4");
  // 0-d operands
  EXPECT_ERROR(matmul(f32({}), f32({3})), "matmul:", "[] @ [3]", "at least one dim");
  EXPECT_ERROR(matmul(f32({3}), f32({})), "matmul:", "[3] @ []", "at least one dim");
  EXPECT_ERROR(matmul(f32({}), f32({})), "matmul:", "[] @ []");
  // int operands
  EXPECT_ERROR(matmul(i64({2, 2}), i64({2, 2})), "matmul:", "int64[2,2]");
}

TEST(Errors, MatmulBatchBroadcastNamesTheOperands) {
  // The batch dims [2] and [3] do not broadcast; the message must show the operands the user passed.
  EXPECT_ERROR(matmul(f32({2, 3, 4}), f32({3, 4, 5})), "matmul:", "[2,3,4]", "[3,4,5]");
  EXPECT_ERROR(matmul(f32({2, 3, 3, 4}), f32({5, 4, 6})), "matmul:", "[2,3,3,4]", "[5,4,6]");
}

TEST(Errors, Linear) {
  // feature mismatch
  EXPECT_ERROR(linear(f32({2, 3}), f32({4, 5})), "linear:", "[2,3]", "[4,5]", "3 features", "expects 5");
  EXPECT_ERROR(linear(f32({3}), f32({4, 5})), "linear:", "[3]", "[4,5]");
  EXPECT_ERROR(linear(f32({}), f32({4, 5})), "linear:", "[]", "[4,5]");
  // weight not 2-D
  EXPECT_ERROR(linear(f32({2, 3}), f32({3})), "linear:", "weight", "float32[3]");
  EXPECT_ERROR(linear(f32({2, 3}), f32({1, 4, 3})), "linear:", "weight", "float32[1,4,3]");
  // bad bias
  EXPECT_ERROR(linear(f32({2, 3}), f32({4, 3}), f32({3})), "linear:", "bias", "[4]", "float32[3]", "[4,3]");
  EXPECT_ERROR(linear(f32({2, 3}), f32({4, 3}), f32({1, 4})), "linear:", "bias", "[4]", "float32[1,4]");
  EXPECT_ERROR(linear(f32({2, 3}), f32({4, 3}), f32({})), "linear:", "bias", "float32[]");
  // non-float
  EXPECT_ERROR(linear(i64({2, 3}), i64({4, 3})), "linear:", "int64[2,3]");
}

// ---- reductions -----------------------------------------------------------------------------------------

TEST(Errors, Reductions) {
  const Tensor x = f32({2, 3});
  using Reduce = std::function<Tensor(const Tensor&, const std::vector<int64_t>&)>;
  const std::vector<std::pair<const char*, Reduce>> reductions = {
      {"sum", [](const Tensor& t, const std::vector<int64_t>& d) { return sum(t, d); }},
      {"mean", [](const Tensor& t, const std::vector<int64_t>& d) { return mean(t, d); }},
      {"var", [](const Tensor& t, const std::vector<int64_t>& d) { return var(t, d, 0); }},
      {"max", [](const Tensor& t, const std::vector<int64_t>& d) { return max(t, d); }},
      {"min", [](const Tensor& t, const std::vector<int64_t>& d) { return min(t, d); }},
  };
  for (const auto& [name, fn] : reductions) {
    SCOPED_TRACE(name);
    expect_error([&] { fn(x, {2}); }, {op(name), "dim 2", "out of range", "[2,3]"});
    expect_error([&] { fn(x, {-3}); }, {op(name), "dim -3", "out of range", "[2,3]"});
    expect_error([&] { fn(x, {0, 5}); }, {op(name), "dim 5", "out of range"});
    expect_error([&] { fn(x, {0, 0}); }, {op(name), "dim 0", "more than once"});
    expect_error([&] { fn(x, {1, -1}); }, {op(name), "dim 1", "more than once"});
    expect_error([&] { fn(f32({}), {1}); }, {op(name), "dim 1", "out of range", "[]"});
  }
  EXPECT_ERROR(sum(x, {2}, true), "sum:", "dim 2");
}

TEST(Errors, VarDdof) {
  EXPECT_ERROR(var(f32({2, 3}), {1}, 3), "var:", "ddof 3", "float32[2,3]", "3 over the reduced dims");
  EXPECT_ERROR(var(f32({2, 3}), {1}, 5), "var:", "ddof 5", "float32[2,3]");
  EXPECT_ERROR(var(f32({2, 3}), {}, 6), "var:", "ddof 6", "float32[2,3]", "6");
  EXPECT_ERROR(var(f32({1})), "var:", "ddof 1", "float32[1]");  // sample variance of one element
  EXPECT_ERROR(var(f32({4}), {}, -1), "var:", "ddof -1", "float32[4]");
  EXPECT_ERROR(var(f32({0, 3}), {0}, 0), "var:", "float32[0,3]");
}

TEST(Errors, MaxMinOverAnEmptyDim) {
  EXPECT_ERROR(max(f32({2, 0}), {1}), "max:", "float32[2,0]", "dim 1", "size 0");
  EXPECT_ERROR(min(f32({2, 0}), {1}), "min:", "float32[2,0]", "dim 1", "size 0");
  EXPECT_ERROR(max(f32({0})), "max:", "float32[0]", "size 0");
  EXPECT_ERROR(min(f32({0, 3})), "min:", "float32[0,3]", "size 0");
}

TEST(Errors, Argmax) {
  EXPECT_ERROR(argmax(f32({2, 3}), 2), "argmax:", "dim 2", "out of range", "[2,3]");
  EXPECT_ERROR(argmax(f32({2, 3}), -3), "argmax:", "dim -3");
  EXPECT_ERROR(argmax(f32({2, 0}), 1), "argmax:", "float32[2,0]", "empty");
  EXPECT_ERROR(argmax(f32({0, 2}), 0), "argmax:", "float32[0,2]", "empty");
  EXPECT_ERROR(argmax(i64({3}), 0), "argmax:", "int64[3]");
}

TEST(Errors, SumTo) {
  EXPECT_ERROR(sum_to(f32({2, 3}), {4}), "sum_to:", "[2,3]", "[4]");
  EXPECT_ERROR(sum_to(f32({3}), {2, 3}), "sum_to:", "[3]", "[2,3]", "larger rank");
  EXPECT_ERROR(sum_to(f32({2, 3}), {2, 2}), "sum_to:", "[2,3]", "[2,2]");
}

// ---- views ----------------------------------------------------------------------------------------------

TEST(Errors, View) {
  const Tensor t = f32({2, 3}).t();  // [3,2] with strides [1,3]
  EXPECT_ERROR(t.view({6}), "view:", "float32[3,2]", "strides [1,3]", "[6]", "reshape()");
  EXPECT_ERROR(t.view({-1}), "view:", "float32[3,2]", "[6]");
  EXPECT_ERROR(f32({2, 3}).view({4}), "view:", "[4]", "[2,3]", "4 elements", "6");
  EXPECT_ERROR(f32({2, 3}).view({-1, -1}), "view:", "-1", "[-1,-1]");
  EXPECT_ERROR(f32({2, 3}).view({-1, 4}), "view:", "[-1,4]", "[2,3]");
}

TEST(Errors, Reshape) {
  const Tensor x = f32({2, 3});
  EXPECT_ERROR(x.reshape({4, 2}), "reshape:", "[4,2]", "8 elements", "[2,3]", "6");
  EXPECT_ERROR(x.reshape({7}), "reshape:", "[7]", "[2,3]");
  EXPECT_ERROR(x.reshape({-1, -1}), "reshape:", "only one dimension can be -1", "[-1,-1]");
  EXPECT_ERROR(x.reshape({-1, 2, -1}), "reshape:", "[-1,2,-1]");
  EXPECT_ERROR(x.reshape({-1, 4}), "reshape:", "[-1,4]", "[2,3]", "6 elements");
  EXPECT_ERROR(x.reshape({-2, -3}), "reshape:", "negative size -2", "[-2,-3]");
  EXPECT_ERROR(f32({0, 3}).reshape({-1, 0}), "reshape:", "[-1,0]", "[0,3]");
  EXPECT_ERROR(x.flatten(1, 0), "flatten:", "start_dim 1", "end_dim 0");
  EXPECT_ERROR(x.flatten(0, 2), "flatten:", "dim 2", "out of range");
}

TEST(Errors, Permute) {
  const Tensor x = f32({2, 3});
  EXPECT_ERROR(x.permute({0}), "permute:", "float32[2,3]", "2 dims", "lists 1");
  EXPECT_ERROR(x.permute({0, 1, 2}), "permute:", "float32[2,3]", "lists 3");
  EXPECT_ERROR(x.permute({0, 0}), "permute:", "dim 0 appears twice", "[0,0]");
  EXPECT_ERROR(x.permute({1, -1}), "permute:", "dim 1 appears twice", "[1,-1]");
  EXPECT_ERROR(x.permute({0, 2}), "permute:", "dim 2", "out of range");
  EXPECT_ERROR(x.transpose(0, 2), "transpose:", "dim 2", "out of range");
  EXPECT_ERROR(f32({2, 3, 4}).t(), "t:", "float32[2,3,4]", "transpose");
}

TEST(Errors, NarrowSliceSelect) {
  const Tensor x = f32({2, 3});
  EXPECT_ERROR(x.narrow(1, 2, 2), "narrow:", "[2, 2 + 2)", "dim 1", "float32[2,3]", "size 3");
  EXPECT_ERROR(x.narrow(0, -3, 1), "narrow:", "-3", "dim 0", "float32[2,3]");
  EXPECT_ERROR(x.narrow(0, 0, -1), "narrow:", "-1", "float32[2,3]");
  EXPECT_ERROR(x.narrow(0, 3, 0), "narrow:", "dim 0", "float32[2,3]");
  EXPECT_ERROR(x.narrow(2, 0, 1), "narrow:", "dim 2", "out of range");
  EXPECT_ERROR(x.slice(1, 0, 3, 0), "slice:", "step", "0");
  EXPECT_ERROR(x.slice(1, 3, 0, -1), "slice:", "step", "-1");
  EXPECT_ERROR(x.slice(2, 0, 1), "slice:", "dim 2", "out of range");
  EXPECT_ERROR(x.slice(-3, 0, 1), "slice:", "dim -3", "out of range");
  EXPECT_ERROR(x.select(0, 2), "select:", "index 2", "dim 0", "float32[2,3]");
  EXPECT_ERROR(x.select(1, -4), "select:", "index -4", "dim 1", "float32[2,3]");
  EXPECT_ERROR(x.select(2, 0), "select:", "dim 2", "out of range");
  EXPECT_ERROR(f32({2, 0}).select(1, 0), "select:", "index 0", "float32[2,0]");
}

TEST(Errors, Expand) {
  EXPECT_ERROR(f32({2, 3}).expand({4, 3}), "expand:", "float32[2,3]", "[4,3]", "dim 0", "size 2");
  EXPECT_ERROR(f32({2, 3}).expand({2, 6}), "expand:", "float32[2,3]", "[2,6]", "dim 1", "size 3");
  EXPECT_ERROR(f32({2, 3}).expand({3}), "expand:", "float32[2,3]", "[3]", "smaller rank");
  EXPECT_ERROR(f32({3}).expand({-1, 3}), "expand:", "[-1,3]", "-1");
  EXPECT_ERROR(f32({3}).expand({2, 4}), "expand:", "float32[3]", "[2,4]");
}

TEST(Errors, ExpandToANegativeSize) {
  // A size-1 dim expanded to -2 (only -1 means "keep"): must be refused, not produce a [-2] tensor.
  EXPECT_ERROR(f32({1}).expand({-2}), "expand:", "float32[1]", "[-2]");
  EXPECT_ERROR(f32({1, 3}).expand({-5, 3}), "expand:", "float32[1,3]", "[-5,3]");
}

TEST(Errors, SqueezeUnsqueeze) {
  const Tensor x = f32({2, 3});
  EXPECT_ERROR(x.squeeze(2), "squeeze:", "dim 2", "out of range", "[2,3]");
  EXPECT_ERROR(x.squeeze(-3), "squeeze:", "dim -3", "out of range");
  EXPECT_ERROR(x.unsqueeze(3), "unsqueeze:", "dim 3", "out of range", "[2,3]");
  EXPECT_ERROR(x.unsqueeze(-4), "unsqueeze:", "dim -4", "out of range");
  EXPECT_ERROR(f32({}).squeeze(1), "squeeze:", "dim 1", "out of range");
  EXPECT_ERROR(f32({}).unsqueeze(2), "unsqueeze:", "dim 2", "out of range");
}

// A bad dim is reported by shape.cpp's wrap_dim / wrap_dims, which know only the rank. The requirement is
// that the message names the offending shape: here, the input's [2,3].
TEST(Errors, DimErrorsNameTheTensorShape) {
  const Tensor x = f32({2, 3});
  const Tensor idx = index_of({0});
  EXPECT_ERROR(sum(x, {2}), "sum:", "[2,3]");
  EXPECT_ERROR(sum(x, {0, 0}), "sum:", "[2,3]");
  EXPECT_ERROR(mean(x, {-3}), "mean:", "[2,3]");
  EXPECT_ERROR(var(x, {2}), "var:", "[2,3]");
  EXPECT_ERROR(max(x, {1, 1}), "max:", "[2,3]");
  EXPECT_ERROR(argmax(x, 2), "argmax:", "[2,3]");
  EXPECT_ERROR(softmax(x, 2), "softmax:", "[2,3]");
  EXPECT_ERROR(log_softmax(x, -3), "log_softmax:", "[2,3]");
  EXPECT_ERROR(x.squeeze(2), "squeeze:", "[2,3]");
  EXPECT_ERROR(x.unsqueeze(3), "unsqueeze:", "[2,3]");
  EXPECT_ERROR(x.select(2, 0), "select:", "[2,3]");
  EXPECT_ERROR(x.narrow(2, 0, 1), "narrow:", "[2,3]");
  EXPECT_ERROR(x.slice(2, 0, 1), "slice:", "[2,3]");
  EXPECT_ERROR(x.transpose(0, 2), "transpose:", "[2,3]");
  EXPECT_ERROR(x.permute({0, 2}), "permute:", "[2,3]");
  EXPECT_ERROR(x.flatten(0, 2), "flatten:", "[2,3]");
  EXPECT_ERROR(x.size(2), "size:", "[2,3]");
  EXPECT_ERROR(cat({x, x}, 2), "cat:", "[2,3]");
  EXPECT_ERROR(stack({x, x}, 3), "stack:", "[2,3]");
  EXPECT_ERROR(split(x, 1, 2), "split:", "[2,3]");
  EXPECT_ERROR(index_select(x, 2, idx), "index_select:", "[2,3]");
  EXPECT_ERROR(gather(x, 2, i64({2, 3})), "gather:", "[2,3]");
}

// Dim 0 / -1 of a 0-d tensor pass wrap_dim (it accepts them, as PyTorch's reductions do), but a 0-d tensor
// has no dim 0 to index: these calls must be errors, not reads of shape()[0] of an empty vector.
TEST(Errors, ZeroDimTensorHasNoDimToIndex) {
  const Tensor s = f32({});
  EXPECT_ERROR(s.size(0), "size:", "[]");
  EXPECT_ERROR(s.stride(0), "stride:", "[]");
  EXPECT_ERROR(s.select(0, 0), "select:", "[]");
  EXPECT_ERROR(s.narrow(0, 0, 1), "narrow:", "[]");
  EXPECT_ERROR(s.slice(0, 0, 1), "slice:", "[]");
  EXPECT_ERROR(split(s, 1, 0), "split:", "[]");
  EXPECT_ERROR(split(s, std::vector<int64_t>{1}, 0), "split:", "[]");
  // PyTorch allows transposing a 0-d tensor's dims 0 and -1 (a no-op); an error is fine too, a crash is not.
  expect_no_crash([&] { s.transpose(0, -1); });
  expect_no_crash([&] { s.transpose(0, 0); });
}

// ---- joining, splitting, padding, indexing ------------------------------------------------------------

TEST(Errors, Cat) {
  EXPECT_ERROR(cat({}), "cat:", "non-empty");
  EXPECT_ERROR(cat({f32({2, 3}), f32({2, 4})}, 0), "cat:", "tensor 1", "[2,4]", "[2,3]", "dim 0");
  EXPECT_ERROR(cat({f32({2, 3}), f32({2, 3}), f32({3, 3})}, 1), "cat:", "tensor 2", "[3,3]", "[2,3]", "dim 1");
  EXPECT_ERROR(cat({f32({2, 3}), f32({3})}), "cat:", "tensor 1", "[3]", "[2,3]", "number of dims");
  EXPECT_ERROR(cat({f32({2, 3}), f64({2, 3})}), "cat:", "dtype", "float32[2,3]", "float64[2,3]");
  EXPECT_ERROR(cat({f32({}), f32({})}), "cat:", "0-d");
  EXPECT_ERROR(cat({f32({2, 3}), f32({2, 3})}, 2), "cat:", "dim 2", "out of range");
  EXPECT_ERROR(cat({Tensor(), f32({2})}), "cat:", "tensor 0", "undefined");
  EXPECT_ERROR(cat({f32({2}), Tensor()}), "cat:", "undefined");
}

TEST(Errors, Stack) {
  EXPECT_ERROR(stack({}), "stack:", "non-empty");
  EXPECT_ERROR(stack({f32({2, 3}), f32({3, 2})}), "stack:", "tensor 1", "[3,2]", "[2,3]", "same shape");
  EXPECT_ERROR(stack({f32({2}), f32({2}), f32({3})}, 1), "stack:", "tensor 2", "[3]", "[2]");
  EXPECT_ERROR(stack({f32({2, 3}), f32({2, 3})}, 3), "stack:", "dim 3", "out of range");
  EXPECT_ERROR(stack({f32({2}), Tensor()}), "stack:", "undefined");
}

TEST(Errors, StackDtypeMismatchNamesStack) {
  // Reported today by the inner cat, on the unsqueezed [1,2] views; the user called stack on [2] tensors.
  EXPECT_ERROR(stack({f32({2}), f64({2})}), "stack:", "float32[2]", "float64[2]");
}

TEST(Errors, Split) {
  const Tensor x = f32({2, 3});
  EXPECT_ERROR(split(x, std::vector<int64_t>{1, 1}, 1), "split:", "[1,1]", "add up to 2", "dim 1", "float32[2,3]",
               "has 3");
  EXPECT_ERROR(split(x, std::vector<int64_t>{2, 2}, 1), "split:", "[2,2]", "add up to 4", "float32[2,3]");
  EXPECT_ERROR(split(x, std::vector<int64_t>{4, -1}, 1), "split:", "negative", "-1");
  EXPECT_ERROR(split(x, 0, 1), "split:", "split_size", "0");
  EXPECT_ERROR(split(x, -2, 1), "split:", "split_size", "-2");
  EXPECT_ERROR(split(x, 1, 2), "split:", "dim 2", "out of range");
}

TEST(Errors, Pad) {
  const Tensor x = f32({2, 3});
  EXPECT_ERROR(pad(x, {1}), "pad:", "even number", "[2,3]", "got 1");
  EXPECT_ERROR(pad(x, {1, 1, 1}), "pad:", "even number", "[2,3]", "got 3");
  EXPECT_ERROR(pad(x, {1, 1, 1, 1, 1, 1}), "pad:", "at most 4", "[2,3]", "got 6");
  EXPECT_ERROR(pad(f32({}), {0, 0}), "pad:", "at most 0", "[]");
  EXPECT_ERROR(pad(x, {-2, -2}), "pad:", "(-2, -2)", "dim 1", "[2,3]", "negative size -1");
  EXPECT_ERROR(pad(x, {0, 0, -3, 0}), "pad:", "(-3, 0)", "dim 0", "[2,3]", "negative size -1");
}

TEST(Errors, IndexSelect) {
  const Tensor x = f32({2, 3});
  EXPECT_ERROR(index_select(x, 0, f32({2})), "index_select:", "int64", "float32[2]");
  EXPECT_ERROR(index_select(x, 0, b8({2})), "index_select:", "int64", "bool[2]");
  EXPECT_ERROR(index_select(x, 0, i64({1, 2})), "index_select:", "1-D", "int64[1,2]");
  EXPECT_ERROR(index_select(x, 0, i64({})), "index_select:", "1-D", "int64[]");
  EXPECT_ERROR(index_select(x, 0, index_of({0, 5})), "index_select:", "index 5", "entry 1", "dim 0", "float32[2,3]",
               "0..1");
  EXPECT_ERROR(index_select(x, 1, index_of({-1})), "index_select:", "index -1", "dim 1", "float32[2,3]", "0..2");
  EXPECT_ERROR(index_select(f32({}), 0, index_of({0})), "index_select:", "0-d");
  EXPECT_ERROR(index_select(x, 2, index_of({0})), "index_select:", "dim 2", "out of range");
  EXPECT_ERROR(index_select(x, 0, Tensor()), "index_select:", "index", "undefined");
}

TEST(Errors, Gather) {
  const Tensor x = f32({2, 3});
  EXPECT_ERROR(gather(x, 0, f32({2, 3})), "gather:", "int64", "float32[2,3]");
  EXPECT_ERROR(gather(x, 0, i64({2})), "gather:", "int64[2]", "float32[2,3]", "as many dims");
  EXPECT_ERROR(gather(x, 0, i64({2, 3, 1})), "gather:", "int64[2,3,1]", "float32[2,3]");
  EXPECT_ERROR(gather(x, 0, i64({2, 4})), "gather:", "[2,4]", "[2,3]", "dim 1");
  EXPECT_ERROR(gather(x, 0, index_of({0, 1, 7, 0, 0, 0}, {2, 3})), "gather:", "index 7", "entry 2", "dim 0",
               "float32[2,3]", "0..1");
  EXPECT_ERROR(gather(x, 1, index_of({0, -2}, {1, 2})), "gather:", "index -2", "dim 1", "float32[2,3]");
  EXPECT_ERROR(gather(f32({}), 0, i64({})), "gather:", "0-d");
  EXPECT_ERROR(gather(x, 0, Tensor()), "gather:", "index", "undefined");
}

// ---- softmax, loss --------------------------------------------------------------------------------------

TEST(Errors, Softmax) {
  EXPECT_ERROR(softmax(f32({2, 3}), 2), "softmax:", "dim 2", "out of range", "[2,3]");
  EXPECT_ERROR(softmax(f32({2, 3}), -3), "softmax:", "dim -3", "out of range");
  EXPECT_ERROR(log_softmax(f32({2, 3}), 2), "log_softmax:", "dim 2", "out of range");
  EXPECT_ERROR(softmax(f32({}), 1), "softmax:", "dim 1", "out of range");
  EXPECT_ERROR(softmax(i64({2, 3})), "softmax:", "int64[2,3]");
}

TEST(Errors, Ccc) {
  const Tensor p = f32({4, 2});
  EXPECT_ERROR(ccc(p, f32({4, 3})), "ccc:", "[4,2]", "[4,3]", "same shape");
  EXPECT_ERROR(ccc(p, f32({2, 4})), "ccc:", "[4,2]", "[2,4]");
  EXPECT_ERROR(ccc(p, f32({8})), "ccc:", "[4,2]", "[8]");
  EXPECT_ERROR(ccc(f32({}), f32({})), "ccc:", "[]");
  EXPECT_ERROR(ccc(f32({4, 0}), f32({4, 0})), "ccc:", "float32[4,0]", "no columns");
  // mask: wrong shape, wrong dtype, selects nothing
  EXPECT_ERROR(ccc(p, p, b8({3})), "ccc:", "mask", "[4]", "bool[3]");
  EXPECT_ERROR(ccc(p, p, b8({4, 2})), "ccc:", "mask", "[4]", "bool[4,2]");
  EXPECT_ERROR(ccc(p, p, f32({4})), "ccc:", "mask", "bool", "float32[4]");
  EXPECT_ERROR(ccc(p, p, i64({4})), "ccc:", "mask", "bool", "int64[4]");
  EXPECT_ERROR(ccc(p, p, b8({4}, false)), "ccc:", "mask keeps no rows", "float32[4,2]");
  EXPECT_ERROR(ccc(f32({0, 2}), f32({0, 2})), "ccc:", "float32[0,2]");
  EXPECT_ERROR(ccc(p, p, Tensor(), -1.0), "ccc:", "eps", "-1");
  // the loss goes through ccc and reports the same way
  EXPECT_ERROR(ccc_loss(p, f32({4, 3})), "ccc", "[4,2]", "[4,3]");
  EXPECT_ERROR(ccc_loss(p, p, b8({4}, false)), "ccc", "mask keeps no rows", "float32[4,2]");
}
