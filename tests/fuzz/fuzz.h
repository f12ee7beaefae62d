/* Shared by the fuzz targets: the libFuzzer entry point each defines. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of the input (caller frees). */
char *fuzz_str(const uint8_t *data, size_t size);

/* For the targets that run a handler: a scratch directory made once, with
 * an empty config file and a database path there, named by
 * SLACK_OAUTH_CONFIG and SLACK_OAUTH_DB (never by the input); removed with
 * the database's files at exit, after the handlers the target registers
 * later with atexit (which close its connections). */
void fuzz_scratch(void);

#endif
