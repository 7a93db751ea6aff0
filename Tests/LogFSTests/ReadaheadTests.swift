import LogFS
import Testing

@Suite struct ReadaheadTests {
  let mib: UInt64 = 1 << 20

  @Test func sequentialReaderGetsAGrowingWindow() {
    var state = ReadaheadState(initialWindow: mib, maxWindow: 8 * mib, fileSize: 1024 * mib)
    var windows: [UInt64] = []
    var offset: UInt64 = 0
    for _ in 0..<8 {
      _ = state.onRead(offset: offset, end: offset + 128 * 1024)
      windows.append(state.window)
      offset += 128 * 1024
    }
    #expect(windows == [mib, 2 * mib, 4 * mib, 8 * mib, 8 * mib, 8 * mib, 8 * mib, 8 * mib])
    #expect(state.requestedEnd == 4 * 128 * 1024 + 8 * mib)
  }

  @Test func aFullWindowIsToppedUpInRunsOfHalfAWindow() {
    var state = ReadaheadState(initialWindow: mib, maxWindow: 8 * mib, fileSize: 1024 * mib)
    var runs: [UInt64] = []
    var offset: UInt64 = 0
    while offset < 64 * mib {
      if let ahead = state.onRead(offset: offset, end: offset + 256 * 1024) {
        runs.append(ahead.upperBound - ahead.lowerBound)
      }
      offset += 256 * 1024
      // Never further ahead than the window.
      #expect(state.requestedEnd <= offset + 8 * mib)
    }
    // A few growing runs, then one run of half the window (plus the last read) per half window read.
    #expect(runs.count < 24, "\(runs)")
    #expect(runs.dropFirst(6).allSatisfy { $0 >= 4 * mib }, "\(runs)")
  }

  @Test func aLimitCapsTheWindowAndShrinksItButNotBelowTheFirstWindow() {
    var state = ReadaheadState(initialWindow: mib, maxWindow: 32 * mib, fileSize: 1024 * mib)
    var offset: UInt64 = 0
    func read(limit: UInt64) {
      _ = state.onRead(offset: offset, end: offset + 128 * 1024, limit: limit)
      offset += 128 * 1024
    }
    for _ in 0..<10 { read(limit: 8 * mib) }
    #expect(state.window == 8 * mib)
    // More readers came: the next read's window is the smaller share.
    read(limit: 2 * mib)
    #expect(state.window == 2 * mib)
    // A share below the first window still leaves the first window.
    for _ in 0..<4 { read(limit: 1000) }
    #expect(state.window == mib)
    // Fewer readers again: the window grows back, up to the largest window.
    for _ in 0..<10 { read(limit: .max) }
    #expect(state.window == 32 * mib)
  }

  @Test func aCappedReaderIsToppedUpWithinItsShare() {
    var state = ReadaheadState(initialWindow: mib, maxWindow: 32 * mib, fileSize: 1024 * mib)
    var offset: UInt64 = 0
    var fetched: UInt64 = 0
    while offset < 256 * mib {
      if let ahead = state.onRead(offset: offset, end: offset + 128 * 1024, limit: 4 * mib) {
        fetched += ahead.upperBound - ahead.lowerBound
      }
      offset += 128 * 1024
      #expect(state.requestedEnd <= offset + 4 * mib)
    }
    // The whole file still goes ahead of the reader, in runs of half the share.
    #expect(fetched >= 256 * mib - 128 * 1024)
  }

  @Test func prefetchRangesDoNotOverlap() {
    var state = ReadaheadState(initialWindow: mib, maxWindow: 4 * mib, fileSize: 64 * mib)
    var covered: UInt64 = 0
    var offset: UInt64 = 0
    while offset < 64 * mib {
      if let ahead = state.onRead(offset: offset, end: offset + 256 * 1024) {
        #expect(ahead.lowerBound >= covered)
        covered = ahead.upperBound
      }
      offset += 256 * 1024
    }
    #expect(covered == 64 * mib)
  }

  @Test func aJumpResetsTheWindowAndFetchesNothingAhead() {
    var state = ReadaheadState(initialWindow: mib, maxWindow: 8 * mib, fileSize: 1024 * mib)
    _ = state.onRead(offset: 0, end: mib)
    _ = state.onRead(offset: mib, end: 2 * mib)
    #expect(state.window == 2 * mib)
    #expect(state.onRead(offset: 900 * mib, end: 900 * mib + 4096) == nil)
    #expect(state.window == 0)
  }

