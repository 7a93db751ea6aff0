public import BuildkiteAPI
public import Catalog
import LogFS
public import Logging
import ObjectStore
public import SystemBase

/// Where a walk down one pipeline's builds goes next. The API lists builds newest first; a walk asks
/// each time for those created before the oldest second it has reached (`created_to`), so it never
/// pages deeper than the API allows and can start again from any point. Pages that end among builds
/// of one second ask for that second again: the ones seen twice are stored twice, none is missed.
public struct BuildWalk: Sendable, Hashable {
  /// Only builds created at or after this second (seconds since the epoch) are wanted.
  public let floor: Int64?
  /// The oldest creation second reached (its builds perhaps not all seen yet).
  public private(set) var oldest: Int64?
  /// The newest creation second seen.
  public private(set) var newest: Int64?
  /// The page of the current `createdTo`: past 1 only while pages bring nothing older.
  public private(set) var page = 1
  public private(set) var isDone = false
  /// The walk found the pipeline's first build, not only its floor.
  public private(set) var reachedEnd = false

  /// A walk from the newest build, or from below `oldest` when going on with an earlier walk.
  public init(floor: Int64?, from oldest: Int64? = nil) {
    self.floor = floor
    self.oldest = oldest
  }

  /// The next page's `created_to` (builds created before it): the second after the oldest reached.
  public var createdTo: Int64? { oldest.map { $0 + 1 } }

  /// Takes in a page: its builds' creation seconds and whether the API links a next page.
  public mutating func advance(createdTimes: [Int64?], hasNext: Bool) {
    let times = createdTimes.compactMap { $0 }
    if let top = times.max() { newest = max(newest ?? top, top) }
    if let bottom = times.min(), oldest.map({ bottom < $0 }) ?? true {
      oldest = bottom
      page = 1
    } else {
      page += 1
    }
    if let floor, let bottom = times.min(), bottom < floor {
      // An API that ignored `created_from`: nothing below the floor is wanted.
      isDone = true
    } else if createdTimes.isEmpty || !hasNext {
      isDone = true
      if let floor {
        // Every build from the floor on is held: none was left between it and the last page.
        oldest = min(oldest ?? floor, floor)
      } else {
        reachedEnd = true
      }
    }
  }
}

/// What a sync has done so far, for its progress line and summary.
public struct SyncStatus: Sendable {
  public var pipelines = 0
  public var pipelinesDone = 0
  /// Builds and jobs stored (a build fetched again by a later walk counts again).
  public var builds = 0
  public var jobs = 0
  /// The pipeline being walked.
  public var pipeline: String?
  /// Pages the current walk still has, as the API's `last` link says; nil when unknown.
  public var pagesLeft: Int?
  public init() {}
}

/// Why a sync stopped: one sentence, never holding the token.
public struct SyncError: Error, Sendable, CustomStringConvertible {
  /// The API's failure, when that was the cause.
  public var kind: BuildkiteError.Kind?
  public var message: String
  public init(_ message: String, kind: BuildkiteError.Kind? = nil) {
    self.message = message
    self.kind = kind
  }
  public var description: String { message }
}

/// Fills the catalog with an organization's pipelines and builds (with their jobs), ahead of any
/// mount: what a mount then lists comes from the catalog. Each page is stored with how far the
/// walk has gone (`CatalogSyncProgress`) in one transaction, so an interrupted sync loses nothing
/// and the next goes on from there; a pipeline walked to its end is later asked only for builds
/// created since the newest it holds, and for those still running when last seen.
public final class OrganizationSync {
  public let api: BuildkiteClient
  public let catalog: Catalog
  public let organization: String
  /// Only these pipelines (slugs), or all when empty.
  public let pipelineSlugs: [String]
  /// Only builds created at or after this time (seconds since the epoch).
  public let since: Int64?
  let clock: any MonotonicClock
  let logger: Logger
  public private(set) var status = SyncStatus()

  public init(
    api: BuildkiteClient, catalog: Catalog, organization: String, pipelines: [String] = [], since: Int64? = nil,
    clock: any MonotonicClock = SystemClock(), logger: Logger
  ) {
    self.api = api
    self.catalog = catalog
    self.organization = organization
    self.pipelineSlugs = pipelines
    self.since = since
    self.clock = clock
    self.logger = logger
  }

