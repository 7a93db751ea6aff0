import SystemBase
import SystemPackage

/// Prepares the catalog's file before SQLite opens it: the parent directory (and any missing ancestor) is
/// created with mode 0700, and the file is created with mode 0600, or tightened to 0600 if it exists with
/// wider permissions. SQLite gives the `-wal` and `-shm` files it creates the database file's permissions.
enum CatalogFile {
  static func prepare(path: String) throws(CatalogError) {
    guard !path.isEmpty else { throw CatalogError("The catalog path is empty.") }
    do {
      try FileSystem.makeParentDirectories(of: path, permissions: .ownerReadWriteExecute)
    } catch {
      let reason = error.errno == .notDirectory ? "it exists and is not a directory" : error.reason
      throw CatalogError("Cannot create the catalog's directory \(error.path ?? path): \(reason).")
    }

    let file: OpenedFile
    do {
      file = try FileSystem.open(path, .readWrite, options: .create, permissions: .ownerReadWrite)
    } catch {
      throw CatalogError("Cannot open or create the catalog file \(path): \(error.reason).")
    }
    defer { file.closeIgnoringErrors() }
    let status: Stat
    do {
      status = try file.stat()
    } catch {
      throw CatalogError("Cannot inspect the catalog file \(path): \(error.reason).")
    }
    guard status.type == .regular else {
      throw CatalogError("The catalog path \(path) is not a regular file.")
    }
    guard status.permissions.rawValue & 0o077 != 0 else { return }
    do {
      try file.setPermissions(.ownerReadWrite)
    } catch {
      throw CatalogError("Cannot restrict the catalog file \(path) to mode 0600: \(error.reason).")
    }
  }
}
