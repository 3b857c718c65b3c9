// Per-chunk CPU kernels, written once and compiled once per SIMD level. Included by
// kernels_<level>.cpp inside `namespace fusedopt::cpu::FUSEDOPT_CPU_LEVEL` after a
// `#pragma GCC target`, so every loop here is auto-vectorized for that level.
//
// Data layout: the math always runs over contiguous arrays of the compute type C (float, or
// double for float64 storage). fp32/fp64 params are updated in place; fp16/bf16 params go through
// a small stack tile (or the fp32 master copy), converted on the way in and out.
//
// Bitwise reproducibility: reductions use kLanes fixed accumulators indexed by the element's
// position within its chunk and are combined in a fixed order, so sums do not depend on the
// SIMD level or the thread count. Contraction is off in the build (-ffp-contract=off) so every
// level computes the same roundings as the emulated CUDA kernels.

constexpr int64_t kTile = 1024;  // multiple of kLanes
constexpr int kLanes = 16;

// ---- storage types -------------------------------------------------------------------------
struct BFloat16 {
  uint16_t bits;
};
#if defined(__aarch64__)  // g++ < 13 has no _Float16 in C++ there; __fp16 (Arm ACLE) is the same
using Half = __fp16;       // IEEE binary16, converted by fcvt with round-to-nearest-even
#else
using Half = _Float16;  // IEEE binary16; GCC converts with correct rounding (F16C when enabled)
#endif

template <class S> struct StorageTraits;
template <> struct StorageTraits<float> {
  using C = float;
  static float load(float x) { return x; }
  static float store(float x) { return x; }
};
template <> struct StorageTraits<double> {
  using C = double;
  static double load(double x) { return x; }
  static double store(double x) { return x; }
};
template <> struct StorageTraits<Half> {
  using C = float;
  static float load(Half x) { return static_cast<float>(x); }
  static Half store(float x) { return static_cast<Half>(x); }
};
template <> struct StorageTraits<BFloat16> {
  using C = float;
  static float load(BFloat16 x) {
    uint32_t u = uint32_t(x.bits) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
  }
  static BFloat16 store(float f) {  // round to nearest even; NaN stays a (quiet) NaN
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return BFloat16{static_cast<uint16_t>(nan ? ((u >> 16) | 0x40u) : rounded)};
  }
};

template <class P> using ComputeT = typename StorageTraits<P>::C;

// Runs fn<P>() for the storage type named by dtype.
template <class Fn>
decltype(auto) dispatch_storage(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn(static_cast<float*>(nullptr));
    case DType::Float64: return fn(static_cast<double*>(nullptr));
    case DType::Float16: return fn(static_cast<Half*>(nullptr));
    case DType::BFloat16: return fn(static_cast<BFloat16*>(nullptr));
  }
  __builtin_unreachable();
}

// ---- the tile engine -----------------------------------------------------------------------
// Calls body(p, g, s0, s1, s2, n) over the chunk in pieces, with p and g as compute-type arrays
// (g raw: the body unscales it) and the states offset to the same elements.
// kWriteParam: false for read-only passes (LARS norms).
template <class P, bool kWriteParam, class Body>
FUSEDOPT_INLINE void for_each_tile(const ParamLists& L, const ChunkRef& ck, Body&& body) {
  using C = ComputeT<P>;
  const int64_t t = ck.tensor;
  P* param = static_cast<P*>(L.param[t]);
  const P* grad = static_cast<const P*>(L.grad[t]);
  C* s[kMaxStates] = {nullptr, nullptr, nullptr};
  for (int k = 0; k < L.num_states; ++k) s[k] = static_cast<C*>(L.state[k][t]);
  float* master = L.master ? L.master[t] : nullptr;

  if constexpr (std::is_same_v<P, C>) {
    if (master == nullptr) {  // in place, one pass over the whole chunk
      const int64_t b = ck.begin, n = ck.end - ck.begin;
      body(param + b, grad + b, s[0] ? s[0] + b : nullptr, s[1] ? s[1] + b : nullptr,
           s[2] ? s[2] + b : nullptr, n);
      return;
    }
  }
  alignas(64) C pbuf[kTile];
  alignas(64) C gbuf[kTile];
  for (int64_t b = ck.begin; b < ck.end; b += kTile) {
    const int64_t n = ck.end - b < kTile ? ck.end - b : kTile;
    for (int64_t i = 0; i < n; ++i) gbuf[i] = StorageTraits<P>::load(grad[b + i]);
    C* p;
    if constexpr (std::is_same_v<C, float>) {
      p = master ? master + b : pbuf;
    } else {
      p = pbuf;  // float64 params never carry fp32 masters (validated upstream)
    }
    if (p == pbuf)
      for (int64_t i = 0; i < n; ++i) pbuf[i] = StorageTraits<P>::load(param[b + i]);
    body(p, static_cast<const C*>(gbuf), s[0] ? s[0] + b : nullptr, s[1] ? s[1] + b : nullptr,
         s[2] ? s[2] + b : nullptr, n);
    if constexpr (kWriteParam)
      for (int64_t i = 0; i < n; ++i) param[b + i] = StorageTraits<P>::store(p[i]);
  }
}

