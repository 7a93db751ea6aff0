public import BuildkiteAPI
public import Catalog
import Digests
import Glibc
public import LogFS
public import Logging
public import ObjectStore
import Synchronization
public import SystemBase

public struct BuildkiteNamesConfiguration: Sendable {
  /// How many of a pipeline's newest builds its directory lists; older builds are reached by number.
  public var recentBuilds: Int
  /// Seconds a listing of organizations, pipelines or a pipeline's builds, or a running build, is
  /// trusted, here and across remounts (the catalog keeps when each was fetched).
  public var listingTTL: Double
  /// Seconds a finished build's directory is trusted: it never changes but for a later retry.
  public var finishedBuildTTL: Double

  /// Show the names as they were at this time (`bklogfs mount --as-of`): only builds created by
  /// then, and of each only the logs that existed then (in the archive as of then, which the mount
  /// gives as its archive, or in Buildkite's storage for a job finished by then).
  public var asOf: Timestamp?

  public init(
    recentBuilds: Int = 100, listingTTL: Double = 60, finishedBuildTTL: Double = 24 * 3600, asOf: Timestamp? = nil
  ) {
    self.asOf = asOf
    self.recentBuilds = recentBuilds
    self.listingTTL = listingTTL
    self.finishedBuildTTL = finishedBuildTTL
  }
}

/// Buildkite's names as a tree: `/{org}/{pipeline}/{build number}/`, holding each script job's log
/// as `{job uuid}.log` (every attempt of a retried job), a readable alias of each (a symbolic
/// link, see `jobAliases`), and `build.json`, the build as the API gave it.
///
/// Names come from the catalog when it holds them fresh enough, else from the API (and are then
/// kept in the catalog). When the API cannot be reached, what the catalog holds is served and a
/// warning logged; only what it lacks fails. A job's log comes from the organization's private
/// archive when it holds it (found by UUIDs: one listing per build), else from Buildkite's
/// storage (`BuildkiteLogStore`).
public final class BuildkiteNamespace: Namespace {
  public let rootKey = "/"
  public let api: BuildkiteClient
  public let catalog: Catalog
  public let logStore: BuildkiteLogStore
  /// The private log archive (an S3 bucket or a local directory) and the key prefix it lives under.
  public let archive: (client: any ObjectClient, prefix: String)?
  /// The build exports (the folder holding `org={uuid}/` folders), for builds past retention.
  public let exports: (client: any ObjectClient, prefix: String)?
  public let configuration: BuildkiteNamesConfiguration
  /// Finished logs' sizes that machines of a fleet record for each other (`--shared-cache`), read
  /// before a log is sized by the API.
  public let sharedSizes: (any SharedSizes)?

  public var apiBudget: MountStatistics.APIBudget? {
    let state = api.rateLimiter.snapshot
    return state.remaining.map { MountStatistics.APIBudget(remaining: $0, limit: state.limit) }
  }

  public var apiLatency: LatencyHistogram.Snapshot? { api.counters.latency.snapshot }

  let logger: Logger
  /// Gives the wall-clock times the catalog's listings are stamped with and judged by.
  let clock: any MonotonicClock
  /// Until when (epoch seconds) the API is taken as unreachable: within that time, names the catalog
  /// holds are served without asking, so an offline `ls` does not wait out retries every time.
  private let offlineUntil = Mutex<Int64>(0)
  static let offlinePause: Int64 = 30

  public var clients: [any ObjectClient] {
    [logStore] + (archive.map { [$0.client] } ?? []) + (exports.map { [$0.client] } ?? [])
  }

  public init(
    api: BuildkiteClient, catalog: Catalog, logStore: BuildkiteLogStore,
    archive: (client: any ObjectClient, prefix: String)? = nil,
    exports: (client: any ObjectClient, prefix: String)? = nil, configuration: BuildkiteNamesConfiguration,
    sharedSizes: (any SharedSizes)? = nil, clock: any MonotonicClock = SystemClock(), logger: Logger
  ) {
    self.sharedSizes = sharedSizes
    self.clock = clock
    self.api = api
    self.catalog = catalog
    self.logStore = logStore
    self.archive = archive
    self.exports = exports
    self.configuration = configuration
    self.logger = logger
  }

  // MARK: Namespace

  public func list(directory key: String) throws(FilesystemError) -> NamespaceListing {
    let path = key.split(separator: "/").map(String.init)
    switch path.count {
    case 0: return try organizationsListing()
    case 1: return try pipelinesListing(organization: path[0])
    case 2: return try buildsListing(organization: path[0], pipeline: path[1])
    case 3:
      guard let number = Int(path[2]) else { throw FilesystemError(.notFound, "no build \(key)") }
      return try buildListing(organization: path[0], pipeline: path[1], number: number)
    default:
      throw FilesystemError(.notFound, "no directory \(key)")
    }
  }

