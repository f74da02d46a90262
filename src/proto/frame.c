/* frame.c - AMQP frame parsing and framing (see frame.h). */
#include "proto/frame.h"

#include "core/err.h"

long wr_frame_parse(const uint8_t *buf, size_t len, uint32_t frame_max, wr_frame_t *out)
{
    if (len < WR_FRAME_HEADER_SIZE)
        return 0;
    uint8_t type = buf[0];
    if (type != 1 && type != 2 && type != 3 && type != 8)
        return WR_EFRAME;
    uint32_t size = wr_get_u32(buf + 3);
    /* size + overhead must fit frame_max; compare without overflowing. */
    if (frame_max < WR_FRAME_OVERHEAD || size > frame_max - WR_FRAME_OVERHEAD)
        return WR_ETOOBIG;
    size_t total = (size_t)size + WR_FRAME_OVERHEAD;
    if (len < total)
        return 0;
    if (buf[total - 1] != WR_FRAME_END_OCTET)
        return WR_EFRAME;
    out->type = type;
    out->channel = wr_get_u16(buf + 1);
    out->payload.p = buf + WR_FRAME_HEADER_SIZE;
    out->payload.n = size;
    return (long)total;
}

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
