import Digests
import Foundation
import S3Client
import TestSupport
import Testing

/// The AWS SigV4 test suite (aws-c-auth's `aws-signing-test-suite/v4`), `header-*` files only
/// (presigned `query-*` URLs are not something this client makes).
///
/// Every case folder is run except the six whose `context.json` says `"normalize": true` AND whose
/// expected canonical path is the RFC 3986-normalized path (dot segments removed, `//` merged):
/// that is the rule of other services; S3 signs the path exactly as sent, and each of the six has
/// an `-unnormalized` twin (same request, `"normalize": false`) that is run. `get-space-normalized`,
/// whose normalization changes nothing, is run. POST cases are run too: those with `sign_body`
/// check the body hash and `x-amz-content-sha256` (`addContentSHA256: true`), and
/// `post-sts-header-after` (`omit_session_token`) checks a session token added after signing.
///
/// The suite's `request.txt` holds the request unencoded (a raw space, raw UTF-8); the test puts it
/// into its wire form first, as the S3 client does: the path through `awsURIEncode(_, encodeSlash:
/// false)`, the query with every byte other than unreserved, `%`, `=` and `&` percent-encoded.
enum SigV4Suite {
  /// Excluded: other services' path normalization (see above).
  static let excluded: Set<String> = [
    "get-relative-normalized", "get-relative-relative-normalized", "get-slash-dot-slash-normalized",
    "get-slash-normalized", "get-slash-pointless-dot-normalized", "get-slashes-normalized",
  ]

  static var allCases: [String] {
    guard let directory = TestData.existingDirectory("sigv4"),
      let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path)
    else { return [] }
    return names.filter { name in
      var isDirectory: ObjCBool = false
      return FileManager.default.fileExists(
        atPath: directory.appendingPathComponent(name).path, isDirectory: &isDirectory) && isDirectory.boolValue
    }.sorted()
  }

  static var applicableCases: [String] { allCases.filter { !excluded.contains($0) } }

  struct Case {
    var signer: SigV4Signer
    var request: SignableRequest
    var epochSeconds: Int64
    var signBody: Bool
    var expectedCanonicalRequest: String
    var expectedStringToSign: String
    var expectedSignature: String
    var expectedSignedRequest: String
  }

  static func load(_ name: String) throws -> Case {
    let folder = TestData.root.appendingPathComponent("sigv4").appendingPathComponent(name)
    let contextData = try Data(contentsOf: folder.appendingPathComponent("context.json"))
    let context = try #require(try JSONSerialization.jsonObject(with: contextData) as? [String: Any])
    let credentials = try #require(context["credentials"] as? [String: Any])
    let timestamp = try #require(context["timestamp"] as? String)
    let epochSeconds = try #require(isoSeconds(timestamp))
    let signer = SigV4Signer(
      credentials: AWSCredentials(
        accessKeyID: try #require(credentials["access_key_id"] as? String),
        secretAccessKey: try #require(credentials["secret_access_key"] as? String),
        sessionToken: credentials["token"] as? String),
      region: try #require(context["region"] as? String), service: try #require(context["service"] as? String),
      signsSessionToken: !((context["omit_session_token"] as? Bool) ?? false))

    let raw = try TestData.text(folder.appendingPathComponent("request.txt"))
    var lines = raw.split(separator: "\n", omittingEmptySubsequences: false).map { line in
      line.hasSuffix("\r") ? line.dropLast() : line
    }
    let requestLine = lines.removeFirst().split(separator: " ")
    // "METHOD PATH?QUERY HTTP/1.1"; a path may hold a raw space, so the target is everything between.
    let method = String(requestLine.first!)
    let target = requestLine.dropFirst().dropLast().joined(separator: " ")
    let (rawPath, rawQuery) =
      target.firstIndex(of: "?").map { (String(target[..<$0]), String(target[target.index(after: $0)...])) }
      ?? (target, "")
    var headers: [(name: String, value: String)] = []
    var bodyLines: [Substring] = []
    var inBody = false
    for line in lines {
      if inBody {
        bodyLines.append(line)
      } else if line.isEmpty {
        inBody = true
      } else if line.first == " " || line.first == "\t" {
        // A folded line continues the previous header's value.
        headers[headers.count - 1].value += "\n" + line
      } else {
        let colon = try #require(line.firstIndex(of: ":"), "header line without a colon in \(name)")
        headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
      }
    }
    let body = bodyLines.joined(separator: "\n")
    let request = SignableRequest(
      method: method, path: awsURIEncode(rawPath, encodeSlash: false), query: wireQuery(rawQuery),
      headers: headers, payloadSHA256: SHA256.hexHash(body))
    return Case(
      signer: signer, request: request, epochSeconds: epochSeconds,
      signBody: (context["sign_body"] as? Bool) ?? false,
      expectedCanonicalRequest: try TestData.text(folder.appendingPathComponent("header-canonical-request.txt")),
      expectedStringToSign: try TestData.text(folder.appendingPathComponent("header-string-to-sign.txt")),
      expectedSignature: try TestData.text(folder.appendingPathComponent("header-signature.txt")),
      expectedSignedRequest: try TestData.text(folder.appendingPathComponent("header-signed-request.txt")))
  }

  /// The query as a client sends it: bytes other than unreserved, '%', '=' and '&' percent-encoded.
  static func wireQuery(_ raw: String) -> String {
    raw.split(separator: "&", omittingEmptySubsequences: false).map { piece in
      piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map { part in
        part.split(separator: "%", omittingEmptySubsequences: false)
          .map { awsURIEncode(String($0), encodeSlash: true) }.joined(separator: "%")
      }.joined(separator: "=")
    }.joined(separator: "&")
  }

  /// "2015-08-30T12:36:00Z" as seconds since the epoch.
  static func isoSeconds(_ text: String) -> Int64? {
    let formatter = ISO8601DateFormatter()
    return formatter.date(from: text).map { Int64($0.timeIntervalSince1970) }
  }
}

