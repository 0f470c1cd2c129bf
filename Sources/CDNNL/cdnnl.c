#include "cdnnl.h"

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// From libgomp (oneDNN's OpenMP runtime); declared here because clang does not ship omp.h.
extern void omp_set_num_threads(int);

// One CPU engine for the process, created once.
static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static void make_engine(void) { dnnl_engine_create(&engine, dnnl_cpu, 0); }

// Per-thread scratch buffers that only grow: a call's staging and scratch memory is reused by the
// next call on the same thread instead of being mapped and faulted in afresh each time.
enum { SLOT_SRC, SLOT_DST, SLOT_WEI, SLOT_PAD, SLOT_REORDER_PAD, SLOTS };
static __thread struct { void *p; size_t n; } arena[SLOTS];
static void *thread_buffer(int slot, size_t n) {
    if (n == 0) return NULL;
    if (arena[slot].n < n) {
        free(arena[slot].p);
        arena[slot].n = (n + 4095) / 4096 * 4096;
        arena[slot].p = aligned_alloc(64, arena[slot].n);
    }
    return arena[slot].p;
}

// Primitives use scratch memory we pass in (user scratchpad mode): with the library's default
// shared scratchpad, concurrent executions from our threads would overwrite each other's.
static dnnl_primitive_attr_t user_scratchpad(void) {
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_attr_create(&attr);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    return attr;
}

// A memory layout conversion, or none when the layouts are equal.
typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_desc_t from, to, scratch;
} reorder_t;

struct cdnnl_conv {
    int has_bias;
    dnnl_memory_desc_t src_plain, dst_plain, wei_plain, bias_md;
    dnnl_primitive_desc_t fwd_pd, bwd_data_pd, bwd_wei_pd;
    dnnl_primitive_t fwd, bwd_data, bwd_wei;
    // Layouts chosen by each primitive.
    dnnl_memory_desc_t fwd_src, fwd_wei, fwd_dst, bd_ddst, bd_wei, bd_dsrc, bw_src, bw_ddst, bw_dwei;
    dnnl_memory_desc_t fwd_scratch, bd_scratch, bw_scratch;
    reorder_t r_fwd_src, r_fwd_wei, r_fwd_dst, r_bd_ddst, r_bd_wei, r_bd_dsrc, r_bw_src, r_bw_ddst, r_bw_dwei;
    void *fwd_wei_buf, *bd_wei_buf;  // weights in the primitives' layouts (set_weights)
    const float *bias;
};

static int make_reorder(reorder_t *r, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to) {
    r->from = *from;
    r->to = *to;
    r->prim = NULL;
    if (dnnl_memory_desc_equal(from, to)) return 0;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_attr_t attr = user_scratchpad();
    dnnl_status_t made = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, attr);
    dnnl_primitive_attr_destroy(attr);
    if (made != dnnl_success) return -1;
    r->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    dnnl_status_t s = dnnl_primitive_create(&r->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    return s == dnnl_success ? 0 : -1;
}

static dnnl_memory_t wrap(const dnnl_memory_desc_t *md, const void *data) {
    dnnl_memory_t m = NULL;
    dnnl_memory_create(&m, md, engine, (void *)data);
    return m;
}

// Runs `r` from `src` into `dst` (both user buffers); a plain copy when no reorder is needed.
static int run_reorder(dnnl_stream_t stream, const reorder_t *r, const void *src, void *dst) {
    if (!r->prim) {
        memcpy(dst, src, dnnl_memory_desc_get_size(&r->from));
        return 0;
    }
    void *scratch = thread_buffer(SLOT_REORDER_PAD, dnnl_memory_desc_get_size(&r->scratch));
    dnnl_memory_t a = wrap(&r->from, src), b = wrap(&r->to, dst), sp = scratch ? wrap(&r->scratch, scratch) : NULL;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}, {DNNL_ARG_SCRATCHPAD, sp}};
    dnnl_status_t s = dnnl_primitive_execute(r->prim, stream, scratch ? 3 : 2, args);
    dnnl_stream_wait(stream);
    dnnl_memory_destroy(a);
    dnnl_memory_destroy(b);
    if (sp) dnnl_memory_destroy(sp);
    return s == dnnl_success ? 0 : -1;
}

