// fastcnn.h -- the whole native API of fastcnn as plain C++ declarations.
//
// Nothing here knows Python; only the files in bindings/ do.
//
// Size letters used everywhere:
//   N  batch size               C  input channels          K  output channels (filters)
//   H W  input height/width     KH KW  kernel (window) height/width
//   SH SW  stride               PH PW  zero padding (conv only)
//   OH OW  output height/width: conv_out_size / pool_out_size (geometry.h)
//   I O  dense input/output features     D  features per sample in a cost
//
// Layouts: images NCHW, conv weights (K, C, KH, KW), dense weights (I, O)
// so that dense out = x @ w + b. Every buffer is float32, C-contiguous, and
// the caller owns it. All sizes are int64_t; callers (the bindings' intake)
// check shapes and overflow before calling, so kernels trust their arguments.
//
// Gradient convention: every *_backward kernel OVERWRITES its outputs
// (dx, dw, db); nothing accumulates. Zeroing/accumulating across steps is the
// Python trainer's business.
//
// Threading: kernels run their parallel loops on fastcnn's own worker threads
// (threadpool.h), as many as the thread count (set_num_threads); none
// throws inside a parallel region. Kernels may allocate scratch memory
// (std::vector, Scratch) and may throw std::bad_alloc before any parallel
// region starts.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "geometry.h"  // output sizes, size limits, kNoGradient

namespace fastcnn {

// ---------------------------------------------------------------- GEMM ----
// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C.
// op(A) = A (stored M x K, row stride lda) or A^T (stored K x M, row stride lda).
// op(B) = B (stored K x N, ldb)               or B^T (stored N x K, ldb).
// beta == 0 means C is write-only (NaNs already in C are not propagated).
// The result depends on the arguments only, not on the thread count.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
           float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
           float beta, float* C, int64_t ldc);
// The same on the calling thread alone, for code that runs its own threads
// (each conv group's GEMMs); a long K is summed in one range instead of
// sgemm's several, so the last bits can differ from sgemm's.
void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                  float beta, float* C, int64_t ldc);
// Many GEMMs with one op(A) (a conv layer's weights times each image's
// columns): sgemm_packed_a_size(M, K) floats (0: op(A) is too large for this,
// use sgemm; the size fits every SIMD path's layout) receive alpha * op(A)
// from sgemm_pack_a, in the layout of the path in use, which it returns; then
// each sgemm_with_packed_a(layout, ...) computes C (M,N) = packed . op(B) +
// beta * C with that path's kernels (a set_isa in between changes nothing),
// on the calling thread alone (no threads, no allocation). Same M and K.
int64_t sgemm_packed_a_size(int64_t M, int64_t K);
int sgemm_pack_a(bool trans_a, int64_t M, int64_t K, float alpha, const float* A, int64_t lda,
                 float* packed);
void sgemm_with_packed_a(int layout, const float* packed, int64_t M, int64_t N, int64_t K,
                         bool trans_b,
                         const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// The same product without packing A, for few columns: C (M, N) = A (M, K) .
// B (K, N) (neither transposed, beta 0, alpha 1), A's rows read in place by
// the path `layout`'s kernels (active_isa_id's number): bit for bit what
// sgemm_with_packed_a gives from A packed. Calling thread only, no allocation.
void sgemm_rows_a(int layout, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float* C, int64_t ldc);
// A dense layer's backward + SGD step in one pass over w (I,O):
//   dx (N,I) = dout (N,O) . w^T      (w as it was), then
//   w = beta * w + alpha * x^T (I,N) . dout (N,O).
// Exactly the values of sgemm(false, true, N, I, O, 1, dout, O, w, O, 0, dx, I)
// followed by sgemm(true, false, I, O, N, alpha, x, I, dout, O, beta, w, O);
// when both take the streaming paths (a small mini-batch N), each block of
// rows of w is updated right after it gave its columns of dx, while in cache.
void sgemm_dx_then_update(int64_t N, int64_t I, int64_t O, const float* dout, const float* x,
                          float alpha, float beta, float* w, float* dx);
// The strategy sgemm (serial: sgemm_serial, which chooses alike) takes for
// these arguments on the SIMD path in use: "empty" (M or N is 0), "scale"
// (K is 0), "stream_nn", "stream_nt", "stream_tn", "dot", "whole_a" or
// "blocked" (gemm/strategy.h). Computed by the function sgemm itself calls;
// for tests and benchmarks.
const char* sgemm_path(bool serial, bool trans_a, bool trans_b, int64_t M, int64_t N,
                       int64_t K);
// The size limits of that choice and of the strategies (gemm/strategy.h,
// gemm/blocking.h), for tests and benchmarks that build shapes at the edges.
struct GemmLimits {
    int64_t dot_kb;               // dot path: K block; takes K >= dot_kb
    int64_t dot_max_mn;           // dot path: takes M*N <= dot_max_mn
    int64_t dot_k_ranges;         // dot path: at most this many K ranges (sgemm)
    int64_t stream_max_m;         // stream_nn / stream_nt: M <= stream_max_m
    int64_t stream_min_n;         // streaming paths: N (and tn's M) >= stream_min_n
    int64_t stream_min_dot_k;     // stream_nt: K >= stream_min_dot_k
    int64_t stream_max_k;         // stream_tn: K <= stream_max_k
    int64_t whole_a_max_floats;   // whole_a: packed op(A) at most this many floats
    int64_t min_work_per_thread;  // multiply-adds per thread before a second one helps
};
GemmLimits gemm_limits();
// Plain triple loop with the same contract, accumulating in double: the
// oracle the tests hold sgemm's strategies against (never used by an op).
void sgemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                 float beta, float* C, int64_t ldc);

