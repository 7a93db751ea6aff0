import CSQLite
public import Logging
import Synchronization

/// Names learned from Buildkite, kept in SQLite so a remount of finished builds needs no API call and a mount
/// without network still knows what it learned.
///
/// Holds only what the API says about organizations, pipelines, builds and jobs, and when listings were
/// fetched; never a token or any credential.
///
/// Strings (ids, slugs, names) are stored exactly as given, as UTF-8 text bound with its byte length, so any
/// Unicode, quotes and even embedded NULs round-trip, and lookups compare them byte for byte; a build's or job's
/// UUID in canonical form is held as its 16 bytes, and reads back as the same text (`CompactSchema`).
///
/// Thread-safe, for plain threads (FUSE workers). Each SQLite connection, opened `SQLITE_OPEN_NOMUTEX`, sits
/// behind its own `Mutex`: a call takes a connection's lock, runs its statements (prepared once, then reused) and
/// releases it. The lock has to cover a whole bind-step-reset sequence of a cached statement anyway, so SQLite's
/// own per-call mutex would add nothing. A file-backed catalog has one writing connection and a few read-only
/// ones: in WAL mode readers see the last committed state and never wait for a batch being written, so a lookup
/// (an index hit of microseconds) is not held up by an upsert. Writes are serialised on the writer; another
/// process, or another `Catalog` on the same file, waits for SQLite's write lock through a busy timeout, and every
/// write transaction begins `IMMEDIATE` so it waits for the lock rather than failing on upgrade. An in-memory
/// catalog has the one connection only.
public final class Catalog: Sendable {
  /// The schema version this code writes and understands.
  public static var schemaVersion: Int { Int(Schema.currentVersion) }

  /// How long a statement waits for another connection's lock before failing.
  static let busyTimeoutMilliseconds: Int32 = 5_000

  /// The database file, or nil for an in-memory catalog.
  public let path: String?
  private let logger: Logger
  /// The connection that writes (and, for an in-memory catalog, also reads).
  private let writer: Connection
  /// Connections that only read, so lookups need not wait for a batch being written; empty in memory.
  private let readers: [Connection]
  private let nextReader = Atomic<Int>(0)

  /// How many read-only connections a file-backed catalog opens.
  static let readerCount = 3

  /// One SQLite connection and its cached statements, used by one thread at a time.
  private final class Connection: Sendable {
    let database: Mutex<SQLiteDatabase>
    init(_ database: consuming sending SQLiteDatabase) { self.database = Mutex(database) }
  }

