import BuildkiteNames
import Testing

/// How `bklogfs sync` walks down a pipeline's builds by creation time: each page asks for builds
/// created before the second after the oldest reached, so a walk can go on from any point.
@Suite struct BuildWalkTests {
  @Test func eachPageAsksForBuildsBeforeTheOldestSecondReached() {
    var walk = BuildWalk(floor: nil)
    #expect(walk.createdTo == nil && walk.page == 1)
    walk.advance(createdTimes: [500, 400, 300], hasNext: true)
    #expect(walk.newest == 500 && walk.oldest == 300)
    // The second 300 again: a page may have ended among its builds.
    #expect(walk.createdTo == 301 && walk.page == 1 && !walk.isDone)
    walk.advance(createdTimes: [300, 200, 100], hasNext: true)
    #expect(walk.createdTo == 101 && walk.newest == 500)
    walk.advance(createdTimes: [100, 50], hasNext: false)
    #expect(walk.isDone && walk.reachedEnd && walk.oldest == 50)
  }

  @Test func aPageOfOneSecondOnlyTurnsThePage() {
    var walk = BuildWalk(floor: nil, from: 300)
    #expect(walk.createdTo == 301)
    walk.advance(createdTimes: [300, 300, 300], hasNext: true)
    #expect(walk.createdTo == 301 && walk.page == 2 && !walk.isDone)
    walk.advance(createdTimes: [300, 299], hasNext: true)
    #expect(walk.createdTo == 300 && walk.page == 1)
  }

  @Test func aWalkWithAFloorHoldsEverythingFromItAndHasNotReachedTheEnd() {
    var walk = BuildWalk(floor: 100)
    walk.advance(createdTimes: [500, 400], hasNext: false)
    #expect(walk.isDone && !walk.reachedEnd && walk.oldest == 100 && walk.newest == 500)
    // An API that ignores `created_from`: the walk stops at the first page below the floor.
    var ignored = BuildWalk(floor: 100)
    ignored.advance(createdTimes: [200, 90], hasNext: true)
    #expect(ignored.isDone && !ignored.reachedEnd && ignored.oldest == 90)
  }

  @Test func anEmptyPipelineIsDoneAtOnce() {
    var walk = BuildWalk(floor: nil)
    walk.advance(createdTimes: [], hasNext: false)
    #expect(walk.isDone && walk.reachedEnd && walk.oldest == nil && walk.newest == nil)
    // A build without a creation time moves nothing but the page.
    var untimed = BuildWalk(floor: nil, from: 10)
    untimed.advance(createdTimes: [nil], hasNext: true)
    #expect(untimed.page == 2 && untimed.createdTo == 11)
  }
}
