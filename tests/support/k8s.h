#ifndef ML_TEST_K8S_H
#define ML_TEST_K8S_H

/*
 * The offline Kubernetes validator (tests/k8s/validate.mjs) for tests: run
 * with node, argv only, on files of manifests.
 */

struct ml_test_out;

/*
 * Run the validator on files (NULL-terminated). Returns its exit status
 * (0 valid, 1 invalid, 2 unusable), with the outputs left in *o for the
 * caller to release. Fails the test run (abort, with a message saying to
 * run scripts/setup.sh) when node or the validator's npm packages are
 * missing: a validator that cannot run must not pass.
 */
int ml_test_k8s_validate(struct ml_test_out *o, const char *const *files);

#endif