// Fixed-lane double accumulators: lane j receives the squares of elements j, j + kLanes, ... of a
// chunk, in order, and the lanes are summed 0..kLanes-1 at the end, so every lane sees the same
// IEEE operations in the same order on every level and with any thread count. The 16 lanes live
// in accumulator vectors of the level's register width (FUSEDOPT_CPU_VECTOR_BYTES: 64 avx512,
// 32 avx2, 16 baseline / NEON). With vectors wider than the registers (16 lanes as two 64-byte
// vectors on avx2), GCC keeps the accumulators on the stack and shuffles them through xmm halves
// every iteration: LARS's norm pass then ran at half the avx512 speed (docs/cpu.md).
#ifndef FUSEDOPT_CPU_VECTOR_BYTES
#define FUSEDOPT_CPU_VECTOR_BYTES 16
#endif
#ifndef FUSEDOPT_CPU_VECTOR_REGISTERS  // architectural vector registers of the level
#if defined(__aarch64__)
#define FUSEDOPT_CPU_VECTOR_REGISTERS 32
#else
#define FUSEDOPT_CPU_VECTOR_REGISTERS 16
#endif
#endif
constexpr int kAccBytes = FUSEDOPT_CPU_VECTOR_BYTES;
constexpr int kAccDoubles = kAccBytes / 8;          // lanes per accumulator vector
constexpr int kAccVectors = kLanes / kAccDoubles;  // accumulator vectors per LaneAcc
static_assert(kLanes % kAccDoubles == 0, "the lanes fill whole accumulator vectors");
typedef double AccD __attribute__((vector_size(kAccBytes)));
typedef float AccF __attribute__((vector_size(kAccBytes / 2)));  // converts into one AccD

struct LaneAcc {
  AccD acc[kAccVectors] = {};

  // Lanes 0..15 += (x[j] * mult)^2, the product x * mult rounded in x's type (as the scalar
  // code would), the square and the sum in double.
  FUSEDOPT_INLINE void add16(const float* x, float mult) {
    for (int k = 0; k < kAccVectors; ++k) {
      AccF a;
      __builtin_memcpy(&a, x + k * kAccDoubles, sizeof a);
      a = a * mult;
      // GCC lowers the generic conversion through halves of the register (two converts and an
      // insert per vector): the x86 levels name the one instruction.
#if defined(FUSEDOPT_CPU_AVX512)
      const AccD d = _mm512_maskz_cvtps_pd(0xff, __m256(a));
#elif defined(FUSEDOPT_CPU_AVX2)
      const AccD d = _mm256_cvtps_pd(__m128(a));
#else
      const AccD d = __builtin_convertvector(a, AccD);
#endif
      acc[k] += d * d;
    }
  }
  FUSEDOPT_INLINE void add16(const double* x, double mult) {
    for (int k = 0; k < kAccVectors; ++k) {
      AccD a;
      __builtin_memcpy(&a, x + k * kAccDoubles, sizeof a);
      a = a * mult;
      acc[k] += a * a;
    }
  }
  template <class C>
  FUSEDOPT_INLINE void add_one(int j, C x, C mult) {
    const double d = double(x * mult);
    acc[j / kAccDoubles][j % kAccDoubles] += d * d;
  }
  // Elements x[0..n) (x must start at a multiple of kLanes within its chunk).
  template <class C>
  FUSEDOPT_INLINE void add(const C* x, int64_t n, C mult) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) add16(x + i, mult);
    for (int j = 0; i + j < n; ++j) add_one(j, x[i + j], mult);
  }
  double total() const {
    double s = 0.0;
    for (int j = 0; j < kLanes; ++j) s += acc[j / kAccDoubles][j % kAccDoubles];
    return s;
  }
};

