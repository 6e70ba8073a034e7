// conv.cpp -- 2-D convolution (cross-correlation) forward and backward, by im2col + GEMM.
//
// Size letters:
//   N  batch   C  input channels   K  output channels (filters)
//   H W  image height/width   KH KW  kernel height/width   SH SW  stride
//   PH PW  zero padding   OH OW  output height/width (conv_out_size, geometry.h)
//   CKK = C*KH*KW (one column of im2col)   OHW = OH*OW (output pixels per image)
//   G  images per group   S  images per sub-chunk (S <= G)   q = s*OHW columns of a sub-chunk
//
// Contract (see fastcnn.h): buffers are float32, C-contiguous, owned by the
// caller; the caller (bindings.cpp) has checked every size. Outputs are
// OVERWRITTEN, nothing accumulates across calls.
//   forward:  out (N,K,OH,OW) = w (K,C,KH,KW) * x (N,C,H,W) + b (K) [b may be null],
//             or relu of it (relu = true): applied to each image's output right
//             after its GEMM (per image) or in the scatter (batched), so the
//             output is not read and written once more by a separate relu pass
//   backward: from dout (N,K,OH,OW):
//             db (K)          = sum of dout over n, oh, ow            [may be null]
//             dw (K,C,KH,KW)  = sum over n of dout[n] (K, OHW) . cols[n]^T (OHW, CKK)
//             dx (N,C,H,W)    = col2im of w^T (CKK, K) . dout[n] (K, OHW)  [may be null: skipped]
//
// Parallelism over the batch. The batch is cut into groups of G images, with
// G depending only on N (at most kMaxGroups groups), and the groups are the
// tasks threads take in turn: each runs im2col, its GEMMs (single-threaded:
// the GEMMs of a mini-batch of 10 are too small to split well), the scatter
// or gather and col2im for its own images, with its own scratch. One parallel
// region per call; a thread delayed by another process on this shared
// machine does not hold up the others' tasks. With one group (or one thread)
// the groups run in order on the calling thread and the GEMMs may use every
// thread instead.
//
// Within a group, images go in sub-chunks of S so a sub-chunk's scratch is
// about kChunkBytes = 1 MiB (cols stays in the caches between im2col and the
// GEMMs; measured earlier: 25-30% faster than one 32 MiB chunk). Two ways to
// run the GEMMs of a sub-chunk, picked by OHW:
//   per image (OHW >= kPerImageMinOHW, e.g. first layers on 28x28 images):
//     one GEMM per image reading dout[n] / writing out[n] in place, as both
//     are (K, OHW) matrices already. The forward GEMM adds the bias: w gets b
//     as one more column, cols one more row of ones.
//   batched (small OHW, e.g. 8x8 outputs): one GEMM over a K-row matrix
//     (K, q): forward writes it and scatters it into out adding the bias;
//     backward first gathers dout into it.
//
// dw: each group sums its images' contributions into its own slot of
// dw_parts (the GEMMs accumulate, image by image or sub-chunk by sub-chunk),
// and the slots are added in group order at the end. The grouping depends on
// N only, so dw does not depend on the thread count or on which thread ran
// which group.
//
// conv2d_maxpool (forward and backward) runs the same passes with the max-pool
// folded in: the forward GEMM of an image writes into the thread's scratch
// (per image) or the K-row matrix (batched), and each plane is pooled from
// there with its choice recorded; the conv's full output is never stored. The
// backward builds each image's dz from the pooled gradient and the choices in
// the same place, right before its GEMMs. The two passes are templates over
// that one difference (PlainForward / PoolForward, PlainDz / PoolDz), so the
// fused op computes bit for bit what conv2d, relu, maxpool2d and their
// backward passes compute in sequence (overlapping pooling windows: the same
// values, added up in another order).
//
// db: per (image, k) a float sum of OHW values in 8 interleaved partial sums
// (vectorised, error ~ OHW/8 roundings), taken while the image's dz is in
// cache, then summed over images in order, in float.
//
// Scratch (allocated before any parallel region; may throw std::bad_alloc):
// per thread cols (CKK+1, S*OHW) and on the batched path the K-row matrix
// (K, S*OHW), on the per-image path of the fused op one (K, OHW) plane set;
// w_bias (K, CKK+1) forward per image; dw_parts (groups, K, CKK); db_parts (N, K).
#include "common.h"
#include "fastcnn.h"
#include "threadpool.h"
#include "scratch.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace fastcnn {

