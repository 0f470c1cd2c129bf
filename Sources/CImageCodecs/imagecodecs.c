#include "imagecodecs.h"

#include <stdio.h>  // before jpeglib.h, which uses FILE
#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

static void set_error(image_info *info, const char *message) {
    snprintf(info->error, sizeof info->error, "%s", message);
}

int image_sniff(const uint8_t *head, size_t count) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (count >= 8 && memcmp(head, png_magic, 8) == 0) return IMAGE_PNG;
    if (count >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) return IMAGE_JPEG;
    return 0;
}

/// PIL's convert("L"): L = R * 299/1000 + G * 587/1000 + B * 114/1000, in 16-bit fixed point.
static inline uint8_t luma(const uint8_t *rgb) {
    return (uint8_t)((rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16);
}

/// One row of `from` channels (1 or 3) written as `to` channels (1 or 3).
static void convert_row(const uint8_t *in, int from, uint8_t *out, int to, int width) {
    if (from == to) { memcpy(out, in, (size_t)width * to); return; }
    if (from == 1) {
        for (int x = 0; x < width; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x];
    } else {
        for (int x = 0; x < width; x++) out[x] = luma(in + 3 * x);
    }
}

/* ---------- PNG ---------- */

typedef struct {
    jmp_buf jump;
    image_info *info;
} png_context;

static void png_error_handler(png_structp png, png_const_charp message) {
    png_context *context = png_get_error_ptr(png);
    set_error(context->info, message);
    longjmp(context->jump, 1);
}

static void png_warning_handler(png_structp png, png_const_charp message) { (void)png; (void)message; }

/// Reads the PNG header of `file`; with `out`, decodes into it. The file is closed by the caller.
static int png_run(FILE *file, image_info *info, int channels, long max_pixels, uint8_t *out, size_t out_size) {
    png_context context;
    context.info = info;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, png_error_handler, png_warning_handler);
    if (!png) { set_error(info, "out of memory"); return -1; }
    png_infop pinfo = png_create_info_struct(png);
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (!pinfo) { png_destroy_read_struct(&png, NULL, NULL); set_error(info, "out of memory"); return -1; }
    if (setjmp(context.jump)) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &pinfo, NULL);
        return -1;
    }
    // Dimensions are checked here, not by libpng's default of 1,000,000 x 1,000,000.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_init_io(png, file);
    png_read_info(png, pinfo);
    png_uint_32 width = png_get_image_width(png, pinfo), height = png_get_image_height(png, pinfo);
    int color = png_get_color_type(png, pinfo), depth = png_get_bit_depth(png, pinfo);
    info->width = (int)width;
    info->height = (int)height;
    info->bit_depth = depth;
    info->channels = (color & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    if (!out) { png_destroy_read_struct(&png, &pinfo, NULL); return 0; }
    if ((long)width * (long)height > max_pixels) {
        snprintf(info->error, sizeof info->error, "is %u x %u pixels, more than the limit of %ld", width, height, max_pixels);
        png_destroy_read_struct(&png, &pinfo, NULL);
        return -1;
    }
    if ((size_t)width * height * channels > out_size) {
        set_error(info, "output buffer too small");
        png_destroy_read_struct(&png, &pinfo, NULL);
        return -1;
    }
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    // A palette's or grey image's transparency (tRNS) becomes an alpha channel when expanded.
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, pinfo, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);
    int decoded = png_get_channels(png, pinfo);
    size_t rowbytes = png_get_rowbytes(png, pinfo);
    if ((decoded != 1 && decoded != 3) || rowbytes != (size_t)width * decoded) {
        set_error(info, "unsupported PNG layout");
        png_destroy_read_struct(&png, &pinfo, NULL);
        return -1;
    }
    pixels = malloc(rowbytes * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    for (png_uint_32 y = 0; y < height; y++) convert_row(rows[y], decoded, out + (size_t)y * width * channels, channels, (int)width);
    free(pixels);
    free(rows);
    png_destroy_read_struct(&png, &pinfo, NULL);
    return 0;
}

/* ---------- JPEG ---------- */

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    image_info *info;
} jpeg_context;

static void jpeg_error_handler(j_common_ptr cinfo) {
    jpeg_context *context = (jpeg_context *)cinfo->err;
    char message[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, message);
    set_error(context->info, message);
    longjmp(context->jump, 1);
}

/// A corrupt-data warning (a truncated file is padded with grey by libjpeg) is an error here.
static void jpeg_warning_handler(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_error_handler(cinfo);
}

static int jpeg_run(FILE *file, image_info *info, int channels, long max_pixels, uint8_t *out, size_t out_size) {
    struct jpeg_decompress_struct cinfo;
    jpeg_context context;
    uint8_t *volatile row = NULL;
    cinfo.err = jpeg_std_error(&context.base);
    context.base.error_exit = jpeg_error_handler;
    context.base.emit_message = jpeg_warning_handler;
    context.info = info;
    if (setjmp(context.jump)) {
        free(row);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, file);
    jpeg_read_header(&cinfo, TRUE);
    info->width = (int)cinfo.image_width;
    info->height = (int)cinfo.image_height;
    info->bit_depth = cinfo.data_precision;
    if (cinfo.num_components != 1 && cinfo.num_components != 3) {
        snprintf(info->error, sizeof info->error, "JPEG with %d colour components (CMYK?) is not supported; convert it to RGB", cinfo.num_components);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    info->channels = cinfo.num_components;
    if (!out) { jpeg_destroy_decompress(&cinfo); return 0; }
    if ((long)cinfo.image_width * (long)cinfo.image_height > max_pixels) {
        snprintf(info->error, sizeof info->error, "is %u x %u pixels, more than the limit of %ld", cinfo.image_width, cinfo.image_height, max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    if ((size_t)cinfo.image_width * cinfo.image_height * channels > out_size) {
        set_error(info, "output buffer too small");
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    int decoded = cinfo.num_components == 1 ? 1 : 3;
    cinfo.out_color_space = decoded == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    row = malloc((size_t)cinfo.output_width * decoded);
    if (!row) { set_error(info, "out of memory"); longjmp(context.jump, 1); }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1] = {row};
        JDIMENSION y = cinfo.output_scanline;
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) { set_error(info, "truncated JPEG data"); longjmp(context.jump, 1); }
        convert_row(row, decoded, out + (size_t)y * cinfo.output_width * channels, channels, (int)cinfo.output_width);
    }
    jpeg_finish_decompress(&cinfo);
    free(row);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

static int run(const char *path, image_format format, image_info *info, int channels, long max_pixels, uint8_t *out, size_t out_size) {
    memset(info, 0, sizeof *info);
    if (out && channels != 1 && channels != 3) { set_error(info, "channels must be 1 or 3"); return -1; }
    FILE *file = fopen(path, "rb");
    if (!file) { set_error(info, "cannot open"); return -1; }
    int status;
    switch (format) {
    case IMAGE_PNG: status = png_run(file, info, channels, max_pixels, out, out_size); break;
    case IMAGE_JPEG: status = jpeg_run(file, info, channels, max_pixels, out, out_size); break;
    default: set_error(info, "not a PNG or JPEG file"); status = -1;
    }
    fclose(file);
    return status;
}

int image_read_info(const char *path, image_format format, image_info *info) {
    return run(path, format, info, 0, 0, NULL, 0);
}

int image_decode(const char *path, image_format format, int channels, long max_pixels, uint8_t *out, size_t out_size,
                 image_info *info) {
    return run(path, format, info, channels, max_pixels, out, out_size);
}
