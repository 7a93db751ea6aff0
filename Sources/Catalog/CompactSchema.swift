import CSQLite
import Digests

/// Schema version 6: builds and jobs kept small enough for an organization of 10^7 jobs (doc/BENCHMARKS.md,
/// "Catalog at scale").
///
/// Version 5 spent about 2 KiB a job: each build's JSON as the API gave it (with every job), and in every
/// build row and index the organization's and pipeline's slugs and the UUIDs as 36-byte text. Here:
/// - a pipeline's slugs are held once, in `build_pipelines`, and builds refer to it by an integer key;
/// - jobs refer to their build by the build's integer key, not its UUID;
/// - a UUID in its canonical form (lowercase, 8-4-4-4-12) is held as its 16 bytes; any other id (the API can
///   send anything) as the text it is, so every id still round-trips;
/// - a build's JSON is deflated with its pipeline's preset dictionary (the start and end of the first build
///   JSON stored for that pipeline), which the JSON of its other builds largely repeats, after its GraphQL ids
///   are unpacked from base64 (`GraphQLIDs`).
///
/// The views `builds` and `jobs` show the rows in version 5's columns (UUIDs as text, the JSON as stored), for
/// people and scripts that read the catalog with `sqlite3`.
enum CompactSchema {
  static let tables = """
    ALTER TABLE builds RENAME TO builds_v5;
    ALTER TABLE jobs RENAME TO jobs_v5;
    DROP INDEX builds_by_number;
    DROP INDEX builds_by_time;
    DROP INDEX jobs_by_build;

    CREATE TABLE build_pipelines (
      key INTEGER PRIMARY KEY,
      organization_slug TEXT NOT NULL,
      pipeline_slug TEXT NOT NULL,
      dictionary BLOB
    );
    CREATE UNIQUE INDEX build_pipelines_by_slug ON build_pipelines (organization_slug, pipeline_slug);

    CREATE TABLE build_records (
      key INTEGER PRIMARY KEY,
      id NOT NULL,
      pipeline INTEGER NOT NULL,
      number INTEGER NOT NULL,
      state TEXT NOT NULL,
      created_at INTEGER,
      finished_at INTEGER,
      is_finished INTEGER NOT NULL,
      json BLOB NOT NULL,
      json_encoding INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX build_records_by_id ON build_records (id);
    CREATE UNIQUE INDEX build_records_by_number ON build_records (pipeline, number);
    CREATE INDEX build_records_by_time ON build_records (pipeline, coalesce(finished_at, created_at));

    CREATE TABLE job_records (
      build INTEGER NOT NULL,
      position INTEGER NOT NULL,
      seq INTEGER NOT NULL,
      id NOT NULL,
      type NOT NULL,
      name TEXT,
      step_key TEXT,
      state,
      parallel_group_index INTEGER,
      parallel_group_total INTEGER,
      retried INTEGER NOT NULL,
      retried_in_job_id,
      retries_count INTEGER,
      started_at INTEGER,
      finished_at INTEGER,
      log_size INTEGER,
      PRIMARY KEY (build, position, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX job_records_by_id ON job_records (id);

    CREATE VIEW builds AS
      SELECT \(uuidText("b.id")) AS id, p.organization_slug, p.pipeline_slug, b.number, b.state, b.created_at,
        b.finished_at, b.is_finished, b.json
      FROM build_records b JOIN build_pipelines p ON p.key = b.pipeline;
    CREATE VIEW jobs AS
      SELECT \(uuidText("j.id")) AS id, \(uuidText("b.id")) AS build_id, j.position,
        \(codeText("j.type", jobTypes)) AS type, j.name, j.step_key, \(codeText("j.state", jobStates)) AS state,
        j.parallel_group_index, j.parallel_group_total, j.retried,
        \(uuidText("j.retried_in_job_id")) AS retried_in_job_id, j.retries_count, j.started_at, j.finished_at,
        j.log_size
      FROM job_records j JOIN build_records b ON b.key = j.build;
    """

  /// SQL for the text form of a coded column: an integer as the name it stands for, text as it is.
  private static func codeText(_ column: String, _ names: [String]) -> String {
    let cases = names.enumerated().map { "WHEN \($0.offset) THEN '\($0.element)'" }.joined(separator: " ")
    return "(CASE WHEN typeof(\(column)) = 'integer' THEN (CASE \(column) \(cases) END) ELSE \(column) END)"
  }