namespace {

constexpr int64_t kChunkBytes = int64_t(1) << 20;  // scratch per sub-chunk, see above

// The per-image GEMMs need this many output pixels (columns) to be efficient.
// Measured: per image is 10-35% faster on 24x24 / 26x26 outputs (576 / 676
// columns), 5-10% slower on 8x8 / 11x11 (64 / 121).
constexpr int64_t kPerImageMinOHW = 256;

// At most this many groups (tasks) per call: 16 balances 2 threads well at
// any batch (a batch of 10 is 10 groups of 1). And at most kPartsBytes of dw
// slots, so a large layer gets fewer, larger groups.
constexpr int64_t kMaxGroups = 16;
constexpr int64_t kPartsBytes = int64_t(8) << 20;

// The SSE2 max-pool reads up to this many floats past the last window of a
// row; each thread's forward scratch has them to spare after its last plane.
constexpr int64_t kPoolOverread = 16;

struct Plan {
    bool per_image;   // GEMMs per image, else per sub-chunk with a K-row matrix
    int64_t G;        // images per group
    int64_t groups;   // ceil(N / G)
    int64_t S;        // images per sub-chunk
    int threads;      // threads sharing the groups (1: in order on this thread)
};

Plan make_plan(int64_t N, int64_t CKK, int64_t K, int64_t OHW) {
    Plan p{};
    p.per_image = OHW >= kPerImageMinOHW;
    const int64_t max_groups = std::max<int64_t>(
        1, std::min(kMaxGroups, kPartsBytes / static_cast<int64_t>(sizeof(float)) / (K * CKK)));
    p.G = ceil_div(N, std::min(N, max_groups));
    p.groups = ceil_div(N, p.G);
    // Scratch per image of a sub-chunk: its columns (+ the row of ones), plus
    // its part of the K-row matrix on the batched path.
    const int64_t per_image_floats = p.per_image ? (CKK + 1) * OHW : (CKK + K) * OHW;
    const int64_t fit = kChunkBytes / static_cast<int64_t>(sizeof(float)) / per_image_floats;
    p.S = std::max<int64_t>(1, std::min(p.G, fit));
    const int64_t threads = get_num_threads();
    p.threads = static_cast<int>(std::min<int64_t>(threads, p.groups));
    return p;
}

// Runs body(g, t) for the groups g in [0, plan.groups), t = the thread's
// index (for its scratch): shared out dynamically among plan.threads threads,
// or in order here. An exception (sgemm's std::bad_alloc) is rethrown here.
template <class Body>
void for_each_group(const Plan& plan, Body body) {
    pool::parallel_for_dynamic(plan.groups, plan.threads, body);
}

void relu_in_place(float* v, int64_t count) {
    for (int64_t i = 0; i < count; ++i) v[i] = relu_value(v[i]);
}

// op(A) (M, K) of the GEMMs a conv call runs once per image or sub-chunk (w,
// [w | b] or w^T), packed once (sgemm_pack_a) when it is small enough, so no
// GEMM packs it again. gemm(n, B, ldb, C, ldc): C (M, n) = op(A) . B (K, n),
// write-only C, on the calling thread; sgemm_serial when op(A) was too large to pack.
class PackedWeights {
public:
    PackedWeights(bool trans, int64_t M, int64_t K, const float* A, int64_t lda)
        : trans_(trans), M_(M), K_(K), A_(A), lda_(lda),
          packed_(static_cast<size_t>(sgemm_packed_a_size(M, K))) {
        if (packed_.size() > 0) layout_ = sgemm_pack_a(trans, M, K, 1.0f, A, lda, packed_.get());
    }
    void gemm(int64_t n, const float* B, int64_t ldb, float* C, int64_t ldc) const {
        if (packed_.size() == 0) {
            sgemm_serial(trans_, false, M_, n, K_, 1.0f, A_, lda_, B, ldb, 0.0f, C, ldc);
        } else {
            sgemm_with_packed_a(layout_, packed_.get(), M_, n, K_, false, B, ldb, 0.0f, C, ldc);
        }
    }

private:
    bool trans_;
    int64_t M_, K_;
    const float* A_;
    int64_t lda_;
    Scratch packed_;
    int layout_ = 0;  // the SIMD path packed_ was packed for
};

// Sum of v[0..count) in float: 8 interleaved partial sums, combined pairwise.
float sum_floats(const float* v, int64_t count) {
    float lane[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int64_t p = 0;
    for (; p + 8 <= count; p += 8) {
        for (int l = 0; l < 8; ++l) lane[l] += v[p + l];
    }
    float tail = 0.0f;
    for (; p < count; ++p) tail += v[p];
    return ((lane[0] + lane[4]) + (lane[1] + lane[5])) +
           ((lane[2] + lane[6]) + (lane[3] + lane[7])) + tail;
}


// ---- where the forward GEMMs' results go.
// An epilogue decides where a per-image GEMM writes image n's (K, OHW) result
// (target: straight into out, or into the thread's scratch), then finishes
// image n: z + k*kstride is channel k's (OH, OW) plane; add_bias: b[k] is
// still to be added (batched path; the per-image GEMM has added it).

// conv2d: out (N, K, OH, OW), relu or not.
struct PlainForward {
    float* out;
    const float* b;
    int64_t K, OHW;
    bool relu;

    static constexpr bool kScratch = false;
    float* target(int64_t n, float* /*scratch*/) const { return out + n * K * OHW; }
    void finish(int64_t n, float* z, int64_t kstride, bool add_bias) const {
        float* out_n = out + n * K * OHW;
        if (z == out_n) {  // written in place by the per-image GEMM
            if (relu) relu_in_place(out_n, K * OHW);  // still in L2
            return;
        }
        for (int64_t k = 0; k < K; ++k) {
            const float* src = z + k * kstride;    // (OHW)
            float* dst = out_n + k * OHW;          // out[n][k] (OHW)
            const float bias = add_bias && b ? b[k] : 0.0f;
            if (relu) {
                for (int64_t p = 0; p < OHW; ++p) dst[p] = relu_value(src[p] + bias);
            } else {
                for (int64_t p = 0; p < OHW; ++p) dst[p] = src[p] + bias;
            }
        }
    }
};

// The max-pool that follows a fused conv: window PKH x PKW, stride PSH x PSW
// over the conv's (OH, OW) output; pooled output (POH, POW).
struct PoolGeom {
    int64_t PKH, PKW, PSH, PSW, POH, POW;
    bool overlapping() const { return PSH < PKH || PSW < PKW; }
};

#if defined(__SSE2__)
// Selects a where mask is set, else b.
inline __m128 select_ps(__m128 mask, __m128 a, __m128 b) {
    return _mm_or_ps(_mm_and_ps(mask, a), _mm_andnot_ps(mask, b));
}
inline __m128i select_epi32(__m128 mask, __m128i a, __m128i b) {
    const __m128i m = _mm_castps_si128(mask);
    return _mm_or_si128(_mm_and_si128(m, a), _mm_andnot_si128(m, b));
}

// relu_value on four lanes: v where v > 0 or v is NaN, else +0.
inline __m128 relu_ps(__m128 v) {
    return _mm_and_ps(_mm_or_ps(_mm_cmpgt_ps(v, _mm_setzero_ps()), _mm_cmpunord_ps(v, v)), v);
}

// The fast path of maxpool_choice_plane for one row of 2x2 windows, four at a
// time: top/bottom are the windows' two rows, act as there (the bias added
// when add, then relu when relu). The whole row: a short last group reads
// past the row's end (within kPoolOverread floats, which the scratch the rows
// live in has to spare). Returns count.
int64_t maxpool_choice_2x2_row_sse2(float* out_row, uint8_t* choice_row, const float* top,
                                    const float* bottom, int64_t count, bool add, float bias,
                                    bool relu) {
    const __m128 bias4 = _mm_set1_ps(bias);
    auto act = [&](__m128 v) {
        if (add) v = _mm_add_ps(v, bias4);
        return relu ? relu_ps(v) : v;
    };
    int64_t pw = 0;
    for (; pw < count; pw += 4) {
        // A short last group reads up to 7 floats past its row (kPoolOverread):
        // values of no window, never stored.
        const __m128 t0 = _mm_loadu_ps(top + 2 * pw), t1 = _mm_loadu_ps(top + 2 * pw + 4);
        const __m128 u0 = _mm_loadu_ps(bottom + 2 * pw), u1 = _mm_loadu_ps(bottom + 2 * pw + 4);
        const __m128 v[4] = {act(_mm_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0))),   // (0, 0)
                             act(_mm_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1))),   // (0, 1)
                             act(_mm_shuffle_ps(u0, u1, _MM_SHUFFLE(2, 0, 2, 0))),   // (1, 0)
                             act(_mm_shuffle_ps(u0, u1, _MM_SHUFFLE(3, 1, 3, 1)))};  // (1, 1)
        __m128 m = v[0];
        __m128i idx = _mm_setzero_si128();
        for (int e = 1; e < 4; ++e) {
            // takes_over(v, m): m is not NaN and (v is NaN or v > m)
            const __m128 t = _mm_and_ps(_mm_cmpord_ps(m, m),
                                        _mm_or_ps(_mm_cmpunord_ps(v[e], v[e]), _mm_cmpgt_ps(v[e], m)));
            m = select_ps(t, v[e], m);
            idx = select_epi32(t, _mm_set1_epi32(e), idx);
        }
        if (relu) {  // not > 0 (NaN included): no gradient
            idx = select_epi32(_mm_cmpngt_ps(m, _mm_setzero_ps()), _mm_set1_epi32(kNoGradient), idx);
        }
        const __m128i words = _mm_packs_epi32(idx, idx);       // 0..255 fit
        const __m128i bytes = _mm_packus_epi16(words, words);
        const int32_t four = _mm_cvtsi128_si32(bytes);
        const int64_t lanes = count - pw < 4 ? count - pw : 4;  // the last group may be short
        if (lanes == 4) {
            _mm_storeu_ps(out_row + pw, m);
            std::memcpy(choice_row + pw, &four, sizeof four);
        } else {
            alignas(16) float m4[4];
            _mm_store_ps(m4, m);
            std::memcpy(out_row + pw, m4, static_cast<size_t>(lanes) * sizeof(float));
            std::memcpy(choice_row + pw, &four, static_cast<size_t>(lanes));
        }
    }
    return pw;
}

