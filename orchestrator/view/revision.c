/*
 * What history, show and (later) deploy and rollback share when they print
 * revisions: the JSON form of a revision and its kind as text.
 */
#include "common/ml.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/view/revision.h"

json_t *ml_revision_json(const struct ml_revision *r, bool full)
{
	json_t *o = json_object();

	json_object_set_new(o, "number", json_integer(r->number));
	json_object_set_new(o, "kind", json_string(ml_rev_kind_name(r->kind)));
	if (r->kind == ML_REV_ROLLBACK)
		json_object_set_new(o, "rollback_of",
				    json_integer(r->rollback_of));
	json_object_set_new(o, "commit", json_string(r->commit));
	json_object_set_new(o, "outcome",
			    json_string(ml_outcome_name(r->outcome)));
	json_object_set_new(o, "message",
			    r->message ? json_string(r->message) : json_null());
	json_object_set_new(o, "who", r->who ? json_string(r->who)
					     : json_null());
	json_object_set_new(o, "started_at", json_integer(r->started_at));
	json_object_set_new(o, "finished_at",
			    r->finished_at ? json_integer(r->finished_at)
					   : json_null());
	json_object_set_new(o, "image_id", r->image_id
						   ? json_string(r->image_id)
						   : json_null());
	json_object_set_new(o, "playbook_hash",
			    r->playbook_hash ? json_string(r->playbook_hash)
					     : json_null());
	if (full) {
		json_t *desired = r->desired_json
					  ? json_loads(r->desired_json, 0, NULL)
					  : NULL;

		json_object_set_new(o, "desired",
				    desired ? desired : json_null());
		json_object_set_new(o, "playbook",
				    r->playbook ? json_string(r->playbook)
						: json_null());
	}
	return o;
}

int ml_print_json(json_t *doc)
{
	int rc = 0;

	if (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
		rc = ml_err_set(ML_EFAIL, "cannot write JSON");
	printf("\n");
	json_decref(doc);
	return rc;
}

const char *ml_revision_kind_text(const struct ml_revision *r, char *buf,
			     size_t n)
{
	if (r->kind == ML_REV_ROLLBACK)
		snprintf(buf, n, "rollback to %" PRId64, r->rollback_of);
	else
		snprintf(buf, n, "deploy");
	return buf;
}