  /// SQL for the text form of an id column: a 16-byte blob as a lowercase UUID, anything else as it is.
  private static func uuidText(_ column: String) -> String {
    let hex = "lower(hex(\(column)))"
    return """
      (CASE WHEN typeof(\(column)) = 'blob' AND length(\(column)) = 16 THEN substr(\(hex), 1, 8) || '-' || \
      substr(\(hex), 9, 4) || '-' || substr(\(hex), 13, 4) || '-' || substr(\(hex), 17, 4) || '-' || \
      substr(\(hex), 21) ELSE \(column) END)
      """
  }

  /// Copies version 5's builds and jobs into the new tables, jobs in their old row order (which orders jobs
  /// of one place, as `seq` now does), then drops the old tables. A job whose build is not held is not kept: no listing shows it.
  static func moveRecords(_ db: SQLiteDatabase) throws(SQLiteError) {
    var keys: [String: Int64] = [:]
    try db.withStatement(
      """
      SELECT id, organization_slug, pipeline_slug, number, state, created_at, finished_at, is_finished, json
      FROM builds_v5 ORDER BY rowid
      """, purpose: "read the builds to upgrade"
    ) { (row) throws(SQLiteError) in
      while try row.step() {
        let build = CatalogBuild(
          id: row.text(0) ?? "", organizationSlug: row.text(1) ?? "", pipelineSlug: row.text(2) ?? "",
          number: row.int(3) ?? 0, state: row.text(4) ?? "", createdAt: row.int64(5), finishedAt: row.int64(6),
          isFinished: row.bool(7), json: row.blob(8))
        keys[build.id] = try storeBuild(build, in: db)
      }
    }
    try db.withStatement(
      """
      SELECT id, build_id, position, type, name, step_key, state, parallel_group_index, parallel_group_total,
        retried, retried_in_job_id, retries_count, started_at, finished_at, log_size
      FROM jobs_v5 ORDER BY rowid
      """, purpose: "read the jobs to upgrade"
    ) { (row) throws(SQLiteError) in
      while try row.step() {
        guard let build = keys[row.text(1) ?? ""] else { continue }
        let job = CatalogJob(
          id: row.text(0) ?? "", buildID: row.text(1) ?? "", type: row.text(3) ?? "", name: row.text(4),
          stepKey: row.text(5), state: row.text(6), parallelGroupIndex: row.int(7), parallelGroupTotal: row.int(8),
          retried: row.bool(9), retriedInJobID: row.text(10), retriesCount: row.int(11), startedAt: row.int64(12),
          finishedAt: row.int64(13), logSize: row.int64(14))
        try storeJob(job, build: build, position: row.int64(2) ?? 0, in: db)
      }
    }
    try db.execute("DROP TABLE jobs_v5; DROP TABLE builds_v5;", purpose: "drop the tables of schema version 5")
  }

  // MARK: Records

  /// Stores a build under its pipeline (its key made when new), replacing the stored build with its id and
  /// any other build of the same number with its jobs. Returns the build's key, which stays the same when a
  /// build is stored again.
  static func storeBuild(_ build: CatalogBuild, in db: SQLiteDatabase) throws(SQLiteError) -> Int64 {
    let pipeline = try pipelineKey(organization: build.organizationSlug, pipeline: build.pipelineSlug, in: db)
    let number = Int64(build.number)
    let id = uuidValue(build.id)
    try db.run(
      """
      DELETE FROM job_records WHERE build IN (
        SELECT key FROM build_records WHERE pipeline = ?1 AND number = ?2 AND id IS NOT ?3)
      """,
      purpose: "forget the jobs of a build displaced by another with the same number",
      binding: [.integer(pipeline.key), .integer(number), id])
    try db.run(
      "DELETE FROM build_records WHERE pipeline = ?1 AND number = ?2 AND id IS NOT ?3",
      purpose: "forget a build displaced by another with the same number",
      binding: [.integer(pipeline.key), .integer(number), id])
    let packed = build.json.isEmpty ? nil : GraphQLIDs.pack(build.json)
    var dictionary = pipeline.dictionary
    if dictionary == nil && !build.json.isEmpty {
      dictionary = presetDictionary(from: packed ?? build.json)
      try db.run(
        "UPDATE build_pipelines SET dictionary = ?2 WHERE key = ?1", purpose: "keep a pipeline's JSON dictionary",
        binding: [.integer(pipeline.key), .blob(dictionary ?? [])])
    }
    var json = build.json
    var encoding = JSONEncoding.asGiven
    if let dictionary, !json.isEmpty {
      let compressed = Deflate.compress(packed ?? json, dictionary: dictionary)
      if compressed.count < json.count {
        json = compressed
        encoding = packed == nil ? .deflated : .packedAndDeflated
      }
    }
    try db.run(
      """
      INSERT INTO build_records (id, pipeline, number, state, created_at, finished_at, is_finished, json, json_encoding)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
      ON CONFLICT (id) DO UPDATE SET
        pipeline = excluded.pipeline, number = excluded.number, state = excluded.state,
        created_at = excluded.created_at, finished_at = excluded.finished_at, is_finished = excluded.is_finished,
        json = excluded.json, json_encoding = excluded.json_encoding
      """,
      purpose: "store a build",
      binding: [
        id, .integer(pipeline.key), .integer(number), .text(build.state), SQLiteValue(build.createdAt),
        SQLiteValue(build.finishedAt), SQLiteValue(build.isFinished), .blob(json), .integer(encoding.rawValue),
      ])
    guard
      let key = try db.firstRow(
        "SELECT key FROM build_records WHERE id = ?1", purpose: "find a stored build's key", binding: [id],
        { $0.int64(0) }) ?? nil
    else {
      throw SQLiteError(code: SQLITE_INTERNAL, message: "the build just stored is not there", purpose: "store a build")
    }
    return key
  }

