// Depthwise convolutions (one filter per channel, as MobileNets use) for evaluation, on
// activations in the channel-blocked layout (n, c / B, h, w, c % B) the engine keeps between
// layers: the B channels of a block are the lanes of one vector, which suits the small maps of
// a network's later stages (a plane-by-plane kernel spends most of its time on edges there).
#ifndef DEPTHWISE_H
#define DEPTHWISE_H

/// dst = min(max(depthwise(src) + bias, lo), hi) for n images of c channels (a multiple of
/// `block`), symmetric pads (py, px), strides and dilations; weights (c, kh, kw). The output
/// is (h + 2py - (kh - 1)dy - 1) / sy + 1 by the same in x. Returns 0, or -1 when the kernels for
/// `block` are not available or the shape is not one they take. Runs on the calling thread.
int depthwise_blocked_forward(int block, int n, int c, int h, int w, int kh, int kw, int sy, int sx, int py, int px,
                              int dy, int dx, const float *src, const float *weights, const float *bias, float lo, float hi,
                              float *dst);

/// Max pooling of n blocked images (c a multiple of `block`), dilation 1: each output is the
/// largest input of its window clipped to the image (pads top/left; the caller gives the output
/// size, so ceil mode and uneven pads are the caller's arithmetic). -inf for an empty window.
int maxpool_blocked_forward(int block, int n, int c, int h, int w, int kh, int kw, int sy, int sx, int top, int left, int oh, int ow,
                            const float *src, float *dst);

#endif
