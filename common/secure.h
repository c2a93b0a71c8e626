#ifndef ML_SECURE_H
#define ML_SECURE_H

/*
 * Process-wide protections both binaries set up first thing, and the
 * Linux capability names shared by the playbook validator and the agent.
 */

/*
 * No core dumps (RLIMIT_CORE 0, and not dumpable, which also keeps other
 * users' processes from ptrace-attaching), and JSON values freed with
 * their bytes wiped first, since secrets travel as JSON strings. Call
 * before anything holds a secret. Never fails: a refused setting is
 * reported with ml_warn.
 */
void ml_secure_process(void);

/* True when s is one of the capabilities Linux defines, as Docker's CapAdd
 * takes them: "NET_BIND_SERVICE", without "CAP_". */
bool ml_cap_valid(const char *s);

#endif
