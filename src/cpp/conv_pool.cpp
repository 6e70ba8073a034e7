// conv_pool.cpp -- conv2d followed by a max-pool (and relu) in one pass, forward
// and backward, as declared in fastcnn.h (conv2d_maxpool_*).
//
// Size letters:
//   N  batch   C  input channels   K  output channels (filters)
//   H W  image height/width   KH KW  kernel height/width   SH SW  stride
//   PH PW  zero padding   OH OW  conv output height/width (conv_out_size, geometry.h)
//   PKH PKW  pooling window   PSH PSW  pooling stride
//   POH POW  pooled output height/width (pool_out_size of OH, OW)
//
// Contract (see fastcnn.h): buffers are float32 (choice uint8), C-contiguous,
// owned by the caller; the caller (the bindings' intake) has checked every
// size and every choice value. Outputs are OVERWRITTEN.
//   forward:  out (N,K,POH,POW) = maxpool(relu?(conv(x, w) + b)), choice
//             (N,K,POH,POW) = each window's chosen offset i*PKW + j, or
//             kNoGradient where relu is on and the pooled value is not > 0
//   backward: from dout (N,K,POH,POW) and choice: dx (N,C,H,W) [may be null],
//             dw (K,C,KH,KW), db (K) [may be null], as conv2d_backward gives
//             them for the conv output's gradient dz that maxpool2d_backward
//             (after relu_backward) would produce.
//
// The conv passes of conv_passes.h (or, for 3x3 stride-1 layers where
// wino::choose says so, the Winograd passes of winograd.h, which take the same
// epilogue and dz source) run with the max-pool folded in: the
// forward GEMM of an image writes into the thread's scratch (per image) or
// the K-row matrix (batched), and each plane is pooled from there with its
// choice recorded; the conv's full output is never stored. The backward
// builds each image's dz from the pooled gradient and the choices in the same
// place, right before its GEMMs. So the fused op computes bit for bit what
// conv2d, relu, maxpool2d and their backward passes compute in sequence
// (overlapping pooling windows: the same values, added up in another order).
#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common.h"
#include "conv_passes.h"
#include "fastcnn.h"
#include "winograd.h"

namespace fastcnn {

namespace {

// The max-pool that follows a fused conv: window PKH x PKW, stride PSH x PSW
// over the conv's (OH, OW) output; pooled output (POH, POW).
struct PoolGeom {
    int64_t PKH, PKW, PSH, PSW, POH, POW;
    bool overlapping() const { return PSH < PKH || PSW < PKW; }
};

PoolGeom pool_geom(const conv::Shape& dims, int64_t PKH, int64_t PKW, int64_t PSH, int64_t PSW) {
    return PoolGeom{PKH, PKW, PSH, PSW, pool_out_size(dims.OH, PKH, PSH),
                    pool_out_size(dims.OW, PKW, PSW)};
}

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
// past the row's end (within conv::kScratchSpare floats, which the scratch the
// rows live in has to spare). Returns count.
template <bool Choice>
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
        // A short last group reads up to 7 floats past its row
        // (conv::kScratchSpare): values of no window, never stored.
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
            if (Choice) idx = select_epi32(t, _mm_set1_epi32(e), idx);
        }
        if (!Choice) {
            const int64_t lanes = count - pw < 4 ? count - pw : 4;
            if (lanes == 4) {
                _mm_storeu_ps(out_row + pw, m);
            } else {
                alignas(16) float m4[4];
                _mm_store_ps(m4, m);
                for (int64_t l = 0; l < lanes; ++l) out_row[pw + l] = m4[l];
            }
            continue;
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
// choice may be null (the inference plan's call): out alone, the same values.
void maxpool_choice_plane(float* out, uint8_t* choice, const float* z, int64_t OW, bool add,
                          float bias, bool relu, const PoolGeom& pg) {
    auto act = [=](float v) {
        if (add) v = v + bias;
        return relu ? relu_value(v) : v;
    };
    const bool fast = is_2x2_stride2(pg.PKH, pg.PKW, pg.PSH, pg.PSW);
    for (int64_t ph = 0; ph < pg.POH; ++ph) {
        float* out_row = out + ph * pg.POW;
        uint8_t* choice_row = choice ? choice + ph * pg.POW : nullptr;
        const float* top = z + ph * pg.PSH * OW;   // row of the windows' top-left corners
        int64_t pw = 0;
        if (fast) {
            const float* bottom = top + OW;
#if defined(__SSE2__)
            pw = choice ? maxpool_choice_2x2_row_sse2<true>(out_row, choice_row, top, bottom,
                                                            pg.POW, add, bias, relu)
                        : maxpool_choice_2x2_row_sse2<false>(out_row, nullptr, top, bottom,
                                                             pg.POW, add, bias, relu);
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
                if (choice_row) {
                    choice_row[pw] = static_cast<uint8_t>(none ? int32_t{kNoGradient} : idx);
                }
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
            if (choice_row) {
                choice_row[pw] = static_cast<uint8_t>(none ? int32_t{kNoGradient} : idx);
            }
        }
    }
}

// The epilogue of conv2d_maxpool (Epilogue in conv_passes.h): pooled out
// (N, K, POH, POW) and choice (or none: null); the conv's own output lives only in the
// thread's scratch (per-image path) or the K-row matrix (batched path), one
// image at a time.
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
            uint8_t* choice_k = choice ? choice + (n * K + k) * PHW : nullptr;
            maxpool_choice_plane(out + (n * K + k) * PHW, choice_k, z + k * kstride, OW,
                                 add_bias, add_bias && b ? b[k] : 0.0f, relu, pg);
        }
    }
};

// The dz source of conv2d_maxpool_backward (DzSource in conv_passes.h): dz =
// each pooled gradient sent to its window's chosen element (none where choice
// is kNoGradient), 0 elsewhere -- what maxpool2d_backward (after
// relu_backward) writes. Non-overlapping windows assign (bit for bit
// maxpool2d_backward's values, -0 included), overlapping ones add up.
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

}  // namespace

void conv2d_maxpool_forward(float* out, uint8_t* choice, const float* x, const float* w,
                            const float* b, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t K, int64_t KH, int64_t KW, int64_t SH, int64_t SW,
                            int64_t PH, int64_t PW, int64_t PKH, int64_t PKW, int64_t PSH,
                            int64_t PSW, bool relu) {
    const conv::Shape dims = conv::make_shape(N, C, H, W, K, KH, KW, SH, SW, PH, PW);
    const PoolGeom pg = pool_geom(dims, PKH, PKW, PSH, PSW);
    const PoolForward epi{out, choice, b, K, dims.OW, pg, relu};
    if (wino::choose_forward(dims) && wino::forward_pass(epi, x, w, b, dims)) return;
    conv::conv_forward_pass(epi, x, w, b, dims);
}

void conv2d_maxpool_backward(float* dx, float* dw, float* db, const float* dout,
                             const uint8_t* choice, const float* x, const float* w,
                             int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                             int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH,
                             int64_t PW, int64_t PKH, int64_t PKW, int64_t PSH, int64_t PSW) {
    const conv::Shape dims = conv::make_shape(N, C, H, W, K, KH, KW, SH, SW, PH, PW);
    const PoolGeom pg = pool_geom(dims, PKH, PKW, PSH, PSW);
    const PoolDz src{dout, choice, K, dims.OH, dims.OW, pg};
    if (wino::choose(dims) && wino::backward_pass(src, dx, dw, db, x, w, dims)) return;
    conv::conv_backward_pass(src, dx, dw, db, x, w, dims);
}

}  // namespace fastcnn
