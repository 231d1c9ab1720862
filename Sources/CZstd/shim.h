// Debian's libzstd-dev: streaming compression with worker threads (ZSTD_c_nbWorkers) and decompression.
#include <zstd.h>
