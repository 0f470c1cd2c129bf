// See include/winograd.h (depthwise convolution and max pooling). The kernel is written once (depthwise.inc) and compiled here for two
// vector widths, each with its own target attribute, and chosen at run time.
#include "winograd.h"

enum { DW_MAX_TAPS = 64 };

#include <immintrin.h>

#define PASTE_(a, b) a##b
#define PASTE(a, b) PASTE_(a, b)

#define B 8
#define VEC __m256
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, x) _mm256_storeu_ps(p, x)
#define VSET1(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VMIN(a, b) _mm256_min_ps(a, b)
#define MAXPOOL_NAME avx2_maxpool
#define NAME avx2_depthwise
#define TARGET __attribute__((target("avx2,fma")))
#include "depthwise.inc"
#undef B
#undef NAME
#undef MAXPOOL_NAME
#undef TARGET
#undef VEC
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VFMA
#undef VMAX
#undef VMIN

#define B 16
#define VEC __m512
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, x) _mm512_storeu_ps(p, x)
#define VSET1(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VMIN(a, b) _mm512_min_ps(a, b)
#define MAXPOOL_NAME avx512_maxpool
#define NAME avx512_depthwise
#define TARGET __attribute__((target("avx512f")))
#include "depthwise.inc"
#undef B
#undef NAME
#undef MAXPOOL_NAME
#undef TARGET

void depthwise_blocked_pack(int block, int c, int taps, const float *weights, float *packed) {
    for (int ch = 0; ch < c; ch++)
        for (int t = 0; t < taps; t++) packed[((size_t)(ch / block) * taps + t) * block + ch % block] = weights[(size_t)ch * taps + t];
}

int depthwise_blocked_forward(int block, int n, int c, int h, int w, int kh, int kw, int sy, int sx, int py, int px,
                              int dy, int dx, const float *src, const float *packed, const float *bias, float lo, float hi,
                              float *dst) {
    if (!winograd_available(block) || c % block || kh * kw > DW_MAX_TAPS || kh < 1 || kw < 1 || sy < 1 || sx < 1 || dy < 1 ||
        dx < 1 || py < 0 || px < 0)
        return -1;
    const int oh = (h + 2 * py - (kh - 1) * dy - 1) / sy + 1, ow = (w + 2 * px - (kw - 1) * dx - 1) / sx + 1;
    if (oh < 1 || ow < 1) return -1;
    if (block == 16) avx512_depthwise(n, c, h, w, kh, kw, sy, sx, py, px, dy, dx, oh, ow, src, packed, bias, lo, hi, dst);
    else avx2_depthwise(n, c, h, w, kh, kw, sy, sx, py, px, dy, dx, oh, ow, src, packed, bias, lo, hi, dst);
    return 0;
}

int maxpool_blocked_forward(int block, int n, int c, int h, int w, int kh, int kw, int sy, int sx, int top, int left, int oh, int ow,
                            const float *src, float *dst) {
    if (!winograd_available(block) || c % block || kh < 1 || kw < 1 || sy < 1 || sx < 1 || top < 0 || left < 0 || oh < 1 || ow < 1)
        return -1;
    if (block == 16) avx512_maxpool(n, c, h, w, kh, kw, sy, sx, top, left, oh, ow, src, dst);
    else avx2_maxpool(n, c, h, w, kh, kw, sy, sx, top, left, oh, ow, src, dst);
    return 0;
}
