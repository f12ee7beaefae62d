/* SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104), so that the install
 * program needs no crypto library. */
#ifndef SHA256_H
#define SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

struct sha256 {
	uint32_t h[8];
	uint64_t total;
	unsigned char blk[64];
	size_t n;
};

void sha256_init(struct sha256 *);
void sha256_update(struct sha256 *, const void *, size_t);
void sha256_final(struct sha256 *, unsigned char out[SHA256_LEN]);
void sha256(const void *, size_t, unsigned char out[SHA256_LEN]);

/* HMAC-SHA-256 of the concatenation of the nparts parts under key. */
struct iov_part {
	const void *p;
	size_t n;
};
void hmac_sha256(const unsigned char *key, size_t keylen,
    const struct iov_part *parts, size_t nparts, unsigned char out[SHA256_LEN]);

#endif
