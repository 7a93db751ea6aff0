import Digests
import Foundation
public import HTTPTransport
public import S3Client

/// The credentials moto_server is seeded and read with (it accepts any, unless told to check).
public let testCredentials = AWSCredentials(accessKeyID: "AKIDTESTING", secretAccessKey: "testing-secret")

/// Signed path-style PUTs to seed a bucket, written with the transport and the signer.
public struct Seeder: Sendable {
  public let endpoint: String
  public let credentials: AWSCredentials
  public let http = HTTPClient()

  public init(endpoint: String, credentials: AWSCredentials = testCredentials) {
    self.endpoint = endpoint
    self.credentials = credentials
  }

  public func put(_ path: String, _ body: [UInt8] = [], headers extra: [(name: String, value: String)] = []) throws {
    let url = HTTPURL(endpoint)!
    let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "s3")
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

  public func createBucket(_ bucket: String) throws { try put("/\(bucket)") }

  public func putObject(_ bucket: String, _ key: String, _ body: [UInt8]) throws {
    try put("/\(bucket)/\(awsURIEncode(key, encodeSlash: false))", body)
  }
}

/// A fresh bucket name per test.
public func uniqueBucket(_ stem: String) -> String {
  "\(stem)-\(UUID().uuidString.prefix(8).lowercased())"
}