// The 2x2 fast path of PoolDz::plane for one row of windows, four at a time:
// each window's gradient g to its chosen element, 0 to the other three.
int64_t unpool_2x2_row_sse2(float* top, float* bottom, const float* g_row,
                            const uint8_t* c_row, int64_t count) {
    int64_t pw = 0;
    const __m128i zero = _mm_setzero_si128();
    for (; pw + 4 <= count; pw += 4) {
        const __m128 g = _mm_loadu_ps(g_row + pw);
        int32_t four;
        std::memcpy(&four, c_row + pw, sizeof four);
        const __m128i c = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(four), zero), zero);
        __m128 part[4];
        for (int e = 0; e < 4; ++e) {
            part[e] = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(c, _mm_set1_epi32(e))), g);
        }
        _mm_storeu_ps(top + 2 * pw, _mm_unpacklo_ps(part[0], part[1]));
        _mm_storeu_ps(top + 2 * pw + 4, _mm_unpackhi_ps(part[0], part[1]));
        _mm_storeu_ps(bottom + 2 * pw, _mm_unpacklo_ps(part[2], part[3]));
        _mm_storeu_ps(bottom + 2 * pw + 4, _mm_unpackhi_ps(part[2], part[3]));
    }
    return pw;
}
#endif

// One plane of conv2d_maxpool: out / choice (POH, POW) from z (OH, OW), the
// conv output before its epilogue: each value v becomes conv2d's output as
// PlainForward computes it (v + bias when add, then relu_value when relu),
// then maxpool2d's rule picks (first NaN, else first maximum). choice is the
// window offset i*PKW + j of the chosen element, or kNoGradient where relu is
// on and the pooled value is not > 0 (relu_backward passes nothing there).
// 2x2 stride-2 windows (the common case) go four at a time with SSE2 compares
// and selects where the compiler has SSE2 (every x86-64): on real data the
// compares go either way, and the scalar code below is what it computes.
void maxpool_choice_plane(float* out, uint8_t* choice, const float* z, int64_t OW, bool add,
                          float bias, bool relu, const PoolGeom& pg) {
    auto act = [=](float v) {
        if (add) v = v + bias;
        return relu ? relu_value(v) : v;
    };
    const bool fast = is_2x2_stride2(pg.PKH, pg.PKW, pg.PSH, pg.PSW);
    for (int64_t ph = 0; ph < pg.POH; ++ph) {
        float* out_row = out + ph * pg.POW;
        uint8_t* choice_row = choice + ph * pg.POW;
        const float* top = z + ph * pg.PSH * OW;   // row of the windows' top-left corners
        int64_t pw = 0;
        if (fast) {
            const float* bottom = top + OW;
#if defined(__SSE2__)
            pw = maxpool_choice_2x2_row_sse2(out_row, choice_row, top, bottom, pg.POW, add, bias,
                                             relu);
#endif
            for (; pw < pg.POW; ++pw) {
                const float v[4] = {act(top[2 * pw]), act(top[2 * pw + 1]),
                                    act(bottom[2 * pw]), act(bottom[2 * pw + 1])};
                float m = v[0];
                int32_t idx = 0;
                for (int e = 1; e < 4; ++e) {
                    const bool t = takes_over_nobranch(v[e], m);
                    m = t ? v[e] : m;
                    idx = t ? e : idx;
                }
                const bool none = relu && !(m > 0.0f);
                out_row[pw] = m;
                choice_row[pw] = static_cast<uint8_t>(none ? int32_t{kNoGradient} : idx);
            }
            continue;
        }
        for (; pw < pg.POW; ++pw) {
            const float* win = top + pw * pg.PSW;
            float m = act(win[0]);
            int32_t idx = 0;
            for (int64_t i = 0; i < pg.PKH; ++i) {
                for (int64_t j = 0; j < pg.PKW; ++j) {
                    const float v = act(win[i * OW + j]);
                    const bool t = takes_over_nobranch(v, m);
                    m = t ? v : m;
                    idx = t ? static_cast<int32_t>(i * pg.PKW + j) : idx;
                }
            }
            const bool none = relu && !(m > 0.0f);
            out_row[pw] = m;
            choice_row[pw] = static_cast<uint8_t>(none ? int32_t{kNoGradient} : idx);
        }
    }
}

