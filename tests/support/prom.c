/*
 * A real Prometheus for the end-to-end suites (see prom.h).
 */
#include "common/ml.h"
#include "tests/support/prom.h"
#include "tests/support/proc.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROMETHEUS "/usr/bin/prometheus"

int ml_test_prom_start(struct ml_test_prom *p, int port,
		       const char *targets_file, int interval_s)
{
	char *cfg, *cfgpath, *data, *listen, *logp;

	memset(p, 0, sizeof(*p));
	p->pid = -1;
	if (access(PROMETHEUS, X_OK) < 0) {
		fprintf(stderr, "prometheus is not installed "
				"(scripts/setup.sh)\n");
		return -1;
	}
	p->port = port;
	p->dir = ml_test_tmpdir("prom");
	cfg = ml_xasprintf("global:\n"
			   "  scrape_interval: %ds\n"
			   "  scrape_timeout: %ds\n"
			   "  evaluation_interval: %ds\n"
			   "scrape_configs:\n"
			   "  - job_name: mlctl\n"
			   "    file_sd_configs:\n"
			   "      - files: ['%s']\n"
			   "        refresh_interval: 1s\n",
			   interval_s, interval_s, interval_s, targets_file);
	ml_test_write(p->dir, "prometheus.yml", cfg);
	cfgpath = ml_xasprintf("--config.file=%s/prometheus.yml", p->dir);
	data = ml_xasprintf("--storage.tsdb.path=%s/data", p->dir);
	listen = ml_xasprintf("--web.listen-address=127.0.0.1:%d", port);
	logp = ml_xasprintf("%s/prometheus.log", p->dir);
	p->pid = fork();
	if (p->pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(PROMETHEUS, "prometheus", cfgpath, data, listen,
		      "--storage.tsdb.retention.time=1h", (char *)NULL);
		_exit(127);
	}
	free(cfg);
	free(cfgpath);
	free(data);
	free(listen);
	free(logp);
	if (p->pid < 0) {
		fprintf(stderr, "cannot fork for prometheus\n");
		return -1;
	}
	return 0;
}

json_t *ml_test_prom_query(const struct ml_test_prom *p, const char *expr,
			   double at)
{
	struct ml_test_out o;
	char *url = ml_xasprintf("http://127.0.0.1:%d/api/v1/query", p->port);
	char *q = ml_xasprintf("query=%s", expr);
	char *t = at > 0 ? ml_xasprintf("time=%.3f", at) : ml_xstrdup("x=");
	json_t *d;

	ml_test_run(&o, NULL, NULL, NULL, 20,
		    (const char *const[]){ "curl", "-sf", "--max-time", "10",
					   "--data-urlencode", q,
					   "--data-urlencode", t, url, NULL });
	d = o.status == 0 ? json_loads(o.out, 0, NULL) : NULL;
	ml_test_out_release(&o);
	free(t);
	free(url);
	free(q);
	return d;
}

double ml_test_prom_value(json_t *d)
{
	json_t *v = json_object_get(
		json_array_get(json_object_get(json_object_get(d, "data"),
					       "result"),
			       0),
		"value");

	return v ? strtod(json_string_value(json_array_get(v, 1)) ?: "nan",
			  NULL)
		 : NAN;
}

char *ml_test_prom_log(const struct ml_test_prom *p)
{
	char *path = ml_xasprintf("%s/prometheus.log", p->dir);
	char *text = ml_test_slurp(path);

	free(path);
	return text ? text : ml_xstrdup("(no log)");
}

void ml_test_prom_stop(struct ml_test_prom *p)
{
	int status;

	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		waitpid(p->pid, &status, 0);
	}
	if (p->dir)
		ml_test_rmtree(p->dir);
	free(p->dir);
	memset(p, 0, sizeof(*p));
}
