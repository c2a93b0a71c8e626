/*
 * Human formatting of durations, times and sizes (see fmt.h). All output
 * fits ML_FMT_MAX bytes for any int64_t input.
 */
#include "common/ml.h"
#include "common/fmt.h"

#include <time.h>

const char *ml_fmt_duration(char buf[ML_FMT_MAX], int64_t ms)
{
	int64_t h = ms / 3600000, m = ms / 60000 % 60, sec = ms / 1000 % 60;
	int64_t r = ms % 1000;
	size_t o = 0;

	buf[0] = '\0';
	if (ms <= 0) {
		snprintf(buf, ML_FMT_MAX, "0s");
		return buf;
	}
#define PART(v, u)                                                             \
	do {                                                                   \
		if ((v) && o < ML_FMT_MAX)                                     \
			o += (size_t)snprintf(buf + o, ML_FMT_MAX - o,         \
					      "%" PRId64 u, (v));              \
	} while (0)
	PART(h, "h");
	PART(m, "m");
	PART(sec, "s");
	PART(r, "ms");
#undef PART
	return buf;
}

const char *ml_fmt_age(char buf[ML_FMT_MAX], int64_t s)
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, ML_FMT_MAX, "%" PRId64 "s", s);
	else if (s < 2 * 3600)
		snprintf(buf, ML_FMT_MAX, "%" PRId64 "m", s / 60);
	else if (s < 2 * 86400)
		snprintf(buf, ML_FMT_MAX, "%" PRId64 "h", s / 3600);
	else
		snprintf(buf, ML_FMT_MAX, "%" PRId64 "d", s / 86400);
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
