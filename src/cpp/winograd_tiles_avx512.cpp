// winograd_tiles_avx512.cpp -- the Winograd tile transforms (winograd_tiles_impl.h)
// compiled for the AVX-512 F/BW/DQ/VL path: only called on a CPU that has it (winograd.cpp).
//
// Size letters: none here (see winograd_tiles.h).
#include "winograd_tiles_impl.h"

namespace fastcnn {
namespace wino {

TileKernels tile_kernels_avx512() { return kTileKernels; }

}  // namespace wino
}  // namespace fastcnn