  public func lookup(directory key: String, name: String) throws(FilesystemError) -> NamespaceEntry? {
    let path = key.split(separator: "/").map(String.init)
    if path.count == 2 {
      // A build by number, listed or not: one request the first time, none after.
      guard let number = canonicalNumber(name) else { return nil }
      guard let build = try buildRecord(organization: path[0], pipeline: path[1], number: number) else { return nil }
      // The time a listing of the pipeline gives it too, so a path's time does not depend on the way to it.
      return NamespaceEntry(
        name: name, content: .directory(key: "/\(path[0])/\(path[1])/\(number)"), modified: Self.time(of: build))
    }
    return try list(directory: key).entries.first { sameBytes($0.name, name) }
  }

  // MARK: Levels

  private func organizationsListing() throws(FilesystemError) -> NamespaceListing {
    let organizations = try fresh(
      listing: "organizations",
      cached: { () throws(CatalogError) in try catalog.organizations() },
      fetch: { () throws(FilesystemError) in
        let found = try call("listing organizations") { () throws(BuildkiteError) in try api.organizations() }
        warnOfDuplicates(found.map(\.slug), "organizations", in: "/")
        try store { () throws(CatalogError) in
          try catalog.upsert(organizations: found.map { CatalogOrganization(id: $0.id, slug: $0.slug, name: $0.name) })
        }
      })
    let times = try stored { () throws(CatalogError) in try catalog.newestBuildTimesOfOrganizations() }
    return directories(timed(organizations.map(\.slug), times), under: "", ttl: configuration.listingTTL)
  }

  private func pipelinesListing(organization: String) throws(FilesystemError) -> NamespaceListing {
    let pipelines = try fresh(
      listing: "pipelines:\(organization)",
      cached: { () throws(CatalogError) in try catalog.pipelines(organizationSlug: organization) },
      fetch: { () throws(FilesystemError) in
        let found = try call("listing the pipelines of \(organization)") { () throws(BuildkiteError) in
          try api.pipelines(organization: organization)
        }
        warnOfDuplicates(found.map(\.slug), "pipelines", in: "/\(organization)")
        try store { () throws(CatalogError) in
          try catalog.upsert(
            pipelines: found.map {
              CatalogPipeline(id: $0.id, organizationSlug: organization, slug: $0.slug, name: $0.name)
            })
        }
      })
    if pipelines.isEmpty, try stored({ () throws(CatalogError) in try catalog.organization(slug: organization) }) == nil
    {
      throw FilesystemError(.notFound, "no organization \(organization)")
    }
    let times = try stored { () throws(CatalogError) in try catalog.newestBuildTimes(organizationSlug: organization) }
    return directories(timed(pipelines.map(\.slug), times), under: "/\(organization)", ttl: configuration.listingTTL)
  }

  private func buildsListing(organization: String, pipeline: String) throws(FilesystemError) -> NamespaceListing {
    let limit = configuration.recentBuilds
    let asOf = configuration.asOf?.seconds
    let builds = try fresh(
      listing: "builds:\(organization)/\(pipeline)" + (asOf.map { "@\($0)" } ?? ""),
      cached: { () throws(CatalogError) in
        try catalog.builds(
          organizationSlug: organization, pipelineSlug: pipeline, limit: limit, before: nil, createdAtMost: asOf)
      },
      fetch: { () throws(FilesystemError) in
        var fetched = 0
        var perPage = Self.pageSizes[0]
        while fetched < limit {
          // Pages of one size all the way, so that page N starts where page N-1 ended (a page's
          // offset counts in pages of the size asked for); the last one is cut to the limit.
          let page = try buildsPage(organization, pipeline, page: fetched / perPage + 1, perPage: &perPage)
          let builds = Array(page.builds.prefix(limit - fetched))
          try store { () throws(CatalogError) in
            // Each build came with its jobs: its own record is as fresh as this listing.
            try catalog.storeListed(builds, organization: organization, pipeline: pipeline, at: now(), logger: logger)
          }
          fetched += builds.count
          guard page.nextPage != nil, !builds.isEmpty else { break }
        }
      })
    var listing = directories(
      builds.map { (String($0.number), Self.time(of: $0)) }, under: "/\(organization)/\(pipeline)",
      ttl: configuration.listingTTL,
      check: { canonicalNumber($0) == nil ? "a build number is never below 0" : nil })
    // Older builds exist beyond the window: they are found by number.
    listing.isComplete = false
    return listing
  }

