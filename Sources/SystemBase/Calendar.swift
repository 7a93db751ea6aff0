// Calendar arithmetic for the dates HTTP services write (SigV4 timestamps, HTTP dates, S3's and
// Buildkite's ISO 8601 times), without Foundation.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
public func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
  let y = month <= 2 ? year - 1 : year
  let era = (y >= 0 ? y : y - 399) / 400
  let yearOfEra = y - era * 400
  let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
  let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
  return era * 146_097 + dayOfEra - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
public func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
  let z = days + 719_468
  let era = (z >= 0 ? z : z - 146_096) / 146_097
  let dayOfEra = z - era * 146_097
  let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
  let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
  let mp = (5 * dayOfYear + 2) / 153
  let day = dayOfYear - (153 * mp + 2) / 5 + 1
  let month = mp < 10 ? mp + 3 : mp - 9
  return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
}

/// Whether `day` exists in that month of that year (February 29 only in leap years).
public func isValidDate(year: Int64, month: Int64, day: Int64) -> Bool {
  let daysInMonth: [Int64] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
  guard (1...12).contains(month), day >= 1, day <= daysInMonth[Int(month - 1)] else { return false }
  return month != 2 || day != 29 || (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))
}

/// Which spellings of an ISO 8601 time `parseISO8601` takes.
public enum ISO8601Syntax: Sendable {
  /// RFC 3339's, as S3 writes it: `T` (or `t`) between date and time, a `.` before a fraction, and
  /// `Z` or an offset with its colon (`+02:00`).
  case rfc3339
  /// RFC 3339's and the variants Buildkite's API and people write: a space for the `T`, a `,`
  /// before a fraction, an offset without its colon (`-0130`).
  case lenient
}

/// Seconds and nanoseconds since the epoch of an ISO 8601 time with a zone, such as
/// `2023-10-12T17:50:30.000Z` or `2024-05-16T10:55:26+10:00`; nil when malformed, without a zone,
/// or not a date of the calendar (`2023-02-29`). A fraction finer than nanoseconds is cut; a leap
/// second (`:60`) is folded into the second before it.
public func parseISO8601(
  _ text: some StringProtocol, syntax: ISO8601Syntax = .rfc3339
) -> (seconds: Int64, nanoseconds: Int32)? {
  let lenient = syntax == .lenient
  let bytes = Array(text.utf8)
  var index = 0
  func number(_ digits: Int) -> Int64? {
    guard index + digits <= bytes.count else { return nil }
    var value: Int64 = 0
    for byte in bytes[index..<index + digits] {
      guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
      value = value * 10 + Int64(byte - UInt8(ascii: "0"))
    }
    index += digits
    return value
  }
  func expect(_ characters: String) -> Bool {
    guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
    index += 1
    return true
  }
  guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
    expect(lenient ? "Tt " : "Tt"), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
    let second = number(2)
  else { return nil }
  guard isValidDate(year: year, month: month, day: day), hour < 24, minute < 60, second <= 60 else { return nil }
  var nanoseconds: Int64 = 0
  if expect(lenient ? ".," : ".") {
    var digits = 0
    while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
      if digits < 9 { nanoseconds = nanoseconds * 10 + Int64(bytes[index] - UInt8(ascii: "0")) }
      digits += 1
      index += 1
    }
    guard digits > 0 else { return nil }
    for _ in digits..<max(digits, 9) { nanoseconds *= 10 }
  }
  var offset: Int64 = 0
  if expect("Zz") {
    // UTC
  } else if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
    let sign: Int64 = bytes[index] == UInt8(ascii: "-") ? -1 : 1
    index += 1
    guard let hours = number(2), expect(":") || lenient, let minutes = number(2), hours < 24, minutes < 60 else {
      return nil
    }
    offset = sign * (hours * 3600 + minutes * 60)
  } else {
    return nil
  }
  guard index == bytes.count else { return nil }
  let days = daysFromCivil(year: year, month: month, day: day)
  let seconds = days * 86_400 + hour * 3600 + minute * 60 + min(second, 59) - offset
  return (seconds, Int32(nanoseconds))
}

/// `seconds` since the epoch as RFC 3339 in UTC, such as `2026-12-05T06:20:45Z`, with the fraction
/// (to nanoseconds, trailing zeros cut) when `nanoseconds` is not 0.
public func formatRFC3339(seconds: Int64, nanoseconds: Int32 = 0) -> String {
  let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
  let inDay = seconds - days * 86_400
  let (year, month, day) = civilFromDays(days)
  func padded(_ value: Int64, _ width: Int) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, width - text.count)) + text
  }
  var text =
    "\(padded(year, 4))-\(padded(month, 2))-\(padded(day, 2))T"
    + "\(padded(inDay / 3600, 2)):\(padded(inDay / 60 % 60, 2)):\(padded(inDay % 60, 2))"
  if nanoseconds > 0 {
    var fraction = padded(Int64(nanoseconds), 9)
    while fraction.hasSuffix("0") { fraction.removeLast() }
    text += "." + fraction
  }
  return text + "Z"
}
