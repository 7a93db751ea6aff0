// The SigV4 timestamp, without Foundation.

import SystemBase

private func padded(_ value: Int64, _ width: Int) -> String {
  let digits = String(value)
  return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

/// "20150830T123600Z" from seconds since the epoch (UTC), as SigV4's `x-amz-date` wants it.
public func amzDate(epochSeconds: Int64) -> String {
  let days = epochSeconds >= 0 ? epochSeconds / 86_400 : (epochSeconds - 86_399) / 86_400
  let secondOfDay = epochSeconds - days * 86_400
  let (year, month, day) = civilFromDays(days)
  return padded(year, 4) + padded(month, 2) + padded(day, 2) + "T" + padded(secondOfDay / 3600, 2)
    + padded(secondOfDay / 60 % 60, 2) + padded(secondOfDay % 60, 2) + "Z"
}
