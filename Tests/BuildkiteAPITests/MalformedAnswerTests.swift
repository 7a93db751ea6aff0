import Foundation
import HTTPTransport
import Synchronization
import TestSupport
import Testing

@testable import BuildkiteAPI

/// What the Buildkite API might send that is not what it documents: each is an `.invalidResponse`
/// error in plain words, in bounded memory and stack; never a crash (doc/SEMANTICS.md, "Malformed
/// responses").
@Suite struct MalformedAnswerTests {
  /// Every decoder of API answers over `bytes`: the message of each `.invalidResponse` error.
  func errors(_ bytes: [UInt8]) -> [String] {
    var messages: [String] = []
    func run(_ body: () throws(BuildkiteError) -> Void) {
      do throws(BuildkiteError) { try body() } catch {
        #expect(error.kind == .invalidResponse, "\(error.kind): \(error.message)")
        #expect(!error.message.isEmpty)
        messages.append(error.message)
      }
    }
    run { () throws(BuildkiteError) in _ = try Build.list(json: bytes) }
    run { () throws(BuildkiteError) in _ = try Build(json: bytes) }
    run { () throws(BuildkiteError) in _ = try Job(json: bytes) }
    run { () throws(BuildkiteError) in _ = try decodeJSON(JobsPage.self, bytes, what: "jobs") }
    run { () throws(BuildkiteError) in _ = try decodeJSON([Organization].self, bytes, what: "organizations") }
    run { () throws(BuildkiteError) in _ = try decodeJSON([Pipeline].self, bytes, what: "pipelines") }
    return messages
  }

  @Test func everyKeptFuzzInputIsAValueOrAClearError() throws {
    let inputs = try FuzzCorpus.inputs("FuzzBuildkiteJSON")
    #expect(inputs.count >= 10)
    for (_, bytes) in inputs { _ = errors(bytes) }
    let build = try #require(inputs.first { $0.name == "seed-build.json" })
    #expect(try Build(json: build.bytes).jobs.count == 3)
    let list = try #require(inputs.first { $0.name == "seed-builds-list.json" })
    #expect(try Build.list(json: list.bytes).map(\.number) == [8812, 8811])
  }

  @Test func everySeedAnswerCutAtEveryByteIsRefused() throws {
    // Each seed with the decoder of its endpoint.
    let decoders: [String: ([UInt8]) throws(BuildkiteError) -> Void] = [
      "seed-build.json": { bytes throws(BuildkiteError) in _ = try Build(json: bytes) },
      "seed-builds-list.json": { bytes throws(BuildkiteError) in _ = try Build.list(json: bytes) },
      "seed-job-odd-types.json": { bytes throws(BuildkiteError) in _ = try Job(json: bytes) },
      "seed-jobs-page.json": { bytes throws(BuildkiteError) in _ = try decodeJSON(JobsPage.self, bytes, what: "jobs") },
      "seed-organizations.json": { bytes throws(BuildkiteError) in
        _ = try decodeJSON([Organization].self, bytes, what: "organizations")
      },
      "seed-pipelines.json": { bytes throws(BuildkiteError) in
        _ = try decodeJSON([Pipeline].self, bytes, what: "pipelines")
      },
    ]
    let seeds = try FuzzCorpus.inputs("FuzzBuildkiteJSON").filter { decoders[$0.name] != nil }
    #expect(seeds.count == decoders.count)
    for (name, whole) in seeds {
      let decode = decoders[name]!
      #expect(throws: Never.self, "\(name) whole") { try decode(whole) }
      let end = whole.lastIndex { $0 == UInt8(ascii: "]") || $0 == UInt8(ascii: "}") }!
      for length in 0...end {
        do throws(BuildkiteError) {
          try decode(Array(whole[..<length]))
          Issue.record("\(name) cut to \(length) bytes was accepted")
        } catch {
          #expect(error.kind == .invalidResponse && !error.message.isEmpty)
        }
      }
    }
  }

