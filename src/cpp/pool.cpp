// pool.cpp -- 2-D pooling over NCHW images: max, average, L2, global average,
// each with its backward pass. Contract: see the "pooling" block of fastcnn.h.
//
// Size letters:
//   N  batch     C  channels     H W  input height/width
//   KH KW  window height/width   SH SW  stride     OH OW  output height/width
//   (pool_out_size, geometry.h: no padding).
//
// Buffers (all float32, C-contiguous, owned by the caller):
//   x, dx     (N, C, H, W)      out, dout (N, C, OH, OW)
//   global pooling: x, dx (N, C, HW), out, dout (N, C)
//
// Threads: every kernel runs one parallel loop over the N*C planes, when they
// hold kParallelMin values or more (common.h: fewer, e.g. one small image at
// inference, are faster on the calling thread than split). A plane of dx is
// written only by the thread that owns it, so overlapping windows (stride <
// size) add up without races, and results do not depend on the thread count.
// Backward kernels OVERWRITE dx: a plane is zeroed, then every window adds
// its share (the 2x2 stride-2 paths write every element once instead).
//
// Max-pool NaN rule (np.argmax over the flattened window does the same): the
// chosen element is the first NaN in row-major order, or else the first
// maximum; forward outputs that element bit for bit, backward sends the whole
// dout to it.
//
// Average and L2 sum in double: float32 squares cannot overflow or underflow
// there, so L2 matches a float64 reference even for tiny or huge x.
//
// Loop order. A window is small (often 2x2 or 3x3), so a loop over one window
// is short and its compares or sums form one dependent chain. The general
// paths therefore walk one output row at a time: for each window offset (i, j)
// in row-major order, an inner loop runs ALONG the row over many independent
// windows (vectorised by the compiler where the stride is 1). Per-window state (running max, sums) lives in small
// arrays of kRowTile windows on the stack: nothing is allocated inside the
// parallel region. The 2x2 stride-2 paths (the common CNN case) handle a whole
// window per iteration instead. The per-window plain twin of the max-pool
// backward (max_choice) runs when a row has fewer than 4 windows or a window is
// too wide for 32-bit offsets, and is the easiest place to read the rule.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common.h"
#include "fastcnn.h"
#include "threadpool.h"

namespace fastcnn {

namespace {

constexpr int64_t kRowTile = 64;   // windows of one output row handled together

// ================================================================= max ====

// The choice rule, takes_over / takes_over_nobranch, is in common.h (the
// fused conv + max-pool applies it too).

// ---- plain twin: one window at a time.
// Offset i*W + j of the chosen element of the window whose top-left corner is
// at win (a pointer into a plane of width W).
int64_t max_choice(const float* win, int64_t W, int64_t KH, int64_t KW) {
    int64_t best = 0;
    for (int64_t i = 0; i < KH; ++i) {
        for (int64_t j = 0; j < KW; ++j) {
            if (takes_over(win[i * W + j], win[best])) best = i * W + j;
        }
    }
    return best;
}

void maxpool_backward_plane_plain(float* dx_plane, const float* dout_plane, const float* x_plane,
                                  int64_t H, int64_t W, int64_t KH, int64_t KW,
                                  int64_t SH, int64_t SW, int64_t OH, int64_t OW) {
    std::fill(dx_plane, dx_plane + H * W, 0.0f);
    for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) {
            const int64_t corner = oh * SH * W + ow * SW;
            dx_plane[corner + max_choice(x_plane + corner, W, KH, KW)] += dout_plane[oh * OW + ow];
        }
    }
}

// ---- general windows, along the row.
// out_plane (OH, OW) from x_plane (H, W): out_row holds the running choice of
// each of its windows and takes in one window offset (i, j) at a time.
void maxpool_plane(float* out_plane, const float* x_plane, int64_t W, int64_t KH, int64_t KW,
                   int64_t SH, int64_t SW, int64_t OH, int64_t OW) {
    for (int64_t oh = 0; oh < OH; ++oh) {
        float* out_row = out_plane + oh * OW;        // (OW)
        const float* top = x_plane + oh * SH * W;    // row of the windows' corners
        for (int64_t ow = 0; ow < OW; ++ow) out_row[ow] = top[ow * SW];
        for (int64_t i = 0; i < KH; ++i) {
            for (int64_t j = (i == 0 ? 1 : 0); j < KW; ++j) {
                const float* src = top + i * W + j;
                for (int64_t ow = 0; ow < OW; ++ow) {
                    const float v = src[ow * SW];
                    out_row[ow] = takes_over(v, out_row[ow]) ? v : out_row[ow];
                }
            }
        }
    }
}

