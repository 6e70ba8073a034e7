// winograd_tiles_impl.h -- the tile transforms of the Winograd convolution
// F(4x4, 3x3) (winograd.h, winograd_tiles.h): images into the Winograd domain
// and back, for the forward pass, the input gradient and the weight gradient;
// and the weights. Included once by each of winograd_tiles.cpp,
// winograd_tiles_avx2.cpp and winograd_tiles_avx512.cpp, which compile it
// with their path's flags: everything here has internal linkage, and nothing
// here may call a function another file could also emit (no <algorithm>,
// <cmath>, std::vector; common.h's helpers are static).
//
// Size letters: as in winograd_tiles.h; tc = tiles of one chunk (<= kTileChunk).
//
// The matrices (Lavin & Gray 2016, interpolation points 0, 1, -1, 2, -2, inf):
//   B^T (6x6)  = [4  0 -5  0 1 0; 0 -4 -4  1 1 0; 0  4 -4 -1 1 0;
//                 0 -2 -1  2 1 0; 0  2 -1 -2 1 0; 0  4  0 -5 0 1]
//   G   (6x3)  = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
//                 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T (4x6)  = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// so a 4x4 tile of the correlation of a 6x6 input patch d with a 3x3 kernel g
// is A^T [(G g G^T) . (B^T d B)] A (. elementwise). The backward passes use
// the adjoints: dz (4x4 tile of the output's gradient) -> Z = A dz A^T,
// dV -> B dV B^T (into the patch's pixels), dU -> G^T dU G (into the kernel).
//
// How: every transform applies a small matrix along the rows of each tile,
// then along its columns, and does so for a chunk of up to kTileChunk tiles
// at once: the chunk's values sit in (element, tile) arrays, tile index
// innermost, so each line of the formulas is a plain loop over tiles the
// compiler vectorises. Moving tiles between the images and those arrays is
// winograd_runs_impl.h's job. Formulas are written out (not as matrix
// products) because the compiler may not drop the products with 0 (NaN *
// 0 is NaN).
#pragma once
#include <cstdint>

#include "common.h"
#include "winograd_runs_impl.h"
#include "winograd_tiles.h"

