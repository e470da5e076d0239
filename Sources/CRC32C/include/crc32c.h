#ifndef SWITCHBOARD_CRC32C_H
#define SWITCHBOARD_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/// Extends a CRC32C (Castagnoli) over `len` bytes. Start with crc = 0.
uint32_t sb_crc32c_extend(uint32_t crc, const void *data, size_t len);

/// 1 when the SSE4.2 hardware path is in use.
int sb_crc32c_hardware(void);

#endif
