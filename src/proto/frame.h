/*
 * frame.h - AMQP 0-9-1 frame parsing and framing.
 *
 * A frame on the wire is: type (1 octet), channel (2), payload size (4),
 * payload, and the end octet 0xCE.  wr_frame_parse is pure and resumable:
 * it looks at the bytes it is given, never allocates, and either returns a
 * complete frame as a view into the input, asks for more input, or reports
 * a framing error.  Bounds are checked so that no arithmetic can overflow.
 */
#ifndef WR_FRAME_H
#define WR_FRAME_H

#include "core/buf.h"
#include "core/err.h"

#define WR_FRAME_HEADER_SIZE 7
#define WR_FRAME_OVERHEAD    8 /* header plus end octet */
#define WR_FRAME_END_OCTET   0xCE

typedef struct wr_frame {
    uint8_t type; /* 1 method, 2 header, 3 body, 8 heartbeat */
    uint16_t channel;
    wr_bytes_t payload; /* borrowed from the parsed buffer */
} wr_frame_t;

/*
 * wr_frame_parse parses one frame from buf[0..len).  frame_max bounds the
 * whole frame including its 8 bytes of overhead (as negotiated by tune).
 *
 * Returns the number of bytes the frame occupies (> 0) and fills *out; 0 if
 * buf holds only part of a frame; WR_ETOOBIG if the declared size exceeds
 * frame_max; WR_EFRAME if the end octet is wrong or the type is unknown.
 * The size check happens as soon as the 7-byte header is present, so an
 * oversized frame is refused before its payload arrives.
 */
static inline long wr_frame_parse(const uint8_t *buf, size_t len, uint32_t frame_max,
                                  wr_frame_t *out)
{
    /* Inline: it runs three times per published message. */
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

/* wr_frame_begin appends a frame header with a placeholder size and
 * returns its offset; wr_frame_end patches the size and appends 0xCE. */
size_t wr_frame_begin(wr_buf_t *b, uint8_t type, uint16_t channel);
void wr_frame_end(wr_buf_t *b, size_t start);

/* Appends a complete heartbeat frame. */
void wr_frame_put_heartbeat(wr_buf_t *b);

#endif
