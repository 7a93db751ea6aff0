import Foundation
import HTTPTransport
import ObjectStore
import S3Client
import TestSupport
import Testing

/// What S3 might send that is not a listing: each is an `.invalidResponse` error in plain words, in
/// bounded memory and stack; never a crash (doc/SEMANTICS.md, "Malformed responses").
@Suite struct MalformedResponseTests {
  /// The message of the `.invalidResponse` error `body` gives as a listing; nil when it parses.
  func listingError(_ body: [UInt8]) -> String? {
    do {
      _ = try parseListObjectsV2(body, urlEncoded: true)
      return nil
    } catch {
      #expect(error.kind == .invalidResponse, "\(error.kind): \(error.message)")
      #expect(error.message.hasPrefix("S3 sent "), "\(error.message)")
      return error.message
    }
  }

  @Test func everyKeptFuzzInputIsAPageOrAClearError() throws {
    let inputs = try FuzzCorpus.inputs("FuzzS3XML")
    #expect(inputs.count >= 10)
    var pages = 0
    for (name, bytes) in inputs {
      if let body = parseS3Error(bytes) {
        #expect(!body.objectStoreError.message.isEmpty, "\(name)")
        continue
      }
      if listingError(bytes) == nil { pages += 1 }
    }
    #expect(pages >= 6, "the seed listings parse")
  }

  @Test func everySeedListingCutAtEveryByteIsRefused() throws {
    let seeds = try FuzzCorpus.inputs("FuzzS3XML").filter { $0.name.hasPrefix("seed-list-") }
    #expect(seeds.count >= 6)
    for (name, whole) in seeds {
      #expect(listingError(whole) == nil, "\(name) parses whole")
      // Everything before the root's closing '>' is incomplete.
      let end = whole.lastIndex(of: UInt8(ascii: ">"))!
      for length in 0...end {
        #expect(listingError(Array(whole[..<length])) != nil, "\(name) cut to \(length) bytes was accepted")
      }
    }
  }

  /// A name whose prefix or local part is empty leaves no element name: refused (the fuzzer's
  /// `crash-empty-local-name.xml`, kept in the corpus, is one).
  @Test func aPrefixedNameWithAnEmptyPartIsRefused() {
    for name in ["::", ":a", "a:", "a:b:c"] {
      let message = listingError(Array("<ListBucketResult><\(name)/></ListBucketResult>".utf8))
      #expect(message?.contains("a malformed prefixed name") == true, "\(name): \(message ?? "accepted")")
    }
    #expect(listingError(Array(#"<s3:ListBucketResult xmlns:s3="x"></s3:ListBucketResult>"#.utf8)) == nil)
  }

  @Test func nestingOf100000LevelsIsRefusedWithoutRecursion() {
    let depth = 100_000
    let open = String(repeating: "<a>", count: depth)
    let close = String(repeating: "</a>", count: depth)
    for document in ["<ListBucketResult>" + open, "<ListBucketResult>" + open + close + "</ListBucketResult>", open] {
      let message = listingError(Array(document.utf8))
      #expect(message?.contains("nested deeper than 32") == true, "\(message ?? "accepted")")
      #expect(parseS3Error(Array(document.utf8)) == nil)
    }
    #expect(parseS3Error(Array(("<Error>" + open).utf8)) == nil)
  }

  @Test func hugeDocumentsAreRefusedBeforeParsing() {
    let huge = [UInt8](repeating: 0x20, count: 100_000_000)
    #expect(listingError(huge)?.contains("larger than 67108864 bytes") == true)
    // A million elements are read; one more is refused.
    let many = "<ListBucketResult>" + String(repeating: "<a/>", count: 1_000_000) + "</ListBucketResult>"
    #expect(listingError(Array(many.utf8))?.contains("more than 1000000 elements") == true)
  }

  @Test func invalidUTF8AndForbiddenCharactersAreRefused() {
    func page(_ key: [UInt8]) -> [UInt8] {
      Array("<ListBucketResult><Contents><Key>".utf8) + key
        + Array(
          "</Key><Size>1</Size><LastModified>2023-10-12T17:50:30Z</LastModified></Contents></ListBucketResult>".utf8)
    }
    #expect(listingError(page(Array("fine".utf8))) == nil)
    let bad: [(String, [UInt8])] = [
      ("a stray continuation byte", [0x80]), ("0xFF", [0x61, 0xFF]), ("an overlong '/'", [0xC0, 0xAF]),
      ("a surrogate", [0xED, 0xA0, 0x80]), ("a character cut short", [0xE2, 0x9C]), ("NUL", [0x00]),
      ("a C0 control", [0x1B]), ("U+FFFE", [0xEF, 0xBF, 0xBE]),
    ]
    for (what, bytes) in bad {
      #expect(listingError(page(bytes)) != nil, "\(what) was accepted")
    }
  }

  /// Through the client: a body past the listing limit (16 MiB) is refused while it streams, and an
  /// endless or deep one likewise; each a clear `.invalidResponse`, within seconds.
  @Test func theClientRefusesHugeAndDeepBodiesFromTheServer() throws {
    let server = try HostileServer.start()
    defer { server.stop() }
    for (bucket, expected) in [
      ("huge-xml", "larger than 16777216 bytes"), ("deep-xml", "nested deeper than 32"),
    ] {
      let client = try S3ObjectClient(
        configuration: S3Configuration(
          bucket: bucket, endpoint: server.endpoint, timeouts: HTTPTimeouts(connect: 2, stall: 5, total: 20),
          maxAttempts: 2, retryBaseDelay: 0.01, retryMaxDelay: 0.02))
      let started = Date()
      #expect {
        _ = try client.listPage(ListRequest(prefix: "", delimiter: "/"))
      } throws: { error in
        guard let error = error as? ObjectStoreError else { return false }
        return (error.kind == .invalidResponse || error.kind == .serverError) && error.message.contains(expected)
      }
      #expect(Date().timeIntervalSince(started) < 15, "\(bucket)")
    }
  }

  /// A 500 with an endless body is a 500: its first 64 KiB are read, then the transfer stops, and
  /// it is retried like any server error; the error names the status, not the body's size.
  @Test func aServerErrorWithAnEndlessBodyIsRetriedAsOne() throws {
    let server = try HostileServer.start()
    defer { server.stop() }
    let client = try S3ObjectClient(
      configuration: S3Configuration(
        bucket: "huge-error", endpoint: server.endpoint, timeouts: HTTPTimeouts(connect: 2, stall: 5, total: 20),
        maxAttempts: 2, retryBaseDelay: 0.01, retryMaxDelay: 0.02))
    let started = Date()
    let error = #expect(throws: ObjectStoreError.self) {
      _ = try client.listPage(ListRequest(prefix: "", delimiter: "/"))
    }
    #expect(error?.kind == .serverError, "\(String(describing: error))")
    #expect(error?.message.contains("HTTP 500") == true, "\(String(describing: error))")
    #expect(error?.message.contains("after 2 attempts") == true, "\(String(describing: error))")
    #expect(Date().timeIntervalSince(started) < 15)
  }
}
