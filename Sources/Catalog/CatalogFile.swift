import Glibc

/// Prepares the catalog's file before SQLite opens it: the parent directory (and any missing ancestor) is
/// created with mode 0700, and the file is created with mode 0600, or tightened to 0600 if it exists with
/// wider permissions. SQLite gives the `-wal` and `-shm` files it creates the database file's permissions.
enum CatalogFile {
  static func prepare(path: String) throws(CatalogError) {
    guard !path.isEmpty else { throw CatalogError("The catalog path is empty.") }
    try createParentDirectories(of: path)

    let descriptor = retryingEINTR { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
    guard descriptor >= 0 else {
      throw CatalogError("Cannot open or create the catalog file \(path): \(reason(errno)).")
    }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0 else {
      throw CatalogError("Cannot inspect the catalog file \(path): \(reason(errno)).")
    }
    guard status.st_mode & S_IFMT == S_IFREG else {
      throw CatalogError("The catalog path \(path) is not a regular file.")
    }
    if status.st_mode & 0o077 != 0, fchmod(descriptor, 0o600) != 0 {
      throw CatalogError("Cannot restrict the catalog file \(path) to mode 0600: \(reason(errno)).")
    }
  }

  /// Creates every missing directory above `path`, each with mode 0700; existing ones are left as they are.
  private static func createParentDirectories(of path: String) throws(CatalogError) {
    let components = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
    var prefix = ""
    for (index, component) in components.enumerated() {
      prefix += index == 0 ? String(component) : "/" + component
      if component.isEmpty || component == "." || component == ".." { continue }
      if mkdir(prefix, 0o700) == 0 { continue }
      let error = errno
      var status = stat()
      if error == EEXIST, stat(prefix, &status) == 0, status.st_mode & S_IFMT == S_IFDIR { continue }
      throw CatalogError(
        "Cannot create the catalog's directory \(prefix): \(error == EEXIST ? "it exists and is not a directory" : reason(error))."
      )
    }
  }

  private static func reason(_ error: Int32) -> String { String(cString: strerror(error)) }

  private static func retryingEINTR(_ body: () -> Int32) -> Int32 {
    while true {
      let result = body()
      if result == -1 && errno == EINTR { continue }
      return result
    }
  }
}
