/* CRC32C (Castagnoli), for spool records: hardware instruction when the CPU has it. */
#ifndef QS_CRC32C_H
#define QS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t qs_crc32c(uint32_t crc, const void *data, size_t len);

#endif
