// threadpool.cpp -- the worker threads behind pool::run (see threadpool.h for why).
//
// One job at a time. The caller publishes the job (function, part count)
// and then a new value of `ticket` = (sequence number << 8 | parts); each
// worker w (part w + 1) waits for the ticket to change, runs its part if
// w + 1 < parts, and counts down `pending`. The caller runs part 0, then
// waits for pending to reach 0. Because the part count travels in the
// ticket, a worker that wakes late for a job it has no part in never reads
// the next job's fields.
//
// Waiting workers spin (with the pause hint) for spin_ns, then sleep on a
// condition variable; the caller wakes sleepers only when there are any.
#include "threadpool.h"

#include <chrono>
#include <condition_variable>
#include <thread>
#include <vector>

#include <pthread.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTCNN_PAUSE() _mm_pause()
#else
#define FASTCNN_PAUSE() ((void)0)
#endif

namespace fastcnn {
namespace pool {
namespace {

// Idle workers spin this long before they sleep. Long: a training step's ops
// follow each other within tens of microseconds (Python between them), and a
// sleeping worker takes ~10 us to wake. Short: about what libgomp's
// GOMP_SPINCOUNT=1000 spun, which let NumPy's BLAS threads have the cores
// between fastcnn's ops (bench/bench_dropin.py).
constexpr int64_t kLongSpinNs = 2'000'000;
constexpr int64_t kShortSpinNs = 20'000;

// initial-exec: a plain load, not a __tls_get_addr call, for these few bytes.
#if defined(__GNUC__)
#define FASTCNN_TLS __attribute__((tls_model("initial-exec")))
#else
#define FASTCNN_TLS
#endif
thread_local int tl_part FASTCNN_TLS = 0;
thread_local bool tl_inside FASTCNN_TLS = false;

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

struct Pool {
    std::mutex caller;                   // one job at a time
    std::atomic<uint64_t> ticket{0};     // seq << 8 | parts
    std::atomic<int> pending{0};         // workers' parts not yet finished
    std::atomic<int> sleepers{0};
    std::atomic<int64_t> spin_ns{kShortSpinNs};
    std::atomic<bool> busy_wait{false};
    const PartFn* job = nullptr;
    std::exception_ptr error;
    std::mutex error_lock;
    std::mutex sleep_lock;
    std::condition_variable wake;
    std::vector<std::thread> workers;    // worker w runs part w + 1

    void record(std::exception_ptr e) {
        std::lock_guard<std::mutex> g(error_lock);
        if (!error) error = e;
    }

    // seen: the ticket when the worker was made (before the job it is made for).
    void worker(int w, uint64_t seen) {
        for (;;) {
            uint64_t t = ticket.load(std::memory_order_acquire);
            if (t == seen) {
                const int64_t until = now_ns() + spin_ns.load(std::memory_order_relaxed);
                for (int i = 0; (t = ticket.load(std::memory_order_acquire)) == seen; ++i) {
                    FASTCNN_PAUSE();
                    if ((i & 63) == 63 && now_ns() > until) break;
                }
            }
            if (t == seen) {
                std::unique_lock<std::mutex> lk(sleep_lock);
                sleepers.fetch_add(1, std::memory_order_seq_cst);
                wake.wait(lk, [&] {
                    t = ticket.load(std::memory_order_seq_cst);
                    return t != seen;
                });
                sleepers.fetch_sub(1, std::memory_order_relaxed);
            }
            seen = t;
            const int parts = static_cast<int>(t & 0xFF);
            if (w + 1 >= parts) continue;
            tl_part = w + 1;
            tl_inside = true;
            try {
                (*job)(w + 1);
            } catch (...) {
                record(std::current_exception());
            }
            tl_inside = false;
            tl_part = 0;
            pending.fetch_sub(1, std::memory_order_acq_rel);
        }
    }

    void grow(int n_workers) {
        while (static_cast<int>(workers.size()) < n_workers) {
            const int w = static_cast<int>(workers.size());
            const uint64_t now = ticket.load(std::memory_order_relaxed);
            workers.emplace_back([this, w, now] { worker(w, now); });
            workers.back().detach();
        }
    }
};

// Leaked on purpose: detached workers may still be waiting in it at exit.
Pool* the_pool = new Pool;

// A forked child has the memory but not the threads: start over there.
void after_fork_in_child() { the_pool = new Pool; }
const int registered = pthread_atfork(nullptr, nullptr, after_fork_in_child);

void serially(int parts, const PartFn& fn) {
    const bool was_inside = tl_inside;
    const int was_part = tl_part;
    tl_inside = true;
    for (int t = 0; t < parts; ++t) {
        tl_part = t;
        fn(t);
    }
    tl_inside = was_inside;
    tl_part = was_part;
}

}  // namespace

int max_threads() {
#ifdef _OPENMP
    const int n = omp_get_max_threads();
    return n < 1 ? 1 : (n > 255 ? 255 : n);
#else
    return 1;
#endif
}

bool in_parallel() { return tl_inside; }

int thread_num() { return tl_part; }

void set_busy_wait(bool on) {
    (void)registered;
    Pool& p = *the_pool;
    p.busy_wait.store(on);
    p.spin_ns.store(on ? kLongSpinNs : kShortSpinNs, std::memory_order_relaxed);
}

bool busy_wait() { return the_pool->busy_wait.load(); }

void run(int parts, PartFn fn) {
    if (parts > 255) parts = 255;
    Pool& p = *the_pool;
    if (parts <= 1 || tl_inside) {
        serially(parts, fn);
        return;
    }
    std::unique_lock<std::mutex> lk(p.caller, std::try_to_lock);
    if (!lk.owns_lock()) {   // another thread's job is running: do this one here
        serially(parts, fn);
        return;
    }
    p.grow(parts - 1);
    p.job = &fn;
    p.error = nullptr;
    p.pending.store(parts - 1, std::memory_order_relaxed);
    const uint64_t seq = (p.ticket.load(std::memory_order_relaxed) >> 8) + 1;
    p.ticket.store(seq << 8 | static_cast<uint64_t>(parts), std::memory_order_seq_cst);
    if (p.sleepers.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> g(p.sleep_lock);
        p.wake.notify_all();
    }
    tl_inside = true;
    tl_part = 0;
    try {
        fn(0);
    } catch (...) {
        p.record(std::current_exception());
    }
    tl_inside = false;
    // Wait for the workers' parts: spin briefly, then give the core away
    // while a worker is descheduled (another process on this core).
    const int64_t start = now_ns();
    for (int i = 0; p.pending.load(std::memory_order_acquire) > 0; ++i) {
        FASTCNN_PAUSE();
        if ((i & 63) == 63 && now_ns() - start > 50'000) std::this_thread::yield();
    }
    std::exception_ptr e = p.error;
    p.error = nullptr;
    lk.unlock();
    if (e) std::rethrow_exception(e);
}

}  // namespace pool
}  // namespace fastcnn
