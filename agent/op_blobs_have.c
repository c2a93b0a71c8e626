/*
 * blobs_have: which of the given blobs the store lacks, and how much of
 * each lacking one was already received (so a put can resume there).
 *
 *	args:   {"digests": ["sha256:<64 hex>", ...]}	at most MAX_DIGESTS
 *	result: {"missing": [digests not stored, in request order, once each],
 *		 "partial": {"sha256:...": bytes in its .part, ...}}
 *
 * A blob is stored when its final file exists (the store puts it there
 * only after verifying it); a missing blob with a .part also appears in
 * "partial". Every digest is validated before the store is looked at; the
 * store is only read, never created.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/blobstore.h"

#define MAX_DIGESTS 1000

static int op_blobs_have(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_blobstore *s = NULL;
	json_t *list = json_object_get(args, "digests"), *v;
	json_t *missing = NULL, *partial = NULL, *seen = NULL, *r;
	const char *dg;
	uint64_t size;
	int64_t part;
	size_t i;
	int rc;

	if (!json_is_array(list))
		return ml_err_set(ML_EPROTO, "blobs_have needs 'digests', a "
					     "list of blob digests");
	if (json_array_size(list) > MAX_DIGESTS)
		return ml_err_set(ML_EPROTO,
				  "blobs_have: %zu digests, at most %d per "
				  "request",
				  json_array_size(list), MAX_DIGESTS);
	json_array_foreach(list, i, v)
	{
		if (!ml_blob_digest_valid(json_string_value(v)))
			return ml_err_set(ML_EPROTO,
					  "blobs_have: digest %zu is not "
					  "\"sha256:\" and 64 lowercase hex "
					  "digits",
					  i + 1);
	}

	ml_blobstore_open(&s, a->state_dir);
	missing = json_array();
	partial = json_object();
	seen = json_object();
	if (!missing || !partial || !seen)
		BUG("out of memory");
	json_array_foreach(list, i, v)
	{
		dg = json_string_value(v);
		rc = ml_blobstore_stat(s, dg, &size, &part);
		if (rc < 0)
			goto out;
		if (rc == 1 || json_object_get(seen, dg))
			continue;
		if (json_object_set(seen, dg, json_true()) < 0 ||
		    json_array_append(missing, v) < 0)
			BUG("out of memory");
		if (part >= 0)
			json_object_set_new(partial, dg,
					    json_integer((json_int_t)part));
	}
	r = json_object();
	json_object_set_new(r, "missing", missing);
	json_object_set_new(r, "partial", partial);
	missing = partial = NULL;
	*result = r;
	rc = 0;
out:
	json_decref(missing);
	json_decref(partial);
	json_decref(seen);
	ml_blobstore_free(s);
	return rc;
}

const struct ml_agent_op ml_agent_op_blobs_have = {
	.name = "blobs_have",
	.summary = "which of the given blobs the store lacks or holds in part",
	.run = op_blobs_have,
};
