import { describe, expect, it } from "@effect/vitest"
import type { Array as Arr } from "effect"
import { Deferred, Duration, Effect, Either, Exit, Fiber, Scope } from "effect"
import * as GroupCommit from "../src/GroupCommit.js"

/** A writer whose batches wait for `release`, recording what each held. */
const gatedWriter = Effect.gen(function*() {
  const release = yield* Deferred.make<void>()
  const batches: Array<ReadonlyArray<number>> = []
  const write = (items: Arr.NonEmptyReadonlyArray<number>) =>
    Effect.sync(() => batches.push(items)).pipe(
      Effect.zipRight(Deferred.await(release)),
      Effect.as(items.map((item) => item % 2 === 0 ? Exit.succeed(item * 10) : Exit.fail(`odd ${item}`)))
    )
  return { release, batches, write }
})

/** Forks a caller per item, and returns once each waits for its answer (or has it). */
const callersWaiting = <A, E>(items: ReadonlyArray<number>, submit: (item: number) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const callers = yield* Effect.forEach(items, (item) => Effect.fork(Effect.either(submit(item))))
    yield* Effect.yieldNow().pipe(
      Effect.zipRight(Effect.forEach(callers, (caller) => caller.status)),
      Effect.repeat({ until: (statuses) => statuses.every((status) => status._tag !== "Running") })
    )
    return callers
  })

const outcomeOf = <A, E>(outcome: Either.Either<A, E>) => Either.isRight(outcome) ? outcome.right : outcome.left

describe("GroupCommit", () => {
  it.scoped("sends the writes asked for while one is in flight together, and answers each caller with its own outcome", () =>
    Effect.gen(function*() {
      const { batches, release, write } = yield* gatedWriter
      const submit = yield* GroupCommit.make({ write, maxBatch: 3, concurrency: 1, closed: "closed" })
      const first = yield* callersWaiting([0], submit)
      expect(batches).toEqual([[0]])
      const rest = yield* callersWaiting([1, 2, 3, 4, 5], submit)
      yield* Deferred.succeed(release, undefined)
      const outcomes = yield* Effect.forEach([...first, ...rest], Fiber.join)
      expect(outcomes.map(outcomeOf)).toEqual([0, "odd 1", 20, "odd 3", 40, "odd 5"])
      // A lone write leaves at once; the others gathered meanwhile, at most three a batch.
      expect(batches).toEqual([[0], [1, 2, 3], [4, 5]])
    }))

  it.live("with a linger, waits that long after a batch's first write for more", () =>
    Effect.gen(function*() {
      const batches: Array<ReadonlyArray<number>> = []
      const submit = yield* GroupCommit.make({
        write: (items: Arr.NonEmptyReadonlyArray<number>) =>
          Effect.sync(() => batches.push(items)).pipe(Effect.as(items.map(Exit.succeed))),
        maxBatch: 3,
        concurrency: 1,
        closed: "closed",
        linger: Duration.millis(100)
      })
      const first = yield* Effect.fork(submit(0))
      yield* Effect.sleep(Duration.millis(20))
      expect(batches).toEqual([])
      const later = yield* Effect.forEach([1, 2, 3], (item) => Effect.fork(submit(item)))
      expect(yield* Effect.forEach([first, ...later], Fiber.join)).toEqual([0, 1, 2, 3])
      // The first batch took what came within its linger, up to its size; the rest went after a linger of its own.
      expect(batches).toEqual([[0, 1, 2], [3]])
    }).pipe(Effect.scoped))

  it.scoped("answers every caller of a batch whose write died, and keeps writing the next ones", () =>
    Effect.gen(function*() {
      let calls = 0
      const submit = yield* GroupCommit.make({
        write: (items: Arr.NonEmptyReadonlyArray<number>) =>
          ++calls === 1 ? Effect.dieMessage("driver bug") : Effect.succeed(items.map(Exit.succeed)),
        maxBatch: 10,
        concurrency: 1,
        closed: "closed"
      })
      const died = yield* Effect.exit(submit(1))
      expect(Exit.isFailure(died) && !Exit.isInterrupted(died)).toBe(true)
      expect(String(Exit.isFailure(died) ? died.cause : "")).toContain("driver bug")
      expect(yield* submit(2)).toBe(2)
    }))

  it.effect("tells the callers in flight and in the queue that the store closed, rather than leaving them waiting", () =>
    Effect.gen(function*() {
      const { batches, write } = yield* gatedWriter
      const scope = yield* Scope.make()
      const submit = yield* GroupCommit.make({ write, maxBatch: 1, concurrency: 1, closed: "closed" }).pipe(
        Scope.extend(scope)
      )
      const waiting = yield* callersWaiting([0, 2], submit)
      expect(batches).toEqual([[0]])
      yield* Scope.close(scope, Exit.void)
      const outcomes = yield* Effect.forEach(waiting, Fiber.join)
      expect(outcomes.map(outcomeOf)).toEqual(["closed", "closed"])
    }))
})
