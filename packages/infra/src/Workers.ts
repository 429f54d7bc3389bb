/**
 * The background loops of a program (the outbox relay, the consumers), run so
 * that none can die silently: a loop that stops for any reason but
 * interruption is logged at error level and ends the program, non-zero, for
 * its supervisor to restart it. Expected failures are each loop's own to retry.
 */
import type { Scope } from "effect"
import { Cause, Data, Deferred, Effect } from "effect"

/** A background loop stopped: the program cannot do its work any more. */
export class WorkerStopped extends Data.TaggedError("WorkerStopped")<{
  readonly worker: string
  readonly cause: Cause.Cause<unknown>
}> {
  override get message() {
    return `${this.worker} stopped: ${Cause.pretty(this.cause)}`
  }
}

export class Workers extends Effect.Service<Workers>()("orders/Workers", {
  effect: Effect.gen(function*() {
    const stopped = yield* Deferred.make<never, WorkerStopped>()

    /** Runs `loop` in the background for as long as the Scope lives. A loop is not meant to end. */
    const run = <E, R>(
      worker: string,
      loop: Effect.Effect<unknown, E, R>
    ): Effect.Effect<void, never, R | Scope.Scope> =>
      loop.pipe(
        Effect.zipRight(Effect.dieMessage("returned")),
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ?
            Effect.void :
            Effect.logError(`${worker} stopped; the program ends`, cause).pipe(
              Effect.zipRight(Deferred.fail(stopped, new WorkerStopped({ worker, cause })))
            )
        ),
        Effect.forkScoped,
        Effect.asVoid
      )

    /** Fails as soon as any loop stopped; never succeeds. */
    const awaitStopped: Effect.Effect<never, WorkerStopped> = Deferred.await(stopped)

    return { run, awaitStopped } as const
  })
}) {}