// ------------------------------------------------------------ dispatch ----
// SIMD paths: "generic" (portable), "avx2" (AVX2 + FMA), "avx512" (AVX-512
// F/BW/DQ/VL). Results are bit-identical across thread counts on each path,
// not across paths.
// Probe the CPU once and pick the path: the best one, or the one FASTCNN_ISA
// names (generic|avx2|avx512; unset, empty or "auto" = best). Returns "" or,
// when FASTCNN_ISA is unknown or names a path that cannot run here, the error
// (the best path is then in use). Called once at module import.
std::string init_dispatch();
// Force a path by name. Returns "" on success, else (changing nothing) why
// not: unknown name, the CPU features it lacks, or a build without the path.
std::string set_isa(const char* name);
const char* simd_level();                  // the path in use
std::vector<std::string> supported_isas();  // paths this CPU, OS and build run
std::vector<std::string> compiled_isas();   // paths this build has kernels for
bool cpu_has_avx2_fma();   // CPU + OS offer AVX2 + FMA, whatever is in use
bool cpu_has_avx512();     // CPU + OS offer AVX-512 F/BW/DQ/VL
// Peak fp32 multiply-add throughput probe (bench/bench_peak.py): `threads`
// worker threads each run `iters` iterations of path `isa`'s independent FMA
// chains (the path must be runnable: check supported_isas). Returns the
// flops done in total (0 for an unknown or unrunnable path); *sink receives a
// value of the result so the work cannot be optimised away.
int64_t peak_fma(const char* isa, int64_t iters, int threads, float* sink);
// The GEMM block table of path `isa` (blocking.h) as {MR, NR, MC, KC, NC};
// false if the build has no such path.
bool gemm_blocking(const char* isa, int64_t out[5]);

// -------------------------------------------------------------- memory ----
// glibc only: fixed malloc thresholds (64 MiB mmap, 256 MiB trim), so the
// arrays a training step frees are reused by the next step instead of going
// back to the OS and faulting in again (memory.cpp). Called once at import;
// skipped when the user set MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ or
// FASTCNN_MALLOC_TUNING=0. Returns (and malloc_tuned reports) whether it was done.
bool tune_malloc();
bool malloc_tuned();

// ------------------------------------------------------------- threads ----
// The thread count of the kernels' parallel loops, 1..kMaxThreads: at first
// use OMP_NUM_THREADS, else the CPUs this process may run on; never above
// OMP_THREAD_LIMIT (threads.cpp). set_num_threads clamps n into that range.
constexpr int kMaxThreads = 1024;   // far beyond any CPU this runs on
void set_num_threads(int n);
int get_num_threads();

// -------------------------------------------------------- im2col / conv ----
// cols (C*KH*KW, N*OH*OW): row r = (c*KH + i)*KW + j, column q = (n*OH + oh)*OW + ow,
// cols[r][q] = x[n][c][oh*SH - PH + i][ow*SW - PW + j] or 0 outside the image.
void im2col(float* cols, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
            int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW);
// dx (N,C,H,W) overwritten with the sum of every cols entry that maps to it.
void col2im(float* dx, const float* cols, int64_t N, int64_t C, int64_t H, int64_t W,
            int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW);