// A buffer for data laid out as `md`.
static void *staging(const dnnl_memory_desc_t *md) {
    return aligned_alloc(64, (dnnl_memory_desc_get_size(md) + 63) / 64 * 64);
}


static const dnnl_memory_desc_t *query(dnnl_primitive_desc_t pd, dnnl_query_t what) {
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

static int dims_layout(dnnl_memory_desc_t *md, int n, int c, int h, int w, int blocked);

cdnnl_conv *cdnnl_conv_create(int mb, int ic, int ih, int iw, int oc, int k, int stride, int pad, int has_bias,
                              int src_blocked, int dst_blocked) {
    if ((src_blocked || dst_blocked) && cdnnl_block_size() == 0) return NULL;
    // oneDNN sizes a primitive's work split by the creating thread's OpenMP thread count and
    // later runs exactly that many threads: create every primitive single-threaded.
    omp_set_num_threads(1);
    pthread_once(&engine_once, make_engine);
    if (!engine) return NULL;
    cdnnl_conv *c = calloc(1, sizeof *c);
    int oh = (ih + 2 * pad - k) / stride + 1, ow = (iw + 2 * pad - k) / stride + 1;
    dnnl_dims_t src_dims = {mb, ic, ih, iw}, dst_dims = {mb, oc, oh, ow}, wei_dims = {oc, ic, k, k}, bias_dims = {oc};
    dnnl_dims_t strides = {stride, stride}, padding = {pad, pad};
    dnnl_memory_desc_t src_any, dst_any, wei_any;
    // The caller's activation layouts; a blocked one is also what the primitives must use (left
    // to choose, oneDNN may pick another layout and convert on every call).
    dims_layout(&c->src_plain, mb, ic, ih, iw, src_blocked);
    dims_layout(&c->dst_plain, mb, oc, oh, ow, dst_blocked);
    dnnl_memory_desc_init_by_tag(&c->wei_plain, 4, wei_dims, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&c->bias_md, 1, bias_dims, dnnl_f32, dnnl_x);
    if (src_blocked) src_any = c->src_plain;
    else dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, dnnl_f32, dnnl_format_tag_any);
    if (dst_blocked) dst_any = c->dst_plain;
    else dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wei_any, 4, wei_dims, dnnl_f32, dnnl_format_tag_any);
    c->has_bias = has_bias;
    const dnnl_memory_desc_t *bias = has_bias ? &c->bias_md : NULL;

    dnnl_convolution_desc_t fd, bdd, bwd;
    dnnl_primitive_attr_t attr = user_scratchpad();
    if (dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src_any, &wei_any, bias,
                                           &dst_any, strides, padding, padding) != dnnl_success ||
        dnnl_primitive_desc_create(&c->fwd_pd, &fd, attr, engine, NULL) != dnnl_success ||
        dnnl_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &src_any, &wei_any, &dst_any, strides,
                                                 padding, padding) != dnnl_success ||
        dnnl_primitive_desc_create(&c->bwd_data_pd, &bdd, attr, engine, c->fwd_pd) != dnnl_success ||
        dnnl_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct, &src_any, &wei_any, bias, &dst_any,
                                                    strides, padding, padding) != dnnl_success ||
        dnnl_primitive_desc_create(&c->bwd_wei_pd, &bwd, attr, engine, c->fwd_pd) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        cdnnl_conv_destroy(c);
        return NULL;
    }
    dnnl_primitive_attr_destroy(attr);
    c->fwd_scratch = *query(c->fwd_pd, dnnl_query_scratchpad_md);
    c->bd_scratch = *query(c->bwd_data_pd, dnnl_query_scratchpad_md);
    c->bw_scratch = *query(c->bwd_wei_pd, dnnl_query_scratchpad_md);
    c->fwd_src = *query(c->fwd_pd, dnnl_query_src_md);
    c->fwd_wei = *query(c->fwd_pd, dnnl_query_weights_md);
    c->fwd_dst = *query(c->fwd_pd, dnnl_query_dst_md);
    c->bd_ddst = *query(c->bwd_data_pd, dnnl_query_diff_dst_md);
    c->bd_wei = *query(c->bwd_data_pd, dnnl_query_weights_md);
    c->bd_dsrc = *query(c->bwd_data_pd, dnnl_query_diff_src_md);
    c->bw_src = *query(c->bwd_wei_pd, dnnl_query_src_md);
    c->bw_ddst = *query(c->bwd_wei_pd, dnnl_query_diff_dst_md);
    c->bw_dwei = *query(c->bwd_wei_pd, dnnl_query_diff_weights_md);
    if (make_reorder(&c->r_fwd_src, &c->src_plain, &c->fwd_src) || make_reorder(&c->r_fwd_wei, &c->wei_plain, &c->fwd_wei) ||
        make_reorder(&c->r_fwd_dst, &c->fwd_dst, &c->dst_plain) || make_reorder(&c->r_bd_ddst, &c->dst_plain, &c->bd_ddst) ||
        make_reorder(&c->r_bd_wei, &c->wei_plain, &c->bd_wei) || make_reorder(&c->r_bd_dsrc, &c->bd_dsrc, &c->src_plain) ||
        make_reorder(&c->r_bw_src, &c->src_plain, &c->bw_src) || make_reorder(&c->r_bw_ddst, &c->dst_plain, &c->bw_ddst) ||
        make_reorder(&c->r_bw_dwei, &c->bw_dwei, &c->wei_plain) ||
        dnnl_primitive_create(&c->fwd, c->fwd_pd) != dnnl_success ||
        dnnl_primitive_create(&c->bwd_data, c->bwd_data_pd) != dnnl_success ||
        dnnl_primitive_create(&c->bwd_wei, c->bwd_wei_pd) != dnnl_success) {
        cdnnl_conv_destroy(c);
        return NULL;
    }
    c->fwd_wei_buf = staging(&c->fwd_wei);
    c->bd_wei_buf = staging(&c->bd_wei);
    return c;
}

