/* err.c - the one table of warren's internal error texts. */
#include "core/err.h"

const char *wr_strerror(int err)
{
    switch (err) {
    case WR_OK:
        return "ok";
#define WR_ERR_CASE(name, text)                                                                    \
    case WR_E##name:                                                                               \
        return text;
        WR_ERRNO_MAP(WR_ERR_CASE)
#undef WR_ERR_CASE
    default:
        return "unknown error";
    }
}
