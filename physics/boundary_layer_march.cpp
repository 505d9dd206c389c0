// The integral boundary-layer march of hybridzoo.physics.boundary_layer._march, fused for inference.
//
// The torch version runs ~35 small tensor ops per station, and at the sizes a batch of aerofoils gives
// (thousands of surfaces, ~70 stations) their dispatch, not their arithmetic, is the cost of the whole
// residual aerofoil model. Here each station is one pass over the surfaces that the compiler vectorises
// (libmvec's SIMD exp/log under -ffast-math), so the arithmetic is the cost again. It computes the same
// algorithm, step for step (tests/physics/test_boundary_layer_native.py holds the two to agreement); the
// torch version still serves autograd, CUDA and other dtypes. Arrays are station-major, (P, M), so that a
// station's surfaces are contiguous. Built and loaded by hybridzoo.physics.native.
#include <cmath>
#include <cstdint>
#include <utility>

namespace {

constexpr double kLambdaSeparation = -0.09;
constexpr double kHStart = 1.4;
constexpr double kHSeparation = 2.4;
constexpr double kMaxLogSpeedStep = 0.1;
constexpr double kMaxSubsteps = 64;

template <typename T>
struct Closures {
  // The same constants as boundary_layer._CONSTANTS, rounded to T as the torch version's tensors are.
  T h1_base = T(3.3);
  T h1_h0_low = T(1.1), h1_h0_high = T(0.6778);
  T h1_c_low = T(0.8234), h1_c_high = T(1.5501);
  T h1_p_low = T(-1.287), h1_p_high = T(-3.064);
  T inv_logc_low = T(std::log(0.8234)), inv_logc_high = T(std::log(1.5501));
  T inv_p_low = T(-1 / 1.287), inv_p_high = T(-1 / 3.064);
  T log_half_cf0 = T(std::log(0.246 / 2));
  T cf_h = T(0.678 * std::log(10.0));
  T cf_re = T(0.268);
  T entrainment = T(0.0306), entrainment_base = T(3.0), entrainment_exponent = T(-0.6169);
  T h_separation = T(kHSeparation);
};

template <typename T>
inline T entrainment_shape(const Closures<T>& k, T h) {  // H1(H)
  const bool low = h <= T(1.6);
  const T h0 = low ? k.h1_h0_low : k.h1_h0_high;
  const T c = low ? k.h1_c_low : k.h1_c_high;
  const T p = low ? k.h1_p_low : k.h1_p_high;
  const T d = h - h0;
  return k.h1_base + c * std::exp(p * std::log(d > T(1e-6) ? d : T(1e-6)));
}

template <typename T>
struct State {
  T theta, h, h1, h1u;
};

// One step of Head's method; boundary_layer._head_step.
template <typename T>
inline State<T> head_step(const Closures<T>& k, State<T> s, T log_speed_ratio, T log_ure, T ds, T uds, T ue,
                          bool active) {
  const T pressure = std::exp((s.h + T(2)) * log_speed_ratio);
  T log_re_theta = std::log(s.theta) + log_ure;
  log_re_theta = log_re_theta > T(0) ? log_re_theta : T(0);
  const T half_cf = std::exp(k.log_half_cf0 - k.cf_h * s.h - k.cf_re * log_re_theta);
  T theta = s.theta * pressure + half_cf * ds;
  theta = theta > T(1e-9) ? theta : T(1e-9);
  const T e = s.h1 - k.entrainment_base;
  const T entrained = k.entrainment * std::exp(k.entrainment_exponent * std::log(e > T(1e-6) ? e : T(1e-6)));
  const T h1u = s.h1u + entrained * uds;
  const T h1 = h1u / (ue * theta);
  const bool low = h1 >= T(5.3);
  const T h0 = low ? k.h1_h0_low : k.h1_h0_high;
  const T logc = low ? k.inv_logc_low : k.inv_logc_high;
  const T inv_p = low ? k.inv_p_low : k.inv_p_high;
  const T d = h1 - k.h1_base;
  T h = h0 + std::exp((std::log(d > T(1e-6) ? d : T(1e-6)) - logc) * inv_p);
  h = h < T(1.05) ? T(1.05) : (h > T(4.0) ? T(4.0) : h);
  return State<T>{active ? theta : s.theta, active ? h : s.h, active ? h1 : s.h1, active ? h1u : s.h1u};
}

template <typename T>
inline T thwaites_shape_factor(T lam) {
  lam = lam < T(-0.1) ? T(-0.1) : (lam > T(0.25) ? T(0.25) : lam);
  return lam >= T(0) ? T(2.61) - T(3.75) * lam + T(5.24) * lam * lam : T(2.088) + T(0.0731) / (lam + T(0.14));
}

template <typename T>
void march(int64_t m, int64_t p, const T* ue, const T* s, const T* re, const T* trip, bool has_trip, T* theta_out,
           T* h_out, int64_t* i_tr, int64_t* i_lsep, int64_t* i_tsep, T* scratch, double* integral) {
  const Closures<T> k;
  const T h_sep = k.h_separation;
  const T h1_start = entrainment_shape(k, T(kHStart));
  // Per surface (scratch, 12 arrays of m, from the caller: no allocation here): the last real du_e/ds, log Re,
  // log u_e at the current and the previous station, and Head's state (θ, H, H1, u_e θ H1) after and before
  // the current station. Thwaites' integral is summed in double, as torch's cumsum accumulates float32 in double.
  T* dudx = scratch;
  T* log_re = scratch + m;
  T* log_u_prev = scratch + 2 * m;
  T *theta = scratch + 3 * m, *h = scratch + 4 * m, *h1 = scratch + 5 * m, *h1u = scratch + 6 * m;
  T *theta_old = scratch + 7 * m, *h_old = scratch + 8 * m, *h1_old = scratch + 9 * m, *h1u_old = scratch + 10 * m;
  T* log_u_before = scratch + 11 * m;
  for (int64_t i = 0; i < m; ++i) {
    i_tr[i] = i_lsep[i] = i_tsep[i] = -1;
    log_re[i] = std::log(re[i]);
    integral[i] = double(ue[i] * ue[i] * ue[i] * ue[i] * ue[i] * s[i] / T(6));
    dudx[i] = ue[i] / s[i];
    log_u_prev[i] = std::log(ue[i]);
    // Surfaces still laminar carry a placeholder state through the vectorised step (its result is
    // discarded): an ordinary one, since -ffast-math assumes finite math and log(0) is not.
    theta[i] = T(1e-3);
    h[i] = T(kHStart);
    h1[i] = h1_start;
    h1u[i] = T(1e-3) * h1_start;
  }
  for (int64_t j = 0; j < p; ++j) {
    const T* u = ue + j * m;
    const T* sj = s + j * m;
    const T* u_prev = j ? ue + (j - 1) * m : u;
    const T* s_prev = j ? s + (j - 1) * m : sj;
    T* theta_j = theta_out + j * m;
    T* h_j = h_out + j * m;
    std::swap(theta_old, theta);
    std::swap(h_old, h);
    std::swap(h1_old, h1);
    std::swap(h1u_old, h1u);
    // Thwaites, Michel and the turbulent step: one branch-free pass over the surfaces, which the compiler
    // vectorises (no array here overlaps another: ivdep spares it the run-time alias checks). At j = 0,
    // ds = 0 and the integral and gradient keep their starting values.
#pragma GCC ivdep
    for (int64_t i = 0; i < m; ++i) {
      const T u0 = u_prev[i], u1 = u[i];
      const T ds = sj[i] - s_prev[i];
      const bool real = (j == 0) | (ds > T(0));  // padding repeats a station
      // ∫ u⁵ ds, exact for u_e linear between stations (Horner's rule, as in the torch version)
      T horner = u0 + u1;
      T u0_power = u0;
      u0_power = u0_power * u0;
      horner = u0_power + u1 * horner;
      u0_power = u0_power * u0;
      horner = u0_power + u1 * horner;
      u0_power = u0_power * u0;
      horner = u0_power + u1 * horner;
      u0_power = u0_power * u0;
      horner = u0_power + u1 * horner;
      integral[i] += double(ds * horner / T(6));
      const T grad = (u1 - u0) / (ds > T(1e-12) ? ds : T(1e-12));
      dudx[i] = (j > 0) & real ? grad : dudx[i];  // a padding station keeps the last real gradient
      const T ue3 = u1 * u1 * u1;
      const T theta2 = T(0.45) * T(integral[i]) / (re[i] * ue3 * ue3);
      const T theta_lam = std::sqrt(theta2);
      const T lam = re[i] * theta2 * dudx[i];
      const T h_lam = thwaites_shape_factor(lam);
      T re_s = u1 * sj[i] * re[i];
      re_s = re_s > T(1) ? re_s : T(1);
      const T michel_limit = T(1.174) * (T(1) + T(22400) / re_s) * std::exp(T(0.46) * std::log(re_s));
      const bool lsep = real & (lam < T(kLambdaSeparation));
      const bool michel = real & (u1 * theta_lam * re[i] > michel_limit);
      const bool tripped = real & has_trip & (sj[i] >= trip[i]);
      const bool was_turbulent = i_tr[i] >= 0;
      const bool can_step = was_turbulent & real & (h_old[i] <= h_sep);  // not separated; one that begins does not step
      const bool begins = !was_turbulent & (lsep | michel | tripped);
      i_tr[i] = begins ? j : i_tr[i];
      i_lsep[i] = begins & lsep ? j : i_lsep[i];
      // Head's method starts from θ at transition with H = 1.4, and steps from the station after it.
      const State<T> old{begins ? theta_lam : theta_old[i], begins ? T(kHStart) : h_old[i],
                         begins ? h1_start : h1_old[i], begins ? u1 * theta_lam * h1_start : h1u_old[i]};
      theta_old[i] = old.theta;
      h_old[i] = old.h;
      h1_old[i] = old.h1;
      h1u_old[i] = old.h1u;
      const T log_u1 = std::log(u1);
      const T log_speed_ratio = log_u_prev[i] - log_u1;
      log_u_before[i] = log_u_prev[i];
      log_u_prev[i] = log_u1;
      const State<T> next = head_step(k, old, log_speed_ratio, log_u1 + log_re[i], ds, u1 * ds, u1, can_step);
      theta[i] = next.theta;
      h[i] = next.h;
      h1[i] = next.h1;
      h1u[i] = next.h1u;
      const bool turbulent = was_turbulent | begins;
      theta_j[i] = turbulent ? next.theta : theta_lam;
      h_j[i] = turbulent ? next.h : h_lam;
    }
    // A step whose speed changes by more than e^0.1 is split into sub-steps of equal speed ratio. Such
    // steps are rare, so a scalar pass redoes them from the state before the station.
    for (int64_t i = 0; j > 0 && i < m; ++i) {
      const T ds = sj[i] - s_prev[i];
      if (!(i_tr[i] >= 0 && i_tr[i] < j && ds > T(0))) continue;
      // log(u_j / u_{j-1}) from the logs the vector pass took (log_u_prev holds station j by now): the same
      // logs as the step it replaces, and no scalar log per turbulent surface and station
      const T log_u_a = log_u_before[i];
      const T ratio = log_u_prev[i] - log_u_a;
      if (!(std::abs(ratio) > T(kMaxLogSpeedStep))) continue;
      T n = std::ceil(std::abs(ratio) / T(kMaxLogSpeedStep));
      n = n < T(kMaxSubsteps) ? n : T(kMaxSubsteps);
      const T u_a = u_prev[i];
      const T ds_per_speed = ds / (u[i] - u_a);
      State<T> sub{theta_old[i], h_old[i], h1_old[i], h1u_old[i]};
      T u_last = u_a, log_u_last = log_u_a;
      for (int q = 0; T(q) < n; ++q) {
        T frac = T(q + 1) / n;
        frac = frac < T(1) ? frac : T(1);
        const T log_u = log_u_a + ratio * frac;
        const T uq = std::exp(log_u);
        const T d_s = (uq - u_last) * ds_per_speed;
        sub = head_step(k, sub, log_u_last - log_u, log_u + log_re[i], d_s, uq * d_s, uq, sub.h <= h_sep);
        u_last = uq;
        log_u_last = log_u;
      }
      theta[i] = theta_j[i] = sub.theta;
      h[i] = h_j[i] = sub.h;
      h1[i] = sub.h1;
      h1u[i] = sub.h1u;
    }
    // Turbulent separation: the first station whose turbulent H exceeds 2.4 (after which nothing steps).
#pragma GCC ivdep
    for (int64_t i = 0; i < m; ++i) {
      const bool separated = (i_tr[i] >= 0) & (i_tsep[i] < 0) & (h[i] > h_sep);
      i_tsep[i] = separated ? j : i_tsep[i];
    }
  }
}

}  // namespace

extern "C" {
// trip: one value per surface, read only where has_trip (else any readable array of m); scratch: 12 m
// values of the dtype; integral: m doubles.
void hz_march_f32(int64_t m, int64_t p, const float* ue, const float* s, const float* re, const float* trip,
                  int has_trip, float* theta, float* h, int64_t* i_tr, int64_t* i_lsep, int64_t* i_tsep,
                  float* scratch, double* integral) {
  march<float>(m, p, ue, s, re, trip, has_trip != 0, theta, h, i_tr, i_lsep, i_tsep, scratch, integral);
}
void hz_march_f64(int64_t m, int64_t p, const double* ue, const double* s, const double* re, const double* trip,
                  int has_trip, double* theta, double* h, int64_t* i_tr, int64_t* i_lsep, int64_t* i_tsep,
                  double* scratch, double* integral) {
  march<double>(m, p, ue, s, re, trip, has_trip != 0, theta, h, i_tr, i_lsep, i_tsep, scratch, integral);
}
}
