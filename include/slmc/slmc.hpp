// slm-compress: the umbrella header. Include this to get the whole public API.
#pragma once

#include "slmc/check.hpp"
#include "slmc/cpu.hpp"
#include "slmc/buffer.hpp"
#include "slmc/dtype.hpp"
#include "slmc/encoding.hpp"
#include "slmc/half.hpp"
#include "slmc/layout.hpp"
#include "slmc/parallel.hpp"
#include "slmc/status.hpp"
#include "slmc/tensor.hpp"
#include "slmc/version.hpp"
#include "slmc/kernels/linear.hpp"
