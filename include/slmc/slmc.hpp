// slm-compress: the umbrella header. Include this to get the whole public API.
#pragma once

#include "slmc/check.hpp"
#include "slmc/cpu.hpp"
#include "slmc/dtype.hpp"
#include "slmc/half.hpp"
#include "slmc/parallel.hpp"
#include "slmc/status.hpp"
#include "slmc/tensor.hpp"
#include "slmc/version.hpp"