void cdnnl_conv_destroy(cdnnl_conv *c) {
    if (!c) return;
    reorder_t *rs[] = {&c->r_fwd_src, &c->r_fwd_wei, &c->r_fwd_dst, &c->r_bd_ddst, &c->r_bd_wei,
                       &c->r_bd_dsrc, &c->r_bw_src, &c->r_bw_ddst, &c->r_bw_dwei};
    for (unsigned i = 0; i < sizeof rs / sizeof rs[0]; i++)
        if (rs[i]->prim) dnnl_primitive_destroy(rs[i]->prim);
    if (c->fwd) dnnl_primitive_destroy(c->fwd);
    if (c->bwd_data) dnnl_primitive_destroy(c->bwd_data);
    if (c->bwd_wei) dnnl_primitive_destroy(c->bwd_wei);
    if (c->fwd_pd) dnnl_primitive_desc_destroy(c->fwd_pd);
    if (c->bwd_data_pd) dnnl_primitive_desc_destroy(c->bwd_data_pd);
    if (c->bwd_wei_pd) dnnl_primitive_desc_destroy(c->bwd_wei_pd);
    free(c->fwd_wei_buf);
    free(c->bd_wei_buf);
    free(c);
}

// Every call runs oneDNN on the calling thread only; a stream per call is cheap on the CPU.
static dnnl_stream_t begin(void) {
    omp_set_num_threads(1);
    dnnl_stream_t s = NULL;
    dnnl_stream_create(&s, engine, dnnl_stream_default_flags);
    return s;
}