// out (N,K,OH,OW) = conv(x (N,C,H,W), w (K,C,KH,KW)) + b (K) [b may be null].
// Large batches run in chunks so the column buffer stays bounded. relu: out =
// relu(conv + b) (as relu_forward: NaN stays NaN), applied while the output is
// still in the caches.
void conv2d_forward(float* out, const float* x, const float* w, const float* b,
                    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                    int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW,
                    bool relu = false);
// dx (N,C,H,W) [may be null: not computed], dw (K,C,KH,KW), db (K) [may be null],
// from dout (N,K,OH,OW), x, w. All outputs overwritten.
void conv2d_backward(float* dx, float* dw, float* db, const float* dout,
                     const float* x, const float* w,
                     int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                     int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW);

// conv2d then max-pool in one pass (conv_pool.cpp): out (N,K,POH,POW) =
// maxpool(relu?(conv(x, w) + b)) with a PKH x PKW window, stride PSH x PSW,
// POH = pool_out_size(OH, PKH, PSH) (the pooling rule of maxpool2d_forward). The
// conv's full output is never stored: choice (N,K,POH,POW) records each window's
// chosen element as its offset i*PKW + j (PKH*PKW <= kMaxFusedPoolWindow), or
// kNoGradient where relu is on and the pooled value is not > 0 (geometry.h).
// Backward takes dout of the POOLED output and choice and returns what
// conv2d_backward returns for the conv output's gradient that
// maxpool2d_backward (after relu_backward) gives. The caller checks choice
// (every value < PKH*PKW or kNoGradient). The forward's choice may be null:
// out alone (the inference plan).
void conv2d_maxpool_forward(float* out, uint8_t* choice, const float* x, const float* w,
                            const float* b, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t K, int64_t KH, int64_t KW, int64_t SH, int64_t SW,
                            int64_t PH, int64_t PW, int64_t PKH, int64_t PKW, int64_t PSH,
                            int64_t PSW, bool relu);
void conv2d_maxpool_backward(float* dx, float* dw, float* db, const float* dout,
                             const uint8_t* choice, const float* x, const float* w,
                             int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                             int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH,
                             int64_t PW, int64_t PKH, int64_t PKW, int64_t PSH, int64_t PSW);

// How conv2d and conv2d_maxpool compute a layer (winograd.cpp, winograd.h):
// by im2col + GEMM (any shape), or, for 3x3 stride-1 layers, by Winograd's
// F(4x4, 3x3) (forward, dx and dw; within winograd.h's error bound of the
// direct sum, not bit for bit; non-finite results are recomputed by im2col).
// The setting: "auto" (Winograd where the rule of winograd.cpp says it pays),
// "im2col" (never Winograd: the results of the plain path), "winograd"
// (wherever it applies). init_conv_algo reads FASTCNN_CONV (unset or empty:
// "auto") once at import and returns "" or the error; set_conv_algo returns ""
// or why not (an unknown name; nothing changes). conv_path: the algorithm,
// "im2col" or "winograd", a forward call of these sizes takes under the setting
// in use (under "auto" the backward pass may take im2col where the forward
// takes Winograd: a batch of few images of 64 or more tiles each, winograd.cpp).
// The Winograd error bound: for every output plane P (out[n][k], dx[n][c],
// dw[k][c]), max over P of |result - exact| <= kWinogradErrorBound * max over
// P of S, S = the same computation on |x|, |w|, |dout| (docs/performance.md,
// section Winograd; tests/test_winograd.py). Exported as _core.WINOGRAD_ERROR_BOUND.
constexpr double kWinogradErrorBound = 5e-5;
std::string init_conv_algo();
std::string set_conv_algo(const char* name);
const char* conv_algo();
const char* conv_path(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH,
                      int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW);

// ------------------------------------------------------------- pooling ----
// out (N,C,OH,OW), OH = pool_out_size(H, KH, SH). No padding.
// Max: the chosen element of a window is the first in row-major order that is
// NaN, or else the first maximum; backward routes dout to that element only.
void maxpool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t SH, int64_t SW);
void maxpool2d_backward(float* dx, const float* dout, const float* x,
                        int64_t N, int64_t C, int64_t H, int64_t W,
                        int64_t KH, int64_t KW, int64_t SH, int64_t SW);
// Average over the window (divides by KH*KW).
void avgpool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t SH, int64_t SW);
void avgpool2d_backward(float* dx, const float* dout,
                        int64_t N, int64_t C, int64_t H, int64_t W,
                        int64_t KH, int64_t KW, int64_t SH, int64_t SW);
