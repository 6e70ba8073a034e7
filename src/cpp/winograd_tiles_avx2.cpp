// winograd_tiles_avx2.cpp -- the Winograd tile transforms (winograd_tiles_impl.h)
// compiled for the AVX2 + FMA path: only called on a CPU that has it (winograd.cpp).
//
// Size letters: none here (see winograd_tiles.h).
#include "winograd_tiles_impl.h"

namespace fastcnn {
namespace wino {

TileKernels tile_kernels_avx2() { return kTileKernels; }

}  // namespace wino
}  // namespace fastcnn
