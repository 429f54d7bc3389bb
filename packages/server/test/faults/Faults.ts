/** Faults several scenarios inject, and what they observe meanwhile. */
import { Clock, Duration, Effect, FiberSet, Random, Ref } from "effect"
import type { Stores } from "./Accounting.js"
import type { FaultContext } from "./Scenario.js"
import type { Supervised } from "./Supervisor.js"

/** Orders whose processing was requested and has no outcome yet: the processor's work in hand. */
export const inProcessing = (stores: Stores) =>
  [...stores.streams.values()].filter((events) => events.at(-1)?.type === "OrderProcessingRequested").length

/**
 * SIGKILL of a program picked at random among `programs`, `count` times, each
 * a random pause (up to `within`) after the previous victim is up again.
 */
export const killAtRandom = (
  { faultEnded, note }: FaultContext,
  programs: ReadonlyArray<Supervised>,
  count: number,
  within: Duration.DurationInput
) =>
  Effect.forEach(Array.from({ length: count }, (_, i) => i), () =>
    Effect.gen(function*() {
      yield* Effect.sleep(Duration.millis(yield* Random.nextIntBetween(1_000, Duration.toMillis(within))))
      const victim = programs[yield* Random.nextIntBetween(0, programs.length)]!
      yield* victim.kill
      yield* faultEnded
      yield* note(`killed ${victim.name}`)
      yield* victim.ready
    }), { discard: true })

export interface QueryAnswer {
  readonly sentAt: number
  readonly answeredAt: number
  readonly status: number | "no answer"
}

/**
 * Queries (`GET /:id` and `GET /?limit=`) to every server, every 250 ms,
 * until `until` completes: what a reader sees meanwhile.
 */
export const probeQueries = <A, E, R>(urls: ReadonlyArray<string>, orderId: string, until: Effect.Effect<A, E, R>) =>
  Effect.scoped(Effect.gen(function*() {
    const answers = yield* Ref.make<ReadonlyArray<QueryAnswer>>([])
    const inFlight = yield* FiberSet.make()
    const query = (url: string) =>
      Effect.gen(function*() {
        const sentAt = yield* Clock.currentTimeMillis
        const status = yield* Effect.promise(() =>
          fetch(url, { signal: AbortSignal.timeout(60_000) }).then(
            async (response) => {
              await response.arrayBuffer()
              return response.status
            },
            () => "no answer" as const
          )
        )
        const answeredAt = yield* Clock.currentTimeMillis
        yield* Ref.update(answers, (all) => [...all, { sentAt, answeredAt, status }])
      })
    const round = Effect.forEach(
      urls.flatMap((url) => [`${url}/${orderId}`, `${url}/?limit=5`]),
      (url) => FiberSet.run(inFlight, query(url)),
      { discard: true }
    )
    const result = yield* Effect.raceFirst(
      round.pipe(Effect.zipRight(Effect.sleep(Duration.millis(250))), Effect.forever),
      until
    )
    // The queries still in flight are answered within their own time limit.
    yield* FiberSet.awaitEmpty(inFlight)
    return { result, answers: yield* Ref.get(answers) }
  }))
