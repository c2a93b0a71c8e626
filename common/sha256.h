#ifndef ML_SHA256_H
#define ML_SHA256_H

/*
 * SHA-256 over OpenSSL's libcrypto, the one place that includes it. Used for
 * playbook hashes, agent checksums and content-addressed image blobs.
 * Digests are printed as 64 lowercase hex characters.
 */

#define ML_SHA256_HEX 65 /* 64 hex digits and a NUL */

struct ml_sha256;

struct ml_sha256 *ml_sha256_new(void);
void ml_sha256_update(struct ml_sha256 *h, const void *p, size_t n);
/* Finish and write the hex digest into hex; h may not be used afterwards
 * except with ml_sha256_free. */
void ml_sha256_final_hex(struct ml_sha256 *h, char hex[ML_SHA256_HEX]);
void ml_sha256_free(struct ml_sha256 *h);

/* One-shot digest of a memory buffer. */
void ml_sha256_hex(const void *p, size_t n, char hex[ML_SHA256_HEX]);

/* HMAC-SHA-256 of p under key, as hex: a keyed digest that tells two
 * values apart without letting anyone who lacks the key test guesses. */
void ml_hmac_sha256_hex(const void *key, size_t klen, const void *p, size_t n,
			char hex[ML_SHA256_HEX]);

/* Digest of a whole file, streamed in 64 KiB reads. */
int ml_sha256_file(const char *path, char hex[ML_SHA256_HEX]);

#endif
