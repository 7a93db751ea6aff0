/// The catalog's schema, versioned by SQLite's `user_version` and marked as ours by `application_id`.
///
/// `migrations[i]` brings a database from version `i` to `i + 1`; the current version is `migrations.count`.
/// A database whose version is higher than that was written by a newer bklogfs and is refused, never downgraded.
enum Schema {
  /// `PRAGMA application_id` of a bklogfs catalog: "bklg" in ASCII.
  static let applicationID: Int32 = 0x626b_6c67

  static var currentVersion: Int32 { Int32(migrations.count) }

  /// One step of the schema: SQL, or SQL and then code for what SQL cannot do.
  enum Migration: Sendable {
    case sql(String)
    case sqlThenCode(String, @Sendable (SQLiteDatabase) throws(SQLiteError) -> Void)
  }

  static let migrations: [Migration] = [
    // Version 1.
    .sql(
      """
      CREATE TABLE organizations (
        id TEXT NOT NULL PRIMARY KEY,
        slug TEXT NOT NULL,
        name TEXT NOT NULL
      );
      CREATE UNIQUE INDEX organizations_by_slug ON organizations (slug);

      CREATE TABLE pipelines (
        id TEXT NOT NULL PRIMARY KEY,
        organization_slug TEXT NOT NULL,
        slug TEXT NOT NULL,
        name TEXT NOT NULL
      );
      CREATE UNIQUE INDEX pipelines_by_slug ON pipelines (organization_slug, slug);

      CREATE TABLE builds (
        id TEXT NOT NULL PRIMARY KEY,
        organization_slug TEXT NOT NULL,
        pipeline_slug TEXT NOT NULL,
        number INTEGER NOT NULL,
        state TEXT NOT NULL,
        created_at INTEGER,
        finished_at INTEGER,
        is_finished INTEGER NOT NULL,
        json BLOB NOT NULL
      );
      CREATE UNIQUE INDEX builds_by_number ON builds (organization_slug, pipeline_slug, number);

      CREATE TABLE jobs (
        id TEXT NOT NULL PRIMARY KEY,
        build_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        type TEXT NOT NULL,
        name TEXT,
        step_key TEXT,
        state TEXT,
        parallel_group_index INTEGER,
        parallel_group_total INTEGER,
        retried INTEGER NOT NULL,
        retried_in_job_id TEXT,
        retries_count INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        log_size INTEGER
      );
      CREATE INDEX jobs_by_build ON jobs (build_id, position);

      CREATE TABLE listings (
        key TEXT NOT NULL PRIMARY KEY,
        fetched_at INTEGER NOT NULL
      );
      """),
    // Version 2: where a build past retention was found in the build exports.
    .sql(
      """
      CREATE TABLE build_exports (
        build_id TEXT NOT NULL PRIMARY KEY,
        location TEXT NOT NULL
      );
      """),
    // Version 3: each pipeline's newest build time in one step, for its directory's time. A build's rows hold its
    // JSON, so finding the newest without this index reads every build of the organization.
    .sql(
      """
      CREATE INDEX builds_by_time ON builds (organization_slug, pipeline_slug, coalesce(finished_at, created_at));
      """),
    // Version 4: how far each pipeline's scan of the build exports went (the last `date=` folder it
    // saw), so that a later scan lists only what came since.
    .sql(
      """
      CREATE TABLE export_scans (
        pipeline_id TEXT NOT NULL PRIMARY KEY,
        through TEXT NOT NULL
      );
      """),
    // Version 5: how far `bklogfs sync` went through each pipeline's builds. Every build created from `oldest`
    // (whole seconds; those of that very second perhaps not all) through `newest` is held; `reached_end` once the
    // walk found the pipeline's first build. NULL times: the pipeline had no builds.
    .sql(
      """
      CREATE TABLE sync_progress (
        pipeline_id TEXT NOT NULL PRIMARY KEY,
        newest INTEGER,
        oldest INTEGER,
        reached_end INTEGER NOT NULL
      );
      """),
    // Version 6: see `CompactSchema`.
    .sqlThenCode(CompactSchema.tables, CompactSchema.moveRecords),
  ]
}
