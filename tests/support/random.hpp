// Deterministic random data for tests: fixed-seed generators and the distributions quantizer and
// kernel tests need (Gaussian, Laplace, Student-t with outliers, ...).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace slmc::test {

inline std::vector<float> gaussian(size_t n, uint64_t seed, float stddev = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<float> uniform(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<float> laplace(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<float> e(1.0f / scale);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v(n);
  for (auto& x : v) x = sign(rng) ? e(rng) : -e(rng);
  return v;
}

/// Student-t with `dof` degrees of freedom, plus a fraction of large outliers.
inline std::vector<float> student_t_outliers(size_t n, uint64_t seed, float dof = 3.0f,
                                             float outlier_fraction = 0.001f, float outlier_scale = 30.0f) {
  std::mt19937_64 rng(seed);
  std::student_t_distribution<float> t(dof);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) {
    x = t(rng);
    if (u(rng) < outlier_fraction) x *= outlier_scale;
  }
  return v;
}

}  // namespace slmc::test
