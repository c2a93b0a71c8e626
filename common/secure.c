/*
 * Process protections and capability names (see secure.h).
 *
 * Wiping on free: jansson's free gets no size, so the wipe asks the
 * allocator (malloc_usable_size); it costs a memset of each freed JSON
 * block, small next to the SSH and Docker I/O around it.
 *
 * The capability list is Linux's
 * include/uapi/linux/capability.h up to CAP_CHECKPOINT_RESTORE (5.9); a
 * name outside it is a typo, and saying so at validate time beats a
 * Docker error at deploy time.
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/secure.h"

#include <jansson.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>

static const char *const caps[] = {
	"CHOWN",	   "DAC_OVERRIDE",	 "DAC_READ_SEARCH",
	"FOWNER",	   "FSETID",		 "KILL",
	"SETGID",	   "SETUID",		 "SETPCAP",
	"LINUX_IMMUTABLE", "NET_BIND_SERVICE",	 "NET_BROADCAST",
	"NET_ADMIN",	   "NET_RAW",		 "IPC_LOCK",
	"IPC_OWNER",	   "SYS_MODULE",	 "SYS_RAWIO",
	"SYS_CHROOT",	   "SYS_PTRACE",	 "SYS_PACCT",
	"SYS_ADMIN",	   "SYS_BOOT",		 "SYS_NICE",
	"SYS_RESOURCE",	   "SYS_TIME",		 "SYS_TTY_CONFIG",
	"MKNOD",	   "LEASE",		 "AUDIT_WRITE",
	"AUDIT_CONTROL",   "SETFCAP",		 "MAC_OVERRIDE",
	"MAC_ADMIN",	   "SYSLOG",		 "WAKE_ALARM",
	"BLOCK_SUSPEND",   "AUDIT_READ",	 "PERFMON",
	"BPF",		   "CHECKPOINT_RESTORE",
};

bool ml_cap_valid(const char *s)
{
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(caps); i++)
		if (!strcmp(s, caps[i]))
			return true;
	return false;
}

static void wiping_free(void *p)
{
	if (p) {
		explicit_bzero(p, malloc_usable_size(p));
		free(p);
	}
}

void ml_secure_process(void)
{
	struct rlimit rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) < 0)
		ml_warn("cannot disable core dumps: %s", strerror(errno));
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		ml_warn("cannot mark the process not dumpable: %s",
			strerror(errno));
	json_set_alloc_funcs(malloc, wiping_free);
}