  /// The sizes a page of builds is asked for in: Buildkite's most, then each a divisor of the one
  /// before, so that a walk that had to shrink its pages still starts the next one where it stopped.
  static let pageSizes = [100, 50, 25, 5, 1]

  /// Buildkite's `created_to` (builds created before it) for a mount `--as-of`: the second after the
  /// time, since the catalog keeps creation times to the second.
  private var createdTo: Double? { configuration.asOf.map { Double($0.seconds + 1) } }

  /// Page `page` of a pipeline's builds (newest first), `perPage` builds a page. An answer too large
  /// for the client (builds of thousands of jobs each) is asked for again with fewer builds, and
  /// `perPage` keeps the smaller size for the pages after; one build too large alone is listed
  /// without its jobs (`exclude_jobs`), which are then listed through the jobs endpoint, page by
  /// page, as `bklogfs sync` does (`OrganizationSync`).
  private func buildsPage(_ organization: String, _ pipeline: String, page: Int, perPage: inout Int)
    throws(FilesystemError) -> BuildsPage
  {
    let what = "listing the builds of \(organization)/\(pipeline)"
    var page = page
    while true {
      let query = BuildQuery(createdTo: createdTo, includeRetriedJobs: true, page: page, perPage: perPage)
      do throws(BuildkiteError) {
        return try api.buildsPage(organization: organization, pipeline: pipeline, query: query)
      } catch  where error.isAnswerTooLarge {
        guard let smaller = Self.pageSizes.first(where: { $0 < perPage }) else {
          logger.notice("\(what): \(error.message); listing the build without jobs and its jobs apart")
          break
        }
        logger.notice("\(what): \(error.message); asking for \(smaller) builds a page")
        page = (page - 1) * perPage / smaller + 1
        perPage = smaller
      } catch {
        throw FilesystemError(error, context: what)
      }
    }
    let query = BuildQuery(createdTo: createdTo, includeRetriedJobs: true, page: page, perPage: perPage)
    return try call(what) { () throws(BuildkiteError) in
      try api.buildsPageWithJobsApart(organization: organization, pipeline: pipeline, query: query)
    }
  }

  private func buildListing(organization: String, pipeline: String, number: Int) throws(FilesystemError)
    -> NamespaceListing
  {
    guard let build = try buildRecord(organization: organization, pipeline: pipeline, number: number) else {
      throw FilesystemError(.notFound, "no build \(organization)/\(pipeline)/\(number)")
    }
    let jobs = try stored { () throws(CatalogError) in try catalog.jobs(buildID: build.id) }.filter {
      $0.type == "script"
    }
    var entries: [NamespaceEntry] = []
    var leftOut: [(source: String, reason: String)] = []
    var logNames: [String: String] = [:]
    // Each log's time, which its alias shows too.
    var logTimes: [String: Timestamp] = [:]
    let modified = Self.time(of: build) ?? Timestamp(seconds: 0)
    let (stored, exported) = try storedLogs(of: build, organization: organization, pipeline: pipeline)
    // By `String` equality, so IDs the API should never send (two that are canonically equivalent)
    // cannot stand for each other in the dictionaries below.
    var seenIDs = Set<String>()
    var named: [CatalogJob] = []
    for job in jobs {
      let name = "\(job.id).log"
      let place = "job \(job.id) of \(organization)/\(pipeline)/\(number)"
      // Checked before any request: the ID names the log in the API's URLs and in the tree.
      if let problem = nameProblem(job.id) ?? nameProblem(name) {
        leftOut.append((place, "its ID cannot be a file name: \(problem)"))
        continue
      }
      guard seenIDs.insert(job.id).inserted else {
        leftOut.append((place + " (a second job of that ID)", "a job of the same ID is shown"))
        continue
      }
      if let (client, object) = stored[job.id] {
        // The archive's or the export's copy: final once written, sized by the listing, no API request.
        logNames[job.id] = name
        logTimes[job.id] = object.lastModified
        named.append(job)
        let content = FileContent(
          size: object.size, modified: object.lastModified, isImmutable: true,
          source: .object(client: client, key: object.key, etag: object.etag, version: object.versionID),
          storage: object.storage)
        entries.append(NamespaceEntry(name: name, content: .file(content)))
        continue
      }
      if let asOf = configuration.asOf, (job.finishedAt ?? .max) > asOf.seconds {
        // Not in the archive at the time, nor finished by then: its log was not what it is now.
        continue
      }
      if exported {
        // A build's export holds every log it kept, and Buildkite deletes an exported build.
        leftOut.append(
          (
            "the log of job \(job.id) in \(organization)/\(pipeline)/\(number)",
            "its build's export holds no log for it"
          ))
        continue
      }
      let key = BuildkiteLogStore.key(organization: organization, pipeline: pipeline, number: number, job: job.id)
      let finished = build.isFinished && job.finishedAt != nil
      // A size only a finished job's log keeps; any other is learned when the log is opened, so a
      // listing asks nothing per job (doc/SEMANTICS.md, "Log sizes").
      let size = finished ? job.logSize : nil
      if size == Self.noLog {
        leftOut.append(
          ("the log of job \(job.id) in \(organization)/\(pipeline)/\(number)", "Buildkite has no log for it"))
        continue
      }
      logNames[job.id] = name
      let logTime = Timestamp(seconds: job.finishedAt ?? build.createdAt ?? 0)
      logTimes[job.id] = logTime
      named.append(job)
      let content = FileContent(
        size: size.map { UInt64($0) }, modified: logTime, isImmutable: finished,
        source: .object(client: logStore, key: key, etag: size.map { BuildkiteLogStore.etag(size: UInt64($0)) } ?? ""))
      entries.append(NamespaceEntry(name: name, content: .file(content)))
    }
    let aliases = jobAliases(
      named.map {
        JobAliasInput(
          id: $0.id, name: $0.name, stepKey: $0.stepKey, parallelGroupIndex: $0.parallelGroupIndex,
          parallelGroupTotal: $0.parallelGroupTotal, retriedInJobID: $0.retriedInJobID)
      }, reserved: Set(logNames.values).union(["build.json"]))
    for job in named {
      if let alias = aliases[job.id], let target = logNames[job.id] {
        entries.append(NamespaceEntry(name: alias, content: .symlink(target: target), modified: logTimes[job.id]))
      }
    }
    entries.append(
      NamespaceEntry(
        name: "build.json",
        content: .file(
          FileContent(
            size: UInt64(build.json.count), modified: modified, isImmutable: build.isFinished,
            source: .bytes(build.json)
          ))))
    return NamespaceListing(
      entries: entries, leftOut: leftOut,
      ttl: build.isFinished ? configuration.finishedBuildTTL : configuration.listingTTL)
  }

