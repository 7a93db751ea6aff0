import CSQLite

// A small wrapper over SQLite's C API, private to this module: a connection that prepares each statement once
// and reuses it, binding and column helpers, transactions, and errors that carry SQLite's message and what the
// statement was for. Errors never include bound values (slugs, names, build JSON), only the purpose, which is
// written in the code.
//
// Not thread-safe: a connection and its cached statements belong to one thread at a time. `Catalog` keeps its
// connection behind a `Mutex`.

/// A failed SQLite call: the extended result code, SQLite's message, and the purpose of the statement.
struct SQLiteError: Error, CustomStringConvertible {
  /// The extended result code (`SQLITE_BUSY_SNAPSHOT`, `SQLITE_CONSTRAINT_UNIQUE`, …).
  var code: Int32
  var message: String
  /// What the failing statement was for, e.g. "look up a build by number".
  var purpose: String

  /// The primary result code (`SQLITE_BUSY`, `SQLITE_NOTADB`, …).
  var primaryCode: Int32 { code & 0xff }

  var description: String { "could not \(purpose): \(message) (SQLite error \(code))" }
}

/// A value to bind to a statement's parameter.
enum SQLiteValue {
  case null
  case integer(Int64)
  case text(String)
  case blob([UInt8])

  init(_ value: String?) { self = value.map { .text($0) } ?? .null }
  init(_ value: Int64?) { self = value.map { .integer($0) } ?? .null }
  init(_ value: Int?) { self = value.map { .integer(Int64($0)) } ?? .null }
  init(_ value: Bool) { self = .integer(value ? 1 : 0) }
  init(_ value: [UInt8]) { self = .blob(value) }
}

/// One connection to a database, with a cache of prepared statements keyed by their SQL.
final class SQLiteDatabase {
  let handle: OpaquePointer
  private var statements: [String: Statement] = [:]

  /// Opens `path` with `flags` (`SQLITE_OPEN_*`). Extended result codes are on.
  init(path: String, flags: Int32) throws(SQLiteError) {
    var handle: OpaquePointer? = nil
    let code = sqlite3_open_v2(path, &handle, flags | SQLITE_OPEN_EXRESCODE, nil)
    guard code == SQLITE_OK, let handle else {
      let message =
        handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
      if let handle { sqlite3_close_v2(handle) }
      throw SQLiteError(code: code, message: message, purpose: "open the database")
    }
    self.handle = handle
    sqlite3_extended_result_codes(handle, 1)
  }

  deinit {
    // Finalize every cached statement; close_v2 would also wait for them, but nothing else holds them.
    statements.removeAll()
    sqlite3_close_v2(handle)
  }

  /// An error for `code` that SQLite just returned on this connection.
  func error(_ code: Int32, purpose: String) -> SQLiteError {
    let extended = sqlite3_extended_errcode(handle)
    let message = String(cString: sqlite3_errmsg(handle))
    return SQLiteError(code: extended != 0 ? extended : code, message: message, purpose: purpose)
  }

  /// Sets how long a statement waits for another connection's lock before failing with `SQLITE_BUSY`.
  func setBusyTimeout(milliseconds: Int32) {
    sqlite3_busy_timeout(handle, milliseconds)
  }

  /// Runs one or more statements that take no parameters (schema changes, pragmas), without caching them.
  func execute(_ sql: String, purpose: String) throws(SQLiteError) {
    let code = sqlite3_exec(handle, sql, nil, nil, nil)
    guard code == SQLITE_OK else { throw error(code, purpose: purpose) }
  }

  /// The cached statement for `sql`, prepared on first use.
  func statement(_ sql: String, purpose: String) throws(SQLiteError) -> Statement {
    if let statement = statements[sql] { return statement }
    var statementHandle: OpaquePointer? = nil
    let code = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statementHandle, nil)
    guard code == SQLITE_OK, let statementHandle else {
      throw error(code, purpose: "prepare to \(purpose)")
    }
    let statement = Statement(handle: statementHandle, database: self, purpose: purpose)
    statements[sql] = statement
    return statement
  }

  /// Binds `values` to the cached statement for `sql` (parameters 1, 2, …), passes it to `body`, and resets it
  /// and clears its bindings afterwards, whether `body` succeeds or fails.
  func withStatement<Result>(
    _ sql: String, purpose: String, binding values: [SQLiteValue] = [],
    _ body: (Statement) throws(SQLiteError) -> Result
  ) throws(SQLiteError) -> Result {
    let statement = try statement(sql, purpose: purpose)
    defer { statement.reset() }
    try statement.bind(values)
    return try body(statement)
  }

  /// Runs the cached statement for `sql` with `values` to completion, ignoring any rows.
  func run(_ sql: String, purpose: String, binding values: [SQLiteValue] = []) throws(SQLiteError) {
    try withStatement(sql, purpose: purpose, binding: values) { (statement) throws(SQLiteError) in
      while try statement.step() {}
    }
  }

  /// The rows of the cached statement for `sql` with `values`, each made by `row`.
  func rows<Row>(
    _ sql: String, purpose: String, binding values: [SQLiteValue] = [], _ row: (Statement) -> Row
  ) throws(SQLiteError) -> [Row] {
    try withStatement(sql, purpose: purpose, binding: values) { (statement) throws(SQLiteError) in
      var rows: [Row] = []
      while try statement.step() { rows.append(row(statement)) }
      return rows
    }
  }

  /// The first row of the cached statement for `sql` with `values`, made by `row`, or nil when there is none.
  func firstRow<Row>(
    _ sql: String, purpose: String, binding values: [SQLiteValue] = [], _ row: (Statement) -> Row
  ) throws(SQLiteError) -> Row? {
    try withStatement(sql, purpose: purpose, binding: values) { (statement) throws(SQLiteError) in
      try statement.step() ? row(statement) : nil
    }
  }

  /// True outside any explicit transaction.
  var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

  /// Runs `body` in one write transaction (`BEGIN IMMEDIATE`, so the write lock is taken up front and a busy
  /// database waits through the busy timeout instead of failing on upgrade), committing when it returns and
  /// rolling back when it throws.
  func transaction<Result>(
    purpose: String, _ body: () throws(SQLiteError) -> Result
  ) throws(SQLiteError) -> Result {
    try run("BEGIN IMMEDIATE", purpose: "begin a transaction to \(purpose)")
    do {
      let result = try body()
      try run("COMMIT", purpose: "commit a transaction to \(purpose)")
      return result
    } catch {
      if !isAutocommit {
        try? run("ROLLBACK", purpose: "roll back a transaction to \(purpose)")
      }
      throw error
    }
  }
}

