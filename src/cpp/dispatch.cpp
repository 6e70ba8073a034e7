// dispatch.cpp -- PLACEHOLDER until the GEMM work lands: always "generic".
#include "fastcnn.h"

#include <cstring>

namespace fastcnn {

void init_dispatch() {}
bool set_isa(const char* name) { return std::strcmp(name, "generic") == 0; }
const char* simd_level() { return "generic"; }
bool cpu_has_avx2_fma() { return false; }

}  // namespace fastcnn
