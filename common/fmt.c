/*
 * Human formatting of durations, times and sizes (see fmt.h). All output
 * fits ML_FMT_MAX bytes for any int64_t input.
 */
#include "common/ml.h"
#include "common/fmt.h"

#include <time.h>

const char *ml_fmt_duration(char buf[ML_FMT_MAX], int64_t ms)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} units[] = {
		{ 3600000, "h" },
		{ 60000, "m" },
		{ 1000, "s" },
	};
	size_t off = 0, i;
	uint64_t left;

	if (ms < 0) {
		snprintf(buf, ML_FMT_MAX, "-");
		return buf;
	}
	if (ms == 0) {
		snprintf(buf, ML_FMT_MAX, "0s");
		return buf;
	}
	left = (uint64_t)ms;
	buf[0] = '\0';
	if (left < 1000 || (left < 10000 && left % 1000)) {
		if (left < 1000)
			snprintf(buf, ML_FMT_MAX, "%" PRIu64 "ms", left);
		else if (left % 100 == 0)
			snprintf(buf, ML_FMT_MAX, "%" PRIu64 ".%" PRIu64 "s",
				 left / 1000, (left % 1000) / 100);
		else
			snprintf(buf, ML_FMT_MAX, "%" PRIu64 "ms", left);
		return buf;
	}
	for (i = 0; i < ML_ARRAY_SIZE(units) && left; i++) {
		uint64_t n = left / (uint64_t)units[i].ms;

		if (!n)
			continue;
		off += (size_t)snprintf(buf + off, ML_FMT_MAX - off,
					"%" PRIu64 "%s", n, units[i].unit);
		left %= (uint64_t)units[i].ms;
	}
	if (left)
		snprintf(buf + off, ML_FMT_MAX - off, "%" PRIu64 "ms", left);
	return buf;
}

const char *ml_fmt_time(char buf[ML_FMT_MAX], int64_t unix_s)
{
	struct tm tm;
	time_t t = (time_t)unix_s;

	if (unix_s <= 0 || !gmtime_r(&t, &tm)) {
		snprintf(buf, ML_FMT_MAX, "-");
		return buf;
	}
	strftime(buf, ML_FMT_MAX, "%Y-%m-%d %H:%M:%SZ", &tm);
	return buf;
}

const char *ml_fmt_bytes(char buf[ML_FMT_MAX], int64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
					     "PiB" };
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, ML_FMT_MAX, "%" PRId64 "B", bytes);
		return buf;
	}
	while (v >= 1024 && u + 1 < ML_ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, ML_FMT_MAX, v < 10 ? "%.1f%s" : "%.0f%s", v, units[u]);
	return buf;
}
