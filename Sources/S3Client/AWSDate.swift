// Dates without Foundation: the SigV4 timestamp and S3's ISO 8601 times.

import HTTPTransport

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

/// Seconds and nanoseconds since the epoch of an ISO 8601 UTC time as S3 writes it,
/// `2023-10-12T17:50:30.000Z`; a numeric offset (`+02:00`) is also accepted. Nil when malformed.
public func parseISO8601(_ text: some StringProtocol) -> (seconds: Int64, nanoseconds: Int32)? {
  let b = Array(text.utf8)
  var i = 0
  func number(_ count: Int) -> Int64? {
    guard i + count <= b.count else { return nil }
    var value: Int64 = 0
    for byte in b[i..<i + count] {
      guard byte >= 0x30, byte <= 0x39 else { return nil }
      value = value * 10 + Int64(byte - 0x30)
    }
    i += count
    return value
  }
  func expect(_ byte: UInt8) -> Bool {
    guard i < b.count, b[i] == byte else { return false }
    i += 1
    return true
  }
  guard let year = number(4), expect(0x2D), let month = number(2), expect(0x2D), let day = number(2),
    i < b.count, b[i] == 0x54 || b[i] == 0x74
  else { return nil }
  i += 1
  guard let hour = number(2), expect(0x3A), let minute = number(2), expect(0x3A), let second = number(2)
  else { return nil }
  let daysInMonth: [Int64] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
  guard (1...12).contains(month), day >= 1, day <= daysInMonth[Int(month - 1)], hour < 24, minute < 60,
    second <= 60
  else { return nil }
  if month == 2, day == 29, !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) { return nil }
  var nanoseconds: Int64 = 0
  if expect(0x2E) {
    var digits = 0
    while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
      if digits < 9 { nanoseconds = nanoseconds * 10 + Int64(b[i] - 0x30) }
      digits += 1
      i += 1
    }
    guard digits > 0 else { return nil }
    var scale = digits
    while scale < 9 {
      nanoseconds *= 10
      scale += 1
    }
  }
  var offset: Int64 = 0
  if expect(0x5A) || expect(0x7A) {
    // UTC
  } else if i < b.count, b[i] == 0x2B || b[i] == 0x2D {
    let sign: Int64 = b[i] == 0x2D ? -1 : 1
    i += 1
    guard let offsetHours = number(2), expect(0x3A), let offsetMinutes = number(2), offsetHours < 24,
      offsetMinutes < 60
    else { return nil }
    offset = sign * (offsetHours * 3600 + offsetMinutes * 60)
  } else {
    return nil
  }
  guard i == b.count else { return nil }
  let days = daysFromCivil(year: year, month: month, day: day)
  // A leap second (:60) is folded into the second before it.
  let seconds = days * 86_400 + hour * 3600 + minute * 60 + min(second, 59) - offset
  return (seconds, Int32(nanoseconds))
}