  /// Opens or creates the catalog at `path` (file mode 0600, missing parent directories created 0700), in WAL
  /// mode with a busy timeout, and brings its schema to the current version. A file written by a newer bklogfs,
  /// a file that is not a SQLite database, or a database that is not a bklogfs catalog is refused with one plain
  /// sentence naming the path.
  public init(path: String, logger: Logger) throws(CatalogError) {
    try CatalogFile.prepare(path: path)
    let database = try Self.open(path: path, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
    try Self.configure(database, path: path, inMemory: false, logger: logger)
    var readers: [Connection] = []
    for _ in 0..<Self.readerCount {
      let reader = try Self.open(path: path, flags: SQLITE_OPEN_READWRITE)
      do throws(SQLiteError) {
        reader.setBusyTimeout(milliseconds: Self.busyTimeoutMilliseconds)
        // A guard: nothing sent to a reader may write.
        try reader.execute("PRAGMA query_only = 1", purpose: "make a connection read-only")
      } catch {
        throw Self.catalogError(error, path: path)
      }
      readers.append(Connection(reader))
    }
    self.path = path
    self.logger = logger
    self.writer = Connection(database)
    self.readers = readers
  }

  private init(inMemoryWithLogger logger: Logger) throws(CatalogError) {
    let database = try Self.open(path: ":memory:", flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY)
    try Self.configure(database, path: nil, inMemory: true, logger: logger)
    self.path = nil
    self.logger = logger
    self.writer = Connection(database)
    self.readers = []
  }

  /// A catalog that lives in memory and is gone when released; for tests.
  public static func inMemory(logger: Logger) throws(CatalogError) -> Catalog {
    try Catalog(inMemoryWithLogger: logger)
  }

  // MARK: Organizations

  private static let organizationColumns = "id, slug, name"

  private static func organization(_ row: Statement) -> CatalogOrganization {
    CatalogOrganization(id: row.text(0) ?? "", slug: row.text(1) ?? "", name: row.text(2) ?? "")
  }

  /// Inserts or replaces organizations by id; an organization already stored under the same slug with another
  /// id is replaced too (slugs are unique).
  public func upsert(organizations: [CatalogOrganization]) throws(CatalogError) {
    try write { (db) throws(SQLiteError) in
      try db.transaction(purpose: "store organizations") { () throws(SQLiteError) in
        for organization in organizations {
          try db.run(
            "INSERT OR REPLACE INTO organizations (\(Self.organizationColumns)) VALUES (?1, ?2, ?3)",
            purpose: "store an organization",
            binding: [.text(organization.id), .text(organization.slug), .text(organization.name)])
        }
      }
    }
  }

  /// Every organization, by slug.
  public func organizations() throws(CatalogError) -> [CatalogOrganization] {
    try read { (db) throws(SQLiteError) in
      try db.rows(
        "SELECT \(Self.organizationColumns) FROM organizations ORDER BY slug", purpose: "list organizations",
        Self.organization)
    }
  }

  public func organization(slug: String) throws(CatalogError) -> CatalogOrganization? {
    try read { (db) throws(SQLiteError) in
      try db.firstRow(
        "SELECT \(Self.organizationColumns) FROM organizations WHERE slug = ?1",
        purpose: "look up an organization by slug", binding: [.text(slug)], Self.organization)
    }
  }

  public func organization(id: String) throws(CatalogError) -> CatalogOrganization? {
    try read { (db) throws(SQLiteError) in
      try db.firstRow(
        "SELECT \(Self.organizationColumns) FROM organizations WHERE id = ?1",
        purpose: "look up an organization by id", binding: [.text(id)], Self.organization)
    }
  }

  // MARK: Pipelines

  private static let pipelineColumns = "id, organization_slug, slug, name"

  private static func pipeline(_ row: Statement) -> CatalogPipeline {
    CatalogPipeline(
      id: row.text(0) ?? "", organizationSlug: row.text(1) ?? "", slug: row.text(2) ?? "", name: row.text(3) ?? "")
  }

  /// Inserts or replaces pipelines by id; a pipeline already stored under the same (organization, slug) with
  /// another id is replaced too.
  public func upsert(pipelines: [CatalogPipeline]) throws(CatalogError) {
    try write { (db) throws(SQLiteError) in
      try db.transaction(purpose: "store pipelines") { () throws(SQLiteError) in
        for pipeline in pipelines {
          try db.run(
            "INSERT OR REPLACE INTO pipelines (\(Self.pipelineColumns)) VALUES (?1, ?2, ?3, ?4)",
            purpose: "store a pipeline",
            binding: [
              .text(pipeline.id), .text(pipeline.organizationSlug), .text(pipeline.slug), .text(pipeline.name),
            ])
        }
      }
    }
  }

  /// The pipelines of an organization, by slug.
  public func pipelines(organizationSlug: String) throws(CatalogError) -> [CatalogPipeline] {
    try read { (db) throws(SQLiteError) in
      try db.rows(
        "SELECT \(Self.pipelineColumns) FROM pipelines WHERE organization_slug = ?1 ORDER BY slug",
        purpose: "list an organization's pipelines", binding: [.text(organizationSlug)], Self.pipeline)
    }
  }

  public func pipeline(organizationSlug: String, slug: String) throws(CatalogError) -> CatalogPipeline? {
    try read { (db) throws(SQLiteError) in
      try db.firstRow(
        "SELECT \(Self.pipelineColumns) FROM pipelines WHERE organization_slug = ?1 AND slug = ?2",
        purpose: "look up a pipeline by slug", binding: [.text(organizationSlug), .text(slug)], Self.pipeline)
    }
  }

  public func pipeline(id: String) throws(CatalogError) -> CatalogPipeline? {
    try read { (db) throws(SQLiteError) in
      try db.firstRow(
        "SELECT \(Self.pipelineColumns) FROM pipelines WHERE id = ?1", purpose: "look up a pipeline by id",
        binding: [.text(id)], Self.pipeline)
    }
  }

  // MARK: Builds and jobs

  // Builds and jobs are kept in schema version 6's compact tables (`CompactSchema`).

  private static let buildColumns = """
    b.id, p.organization_slug, p.pipeline_slug, b.number, b.state, b.created_at, b.finished_at, b.is_finished, \
    b.json, b.json_encoding, p.dictionary
    """

  private static let buildTables = "build_records b JOIN build_pipelines p ON p.key = b.pipeline"

  private static func build(_ row: Statement) -> CatalogBuild {
    CatalogBuild(
      id: CompactSchema.uuidText(row, 0) ?? "", organizationSlug: row.text(1) ?? "", pipelineSlug: row.text(2) ?? "",
      number: row.int(3) ?? 0, state: row.text(4) ?? "", createdAt: row.int64(5), finishedAt: row.int64(6),
      isFinished: row.bool(7),
      json: CompactSchema.json(stored: row.blob(8), encoding: row.int64(9) ?? 0, dictionary: row.blob(10)))
  }

  private static let jobColumns = """
    j.id, b.id, j.type, j.name, j.step_key, j.state, j.parallel_group_index, j.parallel_group_total, j.retried, \
    j.retried_in_job_id, j.retries_count, j.started_at, j.finished_at, j.log_size
    """

  private static func job(_ row: Statement) -> CatalogJob {
    CatalogJob(
      id: CompactSchema.uuidText(row, 0) ?? "", buildID: CompactSchema.uuidText(row, 1) ?? "",
      type: CompactSchema.name(row, 2, in: CompactSchema.jobTypes) ?? "", name: row.text(3), stepKey: row.text(4),
      state: CompactSchema.name(row, 5, in: CompactSchema.jobStates),
      parallelGroupIndex: row.int(6), parallelGroupTotal: row.int(7), retried: row.bool(8),
      retriedInJobID: CompactSchema.uuidText(row, 9), retriesCount: row.int(10), startedAt: row.int64(11),
      finishedAt: row.int64(12), logSize: row.int64(13))
  }

  /// `upsert(builds:)`, and in the same transaction records when each of `listings` was fetched and, when given, how
  /// far a sync went: a sync that stops at any point never claims a build it has not stored.
  public func upsert(
    builds: [(build: CatalogBuild, jobs: [CatalogJob])], listingsFetched listings: [String], at time: Int64,
    syncProgress: CatalogSyncProgress? = nil
  ) throws(CatalogError) {
    try write { (db) throws(SQLiteError) in
      try db.transaction(purpose: "store builds") { () throws(SQLiteError) in
        for (build, jobs) in builds {
          try Self.store(build, jobs: jobs, in: db)
        }
        for key in listings {
          try Self.setListingFetched(key, at: time, in: db)
        }
        if let syncProgress {
          try Self.store(syncProgress, in: db)
        }
      }
    }
  }

  /// Inserts or replaces builds with their jobs, all in one transaction.
  ///
  /// A build replaces the stored build with its id, and any other build stored under the same
  /// (organization, pipeline, number), whose jobs are then forgotten.
  ///
  /// Jobs are merged, never forgotten: each given job inserts or replaces the stored job with its id, and a
  /// stored job of the build that the new copy lacks is kept. Buildkite never deletes a job, and an answer
  /// without `include_retried_jobs` lacks the retried attempts, whether the build is finished or still running.
  /// A job's `buildID` is taken from the build it comes with. A job's `logSize` of nil keeps a size learned
  /// earlier (see `setLogSize`).
  ///
  /// `jobs(buildID:)` returns jobs in the order of the latest copy that held them; a kept job keeps its place
  /// from the copy that last held it, ahead of a job given at the same place later.
  public func upsert(builds: [(build: CatalogBuild, jobs: [CatalogJob])]) throws(CatalogError) {
    try write { (db) throws(SQLiteError) in
      try db.transaction(purpose: "store builds") { () throws(SQLiteError) in
        for (build, jobs) in builds {
          try Self.store(build, jobs: jobs, in: db)
        }
      }
    }
  }

  private static func store(_ build: CatalogBuild, jobs: [CatalogJob], in db: SQLiteDatabase) throws(SQLiteError) {
    let key = try CompactSchema.storeBuild(build, in: db)
    for (position, job) in jobs.enumerated() {
      try CompactSchema.storeJob(job, build: key, position: Int64(position), in: db)
    }
  }

  public func build(organizationSlug: String, pipelineSlug: String, number: Int) throws(CatalogError)
    -> CatalogBuild?
  {
    try read { (db) throws(SQLiteError) in
      try db.firstRow(
        """
        SELECT \(Self.buildColumns) FROM \(Self.buildTables)
        WHERE p.organization_slug = ?1 AND p.pipeline_slug = ?2 AND b.number = ?3
        """,
        purpose: "look up a build by number",
        binding: [.text(organizationSlug), .text(pipelineSlug), .integer(Int64(number))], Self.build)
    }
  }

  public func build(id: String) throws(CatalogError) -> CatalogBuild? {
    try read { (db) throws(SQLiteError) in
      try db.firstRow(
        "SELECT \(Self.buildColumns) FROM \(Self.buildTables) WHERE b.id = ?1", purpose: "look up a build by id",
        binding: [CompactSchema.uuidValue(id)], Self.build)
    }
  }

  /// Builds of a pipeline, newest (highest number) first, at most `limit`, optionally only numbers below `before`.
  /// With `createdAtMost`, only builds created then or before (a build of unknown creation time
  /// counts as before), for a mount `--as-of` a time.
  public func builds(
    organizationSlug: String, pipelineSlug: String, limit: Int, before: Int?, createdAtMost: Int64? = nil
  ) throws(CatalogError) -> [CatalogBuild] {
    guard limit > 0 else { return [] }
    return try read { (db) throws(SQLiteError) in
      try db.rows(
        """
        SELECT \(Self.buildColumns) FROM \(Self.buildTables)
        WHERE p.organization_slug = ?1 AND p.pipeline_slug = ?2 AND b.number < ?3
          AND coalesce(b.created_at, 0) <= ?5
        ORDER BY b.number DESC LIMIT ?4
        """,
        purpose: "list a pipeline's builds",
        binding: [
          .text(organizationSlug), .text(pipelineSlug), .integer(before.map { Int64($0) } ?? .max),
          .integer(Int64(limit)), .integer(createdAtMost ?? .max),
        ], Self.build)
    }
  }

  /// The jobs of a build, in the order the API listed them (see `upsert(builds:)`).
  public func jobs(buildID: String) throws(CatalogError) -> [CatalogJob] {
    try read { (db) throws(SQLiteError) in
      try db.rows(
        """
        SELECT \(Self.jobColumns) FROM job_records j JOIN build_records b ON b.key = j.build
        WHERE b.id = ?1 ORDER BY j.position, j.seq
        """,
        purpose: "list a build's jobs", binding: [CompactSchema.uuidValue(buildID)], Self.job)
    }
  }

  public func job(id: String) throws(CatalogError) -> CatalogJob? {
    try read { (db) throws(SQLiteError) in
      try db.firstRow(
        "SELECT \(Self.jobColumns) FROM job_records j JOIN build_records b ON b.key = j.build WHERE j.id = ?1",
        purpose: "look up a job by id", binding: [CompactSchema.uuidValue(id)], Self.job)
    }
  }

  /// Records the size of a finished job's log. A job the catalog does not hold is ignored.
  public func setLogSize(jobID: String, size: Int64) throws(CatalogError) {
    try write { (db) throws(SQLiteError) in
      try db.run(
        "UPDATE job_records SET log_size = ?2 WHERE id = ?1", purpose: "record a job's log size",
        binding: [CompactSchema.uuidValue(jobID), .integer(size)])
    }
  }

  // MARK: Times

  /// A pipeline's newest build time: `coalesce(finished_at, created_at)`, written as `build_records_by_time`
  /// indexes it, so that SQLite's max finds it in one step into that index.
  private static let newestBuildTime = """
    (SELECT max(coalesce(b.finished_at, b.created_at)) FROM build_records b
     WHERE b.pipeline = (
       SELECT k.key FROM build_pipelines k WHERE k.organization_slug = p.organization_slug AND k.pipeline_slug = p.slug))
    """

  /// The newest time (a build's finish, else its creation, in seconds since the epoch) among the builds the
  /// catalog holds of each pipeline of an organization, by the pipeline's slug; a pipeline without such a build
  /// is left out. One query, whatever the number of pipelines.
  public func newestBuildTimes(organizationSlug: String) throws(CatalogError) -> [(slug: String, time: Int64)] {
    try read { (db) throws(SQLiteError) in
      try db.rows(
        "SELECT p.slug, \(Self.newestBuildTime) FROM pipelines p WHERE p.organization_slug = ?1",
        purpose: "find each pipeline's newest build", binding: [.text(organizationSlug)]
      ) { row in row.int64(1).map { (slug: row.text(0) ?? "", time: $0) } }.compactMap { $0 }
    }
  }

  /// The same for each organization, over the builds of the pipelines the catalog holds of it (the ones its
  /// directory shows), by the organization's slug.
  public func newestBuildTimesOfOrganizations() throws(CatalogError) -> [(slug: String, time: Int64)] {
    try read { (db) throws(SQLiteError) in
      try db.rows(
        "SELECT p.organization_slug, max(\(Self.newestBuildTime)) FROM pipelines p GROUP BY p.organization_slug",
        purpose: "find each organization's newest build"
      ) { row in row.int64(1).map { (slug: row.text(0) ?? "", time: $0) } }.compactMap { $0 }
    }
  }

  // MARK: Listings

  /// When the listing `key` (any string, e.g. "pipelines:acme" or "builds:acme/web") was last fetched whole, in
  /// seconds since the epoch, or nil if never.
  public func listingFetchedAt(_ key: String) throws(CatalogError) -> Int64? {
    try read { (db) throws(SQLiteError) in
      try db.firstRow(
        "SELECT fetched_at FROM listings WHERE key = ?1", purpose: "look up when a listing was fetched",
        binding: [.text(key)]
      ) { row in row.int64(0) } ?? nil
    }
  }

  /// Where the build exports hold a build (its folder's key prefix), when it was found there.
  public func exportLocation(buildID: String) throws(CatalogError) -> String? {
    try read { (db) throws(SQLiteError) in
      try db.firstRow(
        "SELECT location FROM build_exports WHERE build_id = ?1", purpose: "look up a build's export folder",
        binding: [.text(buildID)]
      ) { row in row.text(0) } ?? nil
    }
  }

  public func setExportLocation(buildID: String, location: String) throws(CatalogError) {
    try write { (db) throws(SQLiteError) in
      try db.run(
        """
        INSERT INTO build_exports (build_id, location) VALUES (?1, ?2)
        ON CONFLICT (build_id) DO UPDATE SET location = excluded.location
        """,
        purpose: "record a build's export folder", binding: [.text(buildID), .text(location)])
    }
  }

  /// The export folders recorded whose location holds `marker` (such as `/pipeline={uuid}/`).
  public func exportLocations(containing marker: String) throws(CatalogError) -> Set<String> {
    try read { (db) throws(SQLiteError) in
      Set(
        try db.rows(
          "SELECT location FROM build_exports WHERE instr(location, ?1) > 0",
          purpose: "find the export folders known of a pipeline", binding: [.text(marker)]
        ) { row in row.text(0) }.compactMap { $0 })
    }
  }

  /// The last `date=` folder of the build exports a scan for the pipeline saw, if one was made.
  public func exportScanThrough(pipelineID: String) throws(CatalogError) -> String? {
    try read { (db) throws(SQLiteError) in
      try db.firstRow(
        "SELECT through FROM export_scans WHERE pipeline_id = ?1", purpose: "find how far the export scan went",
        binding: [.text(pipelineID)]
      ) { row in row.text(0) } ?? nil
    }
  }

  public func setExportScanThrough(pipelineID: String, _ through: String) throws(CatalogError) {
    try write { (db) throws(SQLiteError) in
      try db.run(
        """
        INSERT INTO export_scans (pipeline_id, through) VALUES (?1, ?2)
        ON CONFLICT (pipeline_id) DO UPDATE SET through = excluded.through
        """,
        purpose: "record how far the export scan went", binding: [.text(pipelineID), .text(through)])
    }
  }

  public func setListingFetched(_ key: String, at time: Int64) throws(CatalogError) {
    try write { (db) throws(SQLiteError) in try Self.setListingFetched(key, at: time, in: db) }
  }

  private static func setListingFetched(_ key: String, at time: Int64, in db: SQLiteDatabase) throws(SQLiteError) {
    try db.run(
      """
      INSERT INTO listings (key, fetched_at) VALUES (?1, ?2)
      ON CONFLICT (key) DO UPDATE SET fetched_at = excluded.fetched_at
      """,
      purpose: "record when a listing was fetched", binding: [.text(key), .integer(time)])
  }

  // MARK: Sync

  /// How far `bklogfs sync` went through the pipeline's builds, if it ever started on it.
  public func syncProgress(pipelineID: String) throws(CatalogError) -> CatalogSyncProgress? {
    try read { (db) throws(SQLiteError) in
      try db.firstRow(
        "SELECT newest, oldest, reached_end FROM sync_progress WHERE pipeline_id = ?1",
        purpose: "find how far a sync went", binding: [.text(pipelineID)]
      ) { row in
        CatalogSyncProgress(pipelineID: pipelineID, newest: row.int64(0), oldest: row.int64(1), reachedEnd: row.bool(2))
      }
    }
  }

  public func setSyncProgress(_ progress: CatalogSyncProgress) throws(CatalogError) {
    try write { (db) throws(SQLiteError) in try Self.store(progress, in: db) }
  }

  private static func store(_ progress: CatalogSyncProgress, in db: SQLiteDatabase) throws(SQLiteError) {
    try db.run(
      """
      INSERT INTO sync_progress (pipeline_id, newest, oldest, reached_end) VALUES (?1, ?2, ?3, ?4)
      ON CONFLICT (pipeline_id) DO UPDATE SET
        newest = excluded.newest, oldest = excluded.oldest, reached_end = excluded.reached_end
      """,
      purpose: "record how far a sync went",
      binding: [
        .text(progress.pipelineID), SQLiteValue(progress.newest), SQLiteValue(progress.oldest),
        SQLiteValue(progress.reachedEnd),
      ])
  }

  /// The numbers of a pipeline's builds that were still running when last stored and were created before
  /// `createdBefore` (seconds since the epoch), oldest first.
  public func unfinishedBuildNumbers(organizationSlug: String, pipelineSlug: String, createdBefore: Int64)
    throws(CatalogError) -> [Int]
  {
    try read { (db) throws(SQLiteError) in
      try db.rows(
        """
        SELECT b.number FROM \(Self.buildTables)
        WHERE p.organization_slug = ?1 AND p.pipeline_slug = ?2 AND b.is_finished = 0 AND b.created_at < ?3
        ORDER BY b.number
        """,
        purpose: "find a pipeline's unfinished builds",
        binding: [.text(organizationSlug), .text(pipelineSlug), .integer(createdBefore)]
      ) { row in row.int(0) ?? 0 }
    }
  }

  // MARK: Access

  /// Runs `body` with the writing connection, under its lock.
  private func write<Result: Sendable>(
    _ body: (SQLiteDatabase) throws(SQLiteError) -> Result
  ) throws(CatalogError) -> Result {
    let result = writer.database.withLock { db -> Swift.Result<Result, SQLiteError> in
      do throws(SQLiteError) { return .success(try body(db)) } catch { return .failure(error) }
    }
    return try outcome(result)
  }

  /// Runs `body` (which must only read) with a reading connection: the first one free, else waits for one in
  /// turn. An in-memory catalog reads through its one connection.
  private func read<Result: Sendable>(
    _ body: (SQLiteDatabase) throws(SQLiteError) -> Result
  ) throws(CatalogError) -> Result {
    if readers.isEmpty { return try write(body) }
    for reader in readers {
      let result = reader.database.withLockIfAvailable { db -> Swift.Result<Result, SQLiteError> in
        do throws(SQLiteError) { return .success(try body(db)) } catch { return .failure(error) }
      }
      if let result { return try outcome(result) }
    }
    let index = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue % readers.count
    let result = readers[index].database.withLock { db -> Swift.Result<Result, SQLiteError> in
      do throws(SQLiteError) { return .success(try body(db)) } catch { return .failure(error) }
    }
    return try outcome(result)
  }

  /// The result, or a `CatalogError` naming the catalog for a SQLite error.
  private func outcome<Result>(_ outcome: Swift.Result<Result, SQLiteError>) throws(CatalogError) -> Result {
    switch outcome {
    case .success(let result): return result
    case .failure(let error): throw Self.catalogError(error, path: path)
    }
  }

  private static func describe(_ path: String?) -> String {
    path.map { "The catalog \($0)" } ?? "The in-memory catalog"
  }

  /// One sentence for a SQLite error, naming the catalog.
  static func catalogError(_ error: SQLiteError, path: String?) -> CatalogError {
    switch error.primaryCode {
    case SQLITE_NOTADB:
      return CatalogError(
        "\(describe(path)) is not a SQLite database (damaged, or another program's file); move it aside or delete it, and bklogfs will start a new catalog."
      )
    case SQLITE_CORRUPT:
      return CatalogError(
        "\(describe(path)) is damaged (\(error.message)); move it aside or delete it, and bklogfs will start a new catalog."
      )
    default:
      return CatalogError("\(describe(path)) \(error.description).")
    }
  }

  // MARK: Opening

  private static func open(path: String, flags: Int32) throws(CatalogError) -> SQLiteDatabase {
    do {
      // NOMUTEX: the Catalog's Mutex serialises every use of the connection.
      return try SQLiteDatabase(path: path, flags: flags | SQLITE_OPEN_NOMUTEX)
    } catch {
      throw catalogError(error, path: path == ":memory:" ? nil : path)
    }
  }

  /// Sets the connection up and brings the schema to the current version.
  private static func configure(
    _ db: SQLiteDatabase, path: String?, inMemory: Bool, logger: Logger
  ) throws(CatalogError) {
    db.setBusyTimeout(milliseconds: busyTimeoutMilliseconds)
    let refusal: CatalogError?
    do throws(SQLiteError) {
      // The first read of the file: a file that is not a database fails here.
      refusal = try Self.refusal(of: db, path: path)
    } catch {
      throw catalogError(error, path: path)
    }
    if let refusal { throw refusal }
    do throws(SQLiteError) {
      if !inMemory {
        // Builds' JSON rows are a kilobyte or more: a 4 KiB page would leave a good part of itself empty. Only a
        // new, empty file takes it.
        try db.execute("PRAGMA page_size = 16384", purpose: "set the page size")
        let mode = try db.firstRow("PRAGMA journal_mode = WAL", purpose: "switch to write-ahead logging") {
          $0.text(0) ?? ""
        }
        if mode?.lowercased() != "wal" {
          logger.warning(
            "The catalog could not use write-ahead logging; other processes' reads may wait for writes",
            metadata: ["path": "\(path ?? "")", "journal_mode": "\(mode ?? "")"])
        }
        // With WAL, NORMAL keeps the database consistent across a crash; a power loss may lose the last
        // transactions, which the API can give again.
        try db.execute("PRAGMA synchronous = NORMAL", purpose: "set the synchronous mode")
      }
      try migrate(db, path: path, logger: logger)
    } catch {
      throw catalogError(error, path: path)
    }
    logger.debug("Catalog opened", metadata: ["path": "\(path ?? ":memory:")"])
  }

  private static func userVersion(_ db: SQLiteDatabase) throws(SQLiteError) -> Int64 {
    try db.firstRow("PRAGMA user_version", purpose: "read the schema version") { $0.int64(0) ?? 0 } ?? 0
  }

  /// Why the database must not be used, if it must not: it is another program's, or a newer bklogfs wrote it.
  private static func refusal(of db: SQLiteDatabase, path: String?) throws(SQLiteError) -> CatalogError? {
    let version = try userVersion(db)
    let applicationID =
      try db.firstRow("PRAGMA application_id", purpose: "read the application id") { $0.int64(0) ?? 0 } ?? 0
    if applicationID != 0 && applicationID != Int64(Schema.applicationID) {
      return CatalogError(
        "\(describe(path)) is a SQLite database of another program (application id \(applicationID)), not a bklogfs catalog."
      )
    }
    if applicationID == 0 && version == 0 {
      let objects =
        try db.firstRow("SELECT count(*) FROM sqlite_schema", purpose: "check that a new database is empty") {
          $0.int64(0) ?? 0
        } ?? 0
      if objects != 0 {
        return CatalogError("\(describe(path)) is a SQLite database that holds tables, but not a bklogfs catalog.")
      }
    }
    if version > Int64(Schema.currentVersion) {
      return CatalogError(
        "\(describe(path)) has schema version \(version), newer than this bklogfs understands (\(Schema.currentVersion)); use a newer bklogfs or another catalog file."
      )
    }
    return nil
  }

  /// Applies the migrations the database lacks, in one write transaction that re-reads the version first, so
  /// two processes opening a new catalog at once do not both create it.
  private static func migrate(_ db: SQLiteDatabase, path: String?, logger: Logger) throws(SQLiteError) {
    let current = Int64(Schema.currentVersion)
    guard try userVersion(db) < current else { return }
    try db.transaction(purpose: "upgrade the schema") { () throws(SQLiteError) in
      let version = try userVersion(db)
      if version > current {
        // Another process with a newer bklogfs upgraded the file since it was checked.
        throw SQLiteError(
          code: SQLITE_ERROR, message: "a newer bklogfs upgraded it meanwhile (schema version \(version))",
          purpose: "upgrade the schema")
      }
      guard version < current else { return }
      for index in Int(version)..<Int(current) {
        let purpose = "upgrade the schema to version \(index + 1)"
        switch Schema.migrations[index] {
        case .sql(let sql):
          try db.execute(sql, purpose: purpose)
        case .sqlThenCode(let sql, let code):
          try db.execute(sql, purpose: purpose)
          try code(db)
        }
      }
      try db.execute("PRAGMA user_version = \(current)", purpose: "record the schema version")
      try db.execute("PRAGMA application_id = \(Schema.applicationID)", purpose: "mark the database as a catalog")
      logger.info(
        "Catalog schema upgraded",
        metadata: ["path": "\(path ?? ":memory:")", "from": "\(version)", "to": "\(current)"])
    }
  }
}
