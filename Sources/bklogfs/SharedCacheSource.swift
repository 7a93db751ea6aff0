import ArgumentParser
import BlockCache
import HTTPTransport
import Logging
import ObjectStore
import S3Client

struct SharedCacheOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "An S3 bucket a fleet of machines shares fetched blocks in, read before the source and written after it (doc/SHARED-CACHE.md).",
      valueName: "s3://BUCKET/PREFIX"))
  var sharedCache: String?

  @Option(help: "The shared cache bucket's region (default: as for --bucket).")
  var sharedCacheRegion: String?

  @Option(help: "The shared cache bucket's S3-compatible endpoint URL (default: as for --bucket).")
  var sharedCacheEndpoint: String?

  /// The bucket and prefix of `--shared-cache`, if given.
  func target() throws -> S3Target? {
    guard let sharedCache else {
      if sharedCacheRegion != nil || sharedCacheEndpoint != nil {
        throw ValidationError("--shared-cache-region and --shared-cache-endpoint apply to --shared-cache only.")
      }
      return nil
    }
    guard sharedCache.hasPrefix("s3://"), sharedCache.count > 5 else {
      throw ValidationError("--shared-cache takes s3://BUCKET/PREFIX, not \(sharedCache).")
    }
    return try S3Target(bucketArgument: sharedCache, prefix: nil)
  }
}

/// A request to the shared cache is on a reader's path when it reads: two short attempts, then the
/// block comes from the source instead.
private let sharedCacheAttempts = 2

/// The shared cache of `options`, checked: its bucket is listed (one key) and written (one small
/// object beside the blocks), so a wrong name, refused credentials or a bucket this user may read
/// but not write stop the mount with one sentence. Credentials come from the same chain as the
/// archive's, never from a flag; the endpoint and region from `--shared-cache-endpoint` and
/// `--shared-cache-region`, else as for the archive.
func makeSharedCache(
  _ options: SharedCacheOptions, s3: S3Options, connectTimeout: Double, insecureHTTP: Bool, blockSize: Int,
  maxQueuedBytes: Int, logger: Logger
) throws -> SharedBlockCache? {
  guard let target = try options.target() else { return nil }
  let location = "s3://\(target.bucket)/\(target.prefix)"
  var settings = s3
  settings.region = options.sharedCacheRegion ?? s3.region
  settings.endpoint = options.sharedCacheEndpoint ?? s3.endpoint
  // Blocks are written: the shared cache is never used unsigned.
  settings.noSignRequest = false
  let timeouts = HTTPTimeouts(connect: min(connectTimeout, 3), stall: 5, total: 30)
  let client: S3ObjectClient
  do {
    client = try makeS3Client(
      target: target, options: settings, timeouts: timeouts, insecureHTTP: insecureHTTP,
      maxAttempts: sharedCacheAttempts, writes: true, logger: logger)
  } catch let failure as MountFailure {
    throw MountFailure("cannot use the shared cache \(location): \(failure.message)")
  }
  do throws(ObjectStoreError) {
    try client.checkBucket()
    try client.put(
      key: target.prefix + SharedBlockCache.folder + "mount-check",
      bytes: Array("bklogfs shared block cache, format \(SharedBlockCache.folder)\n".utf8))
  } catch {
    throw MountFailure("cannot use the shared cache \(location): \(error.message)")
  }
  return SharedBlockCache(
    client: client, prefix: target.prefix, blockSize: blockSize, maxQueuedBytes: maxQueuedBytes, logger: logger)
}
