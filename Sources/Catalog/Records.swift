/// Why the catalog could not do what was asked: one plain sentence, naming the catalog's path. It never holds
/// a value being stored or looked up (a slug, a name, build JSON), only what the operation was for.
public struct CatalogError: Error, Sendable, CustomStringConvertible {
  public var description: String

  public init(_ description: String) { self.description = description }
}

/// A Buildkite organization as the API describes it.
public struct CatalogOrganization: Sendable, Hashable {
  /// The organization's UUID.
  public var id: String
  public var slug: String
  public var name: String

  public init(id: String, slug: String, name: String) {
    self.id = id
    self.slug = slug
    self.name = name
  }
}

/// A pipeline, named by its organization's slug and its own.
public struct CatalogPipeline: Sendable, Hashable {
  /// The pipeline's UUID.
  public var id: String
  public var organizationSlug: String
  public var slug: String
  public var name: String

  public init(id: String, organizationSlug: String, slug: String, name: String) {
    self.id = id
    self.organizationSlug = organizationSlug
    self.slug = slug
    self.name = name
  }
}

/// A build, named by its organization's and pipeline's slugs and its number.
public struct CatalogBuild: Sendable, Hashable {
  /// The build's UUID.
  public var id: String
  public var organizationSlug: String
  public var pipelineSlug: String
  public var number: Int
  public var state: String
  /// Seconds since the epoch.
  public var createdAt: Int64?
  /// Seconds since the epoch.
  public var finishedAt: Int64?
  /// Finished builds never change names (a later retry may add jobs).
  public var isFinished: Bool
  /// The build as the API gave it (or a clean subset), for the per-build metadata file. Stored and returned
  /// byte for byte; the catalog never parses it.
  public var json: [UInt8]

  public init(
    id: String, organizationSlug: String, pipelineSlug: String, number: Int, state: String,
    createdAt: Int64? = nil, finishedAt: Int64? = nil, isFinished: Bool, json: [UInt8] = []
  ) {
    self.id = id
    self.organizationSlug = organizationSlug
    self.pipelineSlug = pipelineSlug
    self.number = number
    self.state = state
    self.createdAt = createdAt
    self.finishedAt = finishedAt
    self.isFinished = isFinished
    self.json = json
  }
}

/// A job of a build. Every attempt of a retried job is its own job, with its own UUID.
public struct CatalogJob: Sendable, Hashable {
  /// The job's UUID.
  public var id: String
  /// The UUID of the build it belongs to.
  public var buildID: String
  /// `script`, `waiter`, `manual` or `trigger`; only `script` jobs have logs.
  public var type: String
  public var name: String?
  public var stepKey: String?
  public var state: String?
  public var parallelGroupIndex: Int?
  public var parallelGroupTotal: Int?
  public var retried: Bool
  public var retriedInJobID: String?
  public var retriesCount: Int?
  /// Seconds since the epoch.
  public var startedAt: Int64?
  /// Seconds since the epoch.
  public var finishedAt: Int64?
  /// The known size of a finished job's log, in bytes, when learned; -1 when Buildkite answered that
  /// the job has no log (`BuildkiteNamespace.noLog`).
  public var logSize: Int64?

  public init(
    id: String, buildID: String, type: String, name: String? = nil, stepKey: String? = nil, state: String? = nil,
    parallelGroupIndex: Int? = nil, parallelGroupTotal: Int? = nil, retried: Bool = false,
    retriedInJobID: String? = nil, retriesCount: Int? = nil, startedAt: Int64? = nil, finishedAt: Int64? = nil,
    logSize: Int64? = nil
  ) {
    self.id = id
    self.buildID = buildID
    self.type = type
    self.name = name
    self.stepKey = stepKey
    self.state = state
    self.parallelGroupIndex = parallelGroupIndex
    self.parallelGroupTotal = parallelGroupTotal
    self.retried = retried
    self.retriedInJobID = retriedInJobID
    self.retriesCount = retriesCount
    self.startedAt = startedAt
    self.finishedAt = finishedAt
    self.logSize = logSize
  }
}

/// How far `bklogfs sync` went through a pipeline's builds, which it walks newest first: every build created from
/// `oldest` through `newest` (seconds since the epoch) is held, but those created in the second `oldest` perhaps not
/// all, as a page may end among them. Both are nil when the pipeline had no builds.
public struct CatalogSyncProgress: Sendable, Hashable {
  public var pipelineID: String
  public var newest: Int64?
  public var oldest: Int64?
  /// The walk reached the pipeline's first build: nothing older is left to fetch.
  public var reachedEnd: Bool

  public init(pipelineID: String, newest: Int64?, oldest: Int64?, reachedEnd: Bool) {
    self.pipelineID = pipelineID
    self.newest = newest
    self.oldest = oldest
    self.reachedEnd = reachedEnd
  }
}
