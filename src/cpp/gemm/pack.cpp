// pack.cpp -- copy blocks of op(A) and op(B) into the zero-padded panel
// layouts the micro-kernels read (see gemm_internal.h), handling both
// transposes and folding alpha into A.
//
// Size letters: M N K = GEMM sizes; mc kc nr = extents of the block packed;
// W = panel width: mr_w / nr_w, the MR / NR of the path that reads the panels
// (blocking.h), passed in because each path has its own table.
//
// Both functions read only inside the block they are given and write exactly
// the panels they promise; padding rows/columns are written as 0.
//
// Packing op(A) = A (stored M x K) and op(B) = B^T (B stored N x K) is a
// transpose: rows of the source become columns of the panel. transpose_rows
// does it 4 x 4 values at a time with SSE shuffles (baseline x86-64, so this
// file still runs on any x86-64 CPU), 4 source rows per sweep so every row is
// read as a sequential stream; transpose_rows_plain is its scalar twin, used
// on other CPUs and checked against it by the tests via the same results.
#include <cstring>

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

namespace {

// panel (kc, W): panel[p*W + i] = scale * src[i*ld + p] for i < r (the r
// source rows, r <= W, each with kc values from src), 0 for r <= i < W.
void transpose_rows_plain(int64_t W, const float* src, int64_t ld, int64_t r, int64_t kc,
                          bool scaled, float scale, float* panel) {
    for (int64_t p = 0; p < kc; ++p) {
        float* out = panel + p * W;  // (W,)
        for (int64_t i = 0; i < r; ++i) out[i] = scaled ? scale * src[i * ld + p] : src[i * ld + p];
        for (int64_t i = r; i < W; ++i) out[i] = 0.0f;
    }
}

template <int64_t W>
void transpose_rows_w(const float* src, int64_t ld, int64_t r, int64_t kc, bool scaled,
                      float scale, float* panel) {
#if defined(__SSE2__)
    const __m128 vscale = _mm_set1_ps(scale);
    const int64_t kc4 = kc & ~int64_t(3);
    int64_t i0 = 0;
    for (; i0 + 4 <= r; i0 += 4) {
        const float* s0 = src + i0 * ld;  // 4 rows (kc,), stride ld
        for (int64_t p = 0; p < kc4; p += 4) {
            __m128 r0 = _mm_loadu_ps(s0 + p);
            __m128 r1 = _mm_loadu_ps(s0 + ld + p);
            __m128 r2 = _mm_loadu_ps(s0 + 2 * ld + p);
            __m128 r3 = _mm_loadu_ps(s0 + 3 * ld + p);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            if (scaled) {
                r0 = _mm_mul_ps(r0, vscale);
                r1 = _mm_mul_ps(r1, vscale);
                r2 = _mm_mul_ps(r2, vscale);
                r3 = _mm_mul_ps(r3, vscale);
            }
            float* out = panel + p * W + i0;  // 4 rows of the panel, 4 values each
            _mm_storeu_ps(out, r0);
            _mm_storeu_ps(out + W, r1);
            _mm_storeu_ps(out + 2 * W, r2);
            _mm_storeu_ps(out + 3 * W, r3);
        }
        for (int64_t p = kc4; p < kc; ++p) {
            for (int64_t i = 0; i < 4; ++i) {
                const float v = s0[i * ld + p];
                panel[p * W + i0 + i] = scaled ? scale * v : v;
            }
        }
    }
    // The last r % 4 rows and the zero padding, value by value.
    if (i0 < W) {
        for (int64_t p = 0; p < kc; ++p) {
            float* out = panel + p * W;  // (W,)
            for (int64_t i = i0; i < r; ++i) {
                const float v = src[i * ld + p];
                out[i] = scaled ? scale * v : v;
            }
            for (int64_t i = r; i < W; ++i) out[i] = 0.0f;
        }
    }
#else
    transpose_rows_plain(W, src, ld, r, kc, scaled, scale, panel);
#endif
}

// dst (kc, W) = the kc rows of W contiguous values at src, row stride ld (a
// compile-time W, so each row is a fixed-size copy, not a memcpy call).
template <int64_t W>
void copy_rows_w(const float* src, int64_t ld, int64_t kc, float* dst) {
    for (int64_t p = 0; p < kc; ++p) std::memcpy(dst + p * W, src + p * ld, W * sizeof(float));
}

void copy_rows(int64_t W, const float* src, int64_t ld, int64_t kc, float* dst) {
    switch (W) {
        case 16: copy_rows_w<16>(src, ld, kc, dst); return;
        case 32: copy_rows_w<32>(src, ld, kc, dst); return;
        default:
            for (int64_t p = 0; p < kc; ++p)
                std::memcpy(dst + p * W, src + p * ld, W * sizeof(float));
            return;
    }
}

// transpose_rows_w for the panel widths of the block tables (a compile-time
// width keeps the panel addressing out of the inner loops, which run for
// every packed value), any other width plainly.
void transpose_rows(int64_t W, const float* src, int64_t ld, int64_t r, int64_t kc,
                    bool scaled, float scale, float* panel) {
    switch (W) {
        case 6: transpose_rows_w<6>(src, ld, r, kc, scaled, scale, panel); return;
        case 12: transpose_rows_w<12>(src, ld, r, kc, scaled, scale, panel); return;
        case 16: transpose_rows_w<16>(src, ld, r, kc, scaled, scale, panel); return;
        case 32: transpose_rows_w<32>(src, ld, r, kc, scaled, scale, panel); return;
        default: transpose_rows_plain(W, src, ld, r, kc, scaled, scale, panel); return;
    }
}

// One A panel: rows [i0, i0+mr) of op(A), mr <= MR, columns [p0, p0+kc),
// times alpha unless Scaled is false. panel (kc, MR). MR is a compile-time
// width (the tables' 6 and 12), so the short row loops unroll.
template <int64_t MR, bool Scaled>
void pack_a_panel(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mr, int64_t p0,
                  int64_t kc, float alpha, float* panel) {
    if (trans_a) {
        // A stored (K, M): the mr values of one k are contiguous.
        for (int64_t p = 0; p < kc; ++p) {
            const float* src = A + (p0 + p) * lda + i0;  // (mr,)
            float* out = panel + p * MR;                 // (MR,)
            for (int64_t i = 0; i < mr; ++i) out[i] = Scaled ? alpha * src[i] : src[i];
            for (int64_t i = mr; i < MR; ++i) out[i] = 0.0f;
        }
        return;
    }
    // A stored (M, K): row i of op(A) is contiguous; a transpose.
    transpose_rows_w<MR>(A + i0 * lda + p0, lda, mr, kc, Scaled, alpha, panel);
}

template <int64_t MR>
void pack_a_w(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
              int64_t kc, float alpha, float* dst) {
    for (int64_t ir = 0; ir < mc; ir += MR) {
        const int64_t mr = (mc - ir < MR) ? mc - ir : MR;
        float* panel = dst + ir * kc;  // (kc, MR)
        if (alpha == 1.0f) {
            pack_a_panel<MR, false>(trans_a, A, lda, i0 + ir, mr, p0, kc, alpha, panel);
        } else {
            pack_a_panel<MR, true>(trans_a, A, lda, i0 + ir, mr, p0, kc, alpha, panel);
        }
    }
}

}  // namespace

