import BlockCache
import Dispatch
import Logging
import ObjectStore
import Synchronization
import TestSupport
import Testing

@testable import LogFS

/// A reader that needs only the start of a block being fetched takes its bytes as they arrive: a
/// cold `head -c 1000` over a network like S3's waits for the first byte and its own bytes, not
/// for the whole block (issue 16).
@Suite struct PartialBlockTests {
  let blockSize = 64 * 1024

  private func reader(_ client: any ObjectClient, pool: WorkerPool) -> BlockReader {
    BlockReader(
      client: client, blockSize: blockSize, partSize: 4 * blockSize,
      memory: MemoryBlockCache(maxBytes: 16 * blockSize), disk: nil, pool: pool, waitLimit: 20,
      counters: ReadCounters(), logger: Logger(label: "test"))
  }

  /// A read on another thread: its bytes (nil on an error) once `done` is signalled.
  private final class BackgroundRead: Sendable {
    let got = Mutex<[UInt8]?>(nil)
    let done = DispatchSemaphore(value: 0)

    init(_ blocks: BlockReader, _ object: BlockReader.ObjectVersion, _ range: Range<UInt64>) {
      DispatchQueue.global().async { [self] in
        got.withLock { $0 = try? Array(blocks.read(object, offset: range.lowerBound, end: range.upperBound).joined()) }
        done.signal()
      }
    }
  }

  @Test func aReadOfABlocksStartReturnsBeforeTheBlockIsWhole() throws {
    let store = InMemoryObjectClient()
    let bytes = pattern(3 * blockSize)
    store.put("big.log", bytes)
    let client = GatedObjectClient(store, sendingFirst: 4096)
    let pool = WorkerPool(threads: 2)
    defer { pool.shutdown() }
    let blocks = reader(client, pool: pool)
    let object = BlockReader.ObjectVersion(
      key: "big.log", etag: try store.head(key: "big.log").etag, size: UInt64(bytes.count))

    // The first 1,000 bytes have arrived and the rest of the block has not: the read returns them.
    let first = BackgroundRead(blocks, object, 0..<1000)
    #expect(first.done.wait(timeout: .now() + 5) == .success, "the read waited for the whole block")
    #expect(first.got.withLock { $0 } == Array(bytes[0..<1000]))
    #expect(blocks.claimedBlocks == 1, "the block is still being fetched")

    // A second reader of bytes not there yet waits for them; once the gate opens, both the block
    // and that read are whole, and the block was fetched once.
    let later = BackgroundRead(blocks, object, 5000..<9000)
    #expect(later.done.wait(timeout: .now() + 0.3) == .timedOut, "bytes that had not arrived were read")
    client.gate.signal()
    #expect(later.done.wait(timeout: .now() + 5) == .success)
    #expect(later.got.withLock { $0 } == Array(bytes[5000..<9000]))
    #expect(try Array(blocks.read(object, offset: 0, end: UInt64(blockSize)).joined()) == Array(bytes[0..<blockSize]))
    #expect(store.counters.snapshot.gets == 1)
    #expect(blocks.claimedBlocks == 0)
  }

  @Test func aFailedFetchFailsTheReadersOfItsParts() throws {
    let store = InMemoryObjectClient()
    let bytes = pattern(2 * blockSize)
    store.put("gone.log", bytes)
    let pool = WorkerPool(threads: 2)
    defer { pool.shutdown() }
    let blocks = reader(store, pool: pool)
    // The object changed after it was listed: the GET's If-Match fails, and so does the read.
    let object = BlockReader.ObjectVersion(key: "gone.log", etag: "\"stale\"", size: UInt64(bytes.count))
    #expect(throws: FilesystemError.self) { try blocks.read(object, offset: 10, end: 20) }
    #expect(blocks.claimedBlocks == 0)
  }
}