// chosen[t] = offset i*W + j from its corner of the chosen element of window t,
// for count <= kRowTile windows with corners at row + t*SW. 32-bit offsets (as
// wide as the floats, so the loop vectorises): needs (KH-1)*W + KW - 1 to fit.
void choose_max_in_row(int32_t* chosen, const float* row, int64_t W, int64_t SW,
                       int64_t count, int64_t KH, int64_t KW) {
    float best[kRowTile];                            // (count) chosen values so far
    for (int64_t t = 0; t < count; ++t) {
        best[t] = row[t * SW];
        chosen[t] = 0;
    }
    for (int64_t i = 0; i < KH; ++i) {
        for (int64_t j = (i == 0 ? 1 : 0); j < KW; ++j) {
            const int32_t offset = static_cast<int32_t>(i * W + j);
            const float* src = row + offset;
            for (int64_t t = 0; t < count; ++t) {
                const float v = src[t * SW];
                const bool take = takes_over_nobranch(v, best[t]);
                best[t] = take ? v : best[t];
                chosen[t] = take ? offset : chosen[t];
            }
        }
    }
}

void maxpool_backward_plane(float* dx_plane, const float* dout_plane, const float* x_plane,
                            int64_t H, int64_t W, int64_t KH, int64_t KW,
                            int64_t SH, int64_t SW, int64_t OH, int64_t OW) {
    std::fill(dx_plane, dx_plane + H * W, 0.0f);
    for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow0 = 0; ow0 < OW; ow0 += kRowTile) {
            const int64_t count = std::min(kRowTile, OW - ow0);
            const int64_t first_corner = oh * SH * W + ow0 * SW;
            int32_t chosen[kRowTile];                // (count) offsets from each corner
            choose_max_in_row(chosen, x_plane + first_corner, W, SW, count, KH, KW);
            const float* dout_row = dout_plane + oh * OW + ow0;   // (count)
            for (int64_t t = 0; t < count; ++t) {
                dx_plane[first_corner + t * SW + chosen[t]] += dout_row[t];
            }
        }
    }
}

// ---- 2x2 windows, stride 2: one whole window per iteration.

// The first NaN or first maximum of a, b, c, d (row-major order of a 2x2 window).
inline float max4(float a, float b, float c, float d) {
    float m = a;
    m = takes_over(b, m) ? b : m;
    m = takes_over(c, m) ? c : m;
    m = takes_over(d, m) ? d : m;
    return m;
}

#if defined(__SSE2__)
// max4 on four windows at once: v[e] holds element e (row-major) of each
// window; takes_over as bit masks, the chosen element's bits selected whole.
inline __m128 max4_ps(const __m128 v[4]) {
    __m128 m = v[0];
    for (int e = 1; e < 4; ++e) {
        const __m128 take = _mm_and_ps(_mm_cmpord_ps(m, m),
                                       _mm_or_ps(_mm_cmpunord_ps(v[e], v[e]), _mm_cmpgt_ps(v[e], m)));
        m = _mm_or_ps(_mm_and_ps(take, v[e]), _mm_andnot_ps(take, m));
    }
    return m;
}

// The windows of one output row four at a time (SSE2, every x86-64): top and
// bottom are the windows' two rows; reads stay inside them (8 floats per 4
// windows, 2*OW <= W). Returns how many windows it did, a multiple of 4.
int64_t maxpool_2x2_row_sse2(float* out_row, const float* top, const float* bottom,
                             int64_t OW) {
    int64_t ow = 0;
    for (; ow + 4 <= OW; ow += 4) {
        const __m128 a = _mm_loadu_ps(top + 2 * ow), b = _mm_loadu_ps(top + 2 * ow + 4);
        const __m128 c = _mm_loadu_ps(bottom + 2 * ow), d = _mm_loadu_ps(bottom + 2 * ow + 4);
        const __m128 v[4] = {_mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),    // top left
                             _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)),    // top right
                             _mm_shuffle_ps(c, d, _MM_SHUFFLE(2, 0, 2, 0)),    // bottom left
                             _mm_shuffle_ps(c, d, _MM_SHUFFLE(3, 1, 3, 1))};   // bottom right
        _mm_storeu_ps(out_row + ow, max4_ps(v));
    }
    return ow;
}
#endif