  /// Inserts or updates a job by id (a job is never forgotten), as the job at `position` of build `build`; a log
  /// size of nil keeps the one learned before. Of the jobs of one place, one that comes to it later (new, or
  /// moved from another place) goes after those already there (`seq`).
  static func storeJob(_ job: CatalogJob, build: Int64, position: Int64, in db: SQLiteDatabase) throws(SQLiteError) {
    try db.run(
      """
      INSERT INTO job_records (
        build, position, seq, id, type, name, step_key, state, parallel_group_index, parallel_group_total, retried,
        retried_in_job_id, retries_count, started_at, finished_at, log_size)
      VALUES (
        ?1, ?2, (SELECT coalesce(max(seq), -1) + 1 FROM job_records WHERE build = ?1 AND position = ?2),
        ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
      ON CONFLICT (id) DO UPDATE SET
        seq = CASE WHEN job_records.build = excluded.build AND job_records.position = excluded.position
          THEN job_records.seq ELSE excluded.seq END,
        build = excluded.build, position = excluded.position, type = excluded.type, name = excluded.name,
        step_key = excluded.step_key, state = excluded.state,
        parallel_group_index = excluded.parallel_group_index, parallel_group_total = excluded.parallel_group_total,
        retried = excluded.retried, retried_in_job_id = excluded.retried_in_job_id,
        retries_count = excluded.retries_count, started_at = excluded.started_at,
        finished_at = excluded.finished_at, log_size = coalesce(excluded.log_size, job_records.log_size)
      """,
      purpose: "store a job",
      binding: [
        .integer(build), .integer(position), uuidValue(job.id), code(job.type, in: jobTypes), SQLiteValue(job.name),
        SQLiteValue(job.stepKey), job.state.map { code($0, in: jobStates) } ?? .null,
        SQLiteValue(job.parallelGroupIndex),
        SQLiteValue(job.parallelGroupTotal), SQLiteValue(job.retried), job.retriedInJobID.map(uuidValue) ?? .null,
        SQLiteValue(job.retriesCount), SQLiteValue(job.startedAt), SQLiteValue(job.finishedAt),
        SQLiteValue(job.logSize),
      ])
  }

  /// The key of the (organization, pipeline) builds are stored under, made when new, and its JSON dictionary.
  private static func pipelineKey(organization: String, pipeline: String, in db: SQLiteDatabase) throws(SQLiteError)
    -> (key: Int64, dictionary: [UInt8]?)
  {
    let find = "SELECT key, dictionary FROM build_pipelines WHERE organization_slug = ?1 AND pipeline_slug = ?2"
    let binding: [SQLiteValue] = [.text(organization), .text(pipeline)]
    func found(_ row: Statement) -> (key: Int64, dictionary: [UInt8]?) {
      (row.int64(0) ?? 0, row.isNull(1) ? nil : row.blob(1))
    }
    if let known = try db.firstRow(find, purpose: "find a pipeline's key", binding: binding, found) { return known }
    try db.run(
      "INSERT INTO build_pipelines (organization_slug, pipeline_slug) VALUES (?1, ?2)",
      purpose: "give a pipeline a key", binding: binding)
    guard let made = try db.firstRow(find, purpose: "find a pipeline's key", binding: binding, found) else {
      throw SQLiteError(
        code: SQLITE_INTERNAL, message: "the pipeline just keyed is not there", purpose: "store a build")
    }
    return made
  }

