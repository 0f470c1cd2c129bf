// See include/winograd.h. The kernel is written once (kernel.inc) and compiled here for two
// vector widths, each with its own target attribute, and chosen at run time.
#include "winograd.h"

#include <immintrin.h>
#include <stdlib.h>

// The weight transform must round the same way under any compiler: no fused multiply-adds
// other than the kernels' explicit ones.
#pragma STDC FP_CONTRACT OFF

// Both widths prefetch two tiles ahead: a batch's activations (6.4 MB for 16 channels of 28x28)
// live in L3, and the tiles' rows are too many short streams for the hardware prefetchers. On
// ResNet-20's shapes (AVX-512, batch 128 in groups of 8) it made the weight gradient 1.2-1.6x and
// the forward pass 1.1-1.5x faster, most on 16 channels.
#define PF 2

/// Which image tile `index` of a batch is in, and its output corner: tiles run row by row,
/// `perImage` to an image, `tw` to a row.
typedef struct { int image, y0, x0; } TileAt;
static inline TileAt tile_at(int index, int perImage, int tw) {
    int k = index % perImage;
    return (TileAt){index / perImage, k / tw * 4, k % tw * 4};
}

// MARK: - AVX2 + FMA, blocks of 8

#define VW 8
#define RT 8
#define NAME(x) avx2_##x
#define TARGET __attribute__((target("avx2,fma")))
#define VEC __m256
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, x) _mm256_storeu_ps(p, x)
#define VZERO _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm256_max_ps(a, b)
#include "kernel.inc"
#undef VW
#undef RT
#undef NAME
#undef TARGET
#undef VEC
#undef VLOAD
#undef VSTORE
#undef VZERO
#undef VSET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VFMA
#undef VMAX
#undef INPUT_1D
#undef OUTPUT_1D
#undef GRADIENT_1D
#undef FINISH_1D

// MARK: - AVX-512F, blocks of 16

#define VW 16
#define RT 14
#define NAME(x) avx512_##x
#define TARGET __attribute__((target("avx512f")))
#define VEC __m512
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, x) _mm512_storeu_ps(p, x)
#define VZERO _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm512_max_ps(a, b)
#include "kernel.inc"

// MARK: - Dispatch

int winograd_available(int block) {
    static int avx512 = -1, avx2 = -1;
    if (avx512 < 0) {
        __builtin_cpu_init();
        avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        avx512 = __builtin_cpu_supports("avx512f");
    }
    return block == 16 ? avx512 : block == 8 ? avx2 : 0;
}

size_t winograd_weights_count(int cin, int cout) { return (size_t)36 * cin * cout; }

enum { MAX_LANES = 16 };

