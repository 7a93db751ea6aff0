import SystemBase

/// Seconds since the Unix epoch of an HTTP date (`Last-Modified`, `Retry-After`, `Date`): RFC 1123
/// (`Wed, 21 Oct 2015 07:28:00 GMT`); the obsolete RFC 850 (`Wednesday, 21-Oct-15 07:28:00 GMT`) and
/// asctime (`Wed Oct 21 07:28:00 2015`) forms are accepted too, as RFC 9110 asks of a recipient.
/// Nil when malformed.
public func parseHTTPDateSeconds(_ text: String) -> Int64? {
  let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
  let fields = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "-" }).map { $0.lowercased() }
  var day: Int64?
  var month: Int64?
  var year: Int64?
  var time: (Int64, Int64, Int64)?
  for field in fields {
    if field.contains(":") {
      let parts = field.split(separator: ":").map { Int64($0) }
      guard parts.count == 3, let hour = parts[0], let minute = parts[1], let second = parts[2],
        hour < 24, minute < 60, second < 61
      else { return nil }
      time = (hour, minute, second)
    } else if let index = months.firstIndex(of: String(field.prefix(3))), field.count == 3 {
      month = Int64(index + 1)
    } else if let number = Int64(field) {
      if field.count <= 2 && day == nil {
        day = number
      } else if field.count == 4 || (field.count == 2 && day != nil) {
        year = field.count == 2 ? (number < 70 ? 2000 + number : 1900 + number) : number
      } else {
        return nil
      }
    } else if field == "gmt" || field == "utc" || field == "z" {
      continue
    } else if field.count >= 3, ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].contains(String(field.prefix(3))) {
      continue
    } else {
      return nil
    }
  }
  guard let day, let month, let year, let time, (1...31).contains(day) else { return nil }
  return daysFromCivil(year: year, month: month, day: day) * 86_400 + time.0 * 3600 + time.1 * 60 + time.2
}
