#ifndef ML_CLOCK_H
#define ML_CLOCK_H

#include <stdint.h>

/*
 * Milliseconds on the monotonic clock: for deadlines, timeouts and
 * durations, never for dates (it does not jump with the wall clock, and
 * its zero is arbitrary). Thread-safe, no failure.
 */
int64_t ml_mono_ms(void);

#endif