static int end(dnnl_stream_t s, int status) {
    dnnl_stream_wait(s);
    dnnl_stream_destroy(s);
    return status;
}

int cdnnl_conv_set_weights(cdnnl_conv *c, const float *weights, const float *bias) {
    dnnl_stream_t s = begin();
    int st = run_reorder(s, &c->r_fwd_wei, weights, c->fwd_wei_buf);
    st |= run_reorder(s, &c->r_bd_wei, weights, c->bd_wei_buf);
    c->bias = bias;
    return end(s, st);
}

// Runs primitive `p` with up to four (arg, desc, buffer) triples and its own scratch memory.
static int exec(dnnl_stream_t s, dnnl_primitive_t p, const dnnl_memory_desc_t *scratch_md, int n, const int *args,
                const dnnl_memory_desc_t **mds, const void **bufs) {
    dnnl_exec_arg_t ea[5];
    for (int i = 0; i < n; i++) ea[i] = (dnnl_exec_arg_t){args[i], wrap(mds[i], bufs[i])};
    void *scratch = thread_buffer(SLOT_PAD, dnnl_memory_desc_get_size(scratch_md));
    int count = n;
    if (scratch) ea[count++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, wrap(scratch_md, scratch)};
    dnnl_status_t st = dnnl_primitive_execute(p, s, count, ea);
    dnnl_stream_wait(s);
    for (int i = 0; i < count; i++) dnnl_memory_destroy(ea[i].memory);
    return st == dnnl_success ? 0 : -1;
}

int cdnnl_conv_forward(cdnnl_conv *c, const float *src, float *dst) {
    dnnl_stream_t s = begin();
    void *bsrc = c->r_fwd_src.prim ? thread_buffer(SLOT_SRC, dnnl_memory_desc_get_size(&c->fwd_src)) : (void *)src;
    void *bdst = c->r_fwd_dst.prim ? thread_buffer(SLOT_DST, dnnl_memory_desc_get_size(&c->fwd_dst)) : (void *)dst;
    int st = c->r_fwd_src.prim ? run_reorder(s, &c->r_fwd_src, src, bsrc) : 0;
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    const dnnl_memory_desc_t *mds[4] = {&c->fwd_src, &c->fwd_wei, &c->fwd_dst, &c->bias_md};
    const void *bufs[4] = {bsrc, c->fwd_wei_buf, bdst, c->bias};
    st |= exec(s, c->fwd, &c->fwd_scratch, c->has_bias ? 4 : 3, args, mds, bufs);
    if (c->r_fwd_dst.prim) st |= run_reorder(s, &c->r_fwd_dst, bdst, dst);
    return end(s, st);
}

int cdnnl_conv_backward_data(cdnnl_conv *c, const float *diff_dst, float *diff_src) {
    dnnl_stream_t s = begin();
    void *bddst = c->r_bd_ddst.prim ? thread_buffer(SLOT_SRC, dnnl_memory_desc_get_size(&c->bd_ddst)) : (void *)diff_dst;
    void *bdsrc = c->r_bd_dsrc.prim ? thread_buffer(SLOT_DST, dnnl_memory_desc_get_size(&c->bd_dsrc)) : (void *)diff_src;
    int st = c->r_bd_ddst.prim ? run_reorder(s, &c->r_bd_ddst, diff_dst, bddst) : 0;
    int args[3] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
    const dnnl_memory_desc_t *mds[3] = {&c->bd_ddst, &c->bd_wei, &c->bd_dsrc};
    const void *bufs[3] = {bddst, c->bd_wei_buf, bdsrc};
    st |= exec(s, c->bwd_data, &c->bd_scratch, 3, args, mds, bufs);
    if (c->r_bd_dsrc.prim) st |= run_reorder(s, &c->r_bd_dsrc, bdsrc, diff_src);
    return end(s, st);
}

