import SystemBase

/// Seconds on the monotonic clock, for the retry loop's time budget until that loop takes an
/// injected `MonotonicClock` (issue 11, item 2).
func monotonicSeconds() -> Double { SystemClock().now() }
