#ifndef ML_FMT_H
#define ML_FMT_H

/*
 * Formatting of durations, times and sizes for people. Results are written
 * into caller buffers of at least ML_FMT_MAX bytes and returned.
 */

#define ML_FMT_MAX 48

/* 1500 -> "1s500ms", 120000 -> "2m", 5400000 -> "1h30m", 250 -> "250ms",
 * 0 or less -> "0s". The output parses back with ml_parse_duration. */
const char *ml_fmt_duration(char buf[ML_FMT_MAX], int64_t ms);

/* An age in seconds, in one unit as people read it in a table: "45s"
 * (under 2 minutes), "3m" (under 2 hours), "5h" (under 2 days), "12d". */
const char *ml_fmt_age(char buf[ML_FMT_MAX], int64_t seconds);

/* Unix seconds -> "2026-11-26 06:03:51Z" (UTC). */
const char *ml_fmt_time(char buf[ML_FMT_MAX], int64_t unix_s);

/* 1536 -> "1.5KiB", 3 -> "3B". */
const char *ml_fmt_bytes(char buf[ML_FMT_MAX], int64_t bytes);

#endif
