import FuseAdapter
import SystemBase
import SystemPackage

/// The files under paths of bklogfs mounts, as the commands that work on a mount's files from
/// outside it (`bklogfs restore`, `bklogfs warm`) find them: a file is itself, a directory is
/// walked whole; links are not followed (a build's readable aliases point at files the walk finds
/// itself), and a walk never leaves the mount it started in.
enum MountWalk {
  /// Walks `paths` in order. `mount` is called with the root of each mount the paths are in, once
  /// a mount (the paths of a glob are mostly in one), before any of its files; `file` with each
  /// regular file, its status, and the root of its mount.
  static func walk(
    _ paths: [String], mount: (_ root: String) throws -> Void,
    file: (_ path: String, _ status: Stat, _ root: String) throws -> Void
  ) throws {
    var roots: [DeviceID: String] = [:]
    for path in paths {
      guard let status = try? FileSystem.stat(path, followingSymlinks: false) else {
        throw MountFailure("\(path) does not exist")
      }
      let device = status.deviceID
      let root: String
      if let known = roots[device] {
        root = known
      } else {
        root = try self.root(of: path, device: device)
        roots[device] = root
        try mount(root)
      }
      try walk(path, status: status, device: device) { path, status in try file(path, status, root) }
    }
  }

  /// The root of the bklogfs mount `path` is in: the topmost directory on the same device, which
  /// answers the statistics attribute.
  static func root(of path: String, device: DeviceID) throws -> String {
    var current = absolutePath(path)
    while current != "/" {
      let parent = current.split(separator: "/").dropLast().joined(separator: "/")
      let parentPath = "/" + parent
      guard let status = try? FileSystem.stat(parentPath), status.deviceID == device else { break }
      current = parentPath
    }
    guard (try? FileSystem.extendedAttribute(current, statisticsAttribute)) ?? nil != nil else {
      throw MountFailure("\(path) is not in a bklogfs mount: give a path under a mountpoint")
    }
    return current
  }

  private static func walk(
    _ path: String, status: Stat, device: DeviceID, file: (_ path: String, _ status: Stat) throws -> Void
  ) throws {
    switch status.type {
    case .directory:
      guard status.deviceID == device else { return }
      let names: [[UInt8]]
      do throws(SystemCallError) {
        names = try FileSystem.listDirectoryBytes(path)
      } catch {
        throw MountFailure("cannot list \(path): \(error)")
      }
      for name in names {
        let child = path + "/" + String(decoding: name, as: UTF8.self)
        guard let childStatus = try? FileSystem.stat(child, followingSymlinks: false) else { continue }
        try walk(child, status: childStatus, device: device, file: file)
      }
    case .regular:
      try file(path, status)
    default:
      return
    }
  }
}