// ---- optimizers ----------------------------------------------------------------------------
// One chunk of an Elementwise optimizer (math::ElementwiseStep<Hyper>) that keeps kStates states.
template <class Hyper, int kStates, class P>
void elementwise_chunk(const ParamLists& L, const Hyper& h, double lr, double inv_scale,
                       const ChunkRef& ck) {
  using C = ComputeT<P>;
  using Step = math::ElementwiseStep<Hyper>;
  const auto k = Step::template coeffs<C>(h, lr, *L.step[ck.tensor], inv_scale);
  const Hyper flags = h;  // a local copy: no store through p or the states can change it
  for_each_tile<P, true>(L, ck, [&](C* __restrict p, const C* __restrict g, C* __restrict s0,
                                    C* __restrict s1, C* __restrict s2, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      C unused0 = C(0), unused1 = C(0), unused2 = C(0);  // states this call does not keep
      Step::template element<C, kStates>(p[i], g[i], kStates > 0 ? s0[i] : unused0,
                                         kStates > 1 ? s1[i] : unused1,
                                         kStates > 2 ? s2[i] : unused2, flags, k);
    }
  });
}

// Runs elementwise_chunk for the lists' state count, among those the declaration allows.
template <class Hyper, class P, int kStates = Declared<Hyper>::min_states()>
void elementwise_chunk_for(const ParamLists& L, const Hyper& h, double lr, double inv_scale,
                           const ChunkRef& ck) {
  if constexpr (kStates < Declared<Hyper>::kStates) {
    if (L.num_states != kStates)
      return elementwise_chunk_for<Hyper, P, kStates + 1>(L, h, lr, inv_scale, ck);
  }
  elementwise_chunk<Hyper, kStates, P>(L, h, lr, inv_scale, ck);
}

// u_out (optional): receives the update direction u of the chunk's elements (compute type,
// element ck.begin + i at u_out[i]) so that pass 2 need not recompute it.
template <class P>
SquaresPartial lamb_moments_chunk(const ParamLists& L, const LambHyper& h, double inv_scale,
                                  float global_grad_norm, void* u_out, const ChunkRef& ck) {
  using C = ComputeT<P>;
  const auto c = math::lamb_coeffs<C>(h, *L.step[ck.tensor], inv_scale, global_grad_norm);
  LaneAcc sp, su;
  C* const uo = static_cast<C*>(u_out);
  int64_t off = 0;  // offset of the body's first element within the chunk
  for_each_tile<P, false>(L, ck, [&](C* __restrict p, const C* __restrict g, C* __restrict m,
                                     C* __restrict v, C*, int64_t n) {
    // Per piece of kPiece elements: the update loop (vectorized like Adam's) writes u to a
    // buffer, then the lane sums read p and u back from L1. Pieces start at multiples of kLanes
    // within the chunk, so each element still lands in lane (offset % kLanes), in order.
    // kPiece = 128: measured against 64, 256 and 1024 (the tile), interleaved in one process,
    // 64M elements: LAMB / AdamW 1.57 -> 1.50 (GPT-2-like), 1.48 -> 1.42 (BERT-like), up to
    // 2.05 -> 1.78 in fast-memory phases; 256 and 1024 lose, 64 is mixed.
    constexpr int64_t kPiece = 128;
    static_assert(kPiece % kLanes == 0 && kTile % kPiece == 0, "pieces keep the lanes");
    alignas(64) C ubuf[kPiece];
    for (int64_t b = 0; b < n; b += kPiece) {
      const int64_t k = n - b < kPiece ? n - b : kPiece;
      C* __restrict pb = p + b;
      const C* __restrict gb = g + b;
      C* __restrict mb = m + b;
      C* __restrict vb = v + b;
      C* __restrict ub = uo ? uo + off + b : ubuf;
      for (int64_t i = 0; i < k; ++i)
        ub[i] = math::lamb_moments<C>(pb[i], gb[i], mb[i], vb[i], c);
      sp.add(pb, k, C(1));
      su.add(static_cast<const C*>(ub), k, C(1));
    }
    off += n;
  });
  return {sp.total(), su.total()};
}

