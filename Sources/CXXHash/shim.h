// Debian's libxxhash-dev (xxHash 0.8): XXH3_64bits and XXH64, streaming and one-shot.
#include <xxhash.h>
