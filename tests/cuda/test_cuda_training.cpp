// The training loop on CUDA, end to end on the small generated SynthAV set of the model tests
// (tests/models/small_run.h): apps/train --device cuda is this Trainer. The first steps follow the CPU's,
// a resumed run equals an uninterrupted one bit for bit on the GPU too, and a run started on the GPU
// continues on the CPU from its checkpoint (and the other way round); math = tf32 reaches the kernels.
//
// Both devices draw the same batches (the loader's seed) and the same dropout masks (Philox, the same
// stream on either device), so a CPU and a GPU run compute the same function and differ only in rounding:
// the order of float32 sums where the kernels' orders differ, FMA contraction, and the last bits of expf
// and tanhf. Under the emulator (the GPU kernels' own sum orders, on the CPU) the losses of 4 steps agree
// to 3e-7 relative and the validation CCCs to 2e-8. The tolerances leave room for a real GPU's rounding:
//   - step 1 is the loss before any update, a forward pass: 1e-5 relative;
//   - later steps come after Adam updates, which move each weight by about lr whatever its gradient's
//     size, so a gradient element the devices round to different signs moves its weight the other way:
//     1e-4 relative. A step's update left out or wrong moves the loss by more: the second step's loss is
//     1.6e-3 (relative) below the first's;
//   - validation CCCs: 1e-4 absolute.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "autograd/minidl.h"
#include "data/synthav.h"
#include "models/trainer.h"
#include "tests/cuda/cuda_test_helpers.h"
#include "tests/data/data_test_helpers.h"
#include "tests/models/small_run.h"

using namespace minidl;
using namespace minidl::models;
using minidl::models_test::steps;
namespace fs = std::filesystem;

namespace {

class CudaTraining : public ::testing::Test {
 protected:
  // Generated once per suite run, on the first test that has a GPU to run on.
  static std::string data_root() {
    if (!dir_) {
      dir_ = new data_test::TempDir();
      data::generate_synthav((dir_->path() / "synthav").string(), models_test::small_synthav());
    }
    return (dir_->path() / "synthav").string();
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  // The small configuration at a constant learning rate, on `device`, into a run folder of its own.
  static TrainConfig config(const std::string& run, const std::string& device) {
    const std::string data = data_root();  // makes dir_
    TrainConfig c = models_test::small_training(data, (dir_->path() / run).string());
    c.schedule = "constant";
    c.lr = 3e-3;
    c.device = device;
    return c;
  }

  static data_test::TempDir* dir_;
  // A Trainer on CUDA sets the kernel paths for the process (its math setting); the other tests get
  // theirs back.
  cuda_test::GemmPathScope gemm_path_{cuda::gemm_path()};
  cuda_test::ConvPathScope conv_path_{cuda::conv_path()};
};
data_test::TempDir* CudaTraining::dir_ = nullptr;

// from_start: got[0] is the run's first step, a loss before any update.
void expect_losses_near(const std::vector<double>& got, const std::vector<double>& expected, bool from_start) {
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << "step " << i + 1;
    const double rtol = i == 0 && from_start ? 1e-5 : 1e-4;
    EXPECT_NEAR(got[i], expected[i], rtol * std::abs(expected[i])) << "step " << i + 1;
  }
}

}  // namespace

TEST_F(CudaTraining, FirstStepsFollowTheCpu) {
  REQUIRE_GPU();
  Trainer cpu(config("follow-cpu", "cpu"), false), gpu(config("follow-gpu", "cuda"), false);
  const std::vector<double> expected = steps(cpu, 4), got = steps(gpu, 4);
  expect_losses_near(got, expected, true);
  EXPECT_NE(got[3], got[0]) << "the GPU run's weights did not change";
}

// math = tf32 puts the convolutions on the TF32 path (tf32-all would add nothing here: no matmul of this
// small model has the 64 rows and columns the TF32 GEMM needs): each product's inputs lose 13 bits,
// the sums stay float32. The first loss, before any update, must move off float32's (the setting
// reached the kernels) and stay within 1e-3 relative (seen under the emulator: 1.6e-4). Later steps
// are no test of it: Adam's first updates amplify the difference (3% by step 3).
TEST_F(CudaTraining, Tf32MathReachesTheConvolutions) {
  REQUIRE_GPU();
  // One after the other: a Trainer sets the kernels' arithmetic for the whole process.
  Trainer fp32(config("math-fp32", "cuda"), false);
  const double expected = fp32.train_step();
  TrainConfig c = config("math-tf32", "cuda");
  c.math = "tf32";
  Trainer tf32(c, false);
  const double got = tf32.train_step();
  EXPECT_NE(got, expected) << "math=tf32 did not change the kernels' arithmetic";
  EXPECT_NEAR(got, expected, 1e-3 * std::abs(expected));
}

// The GPU kernels are deterministic (no float atomics, fixed split-K orders), so a resumed GPU run
// computes the uninterrupted run's losses exactly, as on the CPU.
TEST_F(CudaTraining, ResumeEqualsAnUninterruptedRunBitForBit) {
  REQUIRE_GPU();
  Trainer whole(config("gpu-whole", "cuda"), false);
  const std::vector<double> expected = steps(whole, 5);

  Trainer first(config("gpu-split", "cuda"), false);
  std::vector<double> got = steps(first, 2);
  first.save_checkpoint();
  Trainer second(config("gpu-split", "cuda"), true);
  EXPECT_EQ(second.steps(), 2);
  for (double l : steps(second, 3)) got.push_back(l);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], expected[i]) << "step " << i + 1 << " differs";
}

// A checkpoint written from device memory holds the GPU's weights and optimiser state: resumed on the
// CPU, the run scores and trains as the GPU run goes on doing. And back: a CPU checkpoint resumes on the GPU.
TEST_F(CudaTraining, ARunMovesBetweenDevicesThroughItsCheckpoint) {
  REQUIRE_GPU();
  for (const auto& [from, to] : {std::pair{"cuda", "cpu"}, std::pair{"cpu", "cuda"}}) {
    SCOPED_TRACE(std::string(from) + " then " + to);
    const std::string run = std::string("moved-from-") + from;
    Trainer started(config(run, from), false);
    steps(started, 2);
    started.save_checkpoint();
    const std::vector<double> expected = steps(started, 2);
    const Scores expected_scores = started.evaluate("Validation_Set");

    Trainer moved(config(run, to), true);
    EXPECT_EQ(moved.steps(), 2);
    expect_losses_near(steps(moved, 2), expected, false);
    const Scores scores = moved.evaluate("Validation_Set");
    EXPECT_EQ(scores.frames, expected_scores.frames);
    EXPECT_NEAR(scores.valence, expected_scores.valence, 1e-4);
    EXPECT_NEAR(scores.arousal, expected_scores.arousal, 1e-4);
  }
}