// L2: sqrt(sum of squares over the window); d/dx = x / out (0 where out == 0).
void l2pool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                      int64_t KH, int64_t KW, int64_t SH, int64_t SW);
void l2pool2d_backward(float* dx, const float* dout, const float* x,
                       int64_t N, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t SH, int64_t SW);
// Global average: out (N,C) = mean over H*W of x (N,C,H,W).
void global_avgpool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t HW);
void global_avgpool2d_backward(float* dx, const float* dout, int64_t N, int64_t C, int64_t HW);

// --------------------------------------------------------------- dense ----
// out (N,O) = x (N,I) @ w (I,O) + b (O) [b may be null].
void dense_forward(float* out, const float* x, const float* w, const float* b,
                   int64_t N, int64_t I, int64_t O);
// dx (N,I) [may be null], dw (I,O), db (O) [may be null]; overwritten.
void dense_backward(float* dx, float* dw, float* db, const float* dout,
                    const float* x, const float* w, int64_t N, int64_t I, int64_t O);

// One plain-SGD step of a dense layer fused with its backward pass, so dw is
// never stored: dx (N,I) [may be null] = dout . w^T with the old w; then
// w = (1 - lr*weight_decay) * w - lr * x^T . dout, and b [may be null]
// -= lr * column sums of dout (in double). w is read once and written once.
void dense_backward_sgd(float* dx, float* w, float* b, const float* dout, const float* x,
                        int64_t N, int64_t I, int64_t O, float lr, float weight_decay);

// --------------------------------------------------------- activations ----
// Elementwise over n values; out may alias x (in place).
// relu(NaN) = NaN; relu_backward passes dout where x > 0, else 0.
void relu_forward(float* out, const float* x, int64_t n);
void relu_backward(float* dx, const float* dout, const float* x, int64_t n);
// leaky_relu(x) = x where x > 0, else alpha * x (NaN stays NaN); its backward
// passes dout where x > 0, else alpha * dout (also where x is NaN).
void leaky_relu_forward(float* out, const float* x, int64_t n, float alpha);
void leaky_relu_backward(float* dx, const float* dout, const float* x, int64_t n, float alpha);
// sigmoid/tanh backward take the forward OUTPUT y, not the input.
void sigmoid_forward(float* out, const float* x, int64_t n);
void sigmoid_backward(float* dx, const float* dout, const float* y, int64_t n);
void tanh_forward(float* out, const float* x, int64_t n);
void tanh_backward(float* dx, const float* dout, const float* y, int64_t n);
// Plain twins of the vectorised sigmoid/tanh forward (std::exp, std::tanh):
// the oracle for tests and a readable fallback. Single-threaded.
void sigmoid_forward_plain(float* out, const float* x, int64_t n);
void tanh_forward_plain(float* out, const float* x, int64_t n);

// -------------------------------------------------------- softmax/costs ----
// Row-wise over x (N,K); stable (subtracts the row max).
void softmax_forward(float* out, const float* x, int64_t N, int64_t K);
void log_softmax_forward(float* out, const float* x, int64_t N, int64_t K);
// Mean over the batch of -log softmax(logits)[label]; dlogits (N,K) =
// (softmax - onehot) / N. labels (N) must lie in [0, K) (checked by the caller).
double softmax_loglik(float* dlogits, const float* logits, const int64_t* labels,
                      int64_t N, int64_t K);
// Quadratic: mean over N of 0.5*||a - y||^2; da = (a - y) / N.  a, y (N,D).
double quadratic_cost(float* da, const float* a, const float* y, int64_t N, int64_t D);
// Binary cross-entropy on LOGITS z (N,D) with targets y in [0,1]: mean over N
// of sum_d [softplus(z) - y*z]; dz = (sigmoid(z) - y) / N. Stable for any z.
double binary_cross_entropy(float* dz, const float* z, const float* y, int64_t N, int64_t D);

// ------------------------------------------------------------- dropout ----
// out = x * mask * scale, mask one byte per value (0 or 1). Used for both
// forward (x) and backward (dout); out may alias x.
void dropout_apply(float* out, const float* x, const uint8_t* mask, float scale, int64_t n);
// out (n) = x (n) * scale: dropout at inference where training did not scale
// the kept values up (the book's network3: scale = the keep probability), as
// NumPy's float32 x * scale. out may alias x. Used by the inference plan.
void dropout_scale(float* out, const float* x, float scale, int64_t n);