// conv2d_maxpool: pooled out (N, K, POH, POW) and choice; the conv's own
// output lives only in the thread's scratch (per-image path) or the K-row
// matrix (batched path), one image at a time.
struct PoolForward {
    float* out;
    uint8_t* choice;
    const float* b;
    int64_t K, OW;
    PoolGeom pg;
    bool relu;

    static constexpr bool kScratch = true;
    float* target(int64_t /*n*/, float* scratch) const { return scratch; }
    void finish(int64_t n, float* z, int64_t kstride, bool add_bias) const {
        const int64_t PHW = pg.POH * pg.POW;
        for (int64_t k = 0; k < K; ++k) {
            // as PlainForward: + (b[k] or 0) on the batched path, then relu
            maxpool_choice_plane(out + (n * K + k) * PHW, choice + (n * K + k) * PHW,
                                 z + k * kstride, OW, add_bias, add_bias && b ? b[k] : 0.0f,
                                 relu, pg);
        }
    }
};

// ---- where the backward GEMMs' dz (gradient of the conv output) comes from.
// image(n, scratch): image n's dz (K, OHW), contiguous; fill(n, dst, kstride):
// the same written to dst with channel k's plane at dst + k*kstride.

// conv2d_backward: dz is dout itself.
struct PlainDz {
    const float* dout;
    int64_t K, OHW;

