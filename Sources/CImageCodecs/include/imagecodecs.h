// PNG and JPEG decoding through Debian's libpng and libjpeg-turbo. Both report errors by
// longjmp, which Swift cannot catch; this layer turns every error into a return code and a message.
#ifndef LAYERSWEEP_IMAGECODECS_H
#define LAYERSWEEP_IMAGECODECS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { IMAGE_PNG = 1, IMAGE_JPEG = 2 } image_format;

/// What a file's header says: its size and whether it holds colour (3 channels after decoding)
/// or grey (1). `error` holds the codec's message when a call returns non-zero.
typedef struct {
    int width;
    int height;
    int channels;
    int bit_depth;
    char error[200];
} image_info;

/// The format a file's first bytes announce, or 0 when neither PNG nor JPEG.
int image_sniff(const uint8_t *head, size_t count);

/// Reads the header of a PNG or JPEG file only. Returns 0, or -1 with info->error set.
int image_read_info(const char *path, image_format format, image_info *info);

/// Decodes the whole file into `out` (height x width x channels bytes, row-major, channels last),
/// with `channels` 1 (grey; colour becomes ITU-R 601-2 luma as PIL's convert("L")) or 3 (RGB; grey
/// is repeated). Palettes are expanded, alpha dropped, 16-bit samples keep their high byte (as
/// Pillow does for RGB). `max_pixels` bounds width x height before anything is allocated.
/// Returns 0, or -1 with info->error set.
int image_decode(const char *path, image_format format, int channels, long max_pixels, uint8_t *out, size_t out_size,
                 image_info *info);

#endif
