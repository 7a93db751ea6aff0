import ArgumentParser
import BuildkiteAPI
import BuildkiteNames
import Catalog
import Glibc
import HTTPTransport
import LogFS
import Logging
import ObjectStore
import SystemBase

/// How Buildkite's API is reached: `mount` and `sync` take the same.
struct BuildkiteAPIOptions: ParsableArguments {
  @Option(
    help:
      "A file holding a Buildkite API token, to show logs by organization, pipeline and build number (or set BUILDKITE_API_TOKEN).",
    completion: .file())
  var apiTokenFile: String?

  @Option(help: "The Buildkite REST API's base URL.")
  var apiEndpoint: String = "https://api.buildkite.com/v2"

  /// The token from the file or the environment, or nil when neither gives one.
  func token() throws -> String? {
    if let apiTokenFile {
      let path = absolutePath(apiTokenFile)
      let descriptor = open(path, O_RDONLY | O_CLOEXEC)
      guard descriptor >= 0 else { throw MountFailure("cannot read the API token file \(path): \(lastError())") }
      defer { close(descriptor) }
      var bytes = [UInt8](repeating: 0, count: 4096)
      let count = read(descriptor, &bytes, bytes.count)
      guard count > 0 else { throw MountFailure("the API token file \(path) is empty") }
      let token = String(decoding: bytes[..<count], as: UTF8.self).trimmingWhitespace()
      guard !token.isEmpty else { throw MountFailure("the API token file \(path) is empty") }
      return token
    }
    return environmentValue("BUILDKITE_API_TOKEN")?.trimmingWhitespace()
  }
}

struct BuildkiteOptions: ParsableArguments {
  @OptionGroup var api: BuildkiteAPIOptions

  @Option(help: "How many of a pipeline's newest builds its directory lists; older ones are reached by number.")
  var recentBuilds: Int = 100

  @Option(
    help: "Buildkite's build exports, s3://BUCKET/PREFIX (the folder holding org=… folders), for builds past retention."
  )
  var exports: String?
}

/// Where what bklogfs learns is kept across runs: `mount` and `sync` take the same.
struct CacheLocationOptions: ParsableArguments {
  @Option(help: "Where downloaded blocks are kept across mounts (default: $XDG_CACHE_HOME/bklogfs).")
  var cacheDir: String?

  @Option(help: "Where names learned from Buildkite are kept (default: catalog.sqlite in the cache directory).")
  var catalog: String?

  var cacheDirectory: String { absolutePath(cacheDir ?? defaultCacheDirectory()) }

  var catalogPath: String { absolutePath(catalog ?? cacheDirectory + "/catalog.sqlite") }
}

extension String {
  fileprivate func trimmingWhitespace() -> String {
    var text = Substring(self)
    while let first = text.first, first.isWhitespace { text.removeFirst() }
    while let last = text.last, last.isWhitespace { text.removeLast() }
    return String(text)
  }
}

/// A client of Buildkite's API at the endpoint the options name, refusing a plain-http endpoint on
/// another machine unless `insecureHTTP`.
func makeBuildkiteClient(
  token: String, options: BuildkiteAPIOptions, timeouts: HTTPTimeouts, insecureHTTP: Bool, logger: Logger
) throws -> BuildkiteClient {
  try checkPlainHTTP(
    options.apiEndpoint, what: "the Buildkite API endpoint", carrying: "the API token", allowed: insecureHTTP,
    logger: logger)
  do throws(BuildkiteError) {
    return try BuildkiteClient(
      configuration: BuildkiteConfiguration(baseURL: options.apiEndpoint, token: token, timeouts: timeouts),
      logger: logger)
  } catch {
    throw MountFailure(error.message)
  }
}

func openCatalog(_ location: CacheLocationOptions, logger: Logger) throws -> Catalog {
  do throws(CatalogError) {
    return try Catalog(path: location.catalogPath, logger: logger)
  } catch {
    throw MountFailure(error.description)
  }
}

/// The tree of Buildkite's names, over the API and the catalog. The token is checked with one
/// request; if the API cannot be reached but the catalog knows names, the mount goes ahead on them.
func makeBuildkiteNamespace(
  token: String, options: BuildkiteOptions, archive: (client: any ObjectClient, prefix: String)?,
  exports: (client: any ObjectClient, prefix: String)?, location: CacheLocationOptions, directoryTTL: Double,
  timeouts: HTTPTimeouts, insecureHTTP: Bool, sharedSizes: (any SharedSizes)?, asOf: Timestamp? = nil,
  logger: Logger
) throws -> BuildkiteNamespace {
  let api = try makeBuildkiteClient(
    token: token, options: options.api, timeouts: timeouts, insecureHTTP: insecureHTTP, logger: logger)
  let catalog = try openCatalog(location, logger: logger)
  let names = BuildkiteNamespace(
    api: api, catalog: catalog, logStore: BuildkiteLogStore(api: api), archive: archive, exports: exports,
    configuration: BuildkiteNamesConfiguration(
      recentBuilds: options.recentBuilds, listingTTL: directoryTTL, asOf: asOf),
    sharedSizes: sharedSizes, logger: logger)
  // The first mount checks the token by listing the root (one request, kept in the catalog, so the
  // first `ls` asks nothing more). Later mounts trust the catalog, so a remount of finished builds
  // asks the API nothing; a refused token then shows on the first request made.
  if ((try? catalog.organizations()) ?? []).isEmpty {
    do throws(FilesystemError) {
      _ = try names.list(directory: names.rootKey)
    } catch {
      switch (error.cause as? BuildkiteError)?.kind {
      case .unauthorized, .missingScope:
        throw MountFailure("the Buildkite API token was refused (\(error.message))")
      case .unreachable, .timedOut:
        throw MountFailure(
          "the Buildkite API cannot be reached and the catalog knows no names yet: \(error.message); check "
            + "--api-endpoint and that this machine can reach it, or fill the catalog first with bklogfs sync")
      case .server, .rateLimited, .invalidResponse, .badRequest:
        throw MountFailure("the Buildkite API cannot be reached and the catalog knows no names yet: \(error.message)")
      case .notFound, nil:
        throw MountFailure(error.message)
      }
    }
  }
  return names
}