void maxpool_2x2_plane(float* out_plane, const float* x_plane, int64_t W, int64_t OH, int64_t OW) {
    for (int64_t oh = 0; oh < OH; ++oh) {
        const float* top = x_plane + 2 * oh * W;     // (2, W): the rows of the windows
        const float* bottom = top + W;
        float* out_row = out_plane + oh * OW;        // (OW)
        int64_t ow = 0;
#if defined(__SSE2__)
        ow = maxpool_2x2_row_sse2(out_row, top, bottom, OW);
#endif
        for (; ow < OW; ++ow) {
            out_row[ow] = max4(top[2 * ow], top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1]);
        }
    }
}

// 2x2 stride-2 windows do not overlap, so a backward pass writes each covered
// element of dx once; this zeroes the rest: the last row (odd H) and the last
// column (odd W) that the floor leaves out. dx_plane (H, W).
void zero_2x2_leftovers(float* dx_plane, int64_t H, int64_t W, int64_t OH, int64_t OW) {
    if (2 * OW < W) {
        for (int64_t h = 0; h < 2 * OH; ++h) dx_plane[h * W + W - 1] = 0.0f;
    }
    if (2 * OH < H) std::fill(dx_plane + (H - 1) * W, dx_plane + H * W, 0.0f);
}

void maxpool_2x2_backward_plane(float* dx_plane, const float* dout_plane, const float* x_plane,
                                int64_t H, int64_t W, int64_t OH, int64_t OW) {
    for (int64_t oh = 0; oh < OH; ++oh) {
        const float* top = x_plane + 2 * oh * W;     // (2, W)
        const float* bottom = top + W;
        float* dtop = dx_plane + 2 * oh * W;         // (2, W)
        float* dbottom = dtop + W;
        const float* dout_row = dout_plane + oh * OW;  // (OW)
        for (int64_t ow = 0; ow < OW; ++ow) {
            const float a = top[2 * ow], b = top[2 * ow + 1];
            const float c = bottom[2 * ow], d = bottom[2 * ow + 1];
            // m is the chosen value; the chosen element is the first one that
            // "is" m: equal to it, or NaN (a window holding a NaN chooses a NaN).
            // Bitwise & | keep the loop branch-free, so it vectorises.
            const float m = max4(a, b, c, d);
            const bool pick_a = (a == m) | (a != a);
            const bool pick_b = (!pick_a) & ((b == m) | (b != b));
            const bool pick_c = (!(pick_a | pick_b)) & ((c == m) | (c != c));
            const bool pick_d = !(pick_a | pick_b | pick_c);
            const float g = dout_row[ow];
            dtop[2 * ow] = pick_a ? g : 0.0f;
            dtop[2 * ow + 1] = pick_b ? g : 0.0f;
            dbottom[2 * ow] = pick_c ? g : 0.0f;
            dbottom[2 * ow + 1] = pick_d ? g : 0.0f;
        }
    }
    zero_2x2_leftovers(dx_plane, H, W, OH, OW);
}

// ======================================================== average, L2 ====

// sums[t] = sum over window t of value(x), in double, for count <= kRowTile
// windows with corners at row + t*SW.
template <class Value>
void sum_windows_in_row(double* sums, const float* row, int64_t W, int64_t SW, int64_t count,
                        int64_t KH, int64_t KW, Value value) {
    std::fill(sums, sums + count, 0.0);
    for (int64_t i = 0; i < KH; ++i) {
        for (int64_t j = 0; j < KW; ++j) {
            const float* src = row + i * W + j;
            for (int64_t t = 0; t < count; ++t) sums[t] += value(src[t * SW]);
        }
    }
}

inline double identity(float v) { return v; }
inline double square(float v) { return static_cast<double>(v) * v; }

}  // namespace

// =========================================================== kernels ====

void maxpool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = pool_out_size(H, KH, SH), OW = pool_out_size(W, KW, SW);
    const int64_t planes = N * C;
    const bool fast = is_2x2_stride2(KH, KW, SH, SW);
    pool::parallel_for(planes, planes * H * W >= kParallelMin, [=](int64_t p) {
        const float* x_plane = x + p * H * W;        // (H, W)
        float* out_plane = out + p * OH * OW;        // (OH, OW)
        if (fast) {
            maxpool_2x2_plane(out_plane, x_plane, W, OH, OW);
        } else {
            maxpool_plane(out_plane, x_plane, W, KH, KW, SH, SW, OH, OW);
        }
    });
}