int cdnnl_conv_backward_weights(cdnnl_conv *c, const float *src, const float *diff_dst, float *diff_weights, float *diff_bias) {
    dnnl_stream_t s = begin();
    void *bsrc = c->r_bw_src.prim ? thread_buffer(SLOT_SRC, dnnl_memory_desc_get_size(&c->bw_src)) : (void *)src;
    void *bddst = c->r_bw_ddst.prim ? thread_buffer(SLOT_DST, dnnl_memory_desc_get_size(&c->bw_ddst)) : (void *)diff_dst;
    void *bdwei = c->r_bw_dwei.prim ? thread_buffer(SLOT_WEI, dnnl_memory_desc_get_size(&c->bw_dwei)) : (void *)diff_weights;
    int st = 0;
    if (c->r_bw_src.prim) st |= run_reorder(s, &c->r_bw_src, src, bsrc);
    if (c->r_bw_ddst.prim) st |= run_reorder(s, &c->r_bw_ddst, diff_dst, bddst);
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS};
    const dnnl_memory_desc_t *mds[4] = {&c->bw_src, &c->bw_ddst, &c->bw_dwei, &c->bias_md};
    const void *bufs[4] = {bsrc, bddst, bdwei, diff_bias};
    st |= exec(s, c->bwd_wei, &c->bw_scratch, c->has_bias && diff_bias ? 4 : 3, args, mds, bufs);
    if (c->r_bw_dwei.prim) st |= run_reorder(s, &c->r_bw_dwei, bdwei, diff_weights);
    return end(s, st);
}

// MARK: - Inference convolutions in the blocked activation layout

static int block_size = 0;
static pthread_once_t block_once = PTHREAD_ONCE_INIT;

static int dims_layout(dnnl_memory_desc_t *md, int n, int c, int h, int w, int blocked) {
    dnnl_dims_t dims = {n, c, h, w};
    dnnl_format_tag_t tag = !blocked ? dnnl_nchw : block_size == 16 ? dnnl_nChw16c : dnnl_nChw8c;
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag) == dnnl_success ? 0 : -1;
}

// Picks the activation layout for inference: channel blocks of 16 (AVX-512) or else of 8 (AVX2,
// SSE4.1), whichever oneDNN has a JIT direct kernel for on this CPU. (Left to choose, oneDNN
// 2.6 takes its brgemm kernel on channels last with AVX-512, which ran ResNet-20's shapes
// 1.1-1.3x slower here.) 0 for neither: the plain path stays.
static void probe_block(void) {
    omp_set_num_threads(1);
    pthread_once(&engine_once, make_engine);
    if (!engine) return;
    dnnl_dims_t act = {16, 16, 14, 14}, wei = {16, 16, 3, 3}, strides = {1, 1}, padding = {1, 1};
    const int candidates[2] = {16, 8};
    for (int i = 0; i < 2 && block_size == 0; i++) {
        dnnl_format_tag_t tag = candidates[i] == 16 ? dnnl_nChw16c : dnnl_nChw8c;
        dnnl_memory_desc_t act_md, w;
        dnnl_memory_desc_init_by_tag(&act_md, 4, act, dnnl_f32, tag);
        dnnl_memory_desc_init_by_tag(&w, 4, wei, dnnl_f32, dnnl_format_tag_any);
        dnnl_convolution_desc_t d;
        dnnl_primitive_desc_t pd;
        const char *impl = NULL;
        if (dnnl_convolution_forward_desc_init(&d, dnnl_forward_inference, dnnl_convolution_direct, &act_md, &w, NULL,
                                               &act_md, strides, padding, padding) != dnnl_success ||
            dnnl_primitive_desc_create(&pd, &d, NULL, engine, NULL) != dnnl_success) continue;
        if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
            strncmp(impl, "jit", 3) == 0)
            block_size = candidates[i];
        dnnl_primitive_desc_destroy(pd);
    }
}

const char *cdnnl_cpu_isa(void) { return dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()); }

int cdnnl_block_size(void) {
    pthread_once(&block_once, probe_block);
    return block_size;
}

