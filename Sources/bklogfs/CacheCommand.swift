import ArgumentParser
import BlockCache
import Logging
import SystemBase

/// The size of the blocks a mount keeps: the disk cache is read in these.
let mountBlockSize = 1 << 20

struct CacheCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cache",
    abstract: "Shows what the disk cache holds, and verifies, prunes or clears it while no mount uses it.",
    discussion: """
      The cache is a directory of checksummed 1 MiB blocks (--cache-dir, as for mount). verify, prune \
      and clear take it for themselves: they refuse while a mount uses it, and a mount started meanwhile \
      waits for nothing but fails with one sentence. The catalog of Buildkite names beside the blocks is \
      left alone.
      """,
    subcommands: [Show.self, Verify.self, Prune.self, Clear.self], defaultSubcommand: Show.self)

  struct Location: ParsableArguments {
    @Option(help: "The cache directory (default: $XDG_CACHE_HOME/bklogfs, as for mount).", completion: .directory)
    var cacheDir: String?

    var directory: String { absolutePath(cacheDir ?? defaultCacheDirectory()) }
  }

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "What the cache holds, by store: blocks, bytes and objects. Reads block headers only.")
    @OptionGroup var location: Location

    func run() throws {
      let inventory = try runOrFail { () throws(DiskCacheError) in
        try DiskBlockCache.inventory(directory: location.directory, blockSize: mountBlockSize, verify: false)
      }
      print(describe(inventory, directory: location.directory), terminator: "")
    }
  }

  struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Reads every block and checks its checksum; damaged blocks are removed. Exits 1 if any was.")
    @OptionGroup var location: Location

    func run() throws {
      let inventory = try runOrFail { () throws(DiskCacheError) in
        try DiskBlockCache.inventory(directory: location.directory, blockSize: mountBlockSize, verify: true)
      }
      print(describe(inventory, directory: location.directory), terminator: "")
      if inventory.damaged > 0 { throw ExitCode(1) }
    }
  }

  struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Evicts the least recently used blocks until the cache holds at most --to.")
    @OptionGroup var location: Location
    @Option(help: "The most the cache may hold afterwards, such as 2G or 500M.")
    var to: ByteSize

    func run() throws {
      let statistics = try runOrFail { () throws(DiskCacheError) in
        try DiskBlockCache.prune(
          directory: location.directory, toBytes: to.bytes, blockSize: mountBlockSize,
          logger: Logger(label: "bklogfs.cache"))
      }
      print(
        "\(location.directory): \(statistics.blocks) blocks, \(humanBytes(statistics.bytes)) "
          + "(\(statistics.evictions) evicted)")
    }
  }

  struct Clear: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Removes every block (the catalog stays).")
    @OptionGroup var location: Location

    func run() throws {
      let statistics = try runOrFail { () throws(DiskCacheError) in
        try DiskBlockCache.prune(
          directory: location.directory, toBytes: 0, blockSize: mountBlockSize, logger: Logger(label: "bklogfs.cache"))
      }
      print("\(location.directory): cleared (\(statistics.evictions) blocks removed)")
    }
  }
}

/// The cache's contents for people: totals, then a line a store.
private func describe(_ inventory: DiskCacheInventory, directory: String) -> String {
  var text = "\(directory): \(inventory.blocks) blocks, \(humanBytes(inventory.bytes))"
  if inventory.dataChecked { text += ", every block read and checked" }
  text += "\n"
  for source in inventory.sources {
    text += "  \(source.source)  \(source.blocks) blocks, \(humanBytes(source.bytes)), \(source.objects) objects\n"
  }
  if inventory.damaged > 0 {
    text += "\(inventory.damaged) damaged blocks" + (inventory.dataChecked ? " removed\n" : " (run verify)\n")
  }
  if inventory.otherBlockSize > 0 {
    text += "\(inventory.otherBlockSize) blocks of another block size (the next mount removes them)\n"
  }
  return text
}

private func runOrFail<T>(_ body: () throws(DiskCacheError) -> T) throws -> T {
  do throws(DiskCacheError) {
    return try body()
  } catch {
    throw MountFailure(error.description)
  }
}
