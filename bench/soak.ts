/**
 * The soak: a sustained mix of creates, reads and processes, with the
 * server's resident memory read from /proc before, during and after it, and
 * beside it how many commits its event store remembers (from `/metrics`):
 * the memory grows with them up to their bound.
 */
import { Duration, Effect, Fiber, Option, Schedule } from "effect"
import { readFile } from "node:fs/promises"
import type { Measurement } from "./load.js"
import { httpLoad } from "./load.js"
import type { OrderPool } from "./scenarios.js"
import { mixedRequests } from "./scenarios.js"

/** Megabytes of `VmRSS` in /proc/<pid>/status; none when the process is gone or not on this machine. */
export const residentMegabytes = (pid: number) =>
  Effect.tryPromise(() => readFile(`/proc/${pid}/status`, "utf8")).pipe(
    Effect.map((status) => Option.fromNullable(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1])),
    Effect.map(Option.map((kilobytes) => Number(kilobytes) / 1024)),
    Effect.orElseSucceed(() => Option.none<number>())
  )

/** How many commits the server's event store remembers, from its `/metrics`; none for a store that keeps none. */
const knownCommits = (url: string) =>
  Effect.tryPromise(() => fetch(`${url}/metrics`).then((response) => response.text())).pipe(
    Effect.map((text) => Option.fromNullable(/^orders_event_store_known_commits (\d+)$/m.exec(text)?.[1])),
    Effect.map(Option.map(Number)),
    Effect.orElseSucceed(() => Option.none<number>())
  )

export interface SoakSample {
  readonly seconds: number
  readonly megabytes: number
  readonly knownCommits?: number
}

export interface SoakReport {
  readonly seconds: number
  readonly connections: number
  /** Every request of the mix. */
  readonly load: Measurement
  /** Megabytes; absent without a server pid. */
  readonly rssBefore?: number
  readonly rssAfter?: number
  /** After 5 idle seconds past the soak: what the server keeps. */
  readonly rssIdleAfter?: number
  /** The highest of the readings, during the soak and at its ends. */
  readonly rssPeak?: number
  /** Every 5 seconds. */
  readonly samples: ReadonlyArray<SoakSample>
}

const sampleEvery = Duration.seconds(5)

export const soak = (url: string, pool: OrderPool, pid: Option.Option<number>, seconds: number, connections: number) =>
  Effect.gen(function*() {
    const rss = Option.match(pid, {
      onNone: () => Effect.succeed(Option.none<number>()),
      onSome: residentMegabytes
    })
    const samples: Array<SoakSample> = []
    const started = performance.now()
    const sampler = yield* Effect.all([rss, knownCommits(url)]).pipe(
      Effect.tap(([megabytes, known]) =>
        Option.match(megabytes, {
          onNone: () => Effect.void,
          onSome: (megabytes) =>
            Effect.sync(() =>
              samples.push({
                seconds: Math.round((performance.now() - started) / 1000),
                megabytes,
                ...Option.match(known, { onNone: () => ({}), onSome: (knownCommits) => ({ knownCommits }) })
              })
            )
        })
      ),
      Effect.repeat(Schedule.spaced(sampleEvery)),
      Effect.fork
    )
    const before = yield* rss
    const load = yield* httpLoad({ concurrency: connections, warmupSeconds: 0, seconds }, {
      url,
      requests: () => mixedRequests(pool)
    })
    const after = yield* rss
    yield* Fiber.interrupt(sampler)
    yield* Effect.sleep(sampleEvery)
    const idleAfter = yield* rss
    const readings = [...samples.map((sample) => sample.megabytes), ...Option.toArray(before), ...Option.toArray(after)]
    const optional = (key: string, value: Option.Option<number>) =>
      Option.match(value, { onNone: () => ({}), onSome: (megabytes) => ({ [key]: megabytes }) })
    return {
      seconds,
      connections,
      load,
      ...optional("rssBefore", before),
      ...optional("rssAfter", after),
      ...optional("rssIdleAfter", idleAfter),
      ...(readings.length === 0 ? {} : { rssPeak: Math.max(...readings) }),
      samples
    } satisfies SoakReport
  })