  // MARK: Log sizes

  /// The size the catalog keeps for a finished job whose log Buildkite does not have (a log opened
  /// once and answered 404, such as a deleted one): its file is left out of the build from then on.
  static let noLog: Int64 = -1

  /// A log in Buildkite's storage, sized when opened: one suffix request for its last `tail` bytes,
  /// whose answer gives its size too. A finished job's size goes into the catalog, so that later
  /// listings and mounts show it with no request; a running job's log is sized again at each open
  /// after its listing's TTL, as it grows.
  ///
  /// With a shared cache, a finished job's size is read from the record another machine left there
  /// first (one GET of the shared bucket, no API request), and each size learned from the API or
  /// the catalog is recorded there. A size from a record stays out of the catalog, which holds only
  /// what the API said: it is unconfirmed, and dropped if a read finds the log another size.
  public func size(file content: FileContent, tail: Int) throws(FilesystemError) -> SizedFile {
    guard case .object(let client, let key, _, _) = content.source, client.identity == logStore.identity,
      let job = key.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init)
    else {
      throw FilesystemError(.local, "only logs in Buildkite's storage are sized when opened")
    }
    if content.isImmutable, let known = try stored({ () throws(CatalogError) in try catalog.job(id: job)?.logSize }) {
      // Learned since this file was listed (another mount, or an open that found it gone).
      guard known != Self.noLog else { throw FilesystemError(.notFound, "Buildkite has no log for job \(job)") }
      sharedSizes?.record(source: logStore.identity, key: key, size: UInt64(known))
      return SizedFile(content: sized(content, key: key, finishedSize: UInt64(known)), tail: [])
    }
    if content.isImmutable, let shared = sharedSizes?.size(source: logStore.identity, key: key) {
      return SizedFile(content: sized(content, key: key, finishedSize: shared), tail: [], isConfirmed: false)
    }
    let found: (bytes: [UInt8], size: UInt64)
    do throws(ObjectStoreError) {
      found = try logStore.tail(key: key, count: tail)
    } catch {
      if error.kind == .notFound && content.isImmutable {
        try store { () throws(CatalogError) in try catalog.setLogSize(jobID: job, size: Self.noLog) }
      }
      throw FilesystemError(error, context: "sizing the log of job \(job)")
    }
    if content.isImmutable {
      try store { () throws(CatalogError) in try catalog.setLogSize(jobID: job, size: Int64(found.size)) }
      sharedSizes?.record(source: logStore.identity, key: key, size: found.size)
      return SizedFile(content: sized(content, key: key, finishedSize: found.size), tail: found.bytes)
    }
    var growing = content
    growing.size = found.size
    growing.source = .object(client: logStore, key: key, etag: BuildkiteLogStore.growingETag(size: found.size))
    return SizedFile(content: growing, tail: found.bytes)
  }

  /// A finished job's log with its size, and the ETag that says it.
  private func sized(_ content: FileContent, key: String, finishedSize size: UInt64) -> FileContent {
    var sized = content
    sized.size = size
    sized.source = .object(client: logStore, key: key, etag: BuildkiteLogStore.etag(size: size))
    return sized
  }

  /// A log sized from a shared record that a read then found another size: the record is dropped.
  public func sizeWasWrong(file content: FileContent) {
    guard case .object(let client, let key, _, _) = content.source, client.identity == logStore.identity else { return }
    sharedSizes?.drop(source: logStore.identity, key: key)
  }

  // MARK: Archive and exports

  /// The logs the archive, else the build's export, holds for a build, by job UUID, and whether the
  /// build's export was listed.
  private func storedLogs(of build: CatalogBuild, organization: String, pipeline: String) throws(FilesystemError)
    -> (logs: [String: (any ObjectClient, ObjectInfo)], exported: Bool)
  {
    var found: [String: (any ObjectClient, ObjectInfo)] = [:]
    var exported = false
    if let exports,
      let folder = try stored({ () throws(CatalogError) in try catalog.exportLocation(buildID: build.id) })
    {
      do throws(ObjectStoreError) {
        let page = try exports.client.listAll(prefix: folder + "jobs/", delimiter: "/")
        for object in page.objects {
          let name = String(decoding: object.key.utf8.dropFirst(folder.utf8.count + 5), as: UTF8.self)
          if name.hasPrefix("job-") && name.hasSuffix(".log") {
            found[String(name.dropFirst(4).dropLast(4))] = (exports.client, object)
          }
        }
        exported = true
      } catch {
        logger.warning("the export of build \(build.id) could not be listed: \(error.message)")
      }
    }
    if let archive {
      for (job, object) in try archivedLogs(of: build, organization: organization, pipeline: pipeline) {
        found[job] = (archive.client, object)
      }
    }
    return (found, exported)
  }

  /// A build the API no longer has (past retention), from the build exports. The first time a
  /// pipeline needs one, its export folders are found with one listing of the organization's exports
  /// and each of its builds' `build.json.gz` is read once; the catalog keeps them all, with how far
  /// the scan went. Once that is older than the listing TTL, a number the catalog lacks costs a
  /// listing of the exports since the last date scanned, and reads only the folders new since.
  private func exportedBuild(organization: String, pipeline: String, number: Int) throws(FilesystemError)
    -> CatalogBuild?
  {
    guard let exports else { return nil }
    let scanned = "exports:\(organization)/\(pipeline)"
    let fetchedAt = try stored { () throws(CatalogError) in try catalog.listingFetchedAt(scanned) }
    if !isFresh(fetchedAt) {
      try scanExports(exports, organization: organization, pipeline: pipeline)
      try store { () throws(CatalogError) in try catalog.setListingFetched(scanned, at: now()) }
    }
    return try stored { () throws(CatalogError) in
      try catalog.build(organizationSlug: organization, pipelineSlug: pipeline, number: number)
    }
  }

  private func scanExports(
    _ exports: (client: any ObjectClient, prefix: String), organization: String, pipeline: String
  )
    throws(FilesystemError)
  {
    guard
      let organizationID = try stored({ () throws(CatalogError) in try catalog.organization(slug: organization)?.id }),
      let pipelineID = try stored({ () throws(CatalogError) in
        try catalog.pipeline(organizationSlug: organization, slug: pipeline)?.id
      })
    else {
      logger.warning("cannot look in the build exports for \(organization)/\(pipeline): its UUIDs are not known yet")
      return
    }
    // Exports are written under `org={uuid}/date={YYYY-MM-DD}/`: a scan goes on from the last date
    // the previous one saw (listed again, as more may have come for it).
    let organizationPrefix = "\(exports.prefix)org=\(organizationID)/"
    let through = try stored { () throws(CatalogError) in try catalog.exportScanThrough(pipelineID: pipelineID) }
    let page: ListPage
    do throws(ObjectStoreError) {
      page = try exports.client.listAll(
        prefix: organizationPrefix, delimiter: nil, startAfter: through.map { organizationPrefix + $0 })
    } catch {
      throw FilesystemError(error, context: "listing the build exports of \(organization)")
    }
    let marker = "/pipeline=\(pipelineID)/build="
    let keys = Set(page.objects.map(\.key))
    let known = try stored { () throws(CatalogError) in
      try catalog.exportLocations(containing: "/pipeline=\(pipelineID)/")
    }
    // Each of the pipeline's builds listed, by its `build.json.gz` and its folder; those not read before.
    let folders = page.objects.filter { $0.key.hasSuffix("/build.json.gz") && $0.key.contains(marker) }
      .map { (object: $0, folder: String($0.key.dropLast("build.json.gz".count))) }
    let new = folders.filter { !known.contains($0.folder) }
    logger.info(
      "the build exports of \(organization)\(through.map { " since \($0)" } ?? "") hold \(page.objects.count) objects, \(folders.count) builds of \(pipeline), \(new.count) not seen before"
    )
    var failed: [String] = []
    for (object, folder) in new {
      do throws(FilesystemError) {
        let build = try exportedBuildObject(exports.client, object, folder: folder, keys: keys)
        try store { () throws(CatalogError) in
          try catalog.upsert(builds: [record(build, organization: organization, pipeline: pipeline)])
          try catalog.setExportLocation(buildID: build.id, location: folder)
        }
      } catch {
        logger.warning("left out the export \(folder): \(error.message)")
        failed.append(folder)
      }
    }
    // The next scan starts at the newest date folder listed, or at the oldest one a folder could not
    // be read from, so that it is tried again.
    func date(_ key: String) -> String? {
      let inside = key.utf8.dropFirst(organizationPrefix.utf8.count)
      guard inside.starts(with: "date=".utf8), let slash = inside.firstIndex(of: UInt8(ascii: "/")) else { return nil }
      return String(decoding: inside[..<slash], as: UTF8.self)
    }
    let next =
      failed.compactMap(date).min(by: utf8Less) ?? page.objects.compactMap { date($0.key) }.max(by: utf8Less)
    if let next {
      try store { () throws(CatalogError) in try catalog.setExportScanThrough(pipelineID: pipelineID, next) }
    }
  }

  /// One export folder's build, with its jobs from the build or from `jobs/job-{uuid}.json.gz`.
  private func exportedBuildObject(_ client: any ObjectClient, _ object: ObjectInfo, folder: String, keys: Set<String>)
    throws(FilesystemError) -> Build
  {
    func json(_ key: String, size: UInt64) throws(FilesystemError) -> [UInt8] {
      // Its JSON may be 64 MiB, and gzip makes nothing much larger than it was (stored blocks add
      // 5 bytes in 64 KiB): a bigger file is not fetched.
      let limit = 64 << 20
      guard size <= UInt64(limit + limit / 64) else {
        throw FilesystemError(.malformed, "\(key) is \(size) bytes, more than a build export's \(limit) bytes of JSON")
      }
      let compressed: [UInt8]
      do throws(ObjectStoreError) {
        compressed = try client.getBytes(key: key, range: 0..<size)
      } catch {
        throw FilesystemError(error, context: "reading \(key)")
      }
      do throws(GzipError) {
        return try Gzip.decompress(compressed, limit: limit)
      } catch {
        throw FilesystemError(.malformed, "\(key): \(error.description)", cause: error)
      }
    }
    var build: Build
    let buildJSON = try json(object.key, size: object.size)
    do throws(BuildkiteError) {
      build = try Build(json: buildJSON)
    } catch {
      throw FilesystemError(.malformed, "\(object.key) is not a build: \(error.message)", cause: error)
    }
    if build.jobs.isEmpty {
      let jobKeys = keys.filter { $0.hasPrefix(folder + "jobs/job-") && $0.hasSuffix(".json.gz") }.sorted()
      for key in jobKeys {
        let size: UInt64
        do throws(ObjectStoreError) { size = try client.head(key: key).size } catch {
          throw FilesystemError(error, context: "reading \(key)")
        }
        let jobJSON = try json(key, size: size)
        do throws(BuildkiteError) {
          build.jobs.append(try Job(json: jobJSON))
        } catch {
          throw FilesystemError(.malformed, "\(key) is not a job: \(error.message)", cause: error)
        }
      }
    }
    return build
  }

  /// The logs the private archive holds for a build, by job UUID: one listing of
  /// `{org}/{pipeline}/{build}/`, or of the older layout `{pipeline}/{build}/` when that is empty.
  /// An archive that fails to answer is logged and passed over: the API serves the logs instead.
  private func archivedLogs(of build: CatalogBuild, organization: String, pipeline: String) throws(FilesystemError)
    -> [String: ObjectInfo]
  {
    guard let archive else { return [:] }
    let organizationID = try stored { () throws(CatalogError) in try catalog.organization(slug: organization)?.id }
    let pipelineID = try stored { () throws(CatalogError) in
      try catalog.pipeline(organizationSlug: organization, slug: pipeline)?.id
    }
    guard let pipelineID else { return [:] }
    var prefixes = ["\(archive.prefix)\(pipelineID)/\(build.id)/"]
    if let organizationID { prefixes.insert("\(archive.prefix)\(organizationID)/\(pipelineID)/\(build.id)/", at: 0) }
    for prefix in prefixes {
      let page: ListPage
      do throws(ObjectStoreError) {
        page = try archive.client.listAll(prefix: prefix, delimiter: "/")
      } catch {
        logger.warning("the archive could not be listed at \(prefix), reading logs from Buildkite: \(error.message)")
        return [:]
      }
      var found: [String: ObjectInfo] = [:]
      for object in page.objects where object.key.hasSuffix(".log") {
        found[String(decoding: object.key.utf8.dropFirst(prefix.utf8.count).dropLast(4), as: UTF8.self)] = object
      }
      if !found.isEmpty { return found }
    }
    return [:]
  }

  // MARK: Catalog and API

  /// A build from the catalog, or from the API when the catalog lacks it or it was still running
  /// when last seen (and its record is older than the listing TTL).
  /// The build of that number, or nil when there is none, or (`--as-of`) none yet at the time.
  private func buildRecord(organization: String, pipeline: String, number: Int) throws(FilesystemError)
    -> CatalogBuild?
  {
    let build = try buildRecordNow(organization: organization, pipeline: pipeline, number: number)
    if let asOf = configuration.asOf, let build, let created = build.createdAt, created > asOf.seconds { return nil }
    return build
  }

  private func buildRecordNow(organization: String, pipeline: String, number: Int) throws(FilesystemError)
    -> CatalogBuild?
  {
    let cached = try stored { () throws(CatalogError) in
      try catalog.build(organizationSlug: organization, pipelineSlug: pipeline, number: number)
    }
    let listing = buildListingKey(organization, pipeline, number)
    if let cached {
      let fetchedAt = try stored { () throws(CatalogError) in try catalog.listingFetchedAt(listing) }
      if cached.isFinished || isFresh(fetchedAt) || isOffline { return cached }
    }
    let build: Build
    do throws(BuildkiteError) {
      build = try api.build(organization: organization, pipeline: pipeline, number: number, includeRetriedJobs: true)
    } catch  where error.kind == .notFound {
      // Past retention, perhaps: the build exports may hold it.
      return try exportedBuild(organization: organization, pipeline: pipeline, number: number)
    } catch  where cached != nil && isOffline(error) {
      markOffline()
      logger.warning("serving build \(organization)/\(pipeline)/\(number) from the catalog: \(error.message)")
      return cached
    } catch  where error.isAnswerTooLarge {
      // A build of so many jobs that its own answer is too large: the builds' listing takes it in
      // parts (`buildsPage`), and so does `bklogfs sync`; the API has no build without its jobs.
      if let cached {
        logger.warning(
          "serving build \(organization)/\(pipeline)/\(number) from the catalog: \(error.message)")
        return cached
      }
      throw FilesystemError(
        ObjectStoreError(error),
        context: "fetching build \(organization)/\(pipeline)/\(number) (a build of very many jobs: listing its "
          + "pipeline, or `bklogfs sync`, takes it in parts)")
    } catch {
      throw FilesystemError(ObjectStoreError(error), context: "fetching build \(organization)/\(pipeline)/\(number)")
    }
    try store { () throws(CatalogError) in
      try catalog.upsert(builds: [record(build, organization: organization, pipeline: pipeline)])
      try catalog.setListingFetched(listing, at: now())
    }
    return try stored { () throws(CatalogError) in
      try catalog.build(organizationSlug: organization, pipelineSlug: pipeline, number: number)
    }
  }

  /// What the catalog holds for a listing, fetched again first when older than the TTL; when the
  /// API cannot be reached, the catalog's copy is served if it has one.
  private func fresh<Item>(
    listing: String, cached: () throws(CatalogError) -> [Item], fetch: () throws(FilesystemError) -> Void
  ) throws(FilesystemError) -> [Item] {
    let fetchedAt = try stored { () throws(CatalogError) in try catalog.listingFetchedAt(listing) }
    if !isFresh(fetchedAt) && !(fetchedAt != nil && isOffline) {
      do throws(FilesystemError) {
        try fetch()
        try store { () throws(CatalogError) in try catalog.setListingFetched(listing, at: now()) }
      } catch  where fetchedAt != nil && Self.servedFromCatalog.contains(error.kind) {
        markOffline()
        logger.warning("serving \(listing) from the catalog: \(error.message)")
      }
    }
    return try stored(cached)
  }

  /// Failures after which a listing the catalog holds is served from it: the API cannot answer
  /// now, but a refused token or a missing name must show.
  private static let servedFromCatalog: Set<FilesystemError.Kind> = [
    .unreachable, .timedOut, .server, .malformed, .invalidRequest, .local,
  ]

  private func isFresh(_ fetchedAt: Int64?) -> Bool {
    guard let fetchedAt else { return false }
    return Double(now() - fetchedAt) < configuration.listingTTL
  }

  private var isOffline: Bool { now() < offlineUntil.withLock { $0 } }

  private func markOffline() {
    let until = now() + Self.offlinePause
    offlineUntil.withLock { $0 = max($0, until) }
  }

  private func isOffline(_ error: BuildkiteError) -> Bool {
    switch error.kind {
    case .unreachable, .timedOut, .server, .rateLimited: true
    default: false
    }
  }

  private func call<Result>(_ what: String, _ body: () throws(BuildkiteError) -> Result) throws(FilesystemError)
    -> Result
  {
    do throws(BuildkiteError) {
      return try body()
    } catch {
      throw FilesystemError(error, context: what)
    }
  }

  private func stored<Result>(_ body: () throws(CatalogError) -> Result) throws(FilesystemError) -> Result {
    do throws(CatalogError) {
      return try body()
    } catch {
      throw FilesystemError(.local, "the catalog failed: \(error.description)", cause: error)
    }
  }

  private func store(_ body: () throws(CatalogError) -> Void) throws(FilesystemError) {
    try stored(body)
  }

  private func warnOfDuplicates(_ names: [String], _ what: String, in place: String) {
    BuildkiteNames.warnOfDuplicates(names, what, in: place, logger: logger)
  }

  private func record(_ build: Build, organization: String, pipeline: String) -> (
    build: CatalogBuild, jobs: [CatalogJob]
  ) {
    catalogRecord(of: build, organization: organization, pipeline: pipeline, logger: logger)
  }

  /// A directory's name and its time (nil shows 0).
  private typealias TimedName = (name: String, modified: Timestamp?)

  /// A directory of each name, with its time; names that cannot be file names (or fail `check`) are
  /// left out, and of names that are the same bytes the first is kept (the API should never send two).
  private func directories(
    _ names: [TimedName], under parent: String, ttl: Double, check: (String) -> String? = { _ in nil }
  ) -> NamespaceListing {
    var entries: [NamespaceEntry] = []
    var leftOut: [(source: String, reason: String)] = []
    var seen = Set<ExactName>()
    for (name, modified) in names {
      if let problem = nameProblem(name) ?? check(name) {
        leftOut.append(("\(parent)/\(name)", problem))
      } else if !seen.insert(ExactName(name)).inserted {
        leftOut.append(("\(parent)/\(name) (a second one of that name)", "one of the same name is shown"))
      } else {
        entries.append(NamespaceEntry(name: name, content: .directory(key: "\(parent)/\(name)"), modified: modified))
      }
    }
    return NamespaceListing(entries: entries, leftOut: leftOut, ttl: ttl)
  }

  /// Each slug with the newest build time the catalog holds under it (nil when none), matched byte for byte.
  private func timed(_ slugs: [String], _ times: [(slug: String, time: Int64)]) -> [TimedName] {
    let bySlug = Dictionary(times.map { (ExactName($0.slug), $0.time) }, uniquingKeysWith: max)
    return slugs.map { ($0, bySlug[ExactName($0)].map { Timestamp(seconds: $0) }) }
  }

  /// A build's directory time: when it finished, else when it was created (a running build), the
  /// time its `build.json` shows too. It moves only when the build finishes.
  static func time(of build: CatalogBuild) -> Timestamp? {
    (build.finishedAt ?? build.createdAt).map { Timestamp(seconds: $0) }
  }

  /// Wall-clock seconds: the catalog keeps when listings were fetched across mounts.
  private func now() -> Int64 { Int64(clock.secondsSinceEpoch().rounded(.down)) }
}

/// The catalog's key for when a build's own record was last fetched.
func buildListingKey(_ organization: String, _ pipeline: String, _ number: Int) -> String {
  "build:\(organization)/\(pipeline)/\(number)"
}

/// A build number as Buildkite writes it (no sign, no leading zero), so each build has one name.
func canonicalNumber(_ name: String) -> Int? {
  guard let number = Int(name), number >= 0, String(number) == name else { return nil }
  return number
}

extension FilesystemError {
  /// A Buildkite API failure, with what was being done in front and itself as the cause.
  public init(_ error: BuildkiteError, context: String) {
    self.init(Kind(ObjectStoreError(error).kind), "\(context) failed: \(error.message)", cause: error)
  }
}