  /// Runs the sync, calling `report` after each request's answer is stored.
  public func run(report: (SyncStatus) -> Void) throws(SyncError) {
    let organizations = try call("listing organizations") { () throws(BuildkiteError) in try api.organizations() }
    try store { () throws(CatalogError) in
      try catalog.upsert(
        organizations: organizations.map { CatalogOrganization(id: $0.id, slug: $0.slug, name: $0.name) })
      try catalog.setListingFetched("organizations", at: now())
    }
    guard organizations.contains(where: { sameBytes($0.slug, organization) }) else {
      let seen = organizations.map(\.slug).sorted().joined(separator: ", ")
      throw SyncError(
        "no organization \(escapedForLog(organization)) for this token (it sees: \(seen.isEmpty ? "none" : seen))",
        kind: .notFound)
    }
    let found = try call("listing the pipelines of \(organization)") { () throws(BuildkiteError) in
      try api.pipelines(organization: organization)
    }
    try store { () throws(CatalogError) in
      try catalog.upsert(
        pipelines: found.map {
          CatalogPipeline(id: $0.id, organizationSlug: organization, slug: $0.slug, name: $0.name)
        }
      )
      try catalog.setListingFetched("pipelines:\(organization)", at: now())
    }
    var chosen = found
    if !pipelineSlugs.isEmpty {
      for slug in pipelineSlugs where !found.contains(where: { sameBytes($0.slug, slug) }) {
        throw SyncError("no pipeline \(escapedForLog(slug)) in \(escapedForLog(organization))", kind: .notFound)
      }
      chosen = found.filter { pipeline in pipelineSlugs.contains { sameBytes($0, pipeline.slug) } }
    }
    // A slug that cannot be a name in the tree is never sent back to the API.
    chosen = chosen.filter { pipeline in
      if let problem = nameProblem(pipeline.slug) {
        logger.warning("left out pipeline \(escapedForLog(pipeline.slug)) of \(organization): \(problem)")
        return false
      }
      return true
    }
    status.pipelines = chosen.count
    report(status)
    for pipeline in chosen {
      status.pipeline = pipeline.slug
      do throws(SyncError) {
        try sync(pipeline, report: report)
      } catch  where error.kind == .notFound {
        logger.warning("left out pipeline \(pipeline.slug) of \(organization): \(error.message)")
      }
      status.pipelinesDone += 1
      status.pipeline = nil
      status.pagesLeft = nil
      report(status)
    }
  }

  private func sync(_ pipeline: Pipeline, report: (SyncStatus) -> Void) throws(SyncError) {
    let slug = pipeline.slug
    let started = now()
    let prior = try stored { () throws(CatalogError) in try catalog.syncProgress(pipelineID: pipeline.id) }
    var progress = CatalogSyncProgress(pipelineID: pipeline.id, newest: nil, oldest: nil, reachedEnd: false)
    var stale: [Int] = []
    if let prior, let newest = prior.newest {
      // Builds still running when stored; the walk of newer builds below does not reach them.
      stale = try stored { () throws(CatalogError) in
        try catalog.unfinishedBuildNumbers(organizationSlug: organization, pipelineSlug: slug, createdBefore: newest)
      }
      // The builds created since the newest held; the range held then reaches the newest.
      var walk = BuildWalk(floor: max(newest, since ?? newest))
      try run(&walk, slug, report: report, progress: { _ in nil })
      progress = prior
      progress.newest = max(newest, walk.newest ?? newest)
      try store { () throws(CatalogError) in try catalog.setSyncProgress(progress) }
    }
    let done = progress.reachedEnd || (progress.oldest != nil && progress.oldest! <= (since ?? .min))
    if !done {
      var walk = BuildWalk(floor: since, from: progress.oldest)
      let base = progress
      try run(&walk, slug, report: report) { walk in
        var next = base
        next.newest = [base.newest, walk.newest].compactMap { $0 }.max()
        next.oldest = walk.oldest
        next.reachedEnd = walk.reachedEnd
        return next
      }
    }
    for number in stale {
      let build: Build
      do throws(SyncError) {
        build = try call("fetching build \(organization)/\(slug)/\(number)") { () throws(BuildkiteError) in
          try api.build(organization: organization, pipeline: slug, number: number, includeRetriedJobs: true)
        }
      } catch  where error.kind == .notFound {
        logger.notice("build \(organization)/\(slug)/\(number) is gone from the API: \(error.message)")
        continue
      }
      try store { () throws(CatalogError) in
        try catalog.upsert(
          builds: [catalogRecord(of: build, organization: organization, pipeline: slug, logger: logger)],
          listingsFetched: [buildListingKey(organization, slug, number)], at: now())
      }
      status.builds += 1
      status.jobs += build.jobs.count
      report(status)
    }
    // The newest builds are held as of the sync's start: the pipeline's listing needs no request
    // within its TTL.
    let listing = "builds:\(organization)/\(slug)"
    try store { () throws(CatalogError) in try catalog.setListingFetched(listing, at: started) }
  }