namespace fastcnn {
namespace wino {

namespace {

void fill_zero(float* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i) p[i] = 0.0f;
}

// ------------------------------------------------------- 1-D transforms ----
// Each maps the rows in + r*is (r < 6 or 4) to the rows out + i*os over n
// tiles; in and out never overlap, which `ivdep` tells the compiler (it
// cannot see it, and would otherwise check a dozen row pairs at run time or
// leave the loop scalar). Row pointers: a0..a5 in, o0..o5 out.
// FASTCNN_ROWS_LOOP(i, o) { body }: the body for every tile t, with the input
// rows a[0..i) and output rows o[0..o).
#define FASTCNN_ROWS_LOOP(in_rows, out_rows)                       \
    const float* a[6];                                             \
    float* o[6];                                                   \
    for (int r = 0; r < (in_rows); ++r) a[r] = in + r * is;        \
    for (int r = 0; r < (out_rows); ++r) o[r] = out + r * os;      \
    _Pragma("GCC ivdep") for (int64_t t = 0; t < n; ++t)

// out = B^T in (6 -> 6).
void bt6(const float* in, int64_t is, float* out, int64_t os, int64_t n) {
    FASTCNN_ROWS_LOOP(6, 6) {
        const float p = a[4][t] - 4.0f * a[2][t], q = a[3][t] - 4.0f * a[1][t];
        const float u = a[4][t] - a[2][t], v = 2.0f * (a[3][t] - a[1][t]);
        o[0][t] = 4.0f * a[0][t] - 5.0f * a[2][t] + a[4][t];
        o[1][t] = p + q;
        o[2][t] = p - q;
        o[3][t] = u + v;
        o[4][t] = u - v;
        o[5][t] = 4.0f * a[1][t] - 5.0f * a[3][t] + a[5][t];
    }
}

// out = B in (6 -> 6), the adjoint of bt6.
void b6(const float* in, int64_t is, float* out, int64_t os, int64_t n) {
    FASTCNN_ROWS_LOOP(6, 6) {
        const float s12 = a[1][t] - a[2][t], s34 = a[3][t] - a[4][t];
        const float p12 = a[1][t] + a[2][t], p34 = a[3][t] + a[4][t];
        o[0][t] = 4.0f * a[0][t];
        o[1][t] = 4.0f * (a[5][t] - s12) - 2.0f * s34;
        o[2][t] = -5.0f * a[0][t] - 4.0f * p12 - p34;
        o[3][t] = s12 + 2.0f * s34 - 5.0f * a[5][t];
        o[4][t] = a[0][t] + p12 + p34;
        o[5][t] = a[5][t];
    }
}

// out = A^T in (6 -> 4).
void at4(const float* in, int64_t is, float* out, int64_t os, int64_t n) {
    FASTCNN_ROWS_LOOP(6, 4) {
        const float p = a[1][t] + a[2][t], q = a[1][t] - a[2][t];
        const float u = a[3][t] + a[4][t], v = a[3][t] - a[4][t];
        o[0][t] = a[0][t] + p + u;
        o[1][t] = q + 2.0f * v;
        o[2][t] = p + 4.0f * u;
        o[3][t] = q + 8.0f * v + a[5][t];
    }
}

// out = A in (4 -> 6), the adjoint of at4.
void a6(const float* in, int64_t is, float* out, int64_t os, int64_t n) {
    FASTCNN_ROWS_LOOP(4, 6) {
        const float p = a[0][t] + a[2][t], q = a[1][t] + a[3][t];
        const float p4 = a[0][t] + 4.0f * a[2][t], q4 = 2.0f * a[1][t] + 8.0f * a[3][t];
        o[0][t] = a[0][t];
        o[1][t] = p + q;
        o[2][t] = p - q;
        o[3][t] = p4 + q4;
        o[4][t] = p4 - q4;
        o[5][t] = a[3][t];
    }
}

// out = G in (3 -> 6), the weights' transform (here n runs over channels).
constexpr float kSixth = 1.0f / 6.0f, kTwelfth = 1.0f / 12.0f, k24th = 1.0f / 24.0f;
void g6(const float* in, int64_t is, float* out, int64_t os, int64_t n) {
    FASTCNN_ROWS_LOOP(3, 6) {
        const float s = a[0][t] + a[2][t];
        const float p = k24th * a[0][t] + kSixth * a[2][t], q = kTwelfth * a[1][t];
        o[0][t] = 0.25f * a[0][t];
        o[1][t] = -kSixth * (s + a[1][t]);
        o[2][t] = -kSixth * (s - a[1][t]);
        o[3][t] = p + q;
        o[4][t] = p - q;
        o[5][t] = a[2][t];
    }
}

// out = G^T in (6 -> 3), its adjoint (the weight gradient).
void gt3(const float* in, int64_t is, float* out, int64_t os, int64_t n) {
    FASTCNN_ROWS_LOOP(6, 3) {
        const float p12 = a[1][t] + a[2][t], s12 = a[1][t] - a[2][t];
        const float p34 = a[3][t] + a[4][t], s34 = a[3][t] - a[4][t];
        o[0][t] = 0.25f * a[0][t] - kSixth * p12 + k24th * p34;
        o[1][t] = kTwelfth * s34 - kSixth * s12;
        o[2][t] = kSixth * (p34 - p12) + a[5][t];
    }
}

#undef FASTCNN_ROWS_LOOP

// One 1-D transform of the tiles (bt6, b6, at4, a6).
using RowTransform = void (*)(const float* in, int64_t is, float* out, int64_t os, int64_t n);

// The chunk's tiles into the Winograd domain: dst + e*ds (e = i*6 + j, tc tiles
// each) = f along the rows, then along the columns, of the side x side patches
// of the chunk of tiles [t0, t0 + tc) in bands of shape b. work: (36 + 36, kTileChunk).
void chunk_to_domain(RowTransform f, int64_t side, const float* bands, const Bands& b,
                     int64_t t0, int64_t tc, const Block& blk, const TileGrid& tg, float* work,
                     float* dst, int64_t ds) {
    float* d = work;                     // (side*side, tc): the patches
    float* t1 = work + 36 * kTileChunk;  // (6*side, tc): t1[i*side + s] = f along r
    gather_tiles(d, tc, bands, side, b.width, t0, blk, tg, b);
    for (int64_t s = 0; s < side; ++s) f(d + s * tc, side * tc, t1 + s * tc, side * tc, tc);
    for (int64_t i = 0; i < 6; ++i) f(t1 + i * side * tc, tc, dst + i * 6 * ds, ds, tc);
}

// The chunk's tiles out of the Winograd domain: work + 36 kTileChunk (side *
// side, tc) = f (at4, b6: 6 -> side rows) along the rows, then along the
// columns, of the 6x6 tiles at src + e*ss (e = i*6 + j, tc tiles each).
// work: (36 + 36, kTileChunk).
void chunk_from_domain(RowTransform f, int64_t side, const float* src, int64_t ss, int64_t tc,
                       float* work) {
    float* t1 = work;                    // (side*6, tc): t1[p*6 + j] = f along i
    float* out = work + 36 * kTileChunk;
    for (int64_t j = 0; j < 6; ++j) f(src + j * ss, 6 * ss, t1 + j * tc, 6 * tc, tc);
    for (int64_t p = 0; p < side; ++p) f(t1 + p * 6 * tc, tc, out + p * side * tc, tc, tc);
}

// The valid part of output band rows [row0, row0 + count) of image img:
// plane rows of width OW (4 TW >= OW columns in the band).
struct OutRows {
    int64_t row0, count;
};
OutRows valid_rows(const Block& blk, const TileGrid& tg) {
    const int64_t row0 = 4 * blk.ty0;
    return OutRows{row0, min64(tg.OH, 4 * blk.ty1) - row0};
}

// dst[i] = src[i] + add (i < n, n <= kTileChunk), and check[i] becomes NaN
// where dst[i] is not finite (check[i] += dst[i] * 0).
void add_checked(float* __restrict dst, const float* __restrict src, float add, int64_t n,
                 float* __restrict check) {
    for (int64_t i = 0; i < n; ++i) {
        dst[i] = src[i] + add;
        check[i] += dst[i] * 0.0f;
    }
}
// The same with a row to add: dst[i] = src[i] + add[i] (add may be dst).
void add_checked(float* dst, const float* __restrict src, const float* add, int64_t n,
                 float* __restrict check) {
    for (int64_t i = 0; i < n; ++i) {
        dst[i] = src[i] + add[i];
        check[i] += dst[i] * 0.0f;
    }
}
bool all_finite(const float* check) {
    float all = 0.0f;
    for (int64_t i = 0; i < kTileChunk; ++i) all += check[i];
    return all == 0.0f;
}

// ------------------------------------------------------------ weights ----

void transform_weights(float* U, const float* w, int64_t K, int64_t C, float* work) {
    // per k: g (9, C) the kernels of row k, element-major; gg (18, C) = G g
    // (rows i*3 + b); U[e][k][c] = (G g G^T)[e], rows of C values.
    float* g = work;            // (9, C)
    float* gg = work + 9 * C;   // (18, C)
    for (int64_t k = 0; k < K; ++k) {
        for (int64_t c = 0; c < C; ++c) {
            for (int64_t a = 0; a < 9; ++a) g[a * C + c] = w[(k * C + c) * 9 + a];
        }
        // along the kernel's rows a, for each column b: gg[i*3 + b] = sum_a G[i][a] g[a*3 + b]
        for (int64_t b = 0; b < 3; ++b) g6(g + b * C, 3 * C, gg + b * C, 3 * C, C);
        // along its columns, for each i: U[i*6 + j] = sum_b gg[i*3 + b] G[j][b]
        for (int64_t i = 0; i < 6; ++i) g6(gg + i * 3 * C, C, U + (i * 6 * K + k) * C, K * C, C);
    }
}

void weight_gradient(float* dw, const float* dU, int64_t K, int64_t C, float* work) {
    // per k: h (18, C) = dU G (rows i*3 + b), then G^T h, element-major rows
    // (9, C), scattered into dw (K, C, 3, 3).
    float* h = work;             // (18, C)
    float* out = work + 18 * C;  // (9, C)
    for (int64_t k = 0; k < K; ++k) {
        // along j for each i: h[i*3 + b] = sum_j dU[i*6 + j] G[j][b]
        for (int64_t i = 0; i < 6; ++i) gt3(dU + (i * 6 * K + k) * C, K * C, h + i * 3 * C, C, C);
        // along i for each b: out[a*3 + b] = sum_i G[i][a] h[i*3 + b]
        for (int64_t b = 0; b < 3; ++b) gt3(h + b * C, 3 * C, out + b * C, 3 * C, C);
        for (int64_t c = 0; c < C; ++c) {
            for (int64_t a = 0; a < 9; ++a) dw[(k * C + c) * 9 + a] = out[a * C + c];
        }
    }
}

// ------------------------------------------------------------- images ----

void input_tiles(float* V, int64_t ldv, const float* x, int64_t C, const TileGrid& tg,
                 const Block& blk, float* work, float* bands) {
    const int64_t n = block_tiles(blk, tg);
    const Bands b = input_bands(blk, tg);
    const int64_t inside = min64(tg.W, b.width - tg.PW);  // image columns in a band row
    for (int64_t c = 0; c < C; ++c) {
        for (int64_t img = 0; img < blk.n1 - blk.n0; ++img) {
            const float* plane = x + ((blk.n0 + img) * C + c) * tg.H * tg.W;  // (H, W)
            for (int64_t rr = 0; rr < b.rows; ++rr) {
                float* dst = bands + (img * b.rows + rr) * b.width;
                const int64_t y = 4 * blk.ty0 - tg.PH + rr;
                if (y < 0 || y >= tg.H) {
                    fill_zero(dst, b.width);
                    continue;
                }
                const float* src = plane + y * tg.W;
                fill_zero(dst, tg.PW);
                for (int64_t xx = 0; xx < inside; ++xx) dst[tg.PW + xx] = src[xx];
                fill_zero(dst + tg.PW + inside, b.width - tg.PW - inside);
            }
        }
        for (int64_t t0 = 0; t0 < n; t0 += kTileChunk) {
            const int64_t tc = min64(kTileChunk, n - t0);
            // V[e][c] = (B^T d B)[e]
            chunk_to_domain(bt6, 6, bands, b, t0, tc, blk, tg, work, V + c * ldv + t0, C * ldv);
        }
    }
}

bool output_tiles(float* const* z, const float* Mw, int64_t ldm, int64_t K, const float* bias,
                  const TileGrid& tg, const Block& blk, float* work, float* bands) {
    const int64_t n = block_tiles(blk, tg);
    const Bands b = output_bands(blk, tg);
    const OutRows rows = valid_rows(blk, tg);
    float* o = work + 36 * kTileChunk;      // (16, kTileChunk): the chunk's output tiles
    float* check = o + 36 * kTileChunk;     // (kTileChunk): 0, or NaN once a value is not finite
    fill_zero(check, kTileChunk);
    const int64_t OHW = tg.OH * tg.OW;
    for (int64_t k = 0; k < K; ++k) {
        for (int64_t t0 = 0; t0 < n; t0 += kTileChunk) {
            const int64_t tc = min64(kTileChunk, n - t0);
            // o[p*4 + q] = (A^T M A)[p][q]
            chunk_from_domain(at4, 4, Mw + k * ldm + t0, K * ldm, tc, work);
            for_each_run(t0, tc, blk, tg, b, [&](int64_t t, int64_t start, int64_t count) {
                for (int64_t p = 0; p < 4; ++p) {
                    rows_to_tiles<false>(bands + start + p * b.width, o + p * 4 * tc + t, tc, count);
                }
            });
        }
        const float bk = bias ? bias[k] : 0.0f;
        for (int64_t img = 0; img < blk.n1 - blk.n0; ++img) {
            for (int64_t r = 0; r < rows.count; ++r) {
                const float* src = bands + (img * b.rows + r) * b.width;
                float* dst = z[img] + k * OHW + (rows.row0 + r) * tg.OW;
                for (int64_t q0 = 0; q0 < tg.OW; q0 += kTileChunk) {
                    add_checked(dst + q0, src + q0, bk, min64(kTileChunk, tg.OW - q0), check);
                }
            }
        }
    }
    return all_finite(check);
}

void output_grad_tiles(float* Z, int64_t ldz, const float* const* dz, int64_t K,
                       const TileGrid& tg, const Block& blk, float* work, float* bands) {
    const int64_t n = block_tiles(blk, tg);
    const Bands b = output_bands(blk, tg);
    const OutRows rows = valid_rows(blk, tg);
    const int64_t OHW = tg.OH * tg.OW;
    for (int64_t k = 0; k < K; ++k) {
        for (int64_t img = 0; img < blk.n1 - blk.n0; ++img) {
            for (int64_t r = 0; r < b.rows; ++r) {
                float* dst = bands + (img * b.rows + r) * b.width;
                if (r >= rows.count) {
                    fill_zero(dst, b.width);
                    continue;
                }
                const float* src = dz[img] + k * OHW + (rows.row0 + r) * tg.OW;
                for (int64_t q = 0; q < tg.OW; ++q) dst[q] = src[q];
                fill_zero(dst + tg.OW, b.width - tg.OW);
            }
        }
        for (int64_t t0 = 0; t0 < n; t0 += kTileChunk) {
            const int64_t tc = min64(kTileChunk, n - t0);
            // Z[e][k] = (A dz A^T)[e]
            chunk_to_domain(a6, 4, bands, b, t0, tc, blk, tg, work, Z + k * ldz + t0, K * ldz);
        }
    }
}

bool input_grad_tiles(float* dx, const float* dV, int64_t ldv, int64_t C, const TileGrid& tg,
                      const Block& blk, float* work, float* bands) {
    const int64_t n = block_tiles(blk, tg);
    const Bands b = input_bands(blk, tg);
    const int64_t inside = min64(tg.W, b.width - tg.PW);  // image columns in a band row
    float* dd = work + 36 * kTileChunk;     // (36, kTileChunk): the chunk's patch gradients
    float* check = dd + 36 * kTileChunk;    // (kTileChunk): 0, or NaN once a value is not finite
    fill_zero(check, kTileChunk);
    for (int64_t c = 0; c < C; ++c) {
        fill_zero(bands, (blk.n1 - blk.n0) * b.rows * b.width);
        for (int64_t t0 = 0; t0 < n; t0 += kTileChunk) {
            const int64_t tc = min64(kTileChunk, n - t0);
            // dd[r*6 + s] = (B dV B^T)[r][s]
            chunk_from_domain(b6, 6, dV + c * ldv + t0, C * ldv, tc, work);
            // Patches overlap. Each pixel gets its tiles' values in tile order:
            // run by run, and within a row of a run first columns 4 and 5 of
            // each tile (the next tile's 0 and 1), then columns 0 to 3.
            for_each_run(t0, tc, blk, tg, b, [&](int64_t t, int64_t start, int64_t count) {
                for (int64_t r = 0; r < 6; ++r) {
                    float* dst = bands + start + r * b.width;
                    const float* row = dd + r * 6 * tc + t;  // column s at row + s*tc
                    for (int64_t j = 0; j < count; ++j) {
                        dst[4 * j + 4] += row[4 * tc + j];
                        dst[4 * j + 5] += row[5 * tc + j];
                    }
                    rows_to_tiles<true>(dst, row, tc, count);
                }
            });
        }
        // dx += the bands' pixels inside the image
        for (int64_t img = 0; img < blk.n1 - blk.n0; ++img) {
            float* plane = dx + ((blk.n0 + img) * C + c) * tg.H * tg.W;  // (H, W)
            for (int64_t rr = 0; rr < b.rows; ++rr) {
                const int64_t y = 4 * blk.ty0 - tg.PH + rr;
                if (y < 0 || y >= tg.H) continue;
                const float* src = bands + (img * b.rows + rr) * b.width + tg.PW;
                float* dst = plane + y * tg.W;
                for (int64_t x0 = 0; x0 < inside; x0 += kTileChunk) {
                    add_checked(dst + x0, src + x0, dst + x0, min64(kTileChunk, inside - x0), check);
                }
            }
        }
    }
    return all_finite(check);
}

// This path's table.
constexpr TileKernels kTileKernels{&transform_weights, &weight_gradient, &input_tiles,
                                   &output_tiles, &output_grad_tiles, &input_grad_tiles};

}  // namespace
}  // namespace wino
}  // namespace fastcnn