    static constexpr bool kScratch = false;
    const float* image(int64_t n, float* /*scratch*/) const { return dout + n * K * OHW; }
    void fill(int64_t n, float* dst, int64_t kstride) const {
        for (int64_t k = 0; k < K; ++k) {
            const float* src = dout + (n * K + k) * OHW;
            std::copy(src, src + OHW, dst + k * kstride);
        }
    }
};

// conv2d_maxpool_backward: dz = each pooled gradient sent to its window's
// chosen element (none where choice is kNoGradient), 0 elsewhere -- what
// maxpool2d_backward (after relu_backward) writes. Non-overlapping windows
// assign (bit for bit maxpool2d_backward's values, -0 included), overlapping
// ones add up.
struct PoolDz {
    const float* dout;        // (N, K, POH, POW)
    const uint8_t* choice;    // (N, K, POH, POW)
    int64_t K, OH, OW;
    PoolGeom pg;

    static constexpr bool kScratch = true;
    void plane(float* dz, const float* g, const uint8_t* c) const {
        if (is_2x2_stride2(pg.PKH, pg.PKW, pg.PSH, pg.PSW)) {
            // Every covered element written once, branch-free (as maxpool2d_backward).
            for (int64_t ph = 0; ph < pg.POH; ++ph) {
                float* top = dz + 2 * ph * OW;
                float* bottom = top + OW;
                const float* g_row = g + ph * pg.POW;
                const uint8_t* c_row = c + ph * pg.POW;
                int64_t pw = 0;
#if defined(__SSE2__)
                pw = unpool_2x2_row_sse2(top, bottom, g_row, c_row, pg.POW);
#endif
                for (; pw < pg.POW; ++pw) {
                    const float v = g_row[pw];
                    const int32_t k = c_row[pw];
                    top[2 * pw] = k == 0 ? v : 0.0f;
                    top[2 * pw + 1] = k == 1 ? v : 0.0f;
                    bottom[2 * pw] = k == 2 ? v : 0.0f;
                    bottom[2 * pw + 1] = k == 3 ? v : 0.0f;
                }
            }
            // the last column (odd OW) and row (odd OH) the floor leaves out
            if (2 * pg.POW < OW) {
                for (int64_t h = 0; h < 2 * pg.POH; ++h) dz[h * OW + OW - 1] = 0.0f;
            }
            if (2 * pg.POH < OH) std::fill(dz + 2 * pg.POH * OW, dz + OH * OW, 0.0f);
            return;
        }
        std::fill(dz, dz + OH * OW, 0.0f);
        const bool add = pg.overlapping();
        for (int64_t ph = 0; ph < pg.POH; ++ph) {
            for (int64_t pw = 0; pw < pg.POW; ++pw) {
                const int64_t t = ph * pg.POW + pw;
                if (c[t] == kNoGradient) continue;
                const int64_t i = c[t] / pg.PKW, j = c[t] % pg.PKW;
                float& e = dz[(ph * pg.PSH + i) * OW + pw * pg.PSW + j];
                if (add) {
                    e += g[t];
                } else {
                    e = g[t];
                }
            }
        }
    }
    void fill(int64_t n, float* dst, int64_t kstride) const {
        const int64_t PHW = pg.POH * pg.POW;
        for (int64_t k = 0; k < K; ++k) {
            plane(dst + k * kstride, dout + (n * K + k) * PHW, choice + (n * K + k) * PHW);
        }
    }
    const float* image(int64_t n, float* scratch) const {
        fill(n, scratch, OH * OW);
        return scratch;
    }
};

