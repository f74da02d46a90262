/* frame.c - AMQP frame parsing and framing (see frame.h). */
#include "proto/frame.h"

#include "core/err.h"

size_t wr_frame_begin(wr_buf_t *b, uint8_t type, uint16_t channel)
{
    size_t start = b->len;
    uint8_t *p = wr_buf_reserve(b, WR_FRAME_HEADER_SIZE);
    p[0] = type;
    wr_set_u16(p + 1, channel);
    wr_set_u32(p + 3, 0);
    b->len += WR_FRAME_HEADER_SIZE;
    return start;
}

void wr_frame_end(wr_buf_t *b, size_t start)
{
    wr_buf_patch_u32(b, start + 3, (uint32_t)(b->len - start - WR_FRAME_HEADER_SIZE));
    wr_buf_put_u8(b, WR_FRAME_END_OCTET);
}

void wr_frame_put_heartbeat(wr_buf_t *b)
{
    static const uint8_t hb[8] = {8, 0, 0, 0, 0, 0, 0, WR_FRAME_END_OCTET};
    wr_buf_put(b, hb, sizeof hb);
}
