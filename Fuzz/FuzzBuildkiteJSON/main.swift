import FuzzDriver
import SystemBase

// Fuzzes what the Buildkite API sends back: builds (one, or a listing), jobs, the jobs endpoint's
// page, organizations, pipelines and error bodies, then the headers read from its answers (`Link`,
// `Content-Range`, the rate-limit headers) and its times. Any input gives a value or an
// `.invalidResponse` error; a listed build decodes again, alone, from the bytes it keeps.
@testable import BuildkiteAPI

runFuzzer { input in
  let bytes = Array(input)

  if let ranges = jsonArrayElements(bytes) {
    var previousEnd = 0
    for range in ranges {
      require(range.lowerBound >= previousEnd && range.upperBound <= bytes.count, "element range \(range)")
      previousEnd = range.upperBound
    }
  }
  do throws(BuildkiteError) {
    let builds = try Build.list(json: bytes)
    for build in builds {
      require(build.raw.first == UInt8(ascii: "{"), "a listed build whose bytes are not an object")
      require((try? Build(json: build.raw)) == build, "build \(build.number) does not decode from its own bytes")
    }
  } catch {
    requireInvalidResponse(error)
  }
  do throws(BuildkiteError) {
    let build = try Build(json: bytes)
    require(build.raw == trimmedJSON(bytes[...]), "a build's bytes are not the answer's")
  } catch {
    requireInvalidResponse(error)
  }
  expectValueOrInvalidResponse { () throws(BuildkiteError) in _ = try Job(json: bytes) }
  expectValueOrInvalidResponse { () throws(BuildkiteError) in _ = try decodeJSON(JobsPage.self, bytes, what: "jobs") }
  expectValueOrInvalidResponse { () throws(BuildkiteError) in
    _ = try decodeJSON([Organization].self, bytes, what: "organizations")
  }
  expectValueOrInvalidResponse { () throws(BuildkiteError) in
    _ = try decodeJSON([Pipeline].self, bytes, what: "pipelines")
  }
  expectValueOrInvalidResponse { () throws(BuildkiteError) in _ = try decodeJSON(ErrorBody.self, bytes, what: "error") }

  // The same bytes as a header value.
  let text = String(decoding: bytes, as: UTF8.self)
  for link in parseLinkHeader(text) {
    require(link.relations.allSatisfy { $0 == $0.lowercased() && !$0.isEmpty }, "relations \(link.relations)")
    _ = queryParameter(link.target, "page")
  }
  if let range = parseContentRange(text) {
    require(range.first <= range.last, "Content-Range \(text) parsed as \(range)")
  }
  for count in [0, 1, 4096, Int.max] {
    if let total = suffixRangeTotal(contentRange: text, byteCount: count) {
      require(total >= Int64(count), "a \(count)-byte suffix of a \(total)-byte log")
    }
  }
  let names = [
    "ratelimit-remaining", "ratelimit-limit", "ratelimit-reset", "retry-after", "ratelimit-user-remaining",
    "ratelimit-user-limit", "ratelimit-user-reset",
  ]
  let limits = RateLimitHeaders(headers: Dictionary(uniqueKeysWithValues: names.map { ($0, text) }))
  require(limits.remaining.map { $0 >= 0 } ?? true, "remaining \(String(describing: limits.remaining))")
  require(limits.reset.map { $0.isFinite && $0 >= 0 } ?? true, "reset \(String(describing: limits.reset))")
  if let time = parseBuildkiteTime(text) { require(time.isFinite, "time \(time)") }
  if let time = parseISO8601(text) { require((0..<1_000_000_000).contains(time.nanoseconds), "time \(time)") }
}

func requireInvalidResponse(_ error: BuildkiteError) {
  require(error.kind == .invalidResponse, "a malformed answer gave \(error.kind), not .invalidResponse")
  require(!error.message.isEmpty, "an error without a message")
}

func expectValueOrInvalidResponse(_ body: () throws(BuildkiteError) -> Void) {
  do throws(BuildkiteError) { try body() } catch { requireInvalidResponse(error) }
}