  @Test func nestingOf100000LevelsIsRefusedWithoutRecursion() throws {
    let depth = 100_000
    let deepArray = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
    let deepObject = String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)
    for document in [
      deepArray, String(repeating: "[", count: depth), deepObject,
      "[{\"id\":\"b\",\"number\":1,\"jobs\":[],\"meta_data\":\(deepArray)}]",
    ] {
      let messages = errors(Array(document.utf8))
      #expect(messages.count == 6)
      #expect(messages.allSatisfy { $0.contains("nests deeper than 512 levels") }, "\(messages)")
    }
    // 512 levels are read (they are valid, if not a build); 513 are not.
    let deepest =
      "[{\"id\":\"b\",\"number\":1,\"x\":" + String(repeating: "[", count: 510)
      + String(repeating: "]", count: 510) + "}]"
    #expect(try Build.list(json: Array(deepest.utf8)).count == 1)
    let tooDeep =
      "[{\"id\":\"b\",\"number\":1,\"x\":" + String(repeating: "[", count: 511)
      + String(repeating: "]", count: 511) + "}]"
    #expect(throws: BuildkiteError.self) { try Build.list(json: Array(tooDeep.utf8)) }
  }

  @Test func answersWithTooManyValuesAreRefusedBeforeDecoding() {
    // 8,000,001 tiny values in 16 MB: denser than any real answer.
    let dense = Array(("[" + String(repeating: "0,", count: maximumJSONValues) + "0]").utf8)
    // The same check guards every decoder: one listing and one plain decode show it.
    #expect {
      try Build.list(json: dense)
    } throws: { error in
      (error as? BuildkiteError)?.message.contains("more than 8000000 values") == true
    }
    #expect {
      try decodeJSON([Organization].self, dense, what: "organizations")
    } throws: { error in
      (error as? BuildkiteError)?.message.contains("more than 8000000 values") == true
    }
  }

  @Test func answersWithTooManyObjectsAreRefusedBeforeDecoding() {
    // A page of 9-byte jobs: each would become a Job of a few hundred bytes. With the page's own
    // object, 1,000,000 objects pass the bounds; 1,000,001 are refused.
    func page(jobs: Int) -> [UInt8] {
      Array(("{\"items\":[" + String(repeating: "{\"id\":\"\"},", count: jobs - 1) + "{\"id\":\"\"}]}").utf8)
    }
    #expect(jsonBoundsProblem(page(jobs: maximumJSONObjects - 1)[...]) == nil)
    #expect {
      try decodeJSON(JobsPage.self, page(jobs: maximumJSONObjects), what: "jobs")
    } throws: { error in
      (error as? BuildkiteError)?.message.contains("more than 1000000 objects") == true
    }
  }

  @Test func invalidUTF8NeverTrapsAndIsReadAsReplacementCharacters() throws {
    for bad: [UInt8] in [[0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE2, 0x9C]] {
      let body = Array("[{\"id\":\"".utf8) + bad + Array("\",\"number\":1,\"slug\":\"s\"}]".utf8)
      // The three decoders of arrays read it (doc/NAMES.md, "Hostile names"); the others refuse an array.
      #expect(errors(body).count == 3, "\(bad)")
      #expect(try Build.list(json: body).first?.id.contains("\u{FFFD}") == true, "\(bad)")
    }
  }

  @Test func hostileHeadersNeverTrap() {
    // Counts past Int.max were a crash (Int(Double) traps); they are capped.
    let huge = RateLimitHeaders(headers: [
      "ratelimit-remaining": "1e30", "ratelimit-limit": "9223372036854775808", "ratelimit-reset": "1e308",
      "ratelimit-user-remaining": "1e300",
    ])
    #expect(huge.remaining == RateLimitHeaders.maximumCount)
    #expect(huge.limit == RateLimitHeaders.maximumCount)
    #expect(huge.reset == 1e308)
    // What FuzzBuildkiteJSON found first (Fuzz/Corpus/FuzzBuildkiteJSON/crash-ratelimit-count-past-int-max.txt).
    let found = RateLimitHeaders(headers: ["ratelimit-remaining": "333333333333333333333333333,     "])
    #expect(found.remaining == RateLimitHeaders.maximumCount)
    var state = RateLimitState()
    _ = state.admit(now: 0)
    state.complete(huge, now: 0)
    state.cancel()
    // A Content-Range whose numbers overflow was a crash too: it is no suffix of any log.
    for range in [
      "bytes 0-9223372036854775807/9223372036854775807", "bytes 0-9223372036854775806/9223372036854775807",
      "bytes 9223372036854775807-9223372036854775807/-9223372036854775808", "bytes */5", "bytes 5-4/9",
      "bytes 0-0/0",
    ] {
      #expect(suffixRangeTotal(contentRange: range, byteCount: 4096) == nil, "\(range)")
    }
    #expect(
      suffixRangeTotal(
        contentRange: "bytes 9223372036854771711-9223372036854775806/9223372036854775807", byteCount: 4096) == Int64.max
    )
    #expect(suffixRangeTotal(contentRange: "bytes 6-9/10", byteCount: 4) == 10)
    #expect(suffixRangeTotal(contentRange: "bytes 5-9/10", byteCount: 4) == nil)
  }

  /// A client of `HostileServer` answering as `mode` says, with two quick attempts.
  func hostileClient(_ server: ChildServer, _ mode: String) throws -> BuildkiteClient {
    try BuildkiteClient(
      configuration: BuildkiteConfiguration(
        baseURL: "\(server.endpoint)/\(mode)", token: "bkua_hostile",
        timeouts: HTTPTimeouts(connect: 2, stall: 5, total: 20), maxAttempts: 2, retryBaseDelay: 0.01,
        retryMaxDelay: 0.02))
  }

  /// Through the client: an answer past 64 MiB is refused while it streams, with or without a
  /// `Content-Length`; one nested 100,000 deep is refused; each a clear `.invalidResponse`, within seconds.
  @Test func theClientRefusesHugeAndDeepAnswersFromTheServer() throws {
    let server = try HostileServer.start()
    defer { server.stop() }
    for (mode, expected) in [
      ("huge-json", "larger than 64 MiB"), ("endless", "larger than 64 MiB"), ("deep-json", "nests deeper than 512"),
    ] {
      let client = try hostileClient(server, mode)
      let started = Date()
      #expect {
        _ = try client.organizations()
      } throws: { error in
        guard let error = error as? BuildkiteError else { return false }
        return error.kind == .invalidResponse && error.message.contains(expected)
      }
      #expect(Date().timeIntervalSince(started) < 15, "\(mode)")
    }
  }

  /// A 500 with an endless body is a 500: its first 64 KiB are read, then the transfer stops, and it
  /// is retried like any server error (before, the body was read to its end or the total timeout).
  @Test func aServerErrorWithAnEndlessBodyIsRetriedAsOne() throws {
    let server = try HostileServer.start()
    defer { server.stop() }
    let client = try hostileClient(server, "huge-error")
    let started = Date()
    let error = #expect(throws: BuildkiteError.self) { _ = try client.organizations() }
    #expect(error?.kind == .server, "\(String(describing: error))")
    #expect(error?.message.contains("HTTP 500") == true, "\(String(describing: error))")
    #expect(error?.message.contains("after 2 attempts") == true, "\(String(describing: error))")
    #expect(client.counters.bytesFetched.load(ordering: .relaxed) == 0)
    #expect(Date().timeIntervalSince(started) < 15)
  }
}
