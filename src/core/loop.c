/* loop.c - the process's event loop pointer (see loop.h). */
#include "core/loop.h"

uv_loop_t *wr_loop;