  /// Deflate's window is 32 KiB, so a dictionary longer than that is wasted. A build's JSON starts with its own
  /// fields and its jobs and ends with its pipeline's object: the first and last halves of a window.
  static let dictionaryHalf = 16 << 10

  static func presetDictionary(from json: [UInt8]) -> [UInt8] {
    guard json.count > 2 * dictionaryHalf else { return json }
    return Array(json.prefix(dictionaryHalf) + json.suffix(dictionaryHalf))
  }

  /// How a build's JSON is stored (`build_records.json_encoding`).
  enum JSONEncoding: Int64 {
    case asGiven = 0
    case deflated = 1
    /// `GraphQLIDs.pack`, then deflated.
    case packedAndDeflated = 2
  }

  /// The JSON as stored, inflated with its pipeline's dictionary and unpacked as its encoding says. JSON that
  /// does not inflate (a damaged file) reads as empty rather than failing the whole listing.
  static func json(stored: [UInt8], encoding: Int64, dictionary: [UInt8]) -> [UInt8] {
    switch JSONEncoding(rawValue: encoding) {
    case .asGiven: return stored
    case .deflated:
      return (try? Deflate.decompress(stored, dictionary: dictionary, limit: maxJSONBytes)) ?? []
    case .packedAndDeflated:
      return (try? Deflate.decompress(stored, dictionary: dictionary, limit: maxJSONBytes)).map(GraphQLIDs.unpack)
        ?? []
    case nil: return []
    }
  }

  /// Larger than any answer the API client accepts (64 MiB).
  static let maxJSONBytes = 128 << 20

  // MARK: Codes

  /// Job types and states by their codes: a job's type and state are held as the small integer of their name
  /// here (most take no byte at all), and any other name as its text. Codes are never renumbered or reused.
  static let jobTypes = ["script", "waiter", "manual", "trigger"]
  static let jobStates = [
    "passed", "failed", "canceled", "skipped", "broken", "timed_out", "expired", "not_run", "running", "scheduled",
    "assigned", "accepted", "waiting", "waiting_failed", "blocked", "blocked_failed", "unblocked", "unblocked_failed",
    "canceling", "timing_out", "pending", "limiting", "limited", "finished",
  ]

  static func code(_ name: String, in names: [String]) -> SQLiteValue {
    // Byte for byte: a name is coded only when it reads back exactly as given.
    guard let index = names.firstIndex(where: { $0.utf8.elementsEqual(name.utf8) }) else { return .text(name) }
    return .integer(Int64(index))
  }

  /// A coded column as its name; an integer with no name (written by a newer bklogfs) as its digits.
  static func name(_ row: Statement, _ column: Int32, in names: [String]) -> String? {
    guard sqlite3_column_type(row.handle, column) == SQLITE_INTEGER, let code = row.int(column) else {
      return row.text(column)
    }
    return names.indices.contains(code) ? names[code] : String(code)
  }

  // MARK: Ids

  /// An id as stored: a canonical UUID as its 16 bytes, anything else as text.
  static func uuidValue(_ id: String) -> SQLiteValue {
    let utf8 = Array(id.utf8)
    guard utf8.count == 36 else { return .text(id) }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(16)
    var high: UInt8? = nil
    for (offset, character) in utf8.enumerated() {
      if offset == 8 || offset == 13 || offset == 18 || offset == 23 {
        guard character == UInt8(ascii: "-") else { return .text(id) }
        continue
      }
      let nibble: UInt8
      switch character {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = character - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = character - UInt8(ascii: "a") + 10
      // Uppercase would not come back as it was given.
      default: return .text(id)
      }
      if let first = high {
        bytes.append(first << 4 | nibble)
        high = nil
      } else {
        high = nibble
      }
    }
    return .blob(bytes)
  }

  /// An id column as text: 16 bytes as a lowercase UUID, text as it is.
  static func uuidText(_ row: Statement, _ column: Int32) -> String? {
    guard sqlite3_column_type(row.handle, column) == SQLITE_BLOB else { return row.text(column) }
    let bytes = row.blob(column)
    guard bytes.count == 16 else { return String(decoding: bytes, as: UTF8.self) }
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    text.reserveCapacity(36)
    for (offset, byte) in bytes.enumerated() {
      if offset == 4 || offset == 6 || offset == 8 || offset == 10 { text.append(UInt8(ascii: "-")) }
      text.append(digits[Int(byte >> 4)])
      text.append(digits[Int(byte & 0xf)])
    }
    return String(decoding: text, as: UTF8.self)
  }
}