void pack_a(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc,
            int64_t p0, int64_t kc, float alpha, int64_t MR, float* dst) {
    switch (MR) {
        case 6: pack_a_w<6>(trans_a, A, lda, i0, mc, p0, kc, alpha, dst); return;
        case 12: pack_a_w<12>(trans_a, A, lda, i0, mc, p0, kc, alpha, dst); return;
        default: break;
    }
    for (int64_t ir = 0; ir < mc; ir += MR) {  // any other width, plainly
        const int64_t mr = (mc - ir < MR) ? mc - ir : MR;
        float* panel = dst + ir * kc;  // (kc, MR)
        for (int64_t p = 0; p < kc; ++p) {
            for (int64_t i = 0; i < MR; ++i) {
                const int64_t row = i0 + ir + i, col = p0 + p;
                const float v = i >= mr ? 0.0f : trans_a ? A[col * lda + row] : A[row * lda + col];
                panel[p * MR + i] = alpha * v;
            }
        }
    }
}

void pack_b_panel(bool trans_b, const float* B, int64_t ldb, int64_t p0, int64_t kc,
                  int64_t j0, int64_t nr, int64_t NR, float* dst) {
    if (!trans_b) {
        // B stored (K, N): each k gives nr contiguous values.
        if (nr == NR) {
            copy_rows(NR, B + p0 * ldb + j0, ldb, kc, dst);
            return;
        }
        for (int64_t p = 0; p < kc; ++p) {
            const float* src = B + (p0 + p) * ldb + j0;
            float* out = dst + p * NR;
            for (int64_t j = 0; j < nr; ++j) out[j] = src[j];
            for (int64_t j = nr; j < NR; ++j) out[j] = 0.0f;
        }
        return;
    }
    // B stored (N, K): column j of op(B) is a contiguous row of B; a transpose.
    transpose_rows(NR, B + j0 * ldb + p0, ldb, nr, kc, false, 1.0f, dst);
}

void transpose_block(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                     int64_t ldd) {
    int64_t r0 = 0;
#if defined(__SSE2__)
    const int64_t cols4 = cols & ~int64_t(3);
    for (; r0 + 4 <= rows; r0 += 4) {
        const float* in = src + r0 * lds;  // 4 rows (cols,), stride lds
        for (int64_t c = 0; c < cols4; c += 4) {
            __m128 x0 = _mm_loadu_ps(in + c);
            __m128 x1 = _mm_loadu_ps(in + lds + c);
            __m128 x2 = _mm_loadu_ps(in + 2 * lds + c);
            __m128 x3 = _mm_loadu_ps(in + 3 * lds + c);
            _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
            float* out = dst + c * ldd + r0;  // 4 rows of dst, 4 values each
            _mm_storeu_ps(out, x0);
            _mm_storeu_ps(out + ldd, x1);
            _mm_storeu_ps(out + 2 * ldd, x2);
            _mm_storeu_ps(out + 3 * ldd, x3);
        }
        for (int64_t c = cols4; c < cols; ++c) {
            for (int64_t r = 0; r < 4; ++r) dst[c * ldd + r0 + r] = in[r * lds + c];
        }
    }
#endif
    for (int64_t r = r0; r < rows; ++r) {
        const float* in = src + r * lds;  // (cols,)
        for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = in[c];
    }
}

}  // namespace gemm
}  // namespace fastcnn