template <class P>
void lamb_apply_chunk(const ParamLists& L, const LambHyper& h, double inv_scale,
                      float global_grad_norm, float scaled_lr, const ChunkRef& ck) {
  using C = ComputeT<P>;
  const auto c = math::lamb_coeffs<C>(h, *L.step[ck.tensor], inv_scale, global_grad_norm);
  const C lr = C(scaled_lr);
  for_each_tile<P, true>(L, ck, [&](C* __restrict p, const C*, C* __restrict m, C* __restrict v,
                                    C*, int64_t n) {
    for (int64_t i = 0; i < n; ++i) math::lamb_apply<C>(p[i], m[i], v[i], lr, c);
  });
}

// Pass 2 from the directions pass 1 stored (lamb_moments_chunk's u_out): math::lamb_apply is
// p - scaled_lr * lamb_update_direction(p, m, v), and pass 1 evaluated that direction on the
// same p, m, v, so this gives the same bits without reading m, v or recomputing.
template <class P>
void lamb_apply_direction_chunk(const ParamLists& L, float scaled_lr, const void* u,
                                const ChunkRef& ck) {
  using C = ComputeT<P>;
  const C lr = C(scaled_lr);
  const C* const ui = static_cast<const C*>(u);
  int64_t off = 0;
  for_each_tile<P, true>(L, ck, [&](C* __restrict p, const C*, C*, C*, C*, int64_t n) {
    const C* __restrict ub = ui + off;
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] - lr * ub[i];
    off += n;
  });
}

template <class P>
SquaresPartial lars_norms_chunk(const ParamLists& L, double inv_scale, const ChunkRef& ck) {
  using C = ComputeT<P>;
  const C inv = C(inv_scale);
  LaneAcc sp, sg;
  for_each_tile<P, false>(L, ck, [&](C* __restrict p, const C* __restrict g, C*, C*, C*,
                                     int64_t n) {
    // Two concurrent streams read faster than one after the other. Where both accumulator
    // sets fit in registers, p and g go through the same loop; alternating 4 KB tiles of each
    // restarts the hardware prefetcher on a new page at every tile (without huge pages that
    // cost 20% at avx2; docs/cpu.md). With 16 xmm registers (x86 baseline) the two sets would
    // spill, so there the tiles alternate. Same bits either way: each lane sums in order.
    if constexpr (2 * kAccVectors + 4 <= FUSEDOPT_CPU_VECTOR_REGISTERS) {
      int64_t i = 0;
      for (; i + kLanes <= n; i += kLanes) {
        sp.add16(static_cast<const C*>(p) + i, C(1));
        sg.add16(g + i, inv);
      }
      sp.add(static_cast<const C*>(p) + i, n - i, C(1));  // tails: i is a multiple of kLanes
      sg.add(g + i, n - i, inv);
    } else {
      for (int64_t b = 0; b < n; b += kTile) {
        const int64_t k = n - b < kTile ? n - b : kTile;
        sp.add(static_cast<const C*>(p) + b, k, C(1));
        sg.add(g + b, k, inv);
      }
    }
  });
  return {sp.total(), sg.total()};
}

template <class P>
void lars_apply_chunk(const ParamLists& L, const LarsHyper& h, double lr, double inv_scale,
                      float weight_decay, float trust_ratio, const ChunkRef& ck) {
  using C = ComputeT<P>;
  const auto c = math::momentum_coeffs<C>(lr, h.momentum, h.dampening, *L.step[ck.tensor]);
  const C inv = C(inv_scale), wd = C(weight_decay), ratio = C(trust_ratio);
  const bool nesterov = h.nesterov;
  auto run = [&](auto momentum_tag) {
    constexpr bool kMomentum = decltype(momentum_tag)::value;
    for_each_tile<P, true>(L, ck, [&](C* __restrict p, const C* __restrict g, C* __restrict buf,
                                      C*, C*, int64_t n) {
      for (int64_t i = 0; i < n; ++i) {
        C unused = C(0);
        math::lars_element<C>(p[i], g[i] * inv, kMomentum ? buf[i] : unused, wd, ratio,
                              kMomentum, nesterov, c);
      }
    });
  };
  if (h.momentum != 0.0f) run(std::true_type{});
  else run(std::false_type{});
}

