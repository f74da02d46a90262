/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every store record.
 *
 * Chosen over CRC-32 (zlib) because it detects more error patterns in the
 * sizes we use and x86-64 and ARMv8 compute it in hardware.  On x86-64
 * with SSE4.2 wr_crc32c uses the crc32 instruction; elsewhere the portable
 * version, table-driven (slicing by 8).
 */
#ifndef WR_CRC32C_H
#define WR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over p[0..n). */
uint32_t wr_crc32c(uint32_t crc, const void *p, size_t n);
/* The portable version, always (the tests compare the two). */
uint32_t wr_crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