  /// Walks pages until the walk is done, storing each page with the progress `progress` gives for it.
  private func run(
    _ walk: inout BuildWalk, _ pipeline: String, report: (SyncStatus) -> Void,
    progress: (BuildWalk) -> CatalogSyncProgress?
  ) throws(SyncError) {
    // The builds of the page before: a page that starts in the second the one before ended in brings
    // some of them again, and they are not counted twice.
    var previous = Set<String>()
    var perPage = Self.perPage
    while !walk.isDone {
      let (page, query) = try nextPage(pipeline, walk, perPage: &perPage)
      walk.advance(
        createdTimes: page.builds.map { $0.createdAt.map { Int64($0.rounded(.down)) } }, hasNext: page.nextPage != nil)
      if walk.page == 1 {
        // A new `created_to`: the page size may grow back after answers that were too large.
        perPage = min(Self.perPage, perPage * 2)
      }
      let time = now()
      let reached = progress(walk)
      try store { () throws(CatalogError) in
        try catalog.storeListed(
          page.builds, organization: organization, pipeline: pipeline, at: time, syncProgress: reached, logger: logger)
      }
      let new = page.builds.filter { !previous.contains($0.id) }
      previous = Set(page.builds.map(\.id))
      status.builds += new.count
      status.jobs += new.reduce(0) { $0 + $1.jobs.count }
      status.pagesLeft = walk.isDone ? 0 : page.lastPage.map { max(1, $0 - query.page) }
      report(status)
    }
  }

  /// Builds a page asks for: Buildkite's most.
  static let perPage = 100

  /// The walk's next page, with the query that brought it. An answer too large for the client (builds with
  /// thousands of jobs each) is asked for again with half as many builds, down to one, while the walk is on the
  /// first page of its `created_to` (a later page's offset counts in pages of the size the walk began it with,
  /// which must stay); past that, the same page is listed without jobs (`exclude_jobs`) and each of its builds'
  /// jobs is listed through the jobs endpoint, page by page. Such a build's `build.json` is then the build as
  /// listed without its jobs.
  private func nextPage(_ pipeline: String, _ walk: BuildWalk, perPage: inout Int) throws(SyncError)
    -> (BuildsPage, BuildQuery)
  {
    let what = "listing the builds of \(organization)/\(pipeline)"
    while true {
      var query = BuildQuery(
        createdFrom: walk.floor.map { Double($0) }, createdTo: walk.createdTo.map { Double($0) },
        includeRetriedJobs: true, page: walk.page, perPage: perPage)
      let tooLarge: BuildkiteError
      do throws(BuildkiteError) {
        return (try api.buildsPage(organization: organization, pipeline: pipeline, query: query), query)
      } catch {
        guard error.isAnswerTooLarge else {
          throw SyncError("\(what) failed: \(error.message)", kind: error.kind)
        }
        tooLarge = error
      }
      if walk.page == 1 && perPage > 1 {
        perPage = max(1, perPage / 2)
        logger.notice("\(what): \(tooLarge.message); asking for \(perPage) builds a page")
        continue
      }
      logger.notice("\(what): \(tooLarge.message); listing the page without jobs and each build's jobs apart")
      query.excludeJobs = true
      let listed = query
      let page = try call(what) { () throws(BuildkiteError) in
        try api.buildsPageWithJobsApart(organization: organization, pipeline: pipeline, query: listed)
      }
      return (page, query)
    }
  }

  private func call<Result>(_ what: String, _ body: () throws(BuildkiteError) -> Result) throws(SyncError) -> Result {
    do throws(BuildkiteError) {
      return try body()
    } catch {
      throw SyncError("\(what) failed: \(error.message)", kind: error.kind)
    }
  }

  private func stored<Result>(_ body: () throws(CatalogError) -> Result) throws(SyncError) -> Result {
    do throws(CatalogError) {
      return try body()
    } catch {
      throw SyncError("the catalog failed: \(error.description)")
    }
  }

  private func store(_ body: () throws(CatalogError) -> Void) throws(SyncError) { try stored(body) }

  private func now() -> Int64 { Int64(clock.secondsSinceEpoch().rounded(.down)) }
}
