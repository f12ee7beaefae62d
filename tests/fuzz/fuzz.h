/* Shared by the fuzz targets: the libFuzzer entry point each defines. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of the input (caller frees). */
char *fuzz_str(const uint8_t *data, size_t size);

#endif
