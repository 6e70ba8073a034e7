// scratch.h -- float scratch for kernels: aligned to a cache line, NOT
// initialised (a std::vector<float> would zero it first: a wasted pass over
// memory the kernel overwrites anyway), freed on scope exit. Allocate before
// any parallel region: the constructor may throw std::bad_alloc. The Scratch
// owns its buffer; a kernel hands out pointers into it.
//
// Size letters: count = floats in the buffer.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

namespace fastcnn {

class Scratch {
public:
    explicit Scratch(size_t count) : count_(count) {
        const size_t bytes = ((count * sizeof(float) + 63) / 64) * 64;
        data_ = static_cast<float*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64));
        if (data_ == nullptr) throw std::bad_alloc();
    }
    ~Scratch() { std::free(data_); }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    float* get() const { return data_; }
    size_t size() const { return count_; }

private:
    size_t count_;
    float* data_ = nullptr;
};

}  // namespace fastcnn
