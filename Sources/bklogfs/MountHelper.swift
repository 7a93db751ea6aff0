import ArgumentParser

/// `mount -t fuse.bklogfs` and `/etc/fstab`: mount(8) runs `/sbin/mount.fuse.bklogfs SOURCE DIR
/// [-sfnv] [-o OPTIONS]` (or `mount.bklogfs` for `-t bklogfs`), a link to this program, as it runs
/// Ceph's `mount.fuse.ceph`. This turns that call into `bklogfs mount`'s arguments.
///
/// - SOURCE: `s3://BUCKET[/PREFIX]` (the archive in a bucket), an absolute directory (a local
///   archive, `--archive`), or `buildkite` (Buildkite's names alone; the token comes from the
///   `api-token-file` option).
/// - OPTIONS: each of `bklogfs mount`'s long options as `name=value` (`cache-dir=/var/cache/bklogfs`,
///   `api-token-file=/etc/bklogfs/token`; `_` may stand for `-`) or, for a flag, `name`
///   (`requester-pays`); FUSE's own options (`allow_other`, `nodev`, ...) pass to FUSE as `-o`;
///   options for mount(8) and systemd (`defaults`, `_netdev`, `nofail`, `noauto`, `user`, `x-…`,
///   `ro`, and `rw`, which mount(8) passes when `ro` is not given: the mount is read-only whatever
///   it says) are left to them.
enum MountHelper {
  /// The names the program answers to as a mount helper.
  static let programNames: Set<String> = ["mount.fuse.bklogfs", "mount.bklogfs"]

  /// Options mount(8), systemd or the kernel handle, which `bklogfs mount` is not told.
  static let mountOptions: Set<String> = [
    "defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "_netdev", "nofail", "ro", "rw", "loop",
    "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async", "dirsync", "atime", "noatime", "relatime",
    "norelatime", "strictatime", "lazytime", "silent", "loud",
  ]

  /// FUSE's own mount options, passed on as `-o`.
  static let fuseOptions: Set<String> = ["allow_other", "allow_root", "auto_unmount", "default_permissions"]

  /// `bklogfs mount`'s flags (options without a value).
  static let flags: Set<String> = [
    "foreground", "requester-pays", "no-sign-request", "insecure-http", "plain", "timestamps",
  ]

  /// What to run: `bklogfs mount` with these arguments, or nothing at all (`-f`, mount(8)'s "fake").
  static func arguments(_ argv: [String]) throws -> [String]? {
    var positional: [String] = []
    var options: [String] = []
    var fake = false
    var index = 0
    while index < argv.count {
      let argument = argv[index]
      index += 1
      switch argument {
      case "-o":
        guard index < argv.count else { throw MountFailure("-o needs a list of options") }
        options += argv[index].split(separator: ",").map(String.init)
        index += 1
      case "-f": fake = true
      case "-s", "-n", "-v": break  // sloppy, no mtab, verbose: nothing to do
      case "-N", "-t":
        // A namespace or a type: the type is ours; a namespace is not supported.
        guard index < argv.count else { throw MountFailure("\(argument) needs a value") }
        if argument == "-N" { throw MountFailure("mount namespaces (-N) are not supported") }
        index += 1
      default:
        if argument.hasPrefix("-") { throw MountFailure("unknown mount helper flag \(argument)") }
        positional.append(argument)
      }
    }
    guard positional.count == 2 else {
      throw MountFailure("usage: mount.fuse.bklogfs SOURCE MOUNTPOINT [-o OPTIONS]")
    }
    let (source, mountpoint) = (positional[0], positional[1])
    // The fstab line's source, as /proc/mounts then shows it: `mount -a` sees the line is mounted.
    var result = [mountpoint, "--fsname", source]
    if source.hasPrefix("s3://") {
      result += ["--bucket", source]
    } else if source.hasPrefix("/") {
      result += ["--archive", source]
    } else if source != "buildkite" {
      throw MountFailure(
        "the source \(source) is not s3://BUCKET[/PREFIX], an absolute directory, or buildkite (names alone)")
    }
    for option in options where !option.isEmpty {
      let parts = option.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
      let name = parts[0]
      if mountOptions.contains(name) || name.hasPrefix("x-") || name.hasPrefix("comment=") { continue }
      if fuseOptions.contains(name) {
        result += ["-o", name]
        continue
      }
      let long = name.replacingUnderscores()
      if parts.count == 1 {
        guard flags.contains(long) else {
          throw MountFailure("the option \(name) needs a value (\(name)=…), or is not a bklogfs mount option")
        }
        result.append("--" + long)
      } else {
        guard !flags.contains(long) else { throw MountFailure("the option \(name) takes no value") }
        result += ["--" + long, parts[1]]
      }
    }
    return fake ? nil : result
  }
}

extension String {
  fileprivate func replacingUnderscores() -> String {
    String(map { $0 == "_" ? "-" : $0 })
  }
}
