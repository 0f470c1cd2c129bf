// A small C layer over oneDNN 2.x's C API: one convolution shape = one object holding the forward,
// backward-data and backward-weights primitives in oneDNN's preferred (blocked) layouts, taking and
// returning OIHW weights and NCHW or channel-blocked activations. Layout conversions happen inside; every call runs on
// one thread (the caller parallelises over fixed image chunks, which keeps results independent
// of the thread count).
#ifndef CDNNL_H
#define CDNNL_H

#include <stddef.h>

typedef struct cdnnl_conv cdnnl_conv;

/// Creates the primitives for a (mb, ic, ih, iw) -> (mb, oc, oh, ow) convolution with a square
/// kernel; NULL if oneDNN cannot (the caller falls back to its own kernel). src_blocked /
/// dst_blocked: the caller's input / output activations (and their gradients) are in the
/// channel-blocked layout of cdnnl_block_size() instead of NCHW.
cdnnl_conv *cdnnl_conv_create(int mb, int ic, int ih, int iw, int oc, int kernel, int stride, int padding, int has_bias,
                              int src_blocked, int dst_blocked);
void cdnnl_conv_destroy(cdnnl_conv *conv);

/// Converts the current OIHW weights (and bias) into the layouts the primitives use. Call after
/// every weight update, before forward / backward_data.
int cdnnl_conv_set_weights(cdnnl_conv *conv, const float *weights_oihw, const float *bias);

/// dst (mb, oc, oh, ow) = conv(src (mb, ic, ih, iw)).
int cdnnl_conv_forward(cdnnl_conv *conv, const float *src, float *dst);
/// diff_src = conv_backward_data(diff_dst).
int cdnnl_conv_backward_data(cdnnl_conv *conv, const float *diff_dst, float *diff_src);
/// Overwrites diff_weights (OIHW) and diff_bias (if not NULL) with this chunk's gradients.
int cdnnl_conv_backward_weights(cdnnl_conv *conv, const float *src, const float *diff_dst,
                                float *diff_weights, float *diff_bias);


// Inference: convolutions whose outputs (and, optionally, inputs) stay in oneDNN's channel-blocked
// layout (nChw16c with AVX-512, nChw8c with AVX2) from layer to layer, with the bias (a folded
// batch norm), the residual sum and the ReLU done inside the convolution.
typedef struct cdnnl_infer cdnnl_infer;

/// The instruction set oneDNN's kernels use on this CPU ("avx512_core", "avx2", ...): results
/// of the same arithmetic may differ in their last bits between two of them.
const char *cdnnl_cpu_isa(void);
/// The channel block of the layout on this CPU (16 or 8); 0 when oneDNN has no fast kernel.
int cdnnl_block_size(void);
/// dst (mb, oc, oh, ow; blocked) = relu?(conv(src) + bias + (sum ? dst : 0)); src blocked or NCHW.
/// relu: 0 none, 1 ReLU, 2 ReLU6 (clip to [0, 6]). NULL when oneDNN has only a reference kernel
/// for the shape.
cdnnl_infer *cdnnl_infer_create(int mb, int ic, int ih, int iw, int oc, int kernel, int stride, int padding,
                                int src_blocked, int relu, int sum);
void cdnnl_infer_destroy(cdnnl_infer *conv);
/// Bytes of the weights in the primitive's own layout.
size_t cdnnl_infer_weights_bytes(const cdnnl_infer *conv);
/// Nonzero when both primitives take their weights in the same packed layout (one packed copy serves both).
int cdnnl_infer_same_weights(const cdnnl_infer *a, const cdnnl_infer *b);
/// Converts OIHW weights into `packed` (cdnnl_infer_weights_bytes long).
int cdnnl_infer_pack_weights(const cdnnl_infer *conv, const float *weights_oihw, void *packed);
int cdnnl_infer_forward(const cdnnl_infer *conv, const float *src, const void *packed, const float *bias, float *dst);

#endif
