import Foundation
import HTTPTransport
import ObjectStore
import S3Client
import TestSupport
import Testing

/// The signer against an independent verifier: a moto_server that enforces IAM authentication
/// (INITIAL_NO_AUTH_ACTION_COUNT) knows only the access key it issued and checks every request's
/// SigV4 signature. Listings are not checked here: moto's verifier rejects any request whose query
/// holds an encoded "/" (botocore's own signatures of such requests fail it too).
@Suite struct SignatureVerificationTests {
  /// Creates a user with S3 rights and an access key (the three unauthenticated calls), then a
  /// bucket and an object with that key; prints the key as JSON.
  static let setup = #"""
    import boto3, json, sys
    endpoint, bucket, key = sys.argv[1:4]
    anonymous = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    iam = boto3.client("iam", **anonymous)
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    access = iam.create_access_key(UserName="reader")["AccessKey"]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=access["AccessKeyId"], aws_secret_access_key=access["SecretAccessKey"])
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(range(256)) * 4096)
    print(json.dumps([access["AccessKeyId"], access["SecretAccessKey"]]))
    """#

  @Test func headAndGetSignaturesAreAccepted() throws {
    guard let moto = Moto.require(), let motoPath = Moto.which("moto_server") else { return }
    _ = moto
    let server = try ChildServer(
      ["/usr/bin/env", "INITIAL_NO_AUTH_ACTION_COUNT=3", motoPath, "-H", "127.0.0.1", "-p", "{port}"],
      probeWithRequests: false)
    defer { server.stop() }
    let bucket = "verified-\(UUID().uuidString.prefix(8).lowercased())"
    let key = "0190a1b2/0190a1b3/0190a1b4/0190a1b5.log"
    let keys = try runSetup(endpoint: server.endpoint, bucket: bucket, key: key)
    let expected = (0..<(256 * 4096)).map { UInt8(truncatingIfNeeded: $0) }

    func client(_ credentials: AWSCredentials) throws -> S3ObjectClient {
      try S3ObjectClient(
        configuration: S3Configuration(
          bucket: bucket, endpoint: server.endpoint, credentials: credentials, maxAttempts: 1))
    }
    let good = try client(AWSCredentials(accessKeyID: keys[0], secretAccessKey: keys[1]))
    let info = try good.head(key: key)
    #expect(info.size == UInt64(expected.count))
    #expect(try good.getBytes(key: key, range: 0..<UInt64(expected.count), ifMatch: info.etag) == expected)
    #expect(try good.getBytes(key: key, range: 1000..<5000) == Array(expected[1000..<5000]))

    let wrongSecret = try client(AWSCredentials(accessKeyID: keys[0], secretAccessKey: keys[1] + "x"))
    let refused = #expect(throws: ObjectStoreError.self) { try wrongSecret.getBytes(key: key, range: 0..<10) }
    #expect(refused?.kind == .accessDenied)
    #expect(refused?.message.contains("SignatureDoesNotMatch") == true)
    #expect(refused?.message.contains("check AWS_SECRET_ACCESS_KEY") == true)
    #expect(refused?.message.contains(keys[1]) == false)

    // The shared cache's calls: a PUT signed over its body's digest, and GETs of whole objects.
    let block = Array(expected[0..<70_000])
    try good.put(key: "fleet/bklogfs-blocks/v1/0a1b", bytes: block)
    #expect(try good.getObject(key: "fleet/bklogfs-blocks/v1/0a1b", limit: 1 << 20) == block)
    #expect(try good.getObject(key: "fleet/bklogfs-blocks/v1/none", limit: 1 << 20) == nil)
    let tooLong = #expect(throws: ObjectStoreError.self) {
      try good.getObject(key: "fleet/bklogfs-blocks/v1/0a1b", limit: 1000)
    }
    #expect(tooLong?.kind == .invalidResponse)
    let refusedPut = #expect(throws: ObjectStoreError.self) {
      try wrongSecret.put(key: "fleet/bklogfs-blocks/v1/0a1c", bytes: block)
    }
    #expect(refusedPut?.kind == .accessDenied)
  }

  private func runSetup(endpoint: String, bucket: String, key: String) throws -> [String] {
    let process = Process()
    let output = Pipe()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", Self.setup, endpoint, bucket, key]
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0,
      let keys = try JSONSerialization.jsonObject(with: data) as? [String], keys.count == 2
    else {
      throw ServerError(message: "seeding the authenticating moto_server failed (exit \(process.terminationStatus))")
    }
    return keys
  }
}