// ---- the two passes, for either epilogue / dz source.

template <class Epilogue>
void conv_forward_impl(const Epilogue& epi, const float* x, const float* w, const float* b,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                       int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    const int64_t OH = conv_out_size(H, KH, SH, PH);
    const int64_t OW = conv_out_size(W, KW, SW, PW);
    const int64_t OHW = OH * OW;
    const int64_t CKK = C * KH * KW;
    const Plan plan = make_plan(N, CKK, K, OHW);
    const int64_t S = plan.S;

    // Per-image path with a bias: the GEMM adds it, as one more inner step:
    // w_bias (K, CKK+1) = [w | b] times cols with one more row of ones.
    const bool bias_in_gemm = plan.per_image && b != nullptr;
    const int64_t KB = bias_in_gemm ? CKK + 1 : CKK;  // inner dimension of the GEMMs
    std::vector<float> w_bias(bias_in_gemm ? static_cast<size_t>(K * KB) : 0);  // (K, CKK+1)
    for (int64_t k = 0; k < K && bias_in_gemm; ++k) {
        std::copy(w + k * CKK, w + (k + 1) * CKK, w_bias.begin() + k * KB);
        w_bias[k * KB + CKK] = b[k];
    }
    const float* w_gemm = bias_in_gemm ? w_bias.data() : w;  // (K, KB)
    // w_gemm packed once for every image's GEMM (0: too large, sgemm_serial packs it itself).
    const PackedWeights wp(false, K, KB, w_gemm, KB);

    const int64_t cols_size = KB * S * OHW;                       // (KB, S*OHW)
    const int64_t mat_size = plan.per_image ? (Epilogue::kScratch ? K * OHW : 0)  // (K, OHW)
                                            : K * S * OHW;        // (K, S*OHW)
    // Each thread's block ends with kPoolOverread spare floats (the max-pool's
    // reads past its last row stay in the thread's own block).
    const int64_t block = cols_size + mat_size + kPoolOverread;
    const Scratch scratch(static_cast<size_t>(block * plan.threads));

    for_each_group(plan, [&](int64_t g, int t) {
        float* cols = scratch.get() + block * t;
        float* mat = cols + cols_size;
        const int64_t n_end = std::min(N, (g + 1) * plan.G);
        for (int64_t n0 = g * plan.G; n0 < n_end; n0 += S) {
            const int64_t s = std::min(S, n_end - n0);  // images in this sub-chunk
            const int64_t q = s * OHW;                  // its columns
            im2col(cols, x + n0 * C * H * W, s, C, H, W, KH, KW, SH, SW, PH, PW);
            if (plan.per_image) {
                if (bias_in_gemm) std::fill(cols + CKK * q, cols + KB * q, 1.0f);
                for (int64_t nn = 0; nn < s; ++nn) {
                    // z (K, OHW) = w_gemm (K, KB) . cols[:, nn*OHW ...] (KB, OHW; ld q)
                    float* z = epi.target(n0 + nn, mat);
                    wp.gemm(OHW, cols + nn * OHW, q, z, OHW);
                    epi.finish(n0 + nn, z, OHW, false);
                }
                continue;
            }
            // mat (K, q) = w (K, CKK) . cols (CKK, q); image nn's channel k is
            // mat[k][nn*OHW ...], b[k] still to be added.
            wp.gemm(q, cols, q, mat, q);  // (here w_gemm = w, KB = CKK)
            for (int64_t nn = 0; nn < s; ++nn) epi.finish(n0 + nn, mat + nn * OHW, q, true);
        }
    });
}