struct cdnnl_infer {
    dnnl_primitive_t prim;
    dnnl_memory_desc_t src, wei, dst, bias, scratch;
    reorder_t pack;  // OIHW -> the primitive's weight layout
};

cdnnl_infer *cdnnl_infer_create(int mb, int ic, int ih, int iw, int oc, int k, int stride, int pad, int src_blocked,
                                int relu, int sum) {
    if (cdnnl_block_size() == 0) return NULL;
    omp_set_num_threads(1);
    cdnnl_infer *c = calloc(1, sizeof *c);
    int oh = (ih + 2 * pad - k) / stride + 1, ow = (iw + 2 * pad - k) / stride + 1;
    dnnl_dims_t wei_dims = {oc, ic, k, k}, bias_dims = {oc}, strides = {stride, stride}, padding = {pad, pad};
    dnnl_memory_desc_t wei_any, wei_plain;
    dnnl_memory_desc_init_by_tag(&wei_any, 4, wei_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wei_plain, 4, wei_dims, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&c->bias, 1, bias_dims, dnnl_f32, dnnl_x);
    dnnl_primitive_attr_t attr = user_scratchpad();
    dnnl_post_ops_t ops = NULL;
    dnnl_post_ops_create(&ops);
    if (sum) dnnl_post_ops_append_sum(ops, 1.0f);
    if (relu == 1) dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
    if (relu == 2) dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_clip, 0.0f, 6.0f);  // ReLU6
    dnnl_primitive_attr_set_post_ops(attr, ops);
    dnnl_post_ops_destroy(ops);
    dnnl_convolution_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    const char *impl = NULL;
    int ok = dims_layout(&c->src, mb, ic, ih, iw, src_blocked) == 0 && dims_layout(&c->dst, mb, oc, oh, ow, 1) == 0 &&
             dnnl_convolution_forward_desc_init(&d, dnnl_forward_inference, dnnl_convolution_direct, &c->src, &wei_any,
                                                &c->bias, &c->dst, strides, padding, padding) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &d, attr, engine, NULL) == dnnl_success &&
             dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
             impl && strncmp(impl, "ref", 3) != 0;  // a reference kernel is slower than our plain path
    dnnl_primitive_attr_destroy(attr);
    if (ok) {
        c->wei = *query(pd, dnnl_query_weights_md);
        c->scratch = *query(pd, dnnl_query_scratchpad_md);
        ok = make_reorder(&c->pack, &wei_plain, &c->wei) == 0 && dnnl_primitive_create(&c->prim, pd) == dnnl_success;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (!ok) {
        cdnnl_infer_destroy(c);
        return NULL;
    }
    return c;
}

void cdnnl_infer_destroy(cdnnl_infer *c) {
    if (!c) return;
    if (c->pack.prim) dnnl_primitive_destroy(c->pack.prim);
    if (c->prim) dnnl_primitive_destroy(c->prim);
    free(c);
}

size_t cdnnl_infer_weights_bytes(const cdnnl_infer *c) { return dnnl_memory_desc_get_size(&c->wei); }

int cdnnl_infer_same_weights(const cdnnl_infer *a, const cdnnl_infer *b) { return dnnl_memory_desc_equal(&a->wei, &b->wei); }

int cdnnl_infer_pack_weights(const cdnnl_infer *c, const float *weights_oihw, void *packed) {
    dnnl_stream_t s = begin();
    return end(s, run_reorder(s, &c->pack, weights_oihw, packed));
}

int cdnnl_infer_forward(const cdnnl_infer *c, const float *src, const void *packed, const float *bias, float *dst) {
    dnnl_stream_t s = begin();
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST};
    const dnnl_memory_desc_t *mds[4] = {&c->src, &c->wei, &c->bias, &c->dst};
    const void *bufs[4] = {src, packed, bias, dst};
    return end(s, exec(s, c->prim, &c->scratch, 4, args, mds, bufs));
}
