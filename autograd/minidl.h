// The whole public API in one include.
#pragma once

#include "autograd/anomaly.h"
#include "autograd/device.h"
#include "autograd/dtype.h"
#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/grad_mode.h"
#include "autograd/gradcheck.h"
#include "autograd/graph_dot.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/profiler.h"
#include "autograd/random.h"
#include "autograd/shape.h"
#include "autograd/tensor.h"
