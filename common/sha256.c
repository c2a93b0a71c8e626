/*
 * SHA-256 through OpenSSL's EVP interface (see sha256.h). Files are hashed
 * in 64 KiB reads so memory stays constant whatever their size.
 */
#include "common/ml.h"
#include "common/sha256.h"

#include <fcntl.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

struct ml_sha256 {
	EVP_MD_CTX *ctx;
};

struct ml_sha256 *ml_sha256_new(void)
{
	struct ml_sha256 *h = ml_xcalloc(1, sizeof(*h));

	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
		BUG("cannot initialise sha256");
	return h;
}

void ml_sha256_update(struct ml_sha256 *h, const void *p, size_t n)
{
	if (n && EVP_DigestUpdate(h->ctx, p, n) != 1)
		BUG("sha256 update failed");
}

void ml_sha256_final_hex(struct ml_sha256 *h, char hex[ML_SHA256_HEX])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;

	if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1 || len != 32)
		BUG("sha256 final failed");
	for (i = 0; i < len; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

void ml_sha256_free(struct ml_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void ml_sha256_hex(const void *p, size_t n, char hex[ML_SHA256_HEX])
{
	struct ml_sha256 *h = ml_sha256_new();

	ml_sha256_update(h, p, n);
	ml_sha256_final_hex(h, hex);
	ml_sha256_free(h);
}

int ml_sha256_file(const char *path, char hex[ML_SHA256_HEX])
{
	static _Thread_local unsigned char chunk[65536];
	struct ml_sha256 *h;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ml_err_errno(errno == ENOENT ? ML_ENOTFOUND : ML_EFAIL,
				    errno, "cannot open '%s'", path);
	h = ml_sha256_new();
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			ml_sha256_free(h);
			return ml_err_errno(ML_EFAIL, e, "cannot read '%s'",
					    path);
		}
		if (n == 0)
			break;
		ml_sha256_update(h, chunk, (size_t)n);
	}
	close(fd);
	ml_sha256_final_hex(h, hex);
	ml_sha256_free(h);
	return 0;
}

void ml_hmac_sha256_hex(const void *key, size_t klen, const void *p, size_t n,
			char hex[ML_SHA256_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;

	if (!HMAC(EVP_sha256(), key, (int)klen, p, n, md, &len) || len != 32)
		BUG("hmac-sha256 failed");
	for (i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	explicit_bzero(md, sizeof(md));
}