// ------------------------------------------------------- optimizer steps ----
// In place over n values. g' = grad + weight_decay * param in every rule.
// SGD: v = momentum*v + g'; step = nesterov ? g' + momentum*v : v; p -= lr*step.
//      With momentum == 0, v may be null and step = g'.
void sgd_update(float* param, const float* grad, float* velocity, int64_t n,
                float lr, float momentum, float weight_decay, bool nesterov);
// Adagrad: s += g'^2; p -= lr * g' / (sqrt(s) + eps).
void adagrad_update(float* param, const float* grad, float* sum_sq, int64_t n,
                    float lr, float eps, float weight_decay);
// RMSprop: s = alpha*s + (1-alpha)*g'^2; p -= lr * g' / (sqrt(s) + eps).
void rmsprop_update(float* param, const float* grad, float* sq_avg, int64_t n,
                    float lr, float alpha, float eps, float weight_decay);
// Adam (step t >= 1): m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'^2;
// p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
void adam_update(float* param, const float* grad, float* m, float* v, int64_t n, int64_t step,
                 float lr, float beta1, float beta2, float eps, float weight_decay);

// ----------------------------------------------------------- inference ----
// A model's whole inference forward pass in one call (inference.cpp): a list
// of steps, each running one of the kernels above on the previous step's
// output, so the values are bit for bit those of the same kernels called one
// by one with the same batch size. The caller (the bindings) checks each step
// when it is added; run() trusts them.
enum class InferOp : int {
    conv2d,          // conv2d_forward (relu: fused)
    conv2d_maxpool,  // conv2d_maxpool_forward's out: where the batch's conv takes
                     // im2col, as conv2d_forward without relu, maxpool2d_forward,
                     // relu_forward (the same values: relu and max commute bit for
                     // bit) on chunks of images, one thread each, whose conv output
                     // stays in cache; else that op over the whole batch
    maxpool2d, avgpool2d, l2pool2d,  // the pooling forwards
    global_avgpool2d,
    dense,           // dense_forward on the input seen as (N, C*H*W)
    relu, leaky_relu, sigmoid, tanh,  // elementwise, in place where the input is scratch
    softmax,         // softmax_forward over the input seen as (N, C*H*W)
    scale,           // dropout_scale
};

struct InferStep {
    InferOp op;
    int64_t C, H, W;     // one image of the input (C, H, W); flat features F as (F, 1, 1)
    int64_t K, OH, OW;   // one image of the output, alike
    int64_t KH, KW, SH, SW, PH, PW;  // conv kernel or pooling window, stride, padding
    int64_t PKH, PKW, PSH, PSW;      // the fused max-pool's window and stride
    int w, b;            // index of the weights / bias in run()'s params (-1: none)
    bool relu;           // conv2d, conv2d_maxpool: relu fused in the kernel
    float alpha;         // leaky_relu's slope, scale's factor
};

class InferencePlan {
public:
    explicit InferencePlan(int64_t in_size) : in_size_(in_size) {}  // values of one image
    void add(const InferStep& step) {
        std::lock_guard<std::mutex> lock(mutex_);
        steps_.push_back(step);
    }
    const std::vector<InferStep>& steps() const { return steps_; }
    // out (N, the last step's K*OH*OW) <- the steps run in order on x (N, the
    // first step's C*H*W); params[i]: the arrays the steps' w and b index,
    // read now (so updates in place between runs are seen). Intermediate
    // outputs live in two buffers (and a chunk of conv output for the
    // conv2d_maxpool steps) allocated for a batch of N once and kept while
    // later batches fit (up to 64 MiB; larger ones are freed after the run);
    // elementwise steps work in place on them. No steps: out = x (N, in_size). Runs of one plan take turns
    // (a mutex); the kernels use the thread pool as ever. May throw
    // std::bad_alloc before the first step.
    void run(float* out, const float* x, int64_t N, const float* const* params);

private:
    void reserve(int64_t N, int threads);
    int64_t in_size_;
    std::vector<InferStep> steps_;
    std::mutex mutex_;
    int64_t capacity_ = 0;       // the batch size the buffers hold
    int capacity_threads_ = 0;   // and the thread count their conv chunks are for
    // the two buffers (capacity_, largest output), then the conv output chunk
    std::unique_ptr<float[], void (*)(void*)> buffers_{nullptr, std::free};
    int64_t buffer_floats_ = 0;    // floats of one of the two buffers
    size_t buffer_bytes_ = 0;      // of all of them
};

}  // namespace fastcnn
