// Winograd F(4x4, 3x3) convolutions for evaluation and for training's forward, backward-data and
// backward-weights passes: 3x3, stride 1, padding 1, on activations in the blocked layout (n, c / B, h, w, c % B)
// that both keep between layers, with a bias, an optional residual sum and an optional ReLU fused
// into the output transform.
//
// A 6x6 input tile gives a 4x4 output tile with 36 multiplications per channel pair instead of
// 144. Every value is computed by the same sequence of float operations whatever the vector
// width, so AVX2 (B = 8) and AVX-512 (B = 16) give the same bits; each call runs on one thread.
#ifndef WINOGRAD_H
#define WINOGRAD_H

#include <stddef.h>

/// 1 when this CPU has the kernels for channel blocks of `block` (16: AVX-512F, 8: AVX2 + FMA).
int winograd_available(int block);

/// Floats of the transformed weights of a (cout, cin, 3, 3) convolution.
size_t winograd_weights_count(int cin, int cout);

/// u = G g Gᵀ of each OIHW 3x3 kernel (computed in double, rounded once), laid out
/// (cout / B, 36, cin, B) for the kernels of channel blocks of `block`.
void winograd_transform_weights(int block, int cin, int cout, const float *oihw, float *u);
/// The same for output-channel blocks first ..< first + count only (each block's part of u is
/// its own, so blocks may be transformed in parallel).
void winograd_transform_weights_blocks(int block, int cin, int cout, const float *oihw, float *u, int first, int count);

/// dst = relu?(conv(src) + bias [+ skip]) for n images, blocked, dst and skip of src's spatial
/// size. Returns 0, or -1 when the kernels for `block` are not available.
int winograd_forward(int block, int n, int cin, int cout, int h, int w, const float *src, const float *u,
                     const float *bias, const float *skip, int relu, float *dst);

/// dw (OIHW, overwritten) = the weight gradient of that convolution over n images, from its
/// blocked input src and the blocked gradient dy of its output: Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G,
/// the products summed in tile order, in float throughout. Returns 0, or -1
/// when the kernels for `block` are not available.
int winograd_weight_gradient(int block, int n, int cin, int cout, int h, int w, const float *src, const float *dy, float *dw);

// MARK: - Depthwise convolution and max pooling (depthwise.c)

// Depthwise convolutions (one filter per channel, as MobileNets use) for evaluation, on
// activations in the channel-blocked layout (n, c / B, h, w, c % B) the engine keeps between
// layers: the B channels of a block are the lanes of one vector, which suits the small maps of
// a network's later stages (a plane-by-plane kernel spends most of its time on edges there).

/// The weights (c, taps) of a depthwise convolution laid out for depthwise_blocked_forward:
/// (c / block, taps, block), each tap of a block one vector. Done once per layer: on the small
/// maps of a network's last stages, reordering them per call cost more than the convolution.
void depthwise_blocked_pack(int block, int c, int taps, const float *weights, float *packed);

/// dst = min(max(depthwise(src) + bias, lo), hi) for n images of c channels (a multiple of
/// `block`), symmetric pads (py, px), strides and dilations; weights packed by
/// depthwise_blocked_pack from (c, kh, kw). The output is (h + 2py - (kh - 1)dy - 1) / sy + 1 by
/// the same in x. Returns 0, or -1 when the kernels for `block` are not available or the shape is
/// not one they take. Runs on the calling thread.
int depthwise_blocked_forward(int block, int n, int c, int h, int w, int kh, int kw, int sy, int sx, int py, int px,
                              int dy, int dx, const float *src, const float *packed, const float *bias, float lo, float hi,
                              float *dst);

/// Max pooling of n blocked images (c a multiple of `block`), dilation 1: each output is the
/// largest input of its window clipped to the image (pads top/left; the caller gives the output
/// size, so ceil mode and uneven pads are the caller's arithmetic). -inf for an empty window.
int maxpool_blocked_forward(int block, int n, int c, int h, int w, int kh, int kw, int sy, int sx, int top, int left, int oh, int ow,
                            const float *src, float *dst);

// MARK: - Convolutions on small maps (tapgemm.c)

// A dense convolution whose output map has few positions (a network's last stages: 2x2, 1x1),
// as one matrix product per output position over the taps that land inside the input: with
// padding, a 3x3 kernel on a 1x1 map has one such tap of nine, on 2x2 four. Images are the
// rows, so a whole batch shares each weight load (a kernel over a handful of images at a time
// re-reads the weights for every handful). Activations are blocked (n, c / B, h, w, c % B),
// channels padded with zeros to whole blocks.

/// Floats of the weights packed for one output position's `taps` taps.
size_t tapgemm_packed_count(int block, int cin, int cout, int taps);

/// Packs the OIHW weights of the taps `tapIndex` (ky * kw + kx) for tapgemm_forward: panels of
/// 2 * block output channels, each (tap, input channel) row after row; padding channels zero.
void tapgemm_pack(int block, int cin, int cout, int kh, int kw, int taps, const int *tapIndex, const float *oihw, float *packed);

/// dst = min(max(Σ products + bias [+ skip], lo), hi) at output pixel `outPixel` of images
/// first ..< first + count, output channel blocks 2 * panel and 2 * panel + 1: each product the
/// input at pixel inBase + tapOffsets[t] (within the image's hw pixels) times its packed weight,
/// summed by fused multiply-adds from zero in (tap, channel) order. src, dst and skip are whole
/// blocked batches; bias has a value per padded output channel. Runs on the calling thread.
/// Returns 0, or -1 when the kernels for `block` are not available or a tap lies outside the map.
int tapgemm_forward(int block, int cin, int cout, int hw, int ohw, int taps, const int *tapOffsets, int inBase, int outPixel,
                    const float *src, const float *packed, const float *bias, const float *skip, float lo, float hi, float *dst,
                    int panel, int first, int count);

#endif
