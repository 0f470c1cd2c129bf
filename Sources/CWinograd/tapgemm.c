// See include/winograd.h (convolutions on small maps). The kernel is written once (tapgemm.inc)
// and compiled here for two vector widths, each with its own target attribute, and chosen at run time.
#include "winograd.h"

#include <immintrin.h>

#define B 8
#define R 6
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define NAME avx2_tapgemm
#define TARGET __attribute__((target("avx2,fma")))
#define VEC __m256
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, x) _mm256_storeu_ps(p, x)
#define VZERO _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VMIN(a, b) _mm256_min_ps(a, b)
#include "tapgemm.inc"
#undef B
#undef R
#undef ROWS
#undef NAME
#undef TARGET
#undef VEC
#undef VLOAD
#undef VSTORE
#undef VZERO
#undef VSET1
#undef VADD
#undef VFMA
#undef VMAX
#undef VMIN

#define B 16
#define R 12
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define NAME avx512_tapgemm
#define TARGET __attribute__((target("avx512f")))
#define VEC __m512
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, x) _mm512_storeu_ps(p, x)
#define VZERO _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VMIN(a, b) _mm512_min_ps(a, b)
#include "tapgemm.inc"

void tapgemm_pack(int block, int cin, int cout, int kh, int kw, int taps, const int *tapIndex, const float *oihw, float *packed) {
    const int cinBlocks = (cin + block - 1) / block, coutBlocks = (cout + block - 1) / block;
    const int panels = (coutBlocks + 1) / 2, k = taps * cinBlocks * block, width = 2 * block;
    for (int p = 0; p < panels; p++)
        for (int t = 0; t < taps; t++)
            for (int c = 0; c < cinBlocks * block; c++) {
                float *row = packed + ((size_t)p * k + (size_t)t * cinBlocks * block + c) * width;
                for (int j = 0; j < width; j++) {
                    const int o = p * width + j;
                    row[j] = o < cout && c < cin ? oihw[((size_t)o * cin + c) * kh * kw + tapIndex[t]] : 0;
                }
            }
}

size_t tapgemm_packed_count(int block, int cin, int cout, int taps) {
    const size_t cinBlocks = (cin + block - 1) / block, coutBlocks = (cout + block - 1) / block;
    return (coutBlocks + 1) / 2 * (size_t)taps * cinBlocks * block * 2 * block;
}

int tapgemm_forward(int block, int cin, int cout, int hw, int ohw, int taps, const int *tapOffsets, int inBase, int outPixel,
                    const float *src, const float *packed, const float *bias, const float *skip, float lo, float hi, float *dst,
                    int panel, int first, int count) {
    if (!winograd_available(block) || taps < 1 || hw < 1 || ohw < 1 || count < 0 || first < 0) return -1;
    const int cinBlocks = (cin + block - 1) / block, coutBlocks = (cout + block - 1) / block;
    if (panel < 0 || 2 * panel >= coutBlocks) return -1;
    for (int t = 0; t < taps; t++)
        if (inBase + tapOffsets[t] < 0 || inBase + tapOffsets[t] >= hw) return -1;
    if (outPixel < 0 || outPixel >= ohw) return -1;
    if (block == 16)
        avx512_tapgemm(cinBlocks, coutBlocks, hw, ohw, taps, tapOffsets, inBase, outPixel, src, packed, bias, skip, lo, hi, dst,
                       panel, first, count);
    else
        avx2_tapgemm(cinBlocks, coutBlocks, hw, ohw, taps, tapOffsets, inBase, outPixel, src, packed, bias, skip, lo, hi, dst,
                     panel, first, count);
    return 0;
}