template <class DzSource>
void conv_backward_impl(const DzSource& src, float* dx, float* dw, float* db,
                        const float* x, const float* w,
                        int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                        int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    const int64_t OH = conv_out_size(H, KH, SH, PH);
    const int64_t OW = conv_out_size(W, KW, SW, PW);
    const int64_t OHW = OH * OW;
    const int64_t CKK = C * KH * KW;
    const Plan plan = make_plan(N, CKK, K, OHW);
    const int64_t S = plan.S;

    // w^T (CKK, K), packed once for the input-gradient GEMMs.
    const PackedWeights wt(true, CKK, K, w, CKK);
    const int64_t cols_size = CKK * S * OHW;                      // (CKK, S*OHW), then dcols
    const int64_t mat_size = plan.per_image ? (DzSource::kScratch ? K * OHW : 0)  // (K, OHW)
                                            : K * S * OHW;        // (K, S*OHW)
    const Scratch scratch(static_cast<size_t>((cols_size + mat_size) * plan.threads));
    // One dw slot per group; a single group writes dw itself.
    const Scratch dw_parts(plan.groups > 1 ? static_cast<size_t>(plan.groups * K * CKK) : 0);
    // db_parts[n][k]: float sum of image n's dz[k] (OHW), taken while it is in cache.
    const Scratch db_parts(db ? static_cast<size_t>(N * K) : 0);

    for_each_group(plan, [&](int64_t g, int t) {
        float* cols = scratch.get() + (cols_size + mat_size) * t;
        float* mat = cols + cols_size;
        float* dw_g = plan.groups > 1 ? dw_parts.get() + g * K * CKK : dw;  // (K, CKK)
        float beta = 0.0f;  // the group's first GEMM overwrites its slot, the rest add
        const int64_t n_end = std::min(N, (g + 1) * plan.G);
        for (int64_t n0 = g * plan.G; n0 < n_end; n0 += S) {
            const int64_t s = std::min(S, n_end - n0);      // images in this sub-chunk
            const int64_t q = s * OHW;                      // its columns
            im2col(cols, x + n0 * C * H * W, s, C, H, W, KH, KW, SH, SW, PH, PW);
            if (plan.per_image) {
                for (int64_t nn = 0; nn < s; ++nn) {
                    const float* dz_n = src.image(n0 + nn, mat);  // (K, OHW)
                    for (int64_t k = 0; k < K && db; ++k) {
                        db_parts.get()[(n0 + nn) * K + k] = sum_floats(dz_n + k * OHW, OHW);
                    }
                    float* cols_n = cols + nn * OHW;                  // (CKK, OHW; ld q)
                    // dw_g (K, CKK) (+)= dz_n (K, OHW) . cols_n^T (OHW, CKK)
                    sgemm_serial(false, true, K, CKK, OHW, 1.0f, dz_n, OHW, cols_n, q, beta, dw_g,
                                 CKK);
                    beta = 1.0f;
                    if (dx) {
                        // dcols_n (CKK, OHW; ld q) = w^T (CKK, K) . dz_n (K, OHW), over cols_n.
                        wt.gemm(OHW, dz_n, OHW, cols_n, q);
                    }
                }
            } else {
                // mat (K, q): image nn's dz[k] at mat[k][nn*OHW ...].
                for (int64_t nn = 0; nn < s; ++nn) {
                    src.fill(n0 + nn, mat + nn * OHW, q);
                    for (int64_t k = 0; k < K && db; ++k) {
                        db_parts.get()[(n0 + nn) * K + k] = sum_floats(mat + k * q + nn * OHW, OHW);
                    }
                }
                // dw_g (K, CKK) (+)= mat (K, q) . cols^T (q, CKK)
                sgemm_serial(false, true, K, CKK, q, 1.0f, mat, q, cols, q, beta, dw_g, CKK);
                beta = 1.0f;
                if (dx) {
                    // dcols (CKK, q) = w^T (CKK, K) . mat (K, q), into the cols buffer.
                    wt.gemm(q, mat, q, cols, q);
                }
            }
            if (dx) col2im(dx + n0 * C * H * W, cols, s, C, H, W, KH, KW, SH, SW, PH, PW);
        }
    });

    if (db) {
        // db[k] = sum over images, in image order.
        for (int64_t k = 0; k < K; ++k) {
            float acc = 0.0f;
            for (int64_t n = 0; n < N; ++n) acc += db_parts.get()[n * K + k];
            db[k] = acc;
        }
    }
    if (plan.groups > 1) {
        // dw = slot 0 + slot 1 + ..., in group order, for every value; a block
        // of values at a time, slot by slot, so every read is a contiguous
        // (vectorised) stream rather than one value per slot 4*K*CKK bytes
        // apart (that strided walk took ~8% of a conv backward at batch 10).
        const int64_t n = K * CKK;
        const float* parts = dw_parts.get();
        constexpr int64_t kBlock = 1024;
        const int64_t blocks = ceil_div(n, kBlock);
        pool::parallel_for(blocks, n * plan.groups >= kParallelMin, [=](int64_t blk) {
            const int64_t e0 = blk * kBlock, e1 = std::min(n, e0 + kBlock);
            float* out = dw + e0;  // (e1 - e0,)
            for (int64_t e = e0; e < e1; ++e) out[e - e0] = parts[e];
            for (int64_t g = 1; g < plan.groups; ++g) {
                const float* slot = parts + g * n;  // (n,)
                for (int64_t e = e0; e < e1; ++e) out[e - e0] += slot[e];
            }
        });
    }
}

}  // namespace

