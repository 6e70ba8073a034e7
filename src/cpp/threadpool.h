// threadpool.h -- fastcnn's own worker threads, for the kernels' parallel loops.
//
// Why not OpenMP's: libgomp's idle threads spin for a count fixed when the
// library loads. A long spin is what training wants
// (one op follows another within microseconds, and a sleeping thread takes
// ~10 us to wake), and exactly what a process that also runs NumPy's threaded
// BLAS cannot afford: the spinning takes the core the BLAS threads need next
// (docs/numpy-dropin.md). These workers spin for a time set at run time:
// long while Sequential.fit trains (set_busy_wait(true)), short otherwise,
// then sleep on a condition variable.
//
// And no OpenMP runtime is linked at all, so none can clash with the one
// another library (PyTorch, a BLAS) brings into the same process.
//
// A loop uses up to get_num_threads() threads (threads.cpp: OMP_NUM_THREADS
// at first use, fastcnn.set_num_threads, threadpoolctl).
//
// run() and parallel_for() are called from one thread at a time per process
// in the fast case; a second caller while the workers are busy (another
// Python thread), or a call from inside a parallel loop, runs its loop on the
// calling thread alone. Every kernel gives the same result on any number of
// threads, so which case ran never shows in a result.
//
// Size letters: n = loop iterations; parts = pieces a loop is cut into.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

namespace fastcnn {
namespace pool {

// A non-owning reference to a callable taking the part index (no allocation).
class PartFn {
public:
    template <class F>
    PartFn(F& f) : obj_(&f), call_([](void* o, int t) { (*static_cast<F*>(o))(t); }) {}
    void operator()(int t) const { call_(obj_, t); }

private:
    void* obj_;
    void (*call_)(void*, int);
};

int max_threads();        // threads a parallel loop may use (get_num_threads, <= 255)
bool in_parallel();       // true inside a part run by run()
int thread_num();         // this thread's part index inside run(); 0 outside

// Calls fn(t) for every t in [0, parts), on up to `parts` threads: the caller
// and the workers take parts one at a time, so which thread runs which part
// varies from call to call (a part must not depend on it). Returns when every
// part has finished. An exception from a part is rethrown here (the first one).
void run(int parts, PartFn fn);

// Long spin (training) or short spin (everything else) for idle workers.
void set_busy_wait(bool on);
bool busy_wait();

// body(i) for i in [0, n): in up to max_threads() contiguous, nearly equal
// chunks when `parallel`, else in order on the calling thread. Either way the
// loop runs in one out-of-line function (behind PartFn): inlining it here, once
// for each case, would slow the kernels' own loops (register spills).
template <class Body>
void parallel_for(int64_t n, bool parallel, Body&& body) {
    if (n <= 0) return;
    int64_t parts = parallel && !in_parallel() ? max_threads() : 1;
    if (parts > n) parts = n;
    auto part = [&](int t) {
        const int64_t lo = n * t / parts, hi = n * (t + 1) / parts;
        for (int64_t i = lo; i < hi; ++i) body(i);
    };
    run(static_cast<int>(parts), PartFn(part));
}

// body(i, t) for i in [0, n) handed out one at a time to up to `threads`
// threads (t: the thread's part index, for per-thread scratch).
template <class Body>
void parallel_for_dynamic(int64_t n, int threads, Body&& body) {
    if (n <= 0) return;
    int64_t parts = in_parallel() ? 1 : threads;
    if (parts > n) parts = n;
    if (parts < 1) parts = 1;
    std::atomic<int64_t> next{0};
    auto part = [&](int t) {
        for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) body(i, t);
    };
    run(static_cast<int>(parts), PartFn(part));
}

}  // namespace pool
}  // namespace fastcnn
