// gemm_internal.h -- the pieces sgemm is built from: packing, micro-kernels,
// and the kernel chosen by dispatch.cpp. Internal to the native core.
//
// Size letters: M N K = GEMM sizes; MR NR MC KC NC = block sizes of the path
// in use (blocking.h, one table per path); mr nr kc = the actual (possibly
// partial) extents of one tile or block.
//
// Packed layouts (zero-padded, so the micro-kernel always sees full panels;
// MR and NR are those of the path whose kernels will read them):
//   A panel  (kc, MR): element (i, p) of op(A) at  panel[p*MR + i]
//   B panel  (kc, NR): element (p, j) of op(B) at  panel[p*NR + j]
// A packed block of mc rows is ceil(mc/MR) A panels one after another, each
// kc*MR floats long.
#pragma once
#include <cstdint>

#include "gemm/blocking.h"

namespace fastcnn {
namespace gemm {

// Micro-kernel: c (mr, nr), row stride ldc, becomes
//   beta * c + a_panel (MR, kc) * b_panel (kc, NR)   restricted to mr x nr,
// with 1 <= mr <= MR, 1 <= nr <= NR. beta == 0: c is write-only (never read,
// so NaN already in c does not leak out). kc may be 0 (then c = beta * c).
using ukernel_fn = void (*)(int64_t kc, const float* a_panel, const float* b_panel,
                            float* c, int64_t ldc, float beta, int64_t mr, int64_t nr);

// The same for a full-width tile (nr == NR) whose B panel is not packed yet:
// it reads row p of the panel straight from op(B) = B (not transposed) at
// b_src + p*ldb (NR contiguous values) and, while computing, writes the packed
// panel to b_panel (kc, NR) for the next tiles. Reading B this way overlaps the
// (L3-bound) packing with the FMAs.
using ukernel_pack_fn = void (*)(int64_t kc, const float* a_panel, const float* b_src,
                                 int64_t ldb, float* b_panel, float* c, int64_t ldc,
                                 float beta, int64_t mr);

// The micro-kernel reading op(A) = A (not transposed) in place, row i of the
// tile at a + i*lda (p-th value at a + i*lda + p), instead of from a packed
// panel: the same sums in the same order (a batch of one's conv, where packing
// the weights would cost as much as using them: whole_a.cpp). b_panel null:
// b_src is a packed B panel (kc, NR); else, as ukernel_pack_fn (nr == NR),
// row p of B at b_src + p*ldb, written to b_panel as it is read.
using ukernel_rows_fn = void (*)(int64_t kc, const float* a, int64_t lda, const float* b_src,
                                 int64_t ldb, float* b_panel, float* c, int64_t ldc,
                                 float beta, int64_t mr, int64_t nr);
// Portable C++ micro-kernels (ukernel_ref.cpp): run anywhere.
void ukernel_ref(int64_t kc, const float* a_panel, const float* b_panel,
                 float* c, int64_t ldc, float beta, int64_t mr, int64_t nr);
void ukernel_pack_ref(int64_t kc, const float* a_panel, const float* b_src, int64_t ldb,
                      float* b_panel, float* c, int64_t ldc, float beta, int64_t mr);
void ukernel_rows_ref(int64_t kc, const float* a, int64_t lda, const float* b_src, int64_t ldb,
                      float* b_panel, float* c, int64_t ldc, float beta, int64_t mr,
                      int64_t nr);
#if FASTCNN_HAVE_AVX2_BUILD
// AVX2 + FMA micro-kernels (ukernel_avx2.cpp): only call on a CPU that has both.
void ukernel_avx2(int64_t kc, const float* a_panel, const float* b_panel,
                  float* c, int64_t ldc, float beta, int64_t mr, int64_t nr);
void ukernel_pack_avx2(int64_t kc, const float* a_panel, const float* b_src, int64_t ldb,
                       float* b_panel, float* c, int64_t ldc, float beta, int64_t mr);
void ukernel_rows_avx2(int64_t kc, const float* a, int64_t lda, const float* b_src, int64_t ldb,
                       float* b_panel, float* c, int64_t ldc, float beta, int64_t mr,
                       int64_t nr);
#endif
#if FASTCNN_HAVE_AVX512_BUILD
// AVX-512 micro-kernels (ukernel_avx512.cpp, 12 x 32 tile): only call on a CPU
// with AVX-512 F/BW/DQ/VL and OS support.
void ukernel_avx512(int64_t kc, const float* a_panel, const float* b_panel,
                    float* c, int64_t ldc, float beta, int64_t mr, int64_t nr);
void ukernel_pack_avx512(int64_t kc, const float* a_panel, const float* b_src, int64_t ldb,
                         float* b_panel, float* c, int64_t ldc, float beta, int64_t mr);
void ukernel_rows_avx512(int64_t kc, const float* a, int64_t lda, const float* b_src,
                         int64_t ldb, float* b_panel, float* c, int64_t ldc, float beta,
                         int64_t mr, int64_t nr);
#endif

// Dot-product kernel for a small C and a long K (dot.cpp, the "dot" path):
// for i < m, j < n and lane l < 8,
//   acc[(i*n + j)*8 + l] += sum over p < kb, p % 8 == l, of a[i*lda + p] * b[j*ldb + p]
// with kb a multiple of 8: rows of op(A) and columns of op(B), both read
// contiguously along k (a (m, kb) row stride lda, b (n, kb) row stride ldb,
// acc (m, n, 8)). No packing and no padding: tiles of 3 x 4 dot products.
using dot_fn = void (*)(int64_t m, int64_t n, int64_t kb, const float* a, int64_t lda,
                        const float* b, int64_t ldb, float* acc);
void dot_block_ref(int64_t m, int64_t n, int64_t kb, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float* acc);
#if FASTCNN_HAVE_AVX2_BUILD
void dot_block_avx2(int64_t m, int64_t n, int64_t kb, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float* acc);
#endif

// Streaming kernels (stream.cpp, the "small M" and "small K" paths): no packing,
// every row of B read front to back. `a` / `at` already hold alpha * op(A).
// beta == 0: C is write-only. Rows of C are computed one p (k) at a time, in
// order, so a C value does not depend on where a thread's range starts.
//   stream_nn: C[0:M, j0:j1] = a (M, K; row stride lda) . B[:, j0:j1] (B (K, N)) + beta C
//   stream_nt: C[0:M, j0:j1] = a (M, K) . B[j0:j1, :]^T (B (N, K)) + beta C,
//              each value a dot product in vector lanes (8 lanes and a scalar
//              tail; AVX-512: 16 lanes, the tail masked in), lanes summed in a fixed order
//   stream_tn: C[i0:i1, 0:N] = at[:, i0:i1]^T (at (K, M), row stride ldat) . B (K, N) + beta C
using stream_fn = void (*)(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a,
                           int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                           int64_t ldc);
using stream_tn_fn = void (*)(int64_t K, int64_t i0, int64_t i1, int64_t N, const float* at,
                              int64_t ldat, const float* B, int64_t ldb, float beta, float* C,
                              int64_t ldc);
void stream_nn_ref(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void stream_nt_ref(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void stream_tn_ref(int64_t K, int64_t i0, int64_t i1, int64_t N, const float* at, int64_t ldat,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
#if FASTCNN_HAVE_AVX2_BUILD
void stream_nn_avx2(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void stream_nt_avx2(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void stream_tn_avx2(int64_t K, int64_t i0, int64_t i1, int64_t N, const float* at, int64_t ldat,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
#endif
#if FASTCNN_HAVE_AVX512_BUILD
void stream_nn_avx512(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc);
void stream_nt_avx512(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc);
void stream_tn_avx512(int64_t K, int64_t i0, int64_t i1, int64_t N, const float* at,
                      int64_t ldat, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc);
#endif

// Peak-FMA loops for bench/bench_peak.py (peak_*.cpp, ukernel_ref.cpp):
// iters iterations of independent FMA chains (flops per iteration:
// kPeakFlopsRef / Avx2 / Avx512); the return value only keeps the work alive.
constexpr int64_t kPeakFlopsRef = 32 * 2;
constexpr int64_t kPeakFlopsAvx2 = 12 * 8 * 2;
constexpr int64_t kPeakFlopsAvx512 = 24 * 16 * 2;
float fma_loop_ref(int64_t iters);
#if FASTCNN_HAVE_AVX2_BUILD
float fma_loop_avx2(int64_t iters);
#endif
#if FASTCNN_HAVE_AVX512_BUILD
float fma_loop_avx512(int64_t iters);
#endif

// The micro-kernels of one SIMD path and its block table (dispatch.cpp),
// chosen together so panels are always packed for the kernel that reads them.
struct Ukernels {
    ukernel_fn tile;
    ukernel_pack_fn tile_pack_b;
    ukernel_rows_fn tile_rows_a;
    dot_fn dot;
    stream_fn stream_nn;
    stream_fn stream_nt;
    stream_tn_fn stream_tn;
    Blocking blk;
};
Ukernels active_ukernels();
// The kernels and table of path `isa` (0 generic, 1 avx2, 2 avx512; a path
// this build lacks gives the generic ones); its kernels may only be called if
// the path is runnable, e.g. it was the active path (active_isa_id) before.
Ukernels ukernels_for(int isa);
constexpr int kIsaCount = 3;
int active_isa_id();

// Pack rows [i0, i0+mc) x columns [p0, p0+kc) of op(A), times alpha, into
// ceil(mc/mr_w) A panels (kc, mr_w) at dst (ceil(mc/mr_w)*mr_w*kc floats);
// mr_w is the MR of the path that will read them.
// op(A)(i, p) = trans_a ? A[p*lda + i] : A[i*lda + p].
void pack_a(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc,
            int64_t p0, int64_t kc, float alpha, int64_t mr_w, float* dst);

// Pack rows [p0, p0+kc) x columns [j0, j0+nr) of op(B), nr <= nr_w, into one
// B panel (kc, nr_w) at dst (kc*nr_w floats); nr_w is the reader's NR.
// op(B)(p, j) = trans_b ? B[j*ldb + p] : B[p*ldb + j].
void pack_b_panel(bool trans_b, const float* B, int64_t ldb, int64_t p0, int64_t kc,
                  int64_t j0, int64_t nr, int64_t nr_w, float* dst);

// dst (cols, rows), row stride ldd = the transpose of src (rows, cols), row
// stride lds (pack.cpp; the dot path's copies of op(A), op(B) blocks).
void transpose_block(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                     int64_t ldd);

}  // namespace gemm
}  // namespace fastcnn
