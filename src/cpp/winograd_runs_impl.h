// winograd_runs_impl.h -- moving the Winograd convolution's tiles
// (winograd_tiles_impl.h) between the images' zero-padded bands and the
// (element, tile) rows the transforms work on. Included by
// winograd_tiles_impl.h only, so compiled once per SIMD path under its rules:
// internal linkage only, no function another file could also emit.
//
// Size letters: as in winograd_tiles.h; tc = tiles of one chunk (<= kTileChunk),
// n = tiles of one run, s = a column of a tile (0..3, or 0..5 for a 6x6 patch).
#pragma once
#include <cstdint>

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include "common.h"
#include "winograd_tiles.h"

namespace fastcnn {
namespace wino {
namespace {

// ------------------------------------------------------------- tiles ----
// A block's pixels go through zero-padded band buffers, one (rows, width)
// band per image of the block, so the per-tile loops need no bounds checks:
//   input bands  (images, 4 rows + 2, 4 TW + 2): the input pixels under the
//                block's tiles (padded coordinates; 0 outside the image);
//   output bands (images, 4 rows, 4 TW): the 4x4 tiles of the output (or of
//                its gradient), clipped to OH x OW when copied out.
// A chunk's tiles are consecutive in (image, tile row, tile column) order, so
// they fall into runs: tiles tx0 .. tx0 + n - 1 of one tile row, whose 4 (or 6)
// columns s of band row r sit side by side at 4 tx + s. Moving a run between
// the bands and the (element, tile) rows is a transpose of (tiles, 4) blocks:
// 4 tiles at a time with SSE's 4x4 transpose (x86-64's baseline, so every
// path has it), the last n % 4 value by value. Columns 4 and 5 of a 6-wide
// patch are columns 0 and 1 of the next tile.

struct Bands {
    int64_t rows, width;  // of one image's band
};
Bands input_bands(const Block& blk, const TileGrid& tg) {
    return Bands{4 * (blk.ty1 - blk.ty0) + 2, 4 * tg.TW + 2};
}
Bands output_bands(const Block& blk, const TileGrid& tg) {
    return Bands{4 * (blk.ty1 - blk.ty0), 4 * tg.TW};
}

// Calls run(t, start, n) for the runs of the chunk of tiles [t0, t0 + tc) of
// the block, in order: the chunk's tiles [t, t + n) start at band offset
// start (bands of shape b; tile j of the run at start + 4 j).
template <class Run>
void for_each_run(int64_t t0, int64_t tc, const Block& blk, const TileGrid& tg, const Bands& b,
                  Run run) {
    const int64_t rows = blk.ty1 - blk.ty0, per_image = rows * tg.TW;
    int64_t img = t0 / per_image, ty = (t0 % per_image) / tg.TW, tx = t0 % tg.TW;
    for (int64_t t = 0; t < tc; tx = 0) {
        const int64_t n = min64(tg.TW - tx, tc - t);
        run(t, (img * b.rows + 4 * ty) * b.width + 4 * tx, n);
        t += n;
        if (++ty == rows) {
            ty = 0;
            ++img;
        }
    }
}

// rows[s*ld + j] = src[4 j + s] for j < n, s < side (4, or 6: columns 4 and 5
// of a tile are the next one's 0 and 1): the columns of n side-by-side tiles
// in a band row (src) into side rows. With spill, a last group of fewer than 4
// tiles goes whole too: it reads up to 4 tiles' values past the run (within
// kBandSpare of the bands) and writes up to 3 values past each row's n
// (which the caller writes again later).
template <int64_t Side>
inline void tiles_to_rows(float* rows, int64_t ld, const float* src, int64_t n, bool spill) {
    int64_t j = 0;
#if defined(__SSE2__)
    for (; j + 4 <= n || (spill && j < n); j += 4) {
        __m128 a0 = _mm_loadu_ps(src + 4 * j), a1 = _mm_loadu_ps(src + 4 * j + 4);
        __m128 a2 = _mm_loadu_ps(src + 4 * j + 8), a3 = _mm_loadu_ps(src + 4 * j + 12);
        _MM_TRANSPOSE4_PS(a0, a1, a2, a3);
        _mm_storeu_ps(rows + j, a0);
        _mm_storeu_ps(rows + ld + j, a1);
        _mm_storeu_ps(rows + 2 * ld + j, a2);
        _mm_storeu_ps(rows + 3 * ld + j, a3);
        if (Side == 6) {  // the same one tile on: its columns 0 and 1
            __m128 b0 = _mm_loadu_ps(src + 4 * j + 4), b1 = _mm_loadu_ps(src + 4 * j + 8);
            __m128 b2 = _mm_loadu_ps(src + 4 * j + 12), b3 = _mm_loadu_ps(src + 4 * j + 16);
            _MM_TRANSPOSE4_PS(b0, b1, b2, b3);
            _mm_storeu_ps(rows + 4 * ld + j, b0);
            _mm_storeu_ps(rows + 5 * ld + j, b1);
        }
    }
#endif
    for (; j < n; ++j) {
        for (int64_t s = 0; s < Side; ++s) rows[s * ld + j] = src[4 * j + s];
    }
}

// dst[4 j + q] = rows[q*ld + j] (add: +=) for j < n, q < 4: tiles_to_rows back.
// A last group of fewer than 4 tiles reads up to 3 values past each row's n
// (rows must have them: the work buffer's rows do) and writes only its tiles.
template <bool Add>
inline void rows_to_tiles(float* dst, const float* rows, int64_t ld, int64_t n) {
    int64_t j = 0;
#if defined(__SSE2__)
    for (; j + 4 <= n; j += 4) {
        __m128 a0 = _mm_loadu_ps(rows + j), a1 = _mm_loadu_ps(rows + ld + j);
        __m128 a2 = _mm_loadu_ps(rows + 2 * ld + j), a3 = _mm_loadu_ps(rows + 3 * ld + j);
        _MM_TRANSPOSE4_PS(a0, a1, a2, a3);
        if (Add) {
            a0 = _mm_add_ps(_mm_loadu_ps(dst + 4 * j), a0);
            a1 = _mm_add_ps(_mm_loadu_ps(dst + 4 * j + 4), a1);
            a2 = _mm_add_ps(_mm_loadu_ps(dst + 4 * j + 8), a2);
            a3 = _mm_add_ps(_mm_loadu_ps(dst + 4 * j + 12), a3);
        }
        _mm_storeu_ps(dst + 4 * j, a0);
        _mm_storeu_ps(dst + 4 * j + 4, a1);
        _mm_storeu_ps(dst + 4 * j + 8, a2);
        _mm_storeu_ps(dst + 4 * j + 12, a3);
    }
    if (j < n) {  // 1 to 3 tiles: the transpose reads past the rows' n, stores only theirs
        __m128 a0 = _mm_loadu_ps(rows + j), a1 = _mm_loadu_ps(rows + ld + j);
        __m128 a2 = _mm_loadu_ps(rows + 2 * ld + j), a3 = _mm_loadu_ps(rows + 3 * ld + j);
        _MM_TRANSPOSE4_PS(a0, a1, a2, a3);
        // (tile by tile: a loop over an array of them becomes a memcpy call)
        float* d = dst + 4 * j;
        if (Add) a0 = _mm_add_ps(_mm_loadu_ps(d), a0);
        _mm_storeu_ps(d, a0);
        if (n - j > 1) {
            if (Add) a1 = _mm_add_ps(_mm_loadu_ps(d + 4), a1);
            _mm_storeu_ps(d + 4, a1);
        }
        if (n - j > 2) {
            if (Add) a2 = _mm_add_ps(_mm_loadu_ps(d + 8), a2);
            _mm_storeu_ps(d + 8, a2);
        }
        return;
    }
#endif
    for (; j < n; ++j) {
        for (int64_t q = 0; q < 4; ++q) {
            if (Add) {
                dst[4 * j + q] += rows[q * ld + j];
            } else {
                dst[4 * j + q] = rows[q * ld + j];
            }
        }
    }
}

// d[(r*side + s)*tc + t] = bands[start(t) + r*width + s] (r, s < side, side 6
// or 4) for the chunk of tiles [t0, t0 + tc): its side x side patches.
void gather_tiles(float* d, int64_t tc, const float* bands, int64_t side, int64_t width,
                  int64_t t0, const Block& blk, const TileGrid& tg, const Bands& b) {
    for_each_run(t0, tc, blk, tg, b, [&](int64_t t, int64_t start, int64_t n) {
        // Values written past a run are the next runs': rewritten by them,
        // but not past the chunk (they would land in the next row's first tiles).
        const bool spill = t + (n + 3) / 4 * 4 <= tc;
        for (int64_t r = 0; r < side; ++r) {
            const float* src = bands + start + r * width;  // the run's tiles, row r
            float* row = d + r * side * tc + t;            // column s at row + s*tc
            if (side == 6) {
                tiles_to_rows<6>(row, tc, src, n, spill);
            } else {
                tiles_to_rows<4>(row, tc, src, n, spill);
            }
        }
    });
}

}  // namespace
}  // namespace wino
}  // namespace fastcnn