@Suite struct SigV4SignerTests {
  @Test func suiteIsPresent() throws {
    guard let directory = TestData.require("sigv4") else { return }
    let all = SigV4Suite.allCases
    #expect(all.count >= 30, "expected the whole suite in \(directory.path)")
    // The exclusion list names real cases, so a renamed folder is noticed rather than silently run or lost.
    for name in SigV4Suite.excluded {
      #expect(all.contains(name), "excluded case \(name) is not in the suite")
      #expect(all.contains(name.replacingOccurrences(of: "-normalized", with: "-unnormalized")))
    }
  }

  @Test(arguments: SigV4Suite.applicableCases)
  func awsSuiteCase(_ name: String) throws {
    let testCase = try SigV4Suite.load(name)
    let result = testCase.signer.sign(
      testCase.request, epochSeconds: testCase.epochSeconds, addContentSHA256: testCase.signBody)
    #expect(result.canonicalRequest == testCase.expectedCanonicalRequest, "canonical request of \(name)")
    #expect(result.stringToSign == testCase.expectedStringToSign, "string to sign of \(name)")
    #expect(result.signature == testCase.expectedSignature, "signature of \(name)")
    // Every header added appears, with the same value, in the suite's signed request.
    let signedLines = Set(
      testCase.expectedSignedRequest.split(separator: "\n").map { line -> String in
        let colon = line.firstIndex(of: ":") ?? line.endIndex
        return line[..<colon].lowercased() + line[colon...]
      })
    for header in result.headersToAdd {
      #expect(signedLines.contains("\(header.name):\(header.value)"), "\(header.name) of \(name)")
    }
    #expect(
      testCase.signer.signatureHeaders(
        for: testCase.request, epochSeconds: testCase.epochSeconds, addContentSHA256: testCase.signBody
      ).map { "\($0.name):\($0.value)" } == result.headersToAdd.map { "\($0.name):\($0.value)" })
  }

  /// AWS's worked example for S3 (GetObject with a Range, "Signature Calculations for the
  /// Authorization Header", AmazonS3 API reference), as the S3 client will call the signer.
  @Test func s3GetObjectExample() {
    let signer = SigV4Signer(
      credentials: AWSCredentials(
        accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
      region: "us-east-1", service: "s3")
    let request = SignableRequest(
      method: "GET", path: "/test.txt", query: "",
      headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9")],
      payloadSHA256: SHA256.hexHash(""))
    let epoch: Int64 = 1_369_353_600  // 2013-05-24T00:00:00Z
    let result = signer.sign(request, epochSeconds: epoch, addContentSHA256: true)
    #expect(
      result.canonicalRequest == """
        GET
        /test.txt

        host:examplebucket.s3.amazonaws.com
        range:bytes=0-9
        x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
        x-amz-date:20130524T000000Z

        host;range;x-amz-content-sha256;x-amz-date
        e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
        """)
    #expect(result.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    let headers = signer.signatureHeaders(for: request, epochSeconds: epoch, addContentSHA256: true)
    #expect(headers.map(\.name) == ["x-amz-date", "x-amz-content-sha256", "authorization"])
    #expect(
      headers.last?.value
        == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
  }

  /// AWS's worked example of a ListObjects request (same page): the query is sorted.
  @Test func s3ListObjectsExample() {
    let signer = SigV4Signer(
      credentials: AWSCredentials(
        accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
      region: "us-east-1", service: "s3")
    let request = SignableRequest(
      method: "GET", path: "/", query: "prefix=J&max-keys=2", headers: [("host", "examplebucket.s3.amazonaws.com")],
      payloadSHA256: SHA256.hexHash(""))
    let result = signer.sign(request, epochSeconds: 1_369_353_600, addContentSHA256: true)
    #expect(
      result.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2] == "max-keys=2&prefix=J")
    #expect(result.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
  }

  @Test func sessionTokenIsAddedAndSigned() {
    let signer = SigV4Signer(
      credentials: AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret", sessionToken: "tok en"),
      region: "eu-west-1", service: "s3")
    let request = SignableRequest(
      method: "HEAD", path: "/b/k", query: "", headers: [("host", "s3.eu-west-1.amazonaws.com")],
      payloadSHA256: "UNSIGNED-PAYLOAD")
    let result = signer.sign(request, epochSeconds: 0, addContentSHA256: true)
    #expect(result.signedHeaders == "host;x-amz-content-sha256;x-amz-date;x-amz-security-token")
    #expect(
      result.headersToAdd.map(\.name) == [
        "x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "authorization",
      ])
    #expect(result.headersToAdd.first { $0.name == "x-amz-content-sha256" }?.value == "UNSIGNED-PAYLOAD")
    #expect(result.canonicalRequest.contains("\nx-amz-date:19700101T000000Z\n"))
  }

  @Test func existingAmzHeadersAreNotAddedTwice() {
    let signer = SigV4Signer(
      credentials: AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret"), region: "us-east-1",
      service: "s3")
    let request = SignableRequest(
      method: "GET", path: "/", query: "",
      headers: [("Host", "h"), ("X-Amz-Date", "20150830T123600Z"), ("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")],
      payloadSHA256: "UNSIGNED-PAYLOAD")
    let result = signer.sign(request, epochSeconds: 999, addContentSHA256: true)
    #expect(result.headersToAdd.map(\.name) == ["authorization"])
    #expect(result.stringToSign.hasPrefix("AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/s3/aws4_request\n"))
  }

  @Test func canonicalQuery() {
    #expect(SigV4Signer.canonicalQuery("") == "")
    #expect(SigV4Signer.canonicalQuery("b=2&a=1&a=0") == "a=0&a=1&b=2")
    #expect(SigV4Signer.canonicalQuery("list-type=2&acl") == "acl=&list-type=2")
    #expect(SigV4Signer.canonicalQuery("a=x%3Dy=z") == "a=x%3Dy=z")
    #expect(SigV4Signer.canonicalQuery("B=1&a=1&_=1") == "B=1&_=1&a=1")
  }

  @Test func uriEncoding() {
    #expect(awsURIEncode("a b/c", encodeSlash: false) == "a%20b/c")
    #expect(awsURIEncode("a b/c", encodeSlash: true) == "a%20b%2Fc")
    #expect(awsURIEncode("-._~AZaz09", encodeSlash: true) == "-._~AZaz09")
    #expect(awsURIEncode("+*%=&?#", encodeSlash: false) == "%2B%2A%25%3D%26%3F%23")
    #expect(awsURIEncode("é\u{1F600}\n", encodeSlash: false) == "%C3%A9%F0%9F%98%80%0A")
  }

  @Test func amzDates() {
    #expect(amzDate(epochSeconds: 0) == "19700101T000000Z")
    #expect(amzDate(epochSeconds: 1_440_938_160) == "20150830T123600Z")
    #expect(amzDate(epochSeconds: 951_782_400) == "20000229T000000Z")
    #expect(amzDate(epochSeconds: 4_107_542_399) == "21000228T235959Z")
    #expect(amzDate(epochSeconds: 4_107_542_400) == "21000301T000000Z")
    #expect(amzDate(epochSeconds: -1) == "19691231T235959Z")
    #expect(amzDate(epochSeconds: 253_402_300_799) == "99991231T235959Z")
  }
}
