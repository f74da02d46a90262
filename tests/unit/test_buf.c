/* test_buf.c - byte buffers and big-endian helpers. */
#include "core/buf.h"
#include "core/err.h"
#include "test.h"

static void test_buf_put_and_read_back(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    wr_buf_put_u8(&b, 0xAB);
    wr_buf_put_u16(&b, 0x1234);
    wr_buf_put_u32(&b, 0xDEADBEEF);
    wr_buf_put_u64(&b, 0x0102030405060708ULL);
    wr_buf_put_shortstr(&b, WR_BYTES_LIT("hi"));
    wr_buf_put_longstr(&b, WR_BYTES_LIT("long"));
    CHECK_EQ(b.len, 1 + 2 + 4 + 8 + 3 + 8);
    CHECK_EQ(b.p[0], 0xAB);
    CHECK_EQ(wr_get_u16(b.p + 1), 0x1234);
    CHECK_EQ(wr_get_u32(b.p + 3), 0xDEADBEEF);
    CHECK(wr_get_u64(b.p + 7) == 0x0102030405060708ULL);
    CHECK_EQ(b.p[15], 2);
    CHECK_MEM(b.p + 16, "hi", 2);
    CHECK_EQ(wr_get_u32(b.p + 18), 4);
    wr_buf_consume(&b, 15);
    CHECK_EQ(b.len, 11);
    CHECK_EQ(b.p[0], 2);
    wr_buf_free(&b);
}

static void test_buf_grows(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    for (int i = 0; i < 100000; i++)
        wr_buf_put_u32(&b, (uint32_t)i);
    CHECK_EQ(b.len, 400000);
    CHECK_EQ(wr_get_u32(b.p + 4 * 99999), 99999);
    wr_buf_free(&b);
}

static void test_strerror(void)
{
    CHECK_STR(wr_strerror(WR_ENOMEM), "out of memory");
    CHECK_STR(wr_strerror(0), "ok");
}

WR_SUITE(buf)
{
    RUN(test_buf_put_and_read_back);
    RUN(test_buf_grows);
    RUN(test_strerror);
}

#include "core/crc32c.h"

static void test_crc32c_known_values(void)
{
    /* The standard check value of CRC-32C. */
    CHECK_EQ(wr_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ(wr_crc32c(0, "", 0), 0);
    /* Incremental equals one-shot. */
    uint32_t c = wr_crc32c(0, "12345", 5);
    CHECK_EQ(wr_crc32c(c, "6789", 4), 0xE3069283u);
}

/* The CPU's crc32 path (where there is one) and the tables agree at every
 * length and alignment, and when resumed part way. */
static void test_crc32c_hw_matches_tables(void)
{
    uint8_t buf[300];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t off = 0; off < 8; off++) {
        for (size_t n = 0; n + off <= sizeof buf; n += 1 + n / 8) {
            uint32_t a = wr_crc32c(0, buf + off, n), b = wr_crc32c_sw(0, buf + off, n);
            CHECK_EQ(a, b);
            CHECK_EQ(wr_crc32c(wr_crc32c(0, buf + off, n / 3), buf + off + n / 3, n - n / 3), b);
            CHECK_EQ(wr_crc32c(0x5A5A5A5Au, buf + off, n), wr_crc32c_sw(0x5A5A5A5Au, buf + off, n));
        }
    }
}

WR_SUITE(crc32c)
{
    RUN(test_crc32c_known_values);
    RUN(test_crc32c_hw_matches_tables);
}