/// A prepared statement, owned and cached by its `SQLiteDatabase`.
final class Statement {
  let handle: OpaquePointer
  /// What the statement is for, for error messages.
  let purpose: String
  private unowned let database: SQLiteDatabase

  fileprivate init(handle: OpaquePointer, database: SQLiteDatabase, purpose: String) {
    self.handle = handle
    self.database = database
    self.purpose = purpose
  }

  deinit { sqlite3_finalize(handle) }

  /// Binds `values` to parameters 1, 2, … in order.
  func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
    for (offset, value) in values.enumerated() {
      try bind(value, at: Int32(offset + 1))
    }
  }

  /// Binds `value` to the parameter at `index` (1-based). Text and blobs are copied, with their exact length,
  /// so embedded NULs survive.
  func bind(_ value: SQLiteValue, at index: Int32) throws(SQLiteError) {
    let code: Int32
    switch value {
    case .null:
      code = sqlite3_bind_null(handle, index)
    case .integer(let integer):
      code = sqlite3_bind_int64(handle, index, integer)
    case .text(var text):
      code = text.withUTF8 { bytes in
        // A nil pointer would bind NULL; an empty string must stay an empty string.
        guard let base = bytes.baseAddress, !bytes.isEmpty else {
          return sqlite3_bind_text(handle, index, "", 0, csqlite_transient())
        }
        return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) { pointer in
          sqlite3_bind_text64(
            handle, index, pointer, sqlite3_uint64(bytes.count), csqlite_transient(), UInt8(SQLITE_UTF8))
        }
      }
    case .blob(let blob):
      if blob.isEmpty {
        // A nil pointer would bind NULL; an empty blob must stay an empty blob.
        code = sqlite3_bind_zeroblob(handle, index, 0)
      } else {
        code = blob.withUnsafeBytes { bytes in
          sqlite3_bind_blob64(handle, index, bytes.baseAddress, sqlite3_uint64(bytes.count), csqlite_transient())
        }
      }
    }
    guard code == SQLITE_OK else { throw database.error(code, purpose: "bind a value to \(purpose)") }
  }

  /// Advances to the next row: true when there is one, false when the statement is done.
  func step() throws(SQLiteError) -> Bool {
    let code = sqlite3_step(handle)
    switch code {
    case SQLITE_ROW: return true
    case SQLITE_DONE: return false
    default: throw database.error(code, purpose: purpose)
    }
  }

  /// Makes the statement ready to run again and drops its bindings (so no bound value outlives its use).
  func reset() {
    sqlite3_reset(handle)
    sqlite3_clear_bindings(handle)
  }

  func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

  func int64(_ column: Int32) -> Int64? {
    isNull(column) ? nil : sqlite3_column_int64(handle, column)
  }

  func int(_ column: Int32) -> Int? { int64(column).map { Int($0) } }

  func bool(_ column: Int32) -> Bool { sqlite3_column_int64(handle, column) != 0 }

  /// The column as text, with its exact byte length (embedded NULs kept), or nil for NULL.
  func text(_ column: Int32) -> String? {
    if isNull(column) { return nil }
    // column_text before column_bytes, as SQLite's documentation asks, so the length is of the UTF-8 form.
    guard let pointer = sqlite3_column_text(handle, column) else { return "" }
    let count = Int(sqlite3_column_bytes(handle, column))
    return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
  }

  /// The column as bytes; NULL and the empty blob both read as `[]`.
  func blob(_ column: Int32) -> [UInt8] {
    guard let pointer = sqlite3_column_blob(handle, column) else { return [] }
    let count = Int(sqlite3_column_bytes(handle, column))
    return Array(UnsafeRawBufferPointer(start: pointer, count: count))
  }
}
