#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include "csystemio.h"

int dsc_reserve(int fd, long long length) {
#if defined(__linux__) && defined(FALLOC_FL_KEEP_SIZE)
    /* Blocks for [0, length) without moving the end of file: the writer still appends, and an
       abandoned temporary is no larger than what was written. */
    return fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)length);
#else
    (void)fd;
    (void)length;
    errno = EOPNOTSUPP;
    return -1;
#endif
}