  @Test func tailOfALargeFileFetchesNothingAhead() {
    let size = 1024 * mib
    var state = ReadaheadState(initialWindow: mib, maxWindow: 8 * mib, fileSize: size)
    #expect(state.onRead(offset: size - 65536, end: size) == nil)
  }

  @Test func slightlyOutOfOrderReadsStaySequential() {
    var state = ReadaheadState(initialWindow: mib, maxWindow: 8 * mib, fileSize: 1024 * mib)
    _ = state.onRead(offset: 0, end: 128 * 1024)
    _ = state.onRead(offset: 256 * 1024, end: 384 * 1024)
    _ = state.onRead(offset: 128 * 1024, end: 256 * 1024)
    #expect(state.window >= 2 * mib)
  }

  @Test func windowStopsAtTheEndOfTheFile() {
    var state = ReadaheadState(initialWindow: 4 * mib, maxWindow: 8 * mib, fileSize: 2 * mib)
    let ahead = state.onRead(offset: 0, end: 4096)
    #expect(ahead == 4096..<(2 * mib))
    #expect(state.onRead(offset: 4096, end: 8192) == nil)
  }
}

@Suite struct ConsumedBlocksTests {
  let mib: UInt64 = 1 << 20

  @Test func aSequentialReaderHandsBackWholeBlocksTwoBehindEachOnce() {
    var state = ReadaheadState(initialWindow: mib, maxWindow: 8 * mib, fileSize: 64 * mib)
    var released: [Range<UInt64>] = []
    var offset: UInt64 = 0
    while offset < 8 * mib {
      _ = state.onRead(offset: offset, end: offset + 128 * 1024)
      if let range = state.consumed(blockSize: mib, keepBlocks: 2) { released.append(range) }
      offset += 128 * 1024
    }
    // Read up to 8 MiB: blocks 0 to 5 are handed back, each once, in order.
    #expect(released.first?.lowerBound == 0)
    #expect(released.last?.upperBound == 6 * mib)
    #expect(zip(released, released.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
  }

  @Test func aJumpingReaderHandsBackNothingAndANewRunOnlyWhatItRead() {
    var state = ReadaheadState(initialWindow: mib, maxWindow: 8 * mib, fileSize: 1024 * mib)
    // A jump into the middle of block 500.
    #expect(state.onRead(offset: 500 * mib + 4096, end: 500 * mib + 8192) == nil)
    #expect(state.consumed(blockSize: mib, keepBlocks: 2) == nil)
    var offset = 500 * mib + 8192
    while offset < 510 * mib {
      _ = state.onRead(offset: offset, end: offset + 128 * 1024)
      offset += 128 * 1024
    }
    // Block 500 was read only in part: the run hands back blocks 501 to 507.
    #expect(state.consumed(blockSize: mib, keepBlocks: 2) == (501 * mib)..<(508 * mib))
  }
}

@Suite struct WalkStateTests {
  @Test func inOrderOpensGetAGrowingWindow() {
    var state = WalkState(initialWindow: 2, maxWindow: 8)
    var ranges: [Range<Int>?] = []
    for index in 0..<6 { ranges.append(state.onOpen(index: index, count: 100)) }
    #expect(ranges == [1..<3, 3..<6, 6..<11, 11..<12, 12..<13, 13..<14])
  }

  @Test func aJumpEndsTheWalkAndTheWindowStopsAtTheEnd() {
    var state = WalkState(initialWindow: 2, maxWindow: 8)
    #expect(state.onOpen(index: 5, count: 10) == nil)
    #expect(state.onOpen(index: 6, count: 10) == 7..<9)
    #expect(state.onOpen(index: 2, count: 10) == nil)
    #expect(state.window == 0)
    #expect(state.onOpen(index: 3, count: 10) == 4..<6)
    #expect(state.onOpen(index: 4, count: 10) == 6..<9)
    #expect(state.onOpen(index: 5, count: 10) == 9..<10)
    #expect(state.onOpen(index: 9, count: 10) == nil)
    // Back to the first entry: a new walk.
    #expect(state.onOpen(index: 0, count: 10) == 1..<3)
  }
}
