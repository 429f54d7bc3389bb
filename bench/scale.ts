/**
 * The scale sweep: create and process throughput with 0, 10k, 50k and 100k
 * orders in the event store. The store is filled directly, commits inserted
 * in batches as many appends would have left them (`seedEventStore`), so
 * that reaching 100k takes minutes, not hours; the read model is not filled,
 * since neither call reads it.
 */
import { seedEventStore } from "@orders/infra/testing/seedEventStore"
import { Effect } from "effect"
import { mongoClient } from "./floors.js"
import type { Measurement, Window } from "./load.js"
import { summary } from "./load.js"
import type { OrderPool, ScenarioContext } from "./scenarios.js"
import { runScenario, settle } from "./scenarios.js"

export interface ScalePoint {
  /** Orders seeded, and the orders this run created before the point (the point's own creates excluded). */
  readonly seeded: number
  readonly created: number
  readonly create: Measurement
  readonly process: Measurement
  /** How long the projector and the processor took to catch up after the two steps. */
  readonly settleSeconds: number
}

export interface ScaleReport {
  readonly concurrency: number
  seedSeconds: number
  seededCommits: number
  /** Filled point by point, so that a run stopped early still reports the points it reached. */
  readonly points: Array<ScalePoint>
}

const seedChunk = 10_000

/** Runs the sweep at `report.concurrency`, filling `report` as it goes. */
export const scaleSweep = (
  store: { readonly uri: string; readonly database: string },
  context: ScenarioContext & { readonly pool: OrderPool },
  sizes: ReadonlyArray<number>,
  window: Window,
  report: ScaleReport,
  progress: (line: string) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const client = yield* mongoClient(store.uri)
    const db = client.db(store.database)
    let seeded = 0
    for (const size of [...sizes].sort((a, b) => a - b)) {
      while (seeded < size) {
        const orders = Math.min(seedChunk, size - seeded)
        const started = performance.now()
        const { events } = yield* seedEventStore(db, { orders, prefix: `seed${seeded}` })
        report.seedSeconds += (performance.now() - started) / 1000
        seeded += orders
        report.seededCommits += events
        yield* progress(
          `seeded ${seeded.toLocaleString("en")} / ${size.toLocaleString("en")} orders ` +
            `(${report.seededCommits.toLocaleString("en")} commits, ` +
            `${Math.round(report.seededCommits / report.seedSeconds)} commits/s)`
        )
      }
      const created = context.pool.size
      const create = yield* runScenario("create", context, window)
      const createSettle = yield* settle("create", context)
      yield* progress(
        `scale ${size.toLocaleString("en")}: create ${summary(create)}, settled in ${createSettle.toFixed(1)} s`
      )
      const process = yield* runScenario("process", context, window, create.perSecond)
      const processSettle = yield* settle("process", context)
      yield* progress(
        `scale ${size.toLocaleString("en")}: process ${summary(process)}, settled in ${processSettle.toFixed(1)} s`
      )
      report.points.push({ seeded, created, create, process, settleSeconds: createSettle + processSettle })
    }
  }).pipe(Effect.scoped)