void maxpool2d_backward(float* dx, const float* dout, const float* x,
                        int64_t N, int64_t C, int64_t H, int64_t W,
                        int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = pool_out_size(H, KH, SH), OW = pool_out_size(W, KW, SW);
    const int64_t planes = N * C;
    const bool fast = is_2x2_stride2(KH, KW, SH, SW);
    // The row-tile path needs 32-bit offsets inside a window and pays off only
    // with several windows per row; otherwise the plain twin runs.
    const bool along_row = OW >= 4 && (KH - 1) * W + KW <= std::numeric_limits<int32_t>::max();
    pool::parallel_for(planes, planes * H * W >= kParallelMin, [=](int64_t p) {
        const float* x_plane = x + p * H * W;        // (H, W)
        const float* dout_plane = dout + p * OH * OW;  // (OH, OW)
        float* dx_plane = dx + p * H * W;            // (H, W)
        if (fast) {
            maxpool_2x2_backward_plane(dx_plane, dout_plane, x_plane, H, W, OH, OW);
        } else if (along_row) {
            maxpool_backward_plane(dx_plane, dout_plane, x_plane, H, W, KH, KW, SH, SW, OH, OW);
        } else {
            maxpool_backward_plane_plain(dx_plane, dout_plane, x_plane, H, W, KH, KW, SH, SW,
                                         OH, OW);
        }
    });
}

void avgpool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = pool_out_size(H, KH, SH), OW = pool_out_size(W, KW, SW);
    const int64_t planes = N * C;
    const bool fast = is_2x2_stride2(KH, KW, SH, SW);
    const double count = static_cast<double>(KH * KW);
    pool::parallel_for(planes, planes * H * W >= kParallelMin, [=](int64_t p) {
        const float* x_plane = x + p * H * W;        // (H, W)
        float* out_plane = out + p * OH * OW;        // (OH, OW)
        for (int64_t oh = 0; oh < OH; ++oh) {
            const float* top = x_plane + oh * SH * W;  // row of the windows' corners
            float* out_row = out_plane + oh * OW;    // (OW)
            if (fast) {
                const float* bottom = top + W;
                for (int64_t ow = 0; ow < OW; ++ow) {
                    const double sum = static_cast<double>(top[2 * ow]) + top[2 * ow + 1] +
                                       bottom[2 * ow] + bottom[2 * ow + 1];
                    out_row[ow] = static_cast<float>(sum / 4.0);
                }
                continue;
            }
            for (int64_t ow0 = 0; ow0 < OW; ow0 += kRowTile) {
                const int64_t n = std::min(kRowTile, OW - ow0);
                double sums[kRowTile];               // (n)
                sum_windows_in_row(sums, top + ow0 * SW, W, SW, n, KH, KW, identity);
                for (int64_t t = 0; t < n; ++t) out_row[ow0 + t] = static_cast<float>(sums[t] / count);
            }
        }
    });
}

void avgpool2d_backward(float* dx, const float* dout,
                        int64_t N, int64_t C, int64_t H, int64_t W,
                        int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = pool_out_size(H, KH, SH), OW = pool_out_size(W, KW, SW);
    const int64_t planes = N * C;
    const bool fast = is_2x2_stride2(KH, KW, SH, SW);
    const float count = static_cast<float>(KH * KW);
    pool::parallel_for(planes, planes * H * W >= kParallelMin, [=](int64_t p) {
        const float* dout_plane = dout + p * OH * OW;  // (OH, OW)
        float* dx_plane = dx + p * H * W;            // (H, W)
        if (fast) {                                  // each element written once
            for (int64_t oh = 0; oh < OH; ++oh) {
                const float* dout_row = dout_plane + oh * OW;  // (OW)
                float* dtop = dx_plane + 2 * oh * W;   // (2, W)
                float* dbottom = dtop + W;
                for (int64_t ow = 0; ow < OW; ++ow) {
                    const float g = dout_row[ow] / 4.0f;
                    dtop[2 * ow] = dtop[2 * ow + 1] = dbottom[2 * ow] = dbottom[2 * ow + 1] = g;
                }
            }
            zero_2x2_leftovers(dx_plane, H, W, OH, OW);
            return;
        }
        std::fill(dx_plane, dx_plane + H * W, 0.0f);
        for (int64_t oh = 0; oh < OH; ++oh) {
            const float* dout_row = dout_plane + oh * OW;  // (OW)
            float* dtop = dx_plane + oh * SH * W;    // row of the windows' corners
            for (int64_t i = 0; i < KH; ++i) {
                for (int64_t j = 0; j < KW; ++j) {
                    float* dst = dtop + i * W + j;
                    for (int64_t ow = 0; ow < OW; ++ow) dst[ow * SW] += dout_row[ow] / count;
                }
            }
        }
    });
}

