import Digests
import Foundation
import HTTPTransport
import S3Client
import TestSupport
import Testing

let testCredentials = AWSCredentials(accessKeyID: "AKIDTESTING", secretAccessKey: "testing-secret")

/// Signed path-style PUTs to seed a bucket, written with the transport and the signer.
struct Seeder {
  let endpoint: String
  let http = HTTPClient()

  func put(_ path: String, _ body: [UInt8] = [], headers extra: [(name: String, value: String)] = []) throws {
    let url = HTTPURL(endpoint)!
    let signer = SigV4Signer(credentials: testCredentials, region: "us-east-1", service: "s3")
    let request = SignableRequest(
      method: "PUT", path: path, query: "", headers: [(name: "host", value: url.hostHeader)] + extra,
      payloadSHA256: SHA256.hexHash(body))
    let headers =
      [(name: "Host", value: url.hostHeader)] + extra
      + signer.signatureHeaders(for: request, epochSeconds: Int64(Date().timeIntervalSince1970), addContentSHA256: true)
    let (response, answer) = try http.fetch(
      HTTPRequest(method: "PUT", url: endpoint + path, headers: headers, body: body))
    guard response.status == 200 else {
      throw ServerError(message: "PUT \(path): \(response.status) \(String(decoding: answer, as: UTF8.self))")
    }
  }

  func createBucket(_ bucket: String) throws { try put("/\(bucket)") }

  func putObject(_ bucket: String, _ key: String, _ body: [UInt8]) throws {
    try put("/\(bucket)/\(awsURIEncode(key, encodeSlash: false))", body)
  }
}

/// A fresh bucket name per test.
func uniqueBucket(_ stem: String) -> String {
  "\(stem)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// Deterministic object bytes.
func pattern(_ count: Int, seed: Int = 7) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 31 &+ seed) % 253) }
}
