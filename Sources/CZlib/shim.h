// zlib, for reading gzip-compressed IDX files (the form Fashion-MNIST ships in).
#include <zlib.h>
