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
// compiler vectorises. Gathering tiles from images (and scattering them
// back) is the only per-tile code. Formulas are written out (not as matrix
// products) because the compiler may not drop the products with 0 (NaN *
// 0 is NaN).
#pragma once
#include <cstdint>

#include "common.h"
#include "winograd_tiles.h"

namespace fastcnn {
namespace wino {

namespace {

void fill_zero(float* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i) p[i] = 0.0f;
}

// ------------------------------------------------------- 1-D transforms ----
// Each maps the rows in + r*is (r < 6 or 4) to the rows out + i*os over n
// tiles; in and out never overlap. The rows reach the loops as separate
// restrict pointers: with one base pointer each side, the compiler would have
// to check the rows for overlap at run time and leaves the loop scalar.

// out = B^T in (6 -> 6).
__attribute__((noinline)) void bt6_rows(
    int64_t n, const float* __restrict d0, const float* __restrict d1, const float* __restrict d2,
    const float* __restrict d3, const float* __restrict d4, const float* __restrict d5,
    float* __restrict o0, float* __restrict o1, float* __restrict o2, float* __restrict o3,
    float* __restrict o4, float* __restrict o5) {
    for (int64_t t = 0; t < n; ++t) {
        const float a = d4[t] - 4.0f * d2[t], b = d3[t] - 4.0f * d1[t];
        const float c = d4[t] - d2[t], d = 2.0f * (d3[t] - d1[t]);
        o0[t] = 4.0f * d0[t] - 5.0f * d2[t] + d4[t];
        o1[t] = a + b;
        o2[t] = a - b;
        o3[t] = c + d;
        o4[t] = c - d;
        o5[t] = 4.0f * d1[t] - 5.0f * d3[t] + d5[t];
    }
}
void bt6(const float* in, int64_t is, float* out, int64_t os, int64_t n) {
    bt6_rows(n, in, in + is, in + 2 * is, in + 3 * is, in + 4 * is, in + 5 * is, out, out + os,
             out + 2 * os, out + 3 * os, out + 4 * os, out + 5 * os);
}

// out = B in (6 -> 6), the adjoint of bt6.
__attribute__((noinline)) void b6_rows(
    int64_t n, const float* __restrict v0, const float* __restrict v1, const float* __restrict v2,
    const float* __restrict v3, const float* __restrict v4, const float* __restrict v5,
    float* __restrict o0, float* __restrict o1, float* __restrict o2, float* __restrict o3,
    float* __restrict o4, float* __restrict o5) {
    for (int64_t t = 0; t < n; ++t) {
        const float s12 = v1[t] - v2[t], s34 = v3[t] - v4[t];
        const float p12 = v1[t] + v2[t], p34 = v3[t] + v4[t];
        o0[t] = 4.0f * v0[t];
        o1[t] = 4.0f * (v5[t] - s12) - 2.0f * s34;
        o2[t] = -5.0f * v0[t] - 4.0f * p12 - p34;
        o3[t] = s12 + 2.0f * s34 - 5.0f * v5[t];
        o4[t] = v0[t] + p12 + p34;
        o5[t] = v5[t];
    }
}
void b6(const float* in, int64_t is, float* out, int64_t os, int64_t n) {
    b6_rows(n, in, in + is, in + 2 * is, in + 3 * is, in + 4 * is, in + 5 * is, out, out + os,
            out + 2 * os, out + 3 * os, out + 4 * os, out + 5 * os);
}

// out = A^T in (6 -> 4).
__attribute__((noinline)) void at4_rows(
    int64_t n, const float* __restrict m0, const float* __restrict m1, const float* __restrict m2,
    const float* __restrict m3, const float* __restrict m4, const float* __restrict m5,
    float* __restrict o0, float* __restrict o1, float* __restrict o2, float* __restrict o3) {
    for (int64_t t = 0; t < n; ++t) {
        const float a = m1[t] + m2[t], b = m1[t] - m2[t];
        const float c = m3[t] + m4[t], d = m3[t] - m4[t];
        o0[t] = m0[t] + a + c;
        o1[t] = b + 2.0f * d;
        o2[t] = a + 4.0f * c;
        o3[t] = b + 8.0f * d + m5[t];
    }
}
void at4(const float* in, int64_t is, float* out, int64_t os, int64_t n) {
    at4_rows(n, in, in + is, in + 2 * is, in + 3 * is, in + 4 * is, in + 5 * is, out, out + os,
             out + 2 * os, out + 3 * os);
}

// out = A in (4 -> 6), the adjoint of at4.
__attribute__((noinline)) void a6_rows(
    int64_t n, const float* __restrict y0, const float* __restrict y1, const float* __restrict y2,
    const float* __restrict y3, float* __restrict o0, float* __restrict o1, float* __restrict o2,
    float* __restrict o3, float* __restrict o4, float* __restrict o5) {
    for (int64_t t = 0; t < n; ++t) {
        const float p = y0[t] + y2[t], q = y1[t] + y3[t];
        const float p4 = y0[t] + 4.0f * y2[t], q4 = 2.0f * y1[t] + 8.0f * y3[t];
        o0[t] = y0[t];
        o1[t] = p + q;
        o2[t] = p - q;
        o3[t] = p4 + q4;
        o4[t] = p4 - q4;
        o5[t] = y3[t];
    }
}
void a6(const float* in, int64_t is, float* out, int64_t os, int64_t n) {
    a6_rows(n, in, in + is, in + 2 * is, in + 3 * is, out, out + os, out + 2 * os, out + 3 * os,
            out + 4 * os, out + 5 * os);
}

// ------------------------------------------------------------- tiles ----
// A block's pixels go through zero-padded band buffers, one (rows, width)
// band per image of the block, so the per-tile loops need no bounds checks:
//   input bands  (images, 4 rows + 2, 4 TW + 2): the input pixels under the
//                block's tiles (padded coordinates; 0 outside the image);
//   output bands (images, 4 rows, 4 TW): the 4x4 tiles of the output (or of
//                its gradient), clipped to OH x OW when copied out.
// Within a chunk, element e of every tile sits at off[t] + eoff(e) of the
// bands: per e one indexed loop over the tiles, which the compiler makes a
// vector gather or scatter where the path has one.

struct Bands {
    int64_t rows, width;  // of one image's band
};
Bands input_bands(const Block& blk, const TileGrid& tg) {
    return Bands{4 * (blk.ty1 - blk.ty0) + 2, 4 * tg.TW + 2};
}
Bands output_bands(const Block& blk, const TileGrid& tg) {
    return Bands{4 * (blk.ty1 - blk.ty0), 4 * tg.TW};
}

// off[t] (t < tc): where tile t0 + t of the block starts in bands of shape b.
void tile_offsets(int32_t* off, int64_t t0, int64_t tc, const Block& blk, const TileGrid& tg,
                  const Bands& b) {
    const int64_t per_image = (blk.ty1 - blk.ty0) * tg.TW;
    int64_t img = t0 / per_image, ty = (t0 % per_image) / tg.TW, tx = t0 % tg.TW;
    for (int64_t t = 0; t < tc; ++t) {
        off[t] = static_cast<int32_t>((img * b.rows + 4 * ty) * b.width + 4 * tx);
        if (++tx == tg.TW) {
            tx = 0;
            if (++ty == blk.ty1 - blk.ty0) {
                ty = 0;
                ++img;
            }
        }
    }
}

// d[e*tc + t] = bands[off[t] + (e / side) * width + e % side] for e < side*side.
void gather_tiles(float* __restrict d, int64_t tc, const float* __restrict bands,
                  const int32_t* __restrict off, int64_t side, int64_t width) {
    for (int64_t r = 0; r < side; ++r) {
        for (int64_t s = 0; s < side; ++s) {
            float* __restrict row = d + (r * side + s) * tc;
            const float* __restrict src = bands + r * width + s;
            for (int64_t t = 0; t < tc; ++t) row[t] = src[off[t]];
        }
    }
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
    const float sixth = 1.0f / 6.0f, twelfth = 1.0f / 12.0f, t24 = 1.0f / 24.0f;
    auto g_rows = [=](const float* __restrict in, int64_t is, float* __restrict out, int64_t os) {
        const float* g0 = in; const float* g1 = in + is; const float* g2 = in + 2 * is;
        for (int64_t c = 0; c < C; ++c) {
            const float s = g0[c] + g2[c];
            const float a = t24 * g0[c] + sixth * g2[c], b = twelfth * g1[c];
            out[c] = 0.25f * g0[c];
            out[os + c] = -sixth * (s + g1[c]);
            out[2 * os + c] = -sixth * (s - g1[c]);
            out[3 * os + c] = a + b;
            out[4 * os + c] = a - b;
            out[5 * os + c] = g2[c];
        }
    };
    for (int64_t k = 0; k < K; ++k) {
        for (int64_t c = 0; c < C; ++c) {
            for (int64_t a = 0; a < 9; ++a) g[a * C + c] = w[(k * C + c) * 9 + a];
        }
        // along the kernel's rows a, for each column b: gg[i*3 + b] = sum_a G[i][a] g[a*3 + b]
        for (int64_t b = 0; b < 3; ++b) g_rows(g + b * C, 3 * C, gg + b * C, 3 * C);
        // along its columns, for each i: U[i*6 + j] = sum_b gg[i*3 + b] G[j][b]
        for (int64_t i = 0; i < 6; ++i) g_rows(gg + i * 3 * C, C, U + (i * 6 * K + k) * C, K * C);
    }
}

void weight_gradient(float* dw, const float* dU, int64_t K, int64_t C, float* work) {
    // per k: h (18, C) = dU G (rows i*3 + b), then G^T h, element-major rows
    // (9, C), scattered into dw (K, C, 3, 3).
    float* h = work;             // (18, C)
    float* out = work + 18 * C;  // (9, C)
    const float sixth = 1.0f / 6.0f, twelfth = 1.0f / 12.0f, t24 = 1.0f / 24.0f;
    auto gt_rows = [=](const float* __restrict in, int64_t is, float* __restrict o, int64_t os) {
        // o[a] = sum_i G[i][a] in[i], a = 0..2
        const float* u0 = in; const float* u1 = in + is; const float* u2 = in + 2 * is;
        const float* u3 = in + 3 * is; const float* u4 = in + 4 * is; const float* u5 = in + 5 * is;
        for (int64_t c = 0; c < C; ++c) {
            const float p12 = u1[c] + u2[c], s12 = u1[c] - u2[c];
            const float p34 = u3[c] + u4[c], s34 = u3[c] - u4[c];
            o[c] = 0.25f * u0[c] - sixth * p12 + t24 * p34;
            o[os + c] = twelfth * s34 - sixth * s12;
            o[2 * os + c] = sixth * (p34 - p12) + u5[c];
        }
    };
    for (int64_t k = 0; k < K; ++k) {
        // along j for each i: h[i*3 + b] = sum_j dU[i*6 + j] G[j][b]
        for (int64_t i = 0; i < 6; ++i) gt_rows(dU + (i * 6 * K + k) * C, K * C, h + i * 3 * C, C);
        // along i for each b: out[a*3 + b] = sum_i G[i][a] h[i*3 + b]
        for (int64_t b = 0; b < 3; ++b) gt_rows(h + b * C, 3 * C, out + b * C, 3 * C);
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
    float* d = work;                        // (36, kTileChunk)
    float* t1 = work + 36 * kTileChunk;     // (36, kTileChunk)
    int32_t off[kTileChunk];
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
            tile_offsets(off, t0, tc, blk, tg, b);
            gather_tiles(d, tc, bands, off, 6, b.width);
            // rows: t1[i*6 + s] = sum_r B^T[i][r] d[r*6 + s]
            for (int64_t s = 0; s < 6; ++s) bt6(d + s * tc, 6 * tc, t1 + s * tc, 6 * tc, tc);
            // columns: V[i*6 + j][c] = sum_s B^T[j][s] t1[i*6 + s]
            for (int64_t i = 0; i < 6; ++i) {
                bt6(t1 + i * 6 * tc, tc, V + (i * 6 * C + c) * ldv + t0, C * ldv, tc);
            }
        }
    }
}

bool output_tiles(float* const* z, const float* Mw, int64_t ldm, int64_t K, const float* bias,
                  const TileGrid& tg, const Block& blk, float* work, float* bands) {
    const int64_t n = block_tiles(blk, tg);
    const Bands b = output_bands(blk, tg);
    const OutRows rows = valid_rows(blk, tg);
    float* t1 = work;                        // (24, kTileChunk)
    float* o = work + 24 * kTileChunk;       // (16, kTileChunk)
    float* check = o + 16 * kTileChunk;     // (kTileChunk): 0, or NaN once a value is not finite
    fill_zero(check, kTileChunk);
    int32_t off[kTileChunk];
    const int64_t OHW = tg.OH * tg.OW;
    for (int64_t k = 0; k < K; ++k) {
        for (int64_t t0 = 0; t0 < n; t0 += kTileChunk) {
            const int64_t tc = min64(kTileChunk, n - t0);
            // rows: t1[p*6 + j] = sum_i A^T[p][i] M[i*6 + j]
            for (int64_t j = 0; j < 6; ++j) {
                at4(Mw + (j * K + k) * ldm + t0, 6 * K * ldm, t1 + j * tc, 6 * tc, tc);
            }
            // columns: o[p*4 + q] = sum_j A^T[q][j] t1[p*6 + j]
            for (int64_t p = 0; p < 4; ++p) at4(t1 + p * 6 * tc, tc, o + p * 4 * tc, tc, tc);
            tile_offsets(off, t0, tc, blk, tg, b);
            for (int64_t p = 0; p < 4; ++p) {
                for (int64_t q = 0; q < 4; ++q) {
                    const float* __restrict row = o + (p * 4 + q) * tc;
                    float* __restrict dst = bands + p * b.width + q;
                    for (int64_t t = 0; t < tc; ++t) dst[off[t]] = row[t];
                }
            }
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
    float* y = work;                        // (16, kTileChunk)
    float* t1 = work + 16 * kTileChunk;     // (24, kTileChunk)
    int32_t off[kTileChunk];
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
            tile_offsets(off, t0, tc, blk, tg, b);
            gather_tiles(y, tc, bands, off, 4, b.width);
            // rows: t1[i*4 + q] = sum_p A[i][p] y[p*4 + q]
            for (int64_t q = 0; q < 4; ++q) a6(y + q * tc, 4 * tc, t1 + q * tc, 4 * tc, tc);
            // columns: Z[i*6 + j][k] = sum_q A[j][q] t1[i*4 + q]
            for (int64_t i = 0; i < 6; ++i) {
                a6(t1 + i * 4 * tc, tc, Z + (i * 6 * K + k) * ldz + t0, K * ldz, tc);
            }
        }
    }
}

bool input_grad_tiles(float* dx, const float* dV, int64_t ldv, int64_t C, const TileGrid& tg,
                      const Block& blk, float* work, float* bands) {
    const int64_t n = block_tiles(blk, tg);
    const Bands b = input_bands(blk, tg);
    const int64_t inside = min64(tg.W, b.width - tg.PW);  // image columns in a band row
    float* t1 = work;                        // (36, kTileChunk)
    float* dd = work + 36 * kTileChunk;     // (36, kTileChunk)
    float* check = dd + 36 * kTileChunk;    // (kTileChunk): 0, or NaN once a value is not finite
    fill_zero(check, kTileChunk);
    int32_t off[kTileChunk];
    for (int64_t c = 0; c < C; ++c) {
        fill_zero(bands, (blk.n1 - blk.n0) * b.rows * b.width);
        for (int64_t t0 = 0; t0 < n; t0 += kTileChunk) {
            const int64_t tc = min64(kTileChunk, n - t0);
            // rows: t1[r*6 + j] = sum_i B[r][i] dV[i*6 + j]
            for (int64_t j = 0; j < 6; ++j) {
                b6(dV + (j * C + c) * ldv + t0, 6 * C * ldv, t1 + j * tc, 6 * tc, tc);
            }
            // columns: dd[r*6 + s] = sum_j B[s][j] t1[r*6 + j]
            for (int64_t r = 0; r < 6; ++r) b6(t1 + r * 6 * tc, tc, dd + r * 6 * tc, tc, tc);
            // Patches overlap: added tile by tile, in order.
            tile_offsets(off, t0, tc, blk, tg, b);
            for (int64_t t = 0; t < tc; ++t) {
                float* dst = bands + off[t];
                for (int64_t r = 0; r < 6; ++r) {
                    for (int64_t s = 0; s < 6; ++s) dst[r * b.width + s] += dd[(r * 6 + s) * tc + t];
                }
            }
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