void conv2d_forward(float* out, const float* x, const float* w, const float* b,
                    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                    int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW,
                    bool relu) {
    const int64_t OHW = conv_out_size(H, KH, SH, PH) * conv_out_size(W, KW, SW, PW);
    const PlainForward epi{out, b, K, OHW, relu};
    conv_forward_impl(epi, x, w, b, N, C, H, W, K, KH, KW, SH, SW, PH, PW);
}

void conv2d_backward(float* dx, float* dw, float* db, const float* dout,
                     const float* x, const float* w,
                     int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                     int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    const int64_t OHW = conv_out_size(H, KH, SH, PH) * conv_out_size(W, KW, SW, PW);
    const PlainDz src{dout, K, OHW};
    conv_backward_impl(src, dx, dw, db, x, w, N, C, H, W, K, KH, KW, SH, SW, PH, PW);
}

void conv2d_maxpool_forward(float* out, uint8_t* choice, const float* x, const float* w,
                            const float* b, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t K, int64_t KH, int64_t KW, int64_t SH, int64_t SW,
                            int64_t PH, int64_t PW, int64_t PKH, int64_t PKW, int64_t PSH,
                            int64_t PSW, bool relu) {
    const int64_t OH = conv_out_size(H, KH, SH, PH);
    const int64_t OW = conv_out_size(W, KW, SW, PW);
    const PoolGeom pg{PKH, PKW, PSH, PSW, pool_out_size(OH, PKH, PSH), pool_out_size(OW, PKW, PSW)};
    const PoolForward epi{out, choice, b, K, OW, pg, relu};
    conv_forward_impl(epi, x, w, b, N, C, H, W, K, KH, KW, SH, SW, PH, PW);
}

void conv2d_maxpool_backward(float* dx, float* dw, float* db, const float* dout,
                             const uint8_t* choice, const float* x, const float* w,
                             int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                             int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH,
                             int64_t PW, int64_t PKH, int64_t PKW, int64_t PSH, int64_t PSW) {
    const int64_t OH = conv_out_size(H, KH, SH, PH);
    const int64_t OW = conv_out_size(W, KW, SW, PW);
    const PoolGeom pg{PKH, PKW, PSH, PSW, pool_out_size(OH, PKH, PSH), pool_out_size(OW, PKW, PSW)};
    const PoolDz src{dout, choice, K, OH, OW, pg};
    conv_backward_impl(src, dx, dw, db, x, w, N, C, H, W, K, KH, KW, SH, SW, PH, PW);
}

}  // namespace fastcnn