// Sums of squares of (x * mult) over ranges of one or two arrays, a tile of each in turn: a core
// streaming from two places at once reads faster than from one (the grad-norm pass only
// reads). Each range's sum is what it would be alone: tiles start at multiples of kLanes.
template <class S>
void sum_squares_typed(const SquaresRange* ranges, int count, double mult, double* out) {
  using C = ComputeT<S>;
  const C k = C(mult);
  LaneAcc acc[2];
  int64_t longest = 0;
  for (int r = 0; r < count; ++r) longest = std::max(longest, ranges[r].end - ranges[r].begin);
  for (int64_t off = 0; off < longest; off += kTile) {
    for (int r = 0; r < count; ++r) {
      const S* x = static_cast<const S*>(ranges[r].ptr);
      const int64_t b = ranges[r].begin + off, n = std::min(kTile, ranges[r].end - b);
      if (n <= 0) continue;
      if constexpr (std::is_same_v<S, C>) {
        acc[r].add(x + b, n, k);
      } else {
        alignas(64) C buf[kTile];
        for (int64_t i = 0; i < n; ++i) buf[i] = StorageTraits<S>::load(x[b + i]);
        acc[r].add(static_cast<const C*>(buf), n, k);
      }
    }
  }
  for (int r = 0; r < count; ++r) out[r] = acc[r].total();
}

// ---- the table ------------------------------------------------------------------------------
#define FUSEDOPT_DISPATCH_P(dtype, call)                                           \
  dispatch_storage(dtype, [&](auto* tag) {                                         \
    using P = std::remove_pointer_t<decltype(tag)>;                                \
    return call;                                                                   \
  })

// constexpr: the table of each level is a compile-time constant, so loading the library runs no
// code compiled for that level (see kernel_table.h).
constexpr KernelTable kernel_table(const char* name) {
  KernelTable t{};
  t.name = name;
#define FUSEDOPT_ELEMENTWISE_EACH(entry, Hyper)                                             \
  t.entry = [](const ParamLists& L, const Hyper& h, double lr, double inv, const ChunkRef& ck) { \
    FUSEDOPT_DISPATCH_P(L.param_dtype, (elementwise_chunk_for<Hyper, P>(L, h, lr, inv, ck)));  \
  };
  FUSEDOPT_FOR_EACH_ELEMENTWISE_OP
#undef FUSEDOPT_ELEMENTWISE_EACH
  t.lamb_moments = [](const ParamLists& L, const LambHyper& h, double inv, float gnorm,
                      void* u_out, const ChunkRef& ck) {
    return FUSEDOPT_DISPATCH_P(L.param_dtype,
                               lamb_moments_chunk<P>(L, h, inv, gnorm, u_out, ck));
  };
  t.lamb_apply_direction = [](const ParamLists& L, float scaled_lr, const void* u,
                              const ChunkRef& ck) {
    FUSEDOPT_DISPATCH_P(L.param_dtype, lamb_apply_direction_chunk<P>(L, scaled_lr, u, ck));
  };
  t.lamb_apply = [](const ParamLists& L, const LambHyper& h, double inv, float gnorm,
                    float scaled_lr, const ChunkRef& ck) {
    FUSEDOPT_DISPATCH_P(L.param_dtype, lamb_apply_chunk<P>(L, h, inv, gnorm, scaled_lr, ck));
  };
  t.lars_norms = [](const ParamLists& L, double inv, const ChunkRef& ck) {
    return FUSEDOPT_DISPATCH_P(L.param_dtype, lars_norms_chunk<P>(L, inv, ck));
  };
  t.lars_apply = [](const ParamLists& L, const LarsHyper& h, double lr, double inv, float wd,
                    float ratio, const ChunkRef& ck) {
    FUSEDOPT_DISPATCH_P(L.param_dtype, lars_apply_chunk<P>(L, h, lr, inv, wd, ratio, ck));
  };
  t.sum_squares = [](const SquaresRange* ranges, int count, DType dtype, double mult,
                     double* out) {
    FUSEDOPT_DISPATCH_P(dtype, sum_squares_typed<P>(ranges, count, mult, out));
  };
  return t;
}
#undef FUSEDOPT_DISPATCH_P