/// One output block's kernels, MAX_LANES lanes at a time (unused lanes compute zeros): each
/// lane's arithmetic is the scalar formula's, in double and in the same order, so the bits do
/// not depend on how the compiler vectorises the lane loops.
__attribute__((target_clones("avx512f", "avx2", "default")))
static void transform_block(int block, int cin, int cout, const float *oihw, float *u, int ob) {
    static const double G[6][3] = {
        {1.0 / 4, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
        {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
    int lanes = cout - ob * block < block ? cout - ob * block : block;
    double g[9][MAX_LANES] = {{0}}, gg[6][3][MAX_LANES];
    for (int i = 0; i < cin; i++) {
        for (int l = 0; l < lanes; l++)
            for (int t = 0; t < 9; t++) g[t][l] = oihw[((size_t)(ob * block + l) * cin + i) * 9 + t];
        for (int a = 0; a < 6; a++)  // G g
            for (int c = 0; c < 3; c++)
                for (int l = 0; l < MAX_LANES; l++)
                    gg[a][c][l] = G[a][0] * g[c][l] + G[a][1] * g[3 + c][l] + G[a][2] * g[6 + c][l];
        for (int a = 0; a < 6; a++)  // (G g) Gᵀ
            for (int b = 0; b < 6; b++) {
                float *dst = u + (((size_t)ob * 36 + a * 6 + b) * cin + i) * block;
                float x[MAX_LANES];
                for (int l = 0; l < MAX_LANES; l++)
                    x[l] = (float)(gg[a][0][l] * G[b][0] + gg[a][1][l] * G[b][1] + gg[a][2][l] * G[b][2]);
                for (int l = 0; l < lanes; l++) dst[l] = x[l];
            }
    }
}

void winograd_transform_weights_blocks(int block, int cin, int cout, const float *oihw, float *u, int first, int count) {
    if (block > MAX_LANES) return;
    for (int ob = first; ob < first + count && ob < (cout + block - 1) / block; ob++) transform_block(block, cin, cout, oihw, u, ob);
}

void winograd_transform_weights(int block, int cin, int cout, const float *oihw, float *u) {
    winograd_transform_weights_blocks(block, cin, cout, oihw, u, 0, (cout + block - 1) / block);
}

/// Tiles per pass: four register blocks. Measured on ResNet-20's shapes (AVX-512, batch 128 in
/// groups of 8), 28-224 tiles ran alike, while 448 (a pass's inputs and products filling L2)
/// ran 1.5x slower on 16 channels.
static int chunk_tiles(int tiles, int rt) {
    int needed = (tiles + rt - 1) / rt * rt;
    return 4 * rt < needed ? 4 * rt : needed;
}

/// Per-thread scratch, grown as needed and kept: evaluation calls this thousands of times.
static float *scratch(size_t floats) {
    static __thread float *buffer;
    static __thread size_t capacity;
    if (floats > capacity) {
        free(buffer);
        buffer = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        capacity = buffer ? floats : 0;
    }
    return buffer;
}

int winograd_forward(int block, int n, int cin, int cout, int h, int w, const float *src, const float *u,
                     const float *bias, const float *skip, int relu, float *dst) {
    if (!winograd_available(block) || cin % block || cout % block) return -1;
    const int rt = block == 16 ? 14 : 8, tiles = n * ((h + 3) / 4) * ((w + 3) / 4);
    const int chunk = chunk_tiles(tiles, rt);
    float *v = scratch((size_t)36 * chunk * (cin + block));
    if (!v) return -1;
    float *m = v + (size_t)36 * chunk * cin;
    if (block == 16) avx512_forward(n, cin, cout, h, w, src, u, bias, skip, relu, dst, v, m, chunk);
    else avx2_forward(n, cin, cout, h, w, src, u, bias, skip, relu, dst, v, m, chunk);
    return 0;
}

/// Tiles per pass of the weight gradient: the pass's transformed inputs and output gradients
/// (36 · (cin + cout) floats a tile) within about 256 KB, at least 8 tiles.
static int gradient_chunk(int tiles, int cin, int cout) {
    int chunk = 256 * 1024 / (36 * 4 * (cin + cout));
    if (chunk < 8) chunk = 8;
    return chunk < tiles ? chunk : tiles;
}

int winograd_weight_gradient(int block, int n, int cin, int cout, int h, int w, const float *src, const float *dy, float *dw) {
    if (!winograd_available(block) || cin % block || cout % block || n < 1) return -1;
    const int tiles = n * ((h + 3) / 4) * ((w + 3) / 4), chunk = gradient_chunk(tiles, cin, cout);
    const size_t sums = (size_t)36 * cin * cout;
    float *v = scratch((size_t)36 * chunk * (cin + cout) + sums);
    if (!v) return -1;
    float *g = v + (size_t)36 * chunk * cin, *m = g + (size_t)36 * chunk * cout;
    if (block == 16) {
        avx512_weight_sums(n, cin, cout, h, w, src, dy, v, g, m, chunk);
        avx512_finish(cin, cout, m, dw);
    } else {
        avx2_weight_sums(n, cin, cout, h, w, src, dy, v, g, m, chunk);
        avx2_finish(cin, cout, m, dw);
    }
    return 0;
}