void l2pool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                      int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = pool_out_size(H, KH, SH), OW = pool_out_size(W, KW, SW);
    const int64_t planes = N * C;
    pool::parallel_for(planes, planes * H * W >= kParallelMin, [=](int64_t p) {
        const float* x_plane = x + p * H * W;        // (H, W)
        float* out_plane = out + p * OH * OW;        // (OH, OW)
        for (int64_t oh = 0; oh < OH; ++oh) {
            const float* top = x_plane + oh * SH * W;
            float* out_row = out_plane + oh * OW;    // (OW)
            for (int64_t ow0 = 0; ow0 < OW; ow0 += kRowTile) {
                const int64_t n = std::min(kRowTile, OW - ow0);
                double sum_sq[kRowTile];             // (n)
                sum_windows_in_row(sum_sq, top + ow0 * SW, W, SW, n, KH, KW, square);
                for (int64_t t = 0; t < n; ++t) {
                    out_row[ow0 + t] = static_cast<float>(std::sqrt(sum_sq[t]));
                }
            }
        }
    });
}

void l2pool2d_backward(float* dx, const float* dout, const float* x,
                       int64_t N, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = pool_out_size(H, KH, SH), OW = pool_out_size(W, KW, SW);
    const int64_t planes = N * C;
    pool::parallel_for(planes, planes * H * W >= kParallelMin, [=](int64_t p) {
        const float* x_plane = x + p * H * W;        // (H, W)
        const float* dout_plane = dout + p * OH * OW;  // (OH, OW)
        float* dx_plane = dx + p * H * W;            // (H, W)
        std::fill(dx_plane, dx_plane + H * W, 0.0f);
        for (int64_t oh = 0; oh < OH; ++oh) {
            const int64_t top = oh * SH * W;         // offset of the windows' corner row
            for (int64_t ow0 = 0; ow0 < OW; ow0 += kRowTile) {
                const int64_t n = std::min(kRowTile, OW - ow0);
                const int64_t first_corner = top + ow0 * SW;
                // d norm / d x = x / norm, 0 for an all-zero window (norm == 0).
                // dx += dout * x / norm = scale * x. For norm == 0 the scale is
                // dout * 0, so a NaN/Inf dout gives NaN as in the reference; an
                // Inf x gives norm Inf and Inf * 0 = NaN, as Inf/Inf does there.
                double scale[kRowTile];              // (n)
                sum_windows_in_row(scale, x_plane + first_corner, W, SW, n, KH, KW, square);
                for (int64_t t = 0; t < n; ++t) {
                    const double norm = std::sqrt(scale[t]);
                    const double g = dout_plane[oh * OW + ow0 + t];
                    scale[t] = norm == 0.0 ? g * 0.0 : g / norm;
                }
                for (int64_t i = 0; i < KH; ++i) {
                    for (int64_t j = 0; j < KW; ++j) {
                        const int64_t e = first_corner + i * W + j;   // element (i, j) of window 0
                        for (int64_t t = 0; t < n; ++t) {
                            dx_plane[e + t * SW] += static_cast<float>(scale[t] * x_plane[e + t * SW]);
                        }
                    }
                }
            }
        }
    });
}

void global_avgpool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t HW) {
    const int64_t planes = N * C;
    pool::parallel_for(planes, planes * HW >= kParallelMin, [=](int64_t p) {
        const float* x_plane = x + p * HW;           // (HW)
        double sum = 0.0;
        for (int64_t e = 0; e < HW; ++e) sum += x_plane[e];
        out[p] = static_cast<float>(sum / static_cast<double>(HW));
    });
}

void global_avgpool2d_backward(float* dx, const float* dout, int64_t N, int64_t C, int64_t HW) {
    const int64_t planes = N * C;
    const float count = static_cast<float>(HW);
    pool::parallel_for(planes, planes * HW >= kParallelMin, [=](int64_t p) {
        float* dx_plane = dx + p * HW;               // (HW)
        std::fill(dx_plane, dx_plane + HW, dout[p] / count);
    });
}

}  // namespace fastcnn
