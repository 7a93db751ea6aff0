import SystemBase
import Testing

@Suite struct CalendarTests {
  @Test func daysOfKnownDates() {
    #expect(daysFromCivil(year: 1970, month: 1, day: 1) == 0)
    #expect(daysFromCivil(year: 1969, month: 12, day: 31) == -1)
    #expect(daysFromCivil(year: 2000, month: 2, day: 29) == 11_016)
    #expect(daysFromCivil(year: 2000, month: 3, day: 1) == 11_017)
    #expect(daysFromCivil(year: 2100, month: 3, day: 1) - daysFromCivil(year: 2100, month: 2, day: 28) == 1)
    #expect(civilFromDays(0) == (1970, 1, 1))
    #expect(civilFromDays(-1) == (1969, 12, 31))
    #expect(civilFromDays(11_016) == (2000, 2, 29))
  }

  @Test func daysAndDatesRoundTrip() {
    for days in stride(from: Int64(-800_000), through: 800_000, by: 997) {
      let date = civilFromDays(days)
      #expect(isValidDate(year: date.year, month: date.month, day: date.day))
      #expect(daysFromCivil(year: date.year, month: date.month, day: date.day) == days)
    }
  }

  @Test func validDates() {
    #expect(isValidDate(year: 2024, month: 2, day: 29))
    #expect(isValidDate(year: 2000, month: 2, day: 29))
    #expect(!isValidDate(year: 2023, month: 2, day: 29))
    #expect(!isValidDate(year: 1900, month: 2, day: 29))
    #expect(!isValidDate(year: 2024, month: 4, day: 31))
    #expect(!isValidDate(year: 2024, month: 13, day: 1))
    #expect(!isValidDate(year: 2024, month: 0, day: 1))
    #expect(!isValidDate(year: 2024, month: 1, day: 0))
  }
}

@Suite struct ISO8601Tests {
  /// As S3 writes `LastModified` (moved from S3ClientTests).
  @Test func rfc3339() {
    #expect(parseISO8601("1970-01-01T00:00:00Z")! == (0, 0))
    #expect(parseISO8601("2023-10-12T17:50:30.5Z")! == (1_697_133_030, 500_000_000))
    #expect(parseISO8601("2023-10-12T19:50:30+02:00")! == (1_697_133_030, 0))
    #expect(parseISO8601("2024-02-29T00:00:00Z") != nil)
    for bad in [
      "2023-02-29T00:00:00Z", "2023-10-12 17:50:30Z", "2023-10-12T17:50:30", "2023-10-12T24:00:00Z",
      "2023-10-12T17:50:30.Z", "2023-10-12T17:50:30Zx",
    ] {
      #expect(parseISO8601(bad) == nil, "\(bad)")
    }
  }

  /// As Buildkite's API writes its times (moved from BuildkiteAPITests).
  @Test func lenient() {
    func seconds(_ text: String) -> Double? {
      parseISO8601(text, syntax: .lenient).map { Double($0.seconds) + Double($0.nanoseconds) / 1e9 }
    }
    #expect(seconds("1970-01-01T00:00:00Z") == 0)
    #expect(seconds("2024-05-16T00:55:26.401Z").map { ($0 * 1000).rounded() } == 1_715_820_926_401)
    #expect(seconds("2024-05-16T10:55:26+10:00") == 1_715_820_926)
    #expect(seconds("2024-02-29T23:59:59-0130") == 1_709_256_599)
    #expect(seconds("2024-05-16 00:55:26Z") == 1_715_820_926)
    for bad in ["", "2024-05-16", "2024-05-16T00:55:26", "2024-13-01T00:00:00Z", "2024-05-16T00:55:26.Z", "garbage"] {
      #expect(seconds(bad) == nil, "\(bad)")
    }
  }

  @Test func variantsOnlyTheLenientSyntaxTakes() {
    for text in ["2024-05-16 00:55:26Z", "2024-05-16T00:55:26,5Z", "2024-05-16T10:55:26+1000"] {
      #expect(parseISO8601(text) == nil, "\(text)")
      #expect(parseISO8601(text, syntax: .lenient) != nil, "\(text)")
    }
  }

  @Test func fractionsAndLeapSeconds() {
    #expect(parseISO8601("2023-10-12T17:50:30.123456789123Z")! == (1_697_133_030, 123_456_789))
    #expect(parseISO8601("2016-12-31T23:59:60Z")! == parseISO8601("2016-12-31T23:59:59Z")!)
    #expect(parseISO8601("2023-10-12t17:50:30z")! == (1_697_133_030, 0))
    #expect(parseISO8601("2023-10-12T17:50:30+24:00") == nil)
  }
}

@Suite struct RFC3339FormatTests {
  /// Round trips through `parseISO8601` across eras, and the fraction is cut of its trailing zeros.
  @Test func formatsUTC() {
    #expect(formatRFC3339(seconds: 0) == "1970-01-01T00:00:00Z")
    #expect(formatRFC3339(seconds: 1_356_048_000) == "2012-12-21T00:00:00Z")
    #expect(formatRFC3339(seconds: -1) == "1969-12-31T23:59:59Z")
    #expect(formatRFC3339(seconds: 951_782_400, nanoseconds: 120_000_000) == "2000-02-29T00:00:00.12Z")
    var generator = SystemRandomNumberGenerator()
    for _ in 0..<1000 {
      let seconds = Int64.random(in: -2_000_000_000...5_000_000_000, using: &generator)
      let nanoseconds = Int32.random(in: 0..<1_000_000_000, using: &generator)
      let parsed = parseISO8601(formatRFC3339(seconds: seconds, nanoseconds: nanoseconds))
      #expect(parsed?.seconds == seconds && parsed?.nanoseconds == nanoseconds)
    }
  }
}
