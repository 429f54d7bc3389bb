import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Option, TestClock } from "effect"
import { launch } from "../src/Program.js"
import { Workers, WorkerStopped } from "../src/Workers.js"

/** A program of one background loop. */
const programOf = (loop: Effect.Effect<unknown, unknown>) =>
  Layer.scopedDiscard(Effect.flatMap(Workers, (workers) => workers.run("test loop", loop)))

const stoppedWorker = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

describe("Workers", () => {
  it.effect("ends the program when a loop dies of a defect", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(launch(programOf(Effect.dieMessage("boom"))))
      const stopped = stoppedWorker(exit)
      expect(stopped).toBeInstanceOf(WorkerStopped)
      expect((stopped as WorkerStopped).message).toContain("test loop stopped")
      expect((stopped as WorkerStopped).message).toContain("boom")
    }))

  it.effect("ends the program when a loop fails, or returns", () =>
    Effect.gen(function*() {
      expect(stoppedWorker(yield* Effect.exit(launch(programOf(Effect.fail("gave up")))))).toBeInstanceOf(WorkerStopped)
      expect(stoppedWorker(yield* Effect.exit(launch(programOf(Effect.void))))).toBeInstanceOf(WorkerStopped)
    }))

  it.effect("keeps the program running while its loops run, and stops them when it is interrupted", () =>
    Effect.gen(function*() {
      let interrupted = false
      const loop = Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => (interrupted = true))))
      const program = yield* Effect.fork(launch(programOf(loop)))
      yield* TestClock.adjust("1 hour")
      expect(program.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(program)
      expect(interrupted).toBe(true)
    }))
})
