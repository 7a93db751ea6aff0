public import HTTPTransport

/// Where a bucket is and how to reach it.
public struct S3Configuration: Sendable {
  public var bucket: String
  /// The key prefix the archive lives under ("" for the bucket root). Keys passed to the client are
  /// full S3 keys: the caller adds the prefix. The client uses it only for `checkBucket()`.
  public var prefix: String
  /// The bucket's region as configured; the client switches to the right one when S3 says otherwise.
  public var region: String
  /// A custom endpoint such as `http://127.0.0.1:5000`; nil for AWS.
  public var endpoint: String?
  /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`. Bucket names holding a
  /// dot always use path style on AWS (their virtual-hosted name breaks the TLS wildcard).
  public var forcePathStyle: Bool
  /// Nil sends unsigned requests (`--no-sign-request`, public buckets).
  public var credentials: AWSCredentials?
  public var timeouts: HTTPTimeouts
  /// Attempts per call, the first included.
  public var maxAttempts: Int
  /// Backoff before retry n (from 1) is uniform in 0...min(retryMaxDelay, retryBaseDelay * 2^(n-1)) seconds.
  public var retryBaseDelay: Double
  public var retryMaxDelay: Double
  /// A ListObjectsV2 body larger than this is refused.
  public var maxListBodyBytes: Int
  /// Every request says the requester pays for it (`x-amz-request-payer: requester`), as a bucket
  /// with "Requester Pays" on asks of anyone but its owner.
  public var requesterPays: Bool = false

  /// - Parameter forcePathStyle: defaults to true with a custom endpoint, false for AWS.
  public init(
    bucket: String, prefix: String = "", region: String = "us-east-1", endpoint: String? = nil,
    forcePathStyle: Bool? = nil, credentials: AWSCredentials? = nil, timeouts: HTTPTimeouts = HTTPTimeouts(),
    maxAttempts: Int = 5, retryBaseDelay: Double = 0.1, retryMaxDelay: Double = 5, maxListBodyBytes: Int = 16 << 20
  ) {
    self.bucket = bucket
    self.prefix = prefix
    self.region = region
    self.endpoint = endpoint
    self.forcePathStyle = forcePathStyle ?? (endpoint != nil)
    self.credentials = credentials
    self.timeouts = timeouts
    self.maxAttempts = max(1, maxAttempts)
    self.retryBaseDelay = retryBaseDelay
    self.retryMaxDelay = retryMaxDelay
    self.maxListBodyBytes = maxListBodyBytes
  }
}
