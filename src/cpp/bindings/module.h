// module.h -- the op families of fastcnn._core: each bindings/<family>.cpp
// defines one bind_* function, and module.cpp calls them all when the module
// is imported.
//
// Size letters: none (declarations only).
#pragma once
#include <pybind11/pybind11.h>

namespace fastcnn {
namespace bindings {

void bind_gemm(pybind11::module_& m);        // gemm.cpp
void bind_conv_dense(pybind11::module_& m);  // conv_dense.cpp
void bind_pool(pybind11::module_& m);        // pool.cpp
void bind_conv_pool(pybind11::module_& m);   // conv_pool.cpp
void bind_pointwise(pybind11::module_& m);   // pointwise.cpp
void bind_inference(pybind11::module_& m);   // inference.cpp

}  // namespace bindings
}  // namespace fastcnn
