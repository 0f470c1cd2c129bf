// OpenBLAS's CBLAS interface; its include directory comes from `pkg-config openblas`.
#include <cblas.h>
