import ArgumentParser
import Glibc
import HTTPTransport
import Logging
import ObjectStore
import S3Client
import SystemBase

struct S3Options: ParsableArguments {
  @Option(help: "The bucket's region (default: AWS_REGION, the profile's region, or us-east-1).")
  var region: String?

  @Option(help: "An S3-compatible endpoint URL, such as http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL).")
  var endpoint: String?

  @Option(help: "The profile in ~/.aws/credentials and ~/.aws/config to take credentials from.")
  var profile: String?

  @Flag(help: "Send requests unsigned, for a public bucket.")
  var noSignRequest = false

  @Flag(help: "Agree to pay for the requests, as a bucket with Requester Pays on asks of anyone but its owner.")
  var requesterPays = false
}

/// The bucket and key prefix to mount, from `--bucket NAME` or `--bucket s3://NAME/PREFIX`, and `--prefix`.
struct S3Target: Equatable {
  let bucket: String
  /// Empty, or ending in "/".
  let prefix: String

  init(bucketArgument: String, prefix explicitPrefix: String?) throws {
    var name = bucketArgument
    var prefix = ""
    if name.hasPrefix("s3://") {
      let rest = name.dropFirst(5)
      let parts = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
      name = String(parts[0])
      prefix = parts.count > 1 ? String(parts[1]) : ""
    }
    guard !name.isEmpty, !name.contains("/") else {
      throw ValidationError("\(bucketArgument) is not a bucket name; give NAME or s3://NAME/PREFIX.")
    }
    if let explicitPrefix {
      guard prefix.isEmpty else { throw ValidationError("Give the prefix once: in s3://NAME/PREFIX or with --prefix.") }
      prefix = explicitPrefix
    }
    while prefix.hasPrefix("/") { prefix.removeFirst() }
    if !prefix.isEmpty && !prefix.hasSuffix("/") { prefix += "/" }
    self.bucket = name
    self.prefix = prefix
  }
}

/// - Parameter writes: the client writes (the shared cache), so `--no-sign-request` is no way out
///   of missing credentials.
func makeS3Client(
  target: S3Target, options: S3Options, timeouts: HTTPTimeouts, insecureHTTP: Bool, maxAttempts: Int = 5,
  writes: Bool = false, logger: Logger
) throws -> S3ObjectClient {
  let settings: AWSSettings
  do throws(AWSConfigurationError) {
    settings = try AWSEnvironment.resolve(
      profile: options.profile, environment: AWSEnvironment.processEnvironment, homeDirectory: homeDirectory())
  } catch {
    throw MountFailure(error.message)
  }
  let credentials = options.noSignRequest ? nil : settings.credentials
  if !options.noSignRequest && credentials == nil {
    throw MountFailure(
      "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        + (writes
          ? "or name a profile with --profile"
          : "name a profile with --profile, or pass --no-sign-request for a public bucket"))
  }
  let endpoint = options.endpoint ?? settings.endpoint
  if let endpoint {
    try checkPlainHTTP(
      endpoint, what: "the S3 endpoint", carrying: "signed requests", allowed: insecureHTTP, logger: logger)
  }
  var configuration = S3Configuration(
    bucket: target.bucket, prefix: target.prefix, region: options.region ?? settings.region ?? "us-east-1",
    endpoint: endpoint, credentials: credentials, timeouts: timeouts, maxAttempts: maxAttempts)
  configuration.requesterPays = options.requesterPays
  do throws(ObjectStoreError) {
    return try S3ObjectClient(configuration: configuration, logger: logger)
  } catch {
    throw MountFailure(error.message)
  }
}

/// Refuses a plain-http endpoint on another machine unless the user said `--insecure-http`: what
/// travels to it (signed requests, a Buildkite token, logs) would cross the network unencrypted.
/// Plain http to this machine (a local S3 server, a test fake) is accepted as is.
func checkPlainHTTP(_ endpoint: String, what: String, carrying: String, allowed: Bool, logger: Logger) throws {
  guard let url = HTTPURL(endpoint), url.scheme == "http", !url.isLoopback else { return }
  guard allowed else {
    throw MountFailure(
      "\(what) \(url.origin) is plain http on another machine: \(carrying) and logs would cross the network "
        + "unencrypted. Use https, or pass --insecure-http to accept that.")
  }
  logger.warning("--insecure-http: \(what) \(url.origin) is plain http; \(carrying) and logs travel unencrypted")
}
