// Tensor basics: factories, metadata, element access, conversions, in-place writes, printing.
#include <gtest/gtest.h>

#include "autograd/minidl.h"

using namespace minidl;

TEST(Tensor, FactoriesFillShapeAndValues) {
  const Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.dtype(), kFloat32);
  EXPECT_TRUE(z.device().is_cpu());
  EXPECT_EQ(z.values<float>(), std::vector<float>(6, 0.f));
  EXPECT_EQ(ones({4}, {.dtype = kFloat64}).values<double>(), std::vector<double>(4, 1.0));
  EXPECT_EQ(full({2}, 2.5).values<float>(), (std::vector<float>{2.5f, 2.5f}));
  EXPECT_EQ(arange(5, {.dtype = kInt64}).values<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1.0, 2.0, 0.25).values<float>(), (std::vector<float>{1.f, 1.25f, 1.5f, 1.75f}));
  EXPECT_EQ(arange(3.0, 0.0, -1.0).values<float>(), (std::vector<float>{3.f, 2.f, 1.f}));
  const Tensor v = from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(v.shape(), (Shape{2, 3}));
  EXPECT_EQ(v.values<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(scalar_tensor(7.0).dim(), 0);
  EXPECT_DOUBLE_EQ(scalar_tensor(7.0).item(), 7.0);
  EXPECT_EQ(from_vector(std::vector<bool>{true, false}).values<bool>(), (std::vector<bool>{true, false}));
}

TEST(Tensor, StridesContiguityAndClone) {
  const Tensor x = arange(6).reshape({2, 3});
  EXPECT_EQ(x.strides(), (Strides{3, 1}));
  EXPECT_TRUE(x.is_contiguous());
  const Tensor t = x.t();
  EXPECT_FALSE(t.is_contiguous());
  const Tensor c = t.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.values<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(x.contiguous().impl(), x.impl()) << "contiguous() of a contiguous tensor must not copy";
  const Tensor k = x.clone();
  EXPECT_NE(k.impl()->storage, x.impl()->storage);
  EXPECT_EQ(k.values<float>(), x.values<float>());
}

TEST(Tensor, DtypeConversion) {
  const Tensor x = from_vector(std::vector<double>{1.5, -2.25, 0});
  EXPECT_EQ(x.to(kFloat64).dtype(), kFloat64);
  EXPECT_EQ(x.to(kFloat64).values<double>(), (std::vector<double>{1.5, -2.25, 0}));
  EXPECT_EQ(x.to(kInt64).values<int64_t>(), (std::vector<int64_t>{1, -2, 0}));
  EXPECT_EQ(x.to(kBool).values<bool>(), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(x.to(kFloat32).impl(), x.impl()) << "to(same dtype) returns the tensor itself";
}

TEST(Tensor, InPlaceWritesBumpTheVersion) {
  Tensor x = zeros({3});
  const uint64_t v0 = x.impl()->storage->version();
  x.fill_(2.0);
  x.add_(ones({3}), 0.5);
  x.mul_(4.0);
  EXPECT_EQ(x.values<float>(), (std::vector<float>{10, 10, 10}));
  EXPECT_EQ(x.impl()->storage->version(), v0 + 3);
  Tensor y = zeros({2, 3});
  y.copy_(from_vector(std::vector<double>{1, 2, 3}));  // broadcast over rows
  EXPECT_EQ(y.values<float>(), (std::vector<float>{1, 2, 3, 1, 2, 3}));
}

TEST(Tensor, PrintsValuesShapeAndDtype) {
  const std::string s = from_vector(std::vector<double>{1, -2.5, 3, 4}, {2, 2}).str();
  EXPECT_NE(s.find("1.0000"), std::string::npos) << s;
  EXPECT_NE(s.find("-2.5000"), std::string::npos) << s;
  EXPECT_NE(s.find("shape=[2,2]"), std::string::npos) << s;
  EXPECT_NE(s.find("dtype=float32"), std::string::npos) << s;
  // A large tensor elides its middle: 3 + 3 shown of 2000.
  const std::string big = arange(2000).str();
  EXPECT_NE(big.find("..."), std::string::npos);
  EXPECT_NE(big.find("1999.0000"), std::string::npos);
  EXPECT_EQ(big.find("1000.0000"), std::string::npos);
  Tensor w = zeros({2});
  w.requires_grad_();
  EXPECT_NE(w.str().find("requires_grad"), std::string::npos);
  EXPECT_NE((w * 2.0).str().find("grad_fn=mul"), std::string::npos);
}

TEST(Tensor, DeviceParsing) {
  EXPECT_EQ(parse_device("cpu"), Device::cpu());
  EXPECT_EQ(parse_device("cuda"), Device::cuda(0));
  EXPECT_EQ(parse_device("cuda:3"), Device::cuda(3));
  EXPECT_EQ(Device::cuda(1).str(), "cuda:1");
  EXPECT_THROW(parse_device("gpu"), Error);
  EXPECT_THROW(parse_device("cuda:x"), Error);
}
